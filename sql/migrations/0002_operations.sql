-- Write operations as server-side functions: each scan is one round trip and
-- one transaction, and the invariants (capacity, one parent per child, one
-- bill per parent, exact counters) are enforced here, under row locks taken
-- in one fixed order: bill, then parent, then child(ren) in QR order.
--
-- Errors: SQLSTATE 'TT' + HTTP-like class, the stable error code in HINT.
-- tracetrack_db.errors maps them to domain exceptions.

CREATE FUNCTION tt_fail(p_state text, p_code text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, HINT = p_code;
END $$;

-- Capacity and expected weight of the first parent format the QR matches.
CREATE FUNCTION tt_parent_format(p_qr text, OUT capacity integer, OUT expected_weight_kg numeric)
LANGUAGE sql STABLE AS $$
    SELECT f.capacity, f.expected_weight_kg FROM parent_format f
    WHERE p_qr ~ f.pattern ORDER BY f.id LIMIT 1
$$;

CREATE FUNCTION tt_child_weight() RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT (value #>> '{}')::numeric FROM app_setting WHERE name = 'child_weight_kg'), 1)
$$;

CREATE FUNCTION tt_check_area(p_area text) RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_area IS NULL THEN
        PERFORM tt_fail('TT400', 'dispatch_area_required', 'a dispatch area is required for a new bag');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dispatch_area WHERE name = p_area) THEN
        PERFORM tt_fail('TT400', 'unknown_area', format('unknown dispatch area %s', p_area));
    END IF;
END $$;

CREATE FUNCTION tt_event(p_kind text, p_user bigint, p_bag bag, p_parent bag, p_bill bill,
                         p_key text, p_details jsonb DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO event (kind, user_id, bag_id, qr_id, parent_id, parent_qr, bill_id, bill_no,
                       dispatch_area, idempotency_key, details)
    VALUES (p_kind, p_user, (p_bag).id, (p_bag).qr_id, (p_parent).id, (p_parent).qr_id,
            (p_bill).id, (p_bill).bill_no,
            coalesce((p_bag).dispatch_area, (p_parent).dispatch_area), p_key, p_details)
$$;

-- Register a bag by hand (POST /api/bags).
CREATE FUNCTION tt_register_bag(p_qr text, p_type text, p_area text, p_user bigint, p_key text)
RETURNS SETOF bag LANGUAGE plpgsql AS $$
DECLARE
    fmt record;
    b bag;
BEGIN
    PERFORM tt_check_area(p_area);
    SELECT * INTO fmt FROM tt_parent_format(p_qr);
    IF p_type = 'parent' AND fmt.capacity IS NULL THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s matches no parent format', p_qr));
    ELSIF p_type = 'child' AND fmt.capacity IS NOT NULL THEN
        PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_qr));
    END IF;
    INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg, weight_kg, created_by)
    VALUES (p_qr, p_type, p_area, fmt.capacity, fmt.expected_weight_kg,
            CASE WHEN p_type = 'child' THEN tt_child_weight() ELSE 0 END, p_user)
    ON CONFLICT (qr_id) DO NOTHING
    RETURNING * INTO b;
    IF b.id IS NULL THEN
        PERFORM tt_fail('TT409', 'qr_taken', format('%s is already registered', p_qr));
    END IF;
    PERFORM tt_event('bag_created', p_user, b, NULL, NULL, p_key);
    RETURN NEXT b;
END $$;

-- Open a parent for scanning, creating it when the QR is new.
CREATE FUNCTION tt_open_parent(p_qr text, p_user bigint, p_area text, p_restrict_area text, p_key text)
RETURNS TABLE (created boolean, bag_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    fmt record;
    b bag;
    v_created boolean := false;
BEGIN
    SELECT * INTO b FROM bag WHERE qr_id = p_qr;
    IF b.id IS NULL THEN
        SELECT * INTO fmt FROM tt_parent_format(p_qr);
        IF fmt.capacity IS NULL THEN
            PERFORM tt_fail('TT422', 'not_a_parent', format('%s matches no parent format', p_qr));
        END IF;
        p_area := coalesce(p_area, p_restrict_area);
        PERFORM tt_check_area(p_area);
        IF p_restrict_area IS NOT NULL AND p_area <> p_restrict_area THEN
            PERFORM tt_fail('TT403', 'wrong_area', format('you scan only in %s', p_restrict_area));
        END IF;
        INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg, created_by)
        VALUES (p_qr, 'parent', p_area, fmt.capacity, fmt.expected_weight_kg, p_user)
        ON CONFLICT (qr_id) DO NOTHING
        RETURNING * INTO b;
        v_created := b.id IS NOT NULL;
        IF NOT v_created THEN  -- another scanner created it a moment ago
            SELECT * INTO b FROM bag WHERE qr_id = p_qr;
            IF b.id IS NULL THEN  -- ... and someone deleted it since
                PERFORM tt_fail('TT409', 'conflict', format('%s changed concurrently: scan it again', p_qr));
            END IF;
        END IF;
    END IF;
    IF b.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_qr));
    END IF;
    IF p_restrict_area IS NOT NULL AND b.dispatch_area <> p_restrict_area THEN
        PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p_qr, b.dispatch_area));
    END IF;
    PERFORM tt_event('parent_scan', p_user, b, NULL, NULL, p_key,
                     CASE WHEN v_created THEN '{"created": true}'::jsonb END);
    created := v_created;
    bag_id := b.id;
    RETURN NEXT;
END $$;

-- Lock a parent for a change to its children; the checks every change shares.
CREATE FUNCTION tt_lock_parent(p_qr text, p_restrict_area text) RETURNS bag
LANGUAGE plpgsql AS $$
DECLARE
    p bag;
BEGIN
    SELECT * INTO p FROM bag WHERE qr_id = p_qr FOR UPDATE;
    IF p.id IS NULL THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found: scan it first', p_qr));
    END IF;
    IF p.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_qr));
    END IF;
    IF p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area THEN
        PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p_qr, p.dispatch_area));
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill',
                        format('%s is on a bill: remove it from the bill first', p_qr));
    END IF;
    RETURN p;
END $$;

-- Link one child into a parent the caller has locked with tt_lock_parent.

CREATE FUNCTION tt_link_locked(p_parent_id bigint, p_child_qr text, p_user bigint,
                               p_restrict_area text, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p bag;
    c bag;
    w numeric;
BEGIN
    SELECT * INTO p FROM bag WHERE id = p_parent_id;  -- locked by the caller
    FOR attempt IN 1..3 LOOP
        SELECT * INTO c FROM bag WHERE qr_id = p_child_qr FOR UPDATE;
        IF c.id IS NOT NULL THEN
            IF c.type <> 'child' THEN
                PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
            END IF;
            IF c.parent_id = p.id THEN
                RETURN 'already_linked';
            END IF;
            IF c.parent_id IS NOT NULL THEN
                PERFORM tt_fail('TT409', 'child_in_other_parent',
                                format('%s is already in another parent', p_child_qr));
            END IF;
            IF p_restrict_area IS NOT NULL AND c.dispatch_area <> p_restrict_area THEN
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p_child_qr, c.dispatch_area));
            END IF;
            IF p.child_count >= p.capacity THEN
                PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', p.qr_id, p.capacity));
            END IF;
            UPDATE bag SET parent_id = p.id, status = 'completed', updated_at = now()
            WHERE id = c.id RETURNING * INTO c;
            EXIT;
        END IF;
        IF (tt_parent_format(p_child_qr)).capacity IS NOT NULL THEN
            PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_child_qr));
        END IF;
        IF p.child_count >= p.capacity THEN
            PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', p.qr_id, p.capacity));
        END IF;
        INSERT INTO bag (qr_id, type, status, dispatch_area, parent_id, weight_kg, created_by)
        VALUES (p_child_qr, 'child', 'completed', p.dispatch_area, p.id, tt_child_weight(), p_user)
        ON CONFLICT (qr_id) DO NOTHING
        RETURNING * INTO c;
        EXIT WHEN c.id IS NOT NULL;
        -- another transaction registered this QR meanwhile: look again
    END LOOP;
    IF c.id IS NULL OR c.parent_id IS DISTINCT FROM p.id THEN
        PERFORM tt_fail('TT409', 'child_in_other_parent', format('%s was taken concurrently', p_child_qr));
    END IF;
    UPDATE bag SET child_count = child_count + 1,
                   weight_kg = weight_kg + c.weight_kg,
                   status = CASE WHEN child_count + 1 = capacity THEN 'completed' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = p.id;
    PERFORM tt_event('link', p_user, c, p, NULL, p_key);
    RETURN 'linked';
END $$;

CREATE FUNCTION tt_link_child(p_parent_qr text, p_child_qr text, p_user bigint,
                              p_restrict_area text, p_key text)
RETURNS TABLE (result text, child_count integer, capacity integer, parent_status text, weight_kg numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p bag;
    r text;
BEGIN
    p := tt_lock_parent(p_parent_qr, p_restrict_area);
    r := tt_link_locked(p.id, p_child_qr, p_user, p_restrict_area, p_key);
    RETURN QUERY SELECT r, b.child_count, b.capacity, b.status, b.weight_kg FROM bag b WHERE b.id = p.id;
END $$;

-- Link many children into one parent: a result per child, in input order.
-- When they do not all fit, the first scanned win: places are handed out in
-- input order before anything is locked. Rows are then locked and linked in
-- QR order, so concurrent batches cannot deadlock.
CREATE FUNCTION tt_link_children(p_parent_qr text, p_child_qrs text[], p_user bigint,
                                 p_restrict_area text, p_key text)
RETURNS TABLE (ord integer, child_qr text, result text, error_code text, message text,
               child_count integer, capacity integer, parent_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p bag;
    item record;
    places integer;
    refused integer[] := '{}';
    v_result text;
    v_code text;
    v_message text;
BEGIN
    p := tt_lock_parent(p_parent_qr, p_restrict_area);
    IF cardinality(p_child_qrs) > p.capacity THEN
        PERFORM tt_fail('TT400', 'too_many_children',
                        format('%s holds at most %s children: send at most that many', p.qr_id, p.capacity));
    END IF;
    places := p.capacity - p.child_count;
    FOR item IN
        SELECT u.n,
               CASE WHEN b.id IS NULL THEN (tt_parent_format(u.qr)).capacity IS NULL
                    ELSE b.type = 'child' AND b.parent_id IS NULL
                         AND (p_restrict_area IS NULL OR b.dispatch_area = p_restrict_area)
               END AS wants_place,
               row_number() OVER (PARTITION BY u.qr ORDER BY u.n) AS occurrence
        FROM unnest(p_child_qrs) WITH ORDINALITY AS u(qr, n)
        LEFT JOIN bag b ON b.qr_id = u.qr
        ORDER BY u.n
    LOOP
        IF item.wants_place AND item.occurrence = 1 THEN
            IF places > 0 THEN
                places := places - 1;
            ELSE
                refused := refused || item.n::integer;
            END IF;
        END IF;
    END LOOP;
    FOR item IN SELECT u.qr, u.n FROM unnest(p_child_qrs) WITH ORDINALITY AS u(qr, n) ORDER BY u.qr, u.n
    LOOP
        v_code := NULL;
        v_message := NULL;
        IF item.n = ANY (refused) THEN
            v_result := 'error';
            v_code := 'parent_full';
            v_message := format('%s is full (%s)', p.qr_id, p.capacity);
        ELSE
            BEGIN
                v_result := tt_link_locked(p.id, item.qr, p_user, p_restrict_area, p_key);
            EXCEPTION WHEN SQLSTATE 'TT403' OR SQLSTATE 'TT409' OR SQLSTATE 'TT422' THEN
                GET STACKED DIAGNOSTICS v_code = PG_EXCEPTION_HINT, v_message = MESSAGE_TEXT;
                v_result := 'error';
            END;
        END IF;
        RETURN QUERY SELECT item.n::integer, item.qr, v_result, v_code, v_message,
                            b.child_count, b.capacity, b.status FROM bag b WHERE b.id = p.id;
    END LOOP;
END $$;

-- Take a child out of its parent: the child stays, the parent reopens.
CREATE FUNCTION tt_unlink_child(p_child_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS TABLE (parent_qr text, child_count integer, capacity integer, parent_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    seen bag;
    p bag;
    c bag;
BEGIN
    FOR attempt IN 1..5 LOOP
        SELECT * INTO seen FROM bag WHERE qr_id = p_child_qr;
        IF seen.id IS NULL THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('bag %s not found', p_child_qr));
        END IF;
        IF seen.type <> 'child' THEN
            PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
        END IF;
        IF p_restrict_area IS NOT NULL AND seen.dispatch_area <> p_restrict_area THEN
            PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p_child_qr, seen.dispatch_area));
        END IF;
        IF seen.parent_id IS NULL THEN
            PERFORM tt_fail('TT409', 'child_not_linked', format('%s is not in a parent', p_child_qr));
        END IF;
        -- Lock parent then child. If the link moved meanwhile, undo this attempt
        -- (the subtransaction's rollback releases its row locks, so the next
        -- attempt never waits for a parent while holding a child) and look again.
        BEGIN
            SELECT * INTO p FROM bag WHERE id = seen.parent_id FOR UPDATE;
            SELECT * INTO c FROM bag WHERE id = seen.id FOR UPDATE;
            IF c.id IS NULL OR c.parent_id IS DISTINCT FROM p.id THEN
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
    IF p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area THEN
        PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p.qr_id, p.dispatch_area));
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill',
                        format('%s is on a bill: remove it from the bill first', p.qr_id));
    END IF;
    UPDATE bag SET parent_id = NULL, status = 'pending', updated_at = now() WHERE id = c.id;
    UPDATE bag SET child_count = child_count - 1,
                   weight_kg = greatest(weight_kg - c.weight_kg, 0),
                   status = CASE WHEN child_count - 1 = 0 THEN 'pending' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = p.id;
    PERFORM tt_event('unlink', p_user, c, p, NULL, p_key);
    RETURN QUERY SELECT b.qr_id, b.child_count, b.capacity, b.status FROM bag b WHERE b.id = p.id;
END $$;

-- Delete a bag: never one on a bill or one holding children; a linked child
-- leaves its parent first.
CREATE FUNCTION tt_delete_bag(p_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    seen bag;
    p bag;
    b bag;
BEGIN
    FOR attempt IN 1..5 LOOP
        SELECT * INTO seen FROM bag WHERE qr_id = p_qr;
        IF seen.id IS NULL THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('bag %s not found', p_qr));
        END IF;
        IF p_restrict_area IS NOT NULL AND seen.dispatch_area <> p_restrict_area THEN
            PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p_qr, seen.dispatch_area));
        END IF;
        p := NULL;
        BEGIN  -- one attempt; a changed link undoes it and its locks (see tt_unlink_child)
            IF seen.parent_id IS NOT NULL THEN
                SELECT * INTO p FROM bag WHERE id = seen.parent_id FOR UPDATE;
            END IF;
            SELECT * INTO b FROM bag WHERE id = seen.id FOR UPDATE;
            IF b.id IS NULL OR b.parent_id IS DISTINCT FROM p.id THEN
                RAISE EXCEPTION USING ERRCODE = 'TT499';
            END IF;
            EXIT;
        EXCEPTION WHEN SQLSTATE 'TT499' THEN
            b := NULL;
        END;
    END LOOP;
    IF b.id IS NULL THEN
        PERFORM tt_fail('TT409', 'conflict', format('%s keeps changing: try again', p_qr));
    END IF;
    IF b.bill_id IS NOT NULL OR p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'bag_on_bill', format('%s is on a bill', p_qr));
    END IF;
    IF b.child_count > 0 THEN
        PERFORM tt_fail('TT409', 'bag_has_children',
                        format('%s holds %s children: unlink them first', p_qr, b.child_count));
    END IF;
    IF p.id IS NOT NULL THEN
        UPDATE bag SET child_count = child_count - 1,
                       weight_kg = greatest(weight_kg - b.weight_kg, 0),
                       status = CASE WHEN child_count - 1 = 0 THEN 'pending' ELSE 'in_progress' END,
                       updated_at = now()
        WHERE id = p.id;
        PERFORM tt_event('unlink', p_user, b, p, NULL, p_key);
    END IF;
    DELETE FROM bag WHERE id = b.id;
    PERFORM tt_event('bag_deleted', p_user, b, p, NULL, p_key,
                     jsonb_build_object('type', b.type, 'status', b.status));
    RETURN b.id;
END $$;

CREATE FUNCTION tt_lock_bill(p_bill_no text) RETURNS bill LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
BEGIN
    SELECT * INTO bl FROM bill WHERE lower(bill_no) = lower(p_bill_no) FOR UPDATE;
    IF bl.id IS NULL THEN
        PERFORM tt_fail('TT404', 'bill_not_found', format('bill %s not found', p_bill_no));
    END IF;
    RETURN bl;
END $$;

CREATE FUNCTION tt_bill_add_parent(p_bill_no text, p_parent_qr text, p_user bigint, p_key text)
RETURNS TABLE (result text, bill_id bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    bl bill;
    p bag;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    SELECT * INTO p FROM bag WHERE qr_id = p_parent_qr FOR UPDATE;
    IF p.id IS NULL THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found', p_parent_qr));
    END IF;
    IF p.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_parent_qr));
    END IF;
    IF p.bill_id = bl.id THEN
        RETURN QUERY SELECT 'already_added'::text, bl.id;
        RETURN;
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_other_bill', format('%s is on another bill', p_parent_qr));
    END IF;
    IF bl.status = 'completed' THEN
        PERFORM tt_fail('TT409', 'bill_completed', format('bill %s is completed: reopen it first', bl.bill_no));
    END IF;
    IF bl.linked_parent_count >= bl.capacity THEN
        PERFORM tt_fail('TT409', 'bill_full', format('bill %s is full (%s parents)', bl.bill_no, bl.capacity));
    END IF;
    IF p.child_count = 0 THEN
        PERFORM tt_fail('TT409', 'parent_empty', format('%s holds no children', p_parent_qr));
    END IF;
    UPDATE bag SET bill_id = bl.id, updated_at = now() WHERE id = p.id;
    UPDATE bill SET linked_parent_count = linked_parent_count + 1,
                    total_child_count = total_child_count + p.child_count,
                    total_weight_kg = total_weight_kg + p.weight_kg,
                    expected_weight_kg = expected_weight_kg + coalesce(p.expected_weight_kg, 0),
                    status = 'processing',
                    updated_at = now()
    WHERE id = bl.id;
    PERFORM tt_event('bill_add', p_user, NULL, p, bl, p_key);
    RETURN QUERY SELECT 'added'::text, bl.id;
END $$;

CREATE FUNCTION tt_bill_remove_parent(p_bill_no text, p_parent_qr text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
    p bag;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    SELECT * INTO p FROM bag WHERE qr_id = p_parent_qr FOR UPDATE;
    IF p.id IS NULL THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found', p_parent_qr));
    END IF;
    IF p.bill_id IS DISTINCT FROM bl.id THEN
        PERFORM tt_fail('TT409', 'parent_not_on_bill', format('%s is not on bill %s', p_parent_qr, bl.bill_no));
    END IF;
    IF bl.status = 'completed' THEN
        PERFORM tt_fail('TT409', 'bill_completed', format('bill %s is completed: reopen it first', bl.bill_no));
    END IF;
    UPDATE bag SET bill_id = NULL, updated_at = now() WHERE id = p.id;
    UPDATE bill SET linked_parent_count = linked_parent_count - 1,
                    total_child_count = total_child_count - p.child_count,
                    total_weight_kg = greatest(total_weight_kg - p.weight_kg, 0),
                    expected_weight_kg = greatest(expected_weight_kg - coalesce(p.expected_weight_kg, 0), 0),
                    updated_at = now()
    WHERE id = bl.id;
    PERFORM tt_event('bill_remove', p_user, NULL, p, bl, p_key);
    RETURN bl.id;
END $$;

CREATE FUNCTION tt_bill_complete(p_bill_no text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    IF bl.status = 'completed' THEN
        RETURN bl.id;
    END IF;
    IF bl.linked_parent_count < bl.capacity THEN
        PERFORM tt_fail('TT409', 'bill_not_full',
                        format('bill %s holds %s of %s parents', bl.bill_no, bl.linked_parent_count, bl.capacity));
    END IF;
    UPDATE bill SET status = 'completed', completed_at = now(), updated_at = now() WHERE id = bl.id;
    PERFORM tt_event('bill_complete', p_user, NULL, NULL, bl, p_key);
    RETURN bl.id;
END $$;

CREATE FUNCTION tt_bill_reopen(p_bill_no text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    IF bl.status <> 'completed' THEN
        PERFORM tt_fail('TT409', 'bill_not_completed', format('bill %s is not completed', bl.bill_no));
    END IF;
    UPDATE bill SET status = 'processing', completed_at = NULL, updated_at = now() WHERE id = bl.id;
    PERFORM tt_event('bill_reopen', p_user, NULL, NULL, bl, p_key);
    RETURN bl.id;
END $$;

CREATE FUNCTION tt_bill_update(p_bill_no text, p_capacity integer, p_description text,
                               p_destination text, p_vehicle_number text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    IF bl.status = 'completed' THEN
        PERFORM tt_fail('TT409', 'bill_completed', format('bill %s is completed: reopen it first', bl.bill_no));
    END IF;
    IF p_capacity IS NOT NULL AND p_capacity < bl.linked_parent_count THEN
        PERFORM tt_fail('TT409', 'bill_capacity_too_small',
                        format('bill %s already holds %s parents', bl.bill_no, bl.linked_parent_count));
    END IF;
    UPDATE bill SET capacity = coalesce(p_capacity, capacity),
                    description = coalesce(p_description, description),
                    destination = coalesce(p_destination, destination),
                    vehicle_number = coalesce(p_vehicle_number, vehicle_number),
                    updated_at = now()
    WHERE id = bl.id;
    PERFORM tt_event('bill_updated', p_user, NULL, NULL, bl, p_key,
                     jsonb_strip_nulls(jsonb_build_object('capacity', p_capacity, 'description', p_description,
                                                          'destination', p_destination,
                                                          'vehicle_number', p_vehicle_number)));
    RETURN bl.id;
END $$;

-- Delete a bill: its parents come off it (and stay), the history stays.
CREATE FUNCTION tt_bill_delete(p_bill_no text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
    p bag;
    n integer;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    n := 0;
    FOR p IN SELECT * FROM bag WHERE bill_id = bl.id ORDER BY id FOR UPDATE LOOP
        UPDATE bag SET bill_id = NULL, updated_at = now() WHERE id = p.id;
        -- each released parent's own history says how it left the bill
        PERFORM tt_event('bill_remove', p_user, NULL, p, bl, p_key, '{"bill_deleted": true}');
        n := n + 1;
    END LOOP;
    DELETE FROM bill WHERE id = bl.id;
    PERFORM tt_event('bill_deleted', p_user, NULL, NULL, bl, p_key,
                     jsonb_build_object('parents_released', n, 'status', bl.status));
    RETURN bl.id;
END $$;
