-- Move a child to another parent in one call (issue 12, item 3): never in two
-- parents, never in none (a full target refuses before anything changes), one
-- event pair (an unlink from the old parent, a link into the new, both with
-- details {"move": true}). Locks: both parents in QR order, then the child.
-- Parents only: a QR known as a child is never locked as a parent (a link
-- that did so deadlocked, see 0006).
CREATE FUNCTION tt_move_child(p_child_qr text, p_to_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS TABLE (result text, from_parent_qr text, child_count integer, capacity integer, parent_status text,
               from_child_count integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    seen bag;
    src bag;
    dst bag;
    c bag;
BEGIN
    FOR attempt IN 1..5 LOOP
        SELECT * INTO seen FROM bag WHERE qr_id = p_child_qr;
        IF seen.id IS NULL OR (p_restrict_area IS NOT NULL AND seen.dispatch_area <> p_restrict_area) THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('bag %s not found', p_child_qr));
        END IF;
        IF seen.type <> 'child' THEN
            PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
        END IF;
        IF seen.parent_id IS NULL THEN
            PERFORM tt_fail('TT409', 'child_not_linked', format('%s is not in a parent: scan it into one', p_child_qr));
        END IF;
        -- One attempt; a link that moved meanwhile undoes it and its locks (see tt_unlink_child).
        BEGIN
            PERFORM 1 FROM bag WHERE (id = seen.parent_id OR qr_id = p_to_qr) AND type = 'parent'
            ORDER BY qr_id FOR UPDATE;
            SELECT * INTO src FROM bag WHERE id = seen.parent_id;
            SELECT * INTO dst FROM bag WHERE qr_id = p_to_qr;
            SELECT * INTO c FROM bag WHERE id = seen.id FOR UPDATE;
            IF c.id IS NULL OR c.parent_id IS DISTINCT FROM src.id THEN
                RAISE EXCEPTION USING ERRCODE = 'TT499';
            END IF;
            EXIT;
        EXCEPTION WHEN SQLSTATE 'TT499' THEN
            c := NULL;
        END;
    END LOOP;
    IF c.id IS NULL THEN
        PERFORM tt_fail('TT409', 'conflict', format('%s keeps changing: try again', p_child_qr));
    END IF;
    IF dst.id IS NULL OR (p_restrict_area IS NOT NULL AND dst.dispatch_area <> p_restrict_area) THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found: scan it first', p_to_qr));
    END IF;
    IF dst.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_to_qr));
    END IF;
    IF dst.id = src.id THEN
        RETURN QUERY SELECT 'already_linked'::text, src.qr_id, dst.child_count, dst.capacity, dst.status,
                            src.child_count;
        RETURN;
    END IF;
    IF c.dispatch_area <> dst.dispatch_area THEN
        PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to another dispatch area than %s', c.qr_id, dst.qr_id));
    END IF;
    IF src.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill', format('%s is on a bill: remove it from the bill first', src.qr_id));
    END IF;
    IF dst.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill', format('%s is on a bill: remove it from the bill first', dst.qr_id));
    END IF;
    IF dst.child_count >= dst.capacity THEN
        PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', dst.qr_id, dst.capacity));
    END IF;
    UPDATE bag SET parent_id = dst.id, updated_at = now() WHERE id = c.id;
    UPDATE bag SET child_count = child_count - 1,
                   weight_kg = greatest(weight_kg - c.weight_kg, 0),
                   status = CASE WHEN child_count - 1 = 0 THEN 'pending' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = src.id
    RETURNING * INTO src;
    UPDATE bag SET child_count = child_count + 1,
                   weight_kg = weight_kg + c.weight_kg,
                   status = CASE WHEN child_count + 1 = capacity THEN 'completed' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = dst.id
    RETURNING * INTO dst;
    PERFORM tt_event('unlink', p_user, c, src, NULL, p_key, jsonb_build_object('move', true, 'to', dst.qr_id));
    PERFORM tt_event('link', p_user, c, dst, NULL, p_key, jsonb_build_object('move', true, 'from', src.qr_id));
    RETURN QUERY SELECT 'moved'::text, src.qr_id, dst.child_count, dst.capacity, dst.status, src.child_count;
END $$;

INSERT INTO definer_function (name) VALUES ('tt_move_child');
