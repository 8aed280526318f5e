-- Corrections (issue 12, items 4 and 5): close a parent short, reopen it, and
-- undo one's own last link.
--
-- A parent closed short holds fewer children than its capacity and counts as
-- completed: it can go on a bill, links into it are refused (parent_closed),
-- and it reopens when a child leaves it (unlink, move, delete, undo) or on
-- request. The invariant "completed <=> full" becomes "completed <=> full or
-- closed short", still a CHECK.

ALTER TABLE bag ADD COLUMN closed_short_reason text;

-- NOT VALID then VALIDATE: the check of the existing rows takes no lock that
-- blocks scans (SHARE UPDATE EXCLUSIVE); only the short ALTERs do.
ALTER TABLE bag ADD CONSTRAINT bag_closed_short_fields CHECK (
    closed_short_reason IS NULL
    OR (type = 'parent' AND length(closed_short_reason) BETWEEN 1 AND 200
        AND child_count BETWEEN 1 AND capacity - 1)) NOT VALID;
ALTER TABLE bag ADD CONSTRAINT bag_completed_is_full_or_closed CHECK (
    type = 'child' OR (status = 'completed') = (child_count = capacity OR closed_short_reason IS NOT NULL)) NOT VALID;
ALTER TABLE bag DROP CONSTRAINT bag_full_is_completed;
ALTER TABLE bag VALIDATE CONSTRAINT bag_closed_short_fields;
ALTER TABLE bag VALIDATE CONSTRAINT bag_completed_is_full_or_closed;

ALTER TABLE event ADD CONSTRAINT event_kind_check_v2 CHECK (kind IN (
    'bag_created', 'parent_scan', 'link', 'unlink', 'bag_deleted',
    'bill_created', 'bill_updated', 'bill_add', 'bill_remove',
    'bill_complete', 'bill_reopen', 'bill_deleted',
    'close_short', 'reopen_parent')) NOT VALID;
ALTER TABLE event DROP CONSTRAINT event_kind_check;
ALTER TABLE event VALIDATE CONSTRAINT event_kind_check_v2;

-- The library's Bag gains the reason (NULL unless closed short).
CREATE OR REPLACE VIEW bag_row AS
SELECT b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id,
       (SELECT p.qr_id FROM bag p WHERE p.id = b.parent_id) AS parent_qr,
       b.bill_id,
       (SELECT x.bill_no FROM bill x WHERE x.id = b.bill_id) AS bill_no,
       b.capacity, b.child_count, b.weight_kg, b.created_by, b.created_at, b.updated_at,
       b.closed_short_reason
FROM bag b;

-- Links (one or a batch) lock their parent here: a parent closed short refuses.
CREATE OR REPLACE FUNCTION tt_lock_parent(p_qr text, p_restrict_area text) RETURNS bag
LANGUAGE plpgsql AS $$
DECLARE
    p bag;
BEGIN
    SELECT * INTO p FROM bag WHERE qr_id = p_qr FOR UPDATE;
    IF p.id IS NULL OR (p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area) THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found: scan it first', p_qr));
    END IF;
    IF p.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_qr));
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill',
                        format('%s is on a bill: remove it from the bill first', p_qr));
    END IF;
    IF p.closed_short_reason IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_closed',
                        format('%s was closed short (%s children): reopen it first', p_qr, p.child_count));
    END IF;
    RETURN p;
END $$;

-- A child leaves its parent (both locked by the caller, parent first): the
-- parent's counters go down and it reopens; one unlink event, its details
-- saying why (undo, move) and whether the parent was closed short.
CREATE FUNCTION tt_take_out(c bag, p bag, p_user bigint, p_key text, p_details jsonb DEFAULT NULL)
RETURNS bag LANGUAGE plpgsql AS $$
DECLARE
    details jsonb := p_details;
BEGIN
    IF p.closed_short_reason IS NOT NULL THEN
        details := coalesce(details, '{}') || jsonb_build_object('reopened', p.closed_short_reason);
    END IF;
    UPDATE bag SET child_count = child_count - 1,
                   weight_kg = greatest(weight_kg - c.weight_kg, 0),
                   status = CASE WHEN child_count - 1 = 0 THEN 'pending' ELSE 'in_progress' END,
                   closed_short_reason = NULL,
                   updated_at = now()
    WHERE id = p.id
    RETURNING * INTO p;
    PERFORM tt_event('unlink', p_user, c, p, NULL, p_key, details);
    RETURN p;
END $$;

-- Lock a child's parent, then the child (the scans' order), looking again
-- when a concurrent link or move changed the child's parent meanwhile.
-- Returns the child with its parent (p NULL for a child in no parent).
CREATE FUNCTION tt_lock_child_and_parent(p_qr text, p_restrict_area text, OUT c bag, OUT p bag)
LANGUAGE plpgsql AS $$
DECLARE
    seen bag;
BEGIN
    FOR attempt IN 1..5 LOOP
        SELECT * INTO seen FROM bag WHERE qr_id = p_qr;
        IF seen.id IS NULL OR (p_restrict_area IS NOT NULL AND seen.dispatch_area <> p_restrict_area) THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('bag %s not found', p_qr));
        END IF;
        p := NULL;
        BEGIN  -- one attempt; a changed link undoes it and its locks
            IF seen.parent_id IS NOT NULL THEN
                SELECT * INTO p FROM bag WHERE id = seen.parent_id FOR UPDATE;
            END IF;
            SELECT * INTO c FROM bag WHERE id = seen.id FOR UPDATE;
            IF c.id IS NULL OR c.parent_id IS DISTINCT FROM p.id THEN
                RAISE EXCEPTION USING ERRCODE = 'TT499';
            END IF;
            RETURN;
        EXCEPTION WHEN SQLSTATE 'TT499' THEN
            c := NULL;
        END;
    END LOOP;
    PERFORM tt_fail('TT409', 'conflict', format('%s keeps changing: try again', p_qr));
END $$;

CREATE OR REPLACE FUNCTION tt_unlink_child(p_child_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS TABLE (parent_qr text, child_count integer, capacity integer, parent_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    locked record;
    c bag;
    p bag;
BEGIN
    SELECT * INTO locked FROM tt_lock_child_and_parent(p_child_qr, p_restrict_area);
    c := locked.c;
    p := locked.p;
    IF c.type <> 'child' THEN
        PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
    END IF;
    IF p.id IS NULL THEN
        PERFORM tt_fail('TT409', 'child_not_linked', format('%s is not in a parent', p_child_qr));
    END IF;
    IF p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area THEN  -- an admin mixed areas
        PERFORM tt_fail('TT403', 'wrong_area', format('%s is in a parent of another dispatch area', p_child_qr));
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill',
                        format('%s is on a bill: remove it from the bill first', p.qr_id));
    END IF;
    UPDATE bag SET parent_id = NULL, status = 'pending', updated_at = now() WHERE id = c.id;
    p := tt_take_out(c, p, p_user, p_key);
    RETURN QUERY SELECT p.qr_id, p.child_count, p.capacity, p.status;
END $$;

CREATE OR REPLACE FUNCTION tt_delete_bag(p_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    locked record;
    b bag;
    p bag;
BEGIN
    SELECT * INTO locked FROM tt_lock_child_and_parent(p_qr, p_restrict_area);
    b := locked.c;
    p := locked.p;
    IF b.bill_id IS NOT NULL OR p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'bag_on_bill', format('%s is on a bill', p_qr));
    END IF;
    IF b.child_count > 0 THEN
        PERFORM tt_fail('TT409', 'bag_has_children',
                        format('%s holds %s children: unlink them first', p_qr, b.child_count));
    END IF;
    IF p.id IS NOT NULL THEN
        p := tt_take_out(b, p, p_user, p_key);
    END IF;
    DELETE FROM bag WHERE id = b.id;
    PERFORM tt_event('bag_deleted', p_user, b, p, NULL, p_key,
                     jsonb_build_object('type', b.type, 'status', b.status));
    RETURN b.id;
END $$;

-- Move (0015): a target closed short refuses; the source reopens.
CREATE OR REPLACE FUNCTION tt_move_child(p_child_qr text, p_to_qr text, p_user bigint, p_restrict_area text, p_key text)
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
    IF dst.closed_short_reason IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_closed',
                        format('%s was closed short (%s children): reopen it first', dst.qr_id, dst.child_count));
    END IF;
    IF dst.child_count >= dst.capacity THEN
        PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', dst.qr_id, dst.capacity));
    END IF;
    UPDATE bag SET parent_id = dst.id, updated_at = now() WHERE id = c.id;
    src := tt_take_out(c, src, p_user, p_key, jsonb_build_object('move', true, 'to', dst.qr_id));
    UPDATE bag SET child_count = child_count + 1,
                   weight_kg = weight_kg + c.weight_kg,
                   status = CASE WHEN child_count + 1 = capacity THEN 'completed' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = dst.id
    RETURNING * INTO dst;
    PERFORM tt_event('link', p_user, c, dst, NULL, p_key, jsonb_build_object('move', true, 'from', src.qr_id));
    RETURN QUERY SELECT 'moved'::text, src.qr_id, dst.child_count, dst.capacity, dst.status, src.child_count;
END $$;

-- The parent that close and reopen change, locked (tt_lock_parent refuses a
-- parent on a bill or closed short, which these two answer themselves).
CREATE FUNCTION tt_lock_parent_to_close(p_qr text, p_restrict_area text) RETURNS bag
LANGUAGE plpgsql AS $$
DECLARE
    p bag;
BEGIN
    SELECT * INTO p FROM bag WHERE qr_id = p_qr FOR UPDATE;
    IF p.id IS NULL OR (p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area) THEN
        PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found', p_qr));
    END IF;
    IF p.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_qr));
    END IF;
    RETURN p;
END $$;

-- Close a parent short (dispatchers of its area, admins): it holds 1 to
-- capacity - 1 children and counts as completed from now on. Closing one
-- already closed answers already_closed and writes nothing.
CREATE FUNCTION tt_close_parent(p_qr text, p_reason text, p_user bigint, p_restrict_area text, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p bag;
BEGIN
    p := tt_lock_parent_to_close(p_qr, p_restrict_area);
    IF p.closed_short_reason IS NOT NULL THEN
        RETURN 'already_closed';
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill', format('%s is on a bill: remove it from the bill first', p_qr));
    END IF;
    IF p.child_count = 0 THEN
        PERFORM tt_fail('TT409', 'parent_empty', format('%s holds no children: nothing to close', p_qr));
    END IF;
    IF p.child_count >= p.capacity THEN
        PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s): it is completed already', p_qr, p.capacity));
    END IF;
    UPDATE bag SET closed_short_reason = p_reason, status = 'completed', updated_at = now()
    WHERE id = p.id RETURNING * INTO p;
    PERFORM tt_event('close_short', p_user, p, NULL, NULL, p_key,
                     jsonb_build_object('reason', p_reason, 'child_count', p.child_count, 'capacity', p.capacity));
    RETURN 'closed';
END $$;

-- Reopen a parent closed short, so that more children can go in. One not
-- closed answers not_closed and writes nothing.
CREATE FUNCTION tt_reopen_parent(p_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p bag;
    reason text;
BEGIN
    p := tt_lock_parent_to_close(p_qr, p_restrict_area);
    IF p.closed_short_reason IS NULL THEN
        RETURN 'not_closed';
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill', format('%s is on a bill: remove it from the bill first', p_qr));
    END IF;
    reason := p.closed_short_reason;
    UPDATE bag SET closed_short_reason = NULL, status = 'in_progress', updated_at = now()
    WHERE id = p.id RETURNING * INTO p;
    PERFORM tt_event('reopen_parent', p_user, p, NULL, NULL, p_key, jsonb_build_object('reason', reason));
    RETURN 'reopened';
END $$;

-- Undo the caller's last link (issue 12, item 4): their most recent link or
-- unlink event, if it is a link of their own scanning (not an import's, not a
-- move's) made within p_window, whose child is still in that parent by that
-- link (no link or unlink of it since, by anyone). One
-- unlink event with details {"undo": <the link event's id>}. Pressing undo
-- again finds that unlink last: nothing_to_undo, never an older link.
CREATE FUNCTION tt_undo_last_link(p_user bigint, p_window interval, p_restrict_area text, p_key text)
RETURNS TABLE (child_qr text, parent_qr text, linked_at timestamptz, child_count integer, capacity integer,
               parent_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e event;
    c bag;
    p bag;
BEGIN
    SELECT * INTO e FROM event x
    WHERE x.user_id = p_user AND x.kind IN ('link', 'unlink')
    ORDER BY x.id DESC LIMIT 1;
    IF e.id IS NULL OR e.kind <> 'link' OR e.details ? 'import_id' OR e.details ? 'move' THEN
        PERFORM tt_fail('TT409', 'nothing_to_undo', 'your last scan was not a link: nothing to undo');
    END IF;
    IF e.occurred_at < now() - p_window THEN
        PERFORM tt_fail('TT409', 'nothing_to_undo',
                        format('your last link (%s into %s) is older than %s: unlink it instead',
                               e.qr_id, e.parent_qr, p_window));
    END IF;
    -- Parent, then child, as the scans lock; the child must still be where the link put it.
    SELECT * INTO p FROM bag WHERE id = e.parent_id FOR UPDATE;
    SELECT * INTO c FROM bag WHERE id = e.bag_id FOR UPDATE;
    IF c.id IS NULL OR p.id IS NULL OR c.parent_id IS DISTINCT FROM p.id THEN
        PERFORM tt_fail('TT409', 'nothing_to_undo',
                        format('%s is no longer in %s: nothing undone', e.qr_id, e.parent_qr));
    END IF;
    -- ... by that link: unlinked and linked again since (by anyone), it is another's link now
    IF EXISTS (SELECT 1 FROM event x WHERE x.bag_id = c.id AND x.kind IN ('link', 'unlink') AND x.id > e.id) THEN
        PERFORM tt_fail('TT409', 'nothing_to_undo',
                        format('%s was taken out and linked again since your link: nothing undone', e.qr_id));
    END IF;
    IF p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area THEN  -- moved areas since
        PERFORM tt_fail('TT403', 'wrong_area', format('%s is in a parent of another dispatch area', c.qr_id));
    END IF;
    IF p.bill_id IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'parent_on_bill', format('%s is on a bill: remove it from the bill first', p.qr_id));
    END IF;
    UPDATE bag SET parent_id = NULL, status = 'pending', updated_at = now() WHERE id = c.id;
    p := tt_take_out(c, p, p_user, p_key, jsonb_build_object('undo', e.id));
    RETURN QUERY SELECT c.qr_id, p.qr_id, e.occurred_at, p.child_count, p.capacity, p.status;
END $$;

-- Imports (0011): a block into a parent closed short is refused whole (parent_closed).
CREATE OR REPLACE FUNCTION tt_import_links(p_job bigint, p_user bigint, p_area text, p_parents text[],
                                p_parent_rows integer[], p_ends integer[], p_rows integer[], p_qrs text[])
RETURNS SETOF tt_import_verdict LANGUAGE plpgsql AS $$
DECLARE
    details jsonb := jsonb_build_object('import_id', p_job);
    w numeric := tt_child_weight();
    first integer := 1;
    last integer;
    p bag;
    fmt record;
    v tt_import_verdict[];
    pv tt_import_verdict;
    created boolean;
    places integer;
    qrs text[];
    rows integer[];
    new_qrs text[];
    old_ids bigint[];
    n_new integer;
    n_linked integer;
    old_weight numeric;
    code text;
    message text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_parents), 0) LOOP
        last := p_ends[i];
        qrs := p_qrs[first:last];
        rows := p_rows[first:last];
        v := NULL;
        created := false;
        BEGIN
            SELECT * INTO p FROM bag WHERE qr_id = p_parents[i] FOR UPDATE;
            IF p.id IS NULL THEN
                SELECT f.capacity, f.expected_weight_kg INTO fmt FROM parent_format f  -- tt_parent_format, inlined
                WHERE p_parents[i] ~ f.pattern ORDER BY f.id LIMIT 1;
                IF fmt IS NULL OR fmt.capacity IS NULL THEN
                    PERFORM tt_fail('TT422', 'not_a_parent', format('%s matches no parent format', p_parents[i]));
                END IF;
                IF p_area IS NULL THEN
                    PERFORM tt_fail('TT400', 'dispatch_area_required',
                                    format('%s is a new parent: name the dispatch_area of the import', p_parents[i]));
                END IF;
                INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg, created_by)
                VALUES (p_parents[i], 'parent', p_area, fmt.capacity, fmt.expected_weight_kg, p_user)
                ON CONFLICT (qr_id) DO NOTHING
                RETURNING * INTO p;
                created := p.id IS NOT NULL;
                IF NOT created THEN  -- another import or scanner created it a moment ago: use theirs
                    SELECT * INTO p FROM bag WHERE qr_id = p_parents[i] FOR UPDATE;
                    IF p.id IS NULL THEN  -- ... and someone deleted it since
                        PERFORM tt_fail('TT409', 'conflict', format('%s changed concurrently: import again', p_parents[i]));
                    END IF;
                END IF;
            END IF;
            IF p.type <> 'parent' THEN
                PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_parents[i]));
            END IF;
            IF p_area IS NOT NULL AND p.dispatch_area <> p_area THEN
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p.qr_id, p.dispatch_area));
            END IF;
            -- The children known as children, locked in QR order (a QR known
            -- as a parent is never locked here: see tt_link_locked).
            PERFORM 1 FROM bag b WHERE b.qr_id = ANY (qrs) AND b.type = 'child' ORDER BY b.qr_id FOR UPDATE;
            places := p.capacity - p.child_count;
            -- A verdict per row, in one pass with one look-up of each QR; and the
            -- rows to apply: new QRs to create, known children (by id) to link.
            SELECT array_agg(ROW(k.row_no, k.verdict, k.code, k.message)::tt_import_verdict ORDER BY k.n),
                   array_agg(k.qr ORDER BY k.n) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NULL),
                   array_agg(k.bag_id ORDER BY k.n) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NOT NULL),
                   coalesce(sum(k.weight_kg) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NOT NULL), 0)
            INTO v, new_qrs, old_ids, old_weight
            FROM (
                SELECT c.n, c.row_no, c.qr, c.bag_id, c.weight_kg,
                       CASE WHEN c.code IS NOT NULL OR (c.wants AND (c.rank > places OR p.bill_id IS NOT NULL))
                            THEN 'error' WHEN c.wants THEN 'ok' ELSE 'already_done' END AS verdict,
                       CASE WHEN c.code IS NOT NULL THEN c.code
                            WHEN c.wants AND p.bill_id IS NOT NULL THEN 'parent_on_bill'
                            WHEN c.wants AND c.rank > places THEN 'parent_full' ELSE c.done_code END AS code,
                       CASE WHEN c.code IS NOT NULL THEN c.message
                            WHEN c.wants AND p.bill_id IS NOT NULL
                            THEN format('%s is on a bill: remove it from the bill first', p.qr_id)
                            WHEN c.wants AND c.rank > places THEN format('%s is full (%s)', p.qr_id, p.capacity)
                            ELSE c.done_message END AS message
                FROM (
                    SELECT x.*, sum(x.wants::integer) OVER (ORDER BY x.n) AS rank
                    FROM (
                        SELECT u.n, u.row_no, u.qr, b.id AS bag_id, b.weight_kg, y.code, y.message,
                               y.code IS NULL AND y.done_code IS NULL AS wants, y.done_code, y.done_message
                        FROM (SELECT q.*, row_number() OVER (PARTITION BY q.qr ORDER BY q.n) AS occurrence
                              FROM unnest(qrs, rows) WITH ORDINALITY AS q(qr, row_no, n)) AS u
                        LEFT JOIN bag b ON b.qr_id = u.qr
                        -- a QR known as a parent, or a new one matching a parent format (not
                        -- tt_parent_format(): a function call per row cost more than the rest)
                        CROSS JOIN LATERAL (
                            SELECT b.type = 'parent' OR (b.id IS NULL AND EXISTS (
                                       SELECT 1 FROM parent_format f WHERE u.qr ~ f.pattern)) AS parent_like
                        ) AS pl
                        CROSS JOIN LATERAL (
                            SELECT CASE WHEN pl.parent_like THEN 'not_a_child'
                                        WHEN u.occurrence > 1 OR b.parent_id = p.id THEN NULL
                                        WHEN b.parent_id IS NOT NULL THEN 'child_in_other_parent'
                                        WHEN b.dispatch_area <> p.dispatch_area THEN 'wrong_area' END AS code,
                                   CASE WHEN pl.parent_like THEN format('%s is a parent QR', u.qr)
                                        WHEN u.occurrence > 1 OR b.parent_id = p.id THEN NULL
                                        WHEN b.parent_id IS NOT NULL THEN format('%s is already in another parent', u.qr)
                                        WHEN b.dispatch_area <> p.dispatch_area
                                        THEN format('%s belongs to another dispatch area than %s', u.qr, p.qr_id)
                                   END AS message,
                                   CASE WHEN pl.parent_like THEN NULL
                                        WHEN u.occurrence > 1 THEN 'duplicate_row'
                                        WHEN b.parent_id = p.id THEN 'already_linked' END AS done_code,
                                   CASE WHEN u.occurrence > 1 THEN format('%s appears earlier in this block', u.qr)
                                        WHEN b.parent_id = p.id THEN format('%s is already in %s', u.qr, p.qr_id)
                                   END AS done_message
                        ) AS y
                    ) AS x
                ) AS c
            ) AS k;
            IF p.closed_short_reason IS NOT NULL
               AND coalesce(cardinality(new_qrs), 0) + coalesce(cardinality(old_ids), 0) > 0 THEN
                PERFORM tt_fail('TT409', 'parent_closed',
                                format('%s was closed short (%s children): reopen it first', p.qr_id, p.child_count));
            END IF;
            IF EXISTS (SELECT 1 FROM unnest(v) AS x WHERE x.verdict = 'error') THEN
                v := tt_import_skip_rest(v);
                RAISE EXCEPTION USING ERRCODE = 'TT498';  -- undo the block (a new parent too)
            END IF;
            IF created THEN
                INSERT INTO event (kind, user_id, bag_id, qr_id, dispatch_area, details)
                VALUES ('parent_scan', p_user, p.id, p.qr_id, p.dispatch_area, details || '{"created": true}');
            END IF;
            n_new := coalesce(cardinality(new_qrs), 0);
            n_linked := n_new + coalesce(cardinality(old_ids), 0);
            IF n_linked > 0 THEN
                -- create and link in one statement; the events follow the rows' order in the file
                WITH created_rows AS (
                    INSERT INTO bag (qr_id, type, status, dispatch_area, parent_id, weight_kg, created_by)
                    SELECT q, 'child', 'completed', p.dispatch_area, p.id, w, p_user FROM unnest(new_qrs) AS q
                    RETURNING id, qr_id, dispatch_area  -- a QR registered meanwhile: unique_violation, the block undone
                ), linked_rows AS (
                    UPDATE bag SET parent_id = p.id, status = 'completed', updated_at = now()
                    WHERE id = ANY (old_ids)
                    RETURNING id, qr_id, dispatch_area
                ), all_rows AS (
                    SELECT * FROM created_rows UNION ALL SELECT * FROM linked_rows
                ), logged AS (
                    INSERT INTO event (kind, user_id, bag_id, qr_id, parent_id, parent_qr, dispatch_area, details)
                    SELECT 'link', p_user, a.id, a.qr_id, p.id, p.qr_id, a.dispatch_area, details
                    FROM all_rows a JOIN unnest(qrs) WITH ORDINALITY AS o(qr, n) ON o.qr = a.qr_id
                    ORDER BY o.n
                )
                SELECT count(*) INTO n_new FROM created_rows;
                UPDATE bag SET child_count = child_count + n_linked,
                               weight_kg = weight_kg + n_new * w + old_weight,
                               status = CASE WHEN child_count + n_linked = capacity THEN 'completed' ELSE 'in_progress' END,
                               updated_at = now()
                WHERE id = p.id;
            END IF;
            IF p_parent_rows[i] IS NOT NULL THEN
                pv := ROW(p_parent_rows[i], CASE WHEN created OR n_linked > 0 THEN 'ok' ELSE 'already_done' END,
                          CASE WHEN created THEN 'created' WHEN n_linked = 0 THEN 'already_linked' END,
                          CASE WHEN created THEN format('%s created', p.qr_id) END);
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'TT498' THEN
                pv := ROW(p_parent_rows[i], 'skipped', 'block_failed', 'not applied: a row of its block failed');
            WHEN SQLSTATE 'TT400' OR SQLSTATE 'TT403' OR SQLSTATE 'TT404' OR SQLSTATE 'TT409' OR SQLSTATE 'TT422'
                 OR check_violation OR unique_violation OR deadlock_detected OR lock_not_available THEN
                GET STACKED DIAGNOSTICS code = PG_EXCEPTION_HINT, message = MESSAGE_TEXT;
                IF code IS NULL OR code = '' THEN  -- a constraint or a lock: the block met a concurrent change
                    code := 'conflict';
                    message := format('the block could not be applied (%s): import again', message);
                END IF;
                v := tt_import_all(rows, 'error', code, message);
                pv := ROW(p_parent_rows[i], 'error', code, message);
        END;
        IF p_parent_rows[i] IS NOT NULL THEN
            v := v || pv;
        END IF;
        RETURN QUERY SELECT * FROM unnest(v);
        first := last + 1;
    END LOOP;
END $$;

-- Bills: block i is bill p_bills[i] (created with p_capacities[i] and the
-- descriptive fields when it does not exist) with the parents
-- p_qrs[p_ends[i-1]+1 .. p_ends[i]]. Locks: the bill, then its parents in QR order.

INSERT INTO definer_function (name) VALUES ('tt_close_parent'), ('tt_reopen_parent'), ('tt_undo_last_link');
