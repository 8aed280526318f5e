-- Row shapes written once, identifiers that survive a URL path, dispatchers
-- confined to their area on reads as well as writes, and three bill fixes.

-- 1. The library's Bag and Bill (tracetrack_db.models), written once. Named
--    queries, the JSON of the hot read (to_json of these rows) and the CSV
--    exports all select these views; a test compares their columns with the
--    dataclass fields. parent_qr and bill_no are scalar subqueries, not joins:
--    the planner evaluates them only for the rows that survive ORDER BY ...
--    LIMIT, so a list never hashes the bill table.
CREATE VIEW bag_row AS
SELECT b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id,
       (SELECT p.qr_id FROM bag p WHERE p.id = b.parent_id) AS parent_qr,
       b.bill_id,
       (SELECT x.bill_no FROM bill x WHERE x.id = b.bill_id) AS bill_no,
       b.capacity, b.child_count, b.weight_kg, b.created_by, b.created_at, b.updated_at
FROM bag b;

CREATE VIEW bill_row AS
SELECT id, bill_no, capacity, description, destination, vehicle_number, status, linked_parent_count,
       total_child_count, total_weight_kg, expected_weight_kg, created_by, created_at, updated_at,
       completed_at
FROM bill;

DROP FUNCTION tt_bag_json(bag, text, text);
DROP FUNCTION tt_bill_json(bill);

-- 2. QRs and bill numbers travel in URL paths, and WSGI servers hand the
--    application a decoded path, where "%2F" is "/". So an identifier is one
--    or more non-empty segments joined by single "/" (never leading, trailing
--    or doubled), and never ends with (a QR) or holds (a bill number) a word
--    the route table puts after it: /api/bags/{qr}/history,
--    /api/bills/{bill_no}/parents|complete|reopen. NOT VALID: rows written
--    before this rule stay; every new one is checked.
ALTER TABLE bag ADD CONSTRAINT bag_qr_id_path
    CHECK (qr_id ~ '^[A-Z0-9_-]+(/[A-Z0-9_-]+)*$' AND qr_id !~ '/HISTORY$') NOT VALID;
ALTER TABLE bill DROP CONSTRAINT bill_bill_no_check;
ALTER TABLE bill ADD CONSTRAINT bill_bill_no_check
    CHECK (length(bill_no) <= 64
           AND bill_no ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$'
           AND bill_no !~* '(^|/)(parents|complete|reopen)(/|$)') NOT VALID;

-- 3. A dispatcher (p_restrict_area set) meets another area's bag exactly as
--    an unknown QR wherever that is possible: 404 bag_not_found when they
--    address it, the unknown QR's 422 when its format is the wrong kind. Only
--    where an unknown QR would be created (a new parent, a new child) does
--    the answer differ, as it must: 403 wrong_area, naming no area. And a
--    parent and its children are in one area, whoever links them (before,
--    an admin could mix them, and a dispatcher then saw another area's child
--    among their parent's children): a read confined to an area never has
--    to hide part of a family.
CREATE OR REPLACE FUNCTION tt_open_parent(p_qr text, p_user bigint, p_area text, p_restrict_area text,
                                          p_key text)
RETURNS TABLE (created boolean, bag_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    fmt record;
    b bag;
    v_created boolean := false;
BEGIN
    SELECT * INTO b FROM bag WHERE qr_id = p_qr;
    IF b.id IS NOT NULL AND p_restrict_area IS NOT NULL AND b.dispatch_area <> p_restrict_area THEN
        IF (tt_parent_format(p_qr)).capacity IS NULL THEN
            PERFORM tt_fail('TT422', 'not_a_parent', format('%s matches no parent format', p_qr));
        END IF;
        PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to another dispatch area', p_qr));
    END IF;
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
            IF p_restrict_area IS NOT NULL AND b.dispatch_area <> p_restrict_area THEN
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to another dispatch area', p_qr));
            END IF;
        END IF;
    END IF;
    IF b.type <> 'parent' THEN
        PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_qr));
    END IF;
    PERFORM tt_event('parent_scan', p_user, b, NULL, NULL, p_key,
                     CASE WHEN v_created THEN '{"created": true}'::jsonb END);
    created := v_created;
    bag_id := b.id;
    RETURN NEXT;
END $$;

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
    RETURN p;
END $$;

CREATE OR REPLACE FUNCTION tt_link_locked(p_parent_id bigint, p_child_qr text, p_user bigint,
                                          p_restrict_area text, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p bag;
    c bag;
BEGIN
    SELECT * INTO p FROM bag WHERE id = p_parent_id;  -- locked by the caller
    FOR attempt IN 1..3 LOOP
        SELECT * INTO c FROM bag WHERE qr_id = p_child_qr FOR UPDATE;
        IF c.id IS NOT NULL THEN
            IF p_restrict_area IS NOT NULL AND c.dispatch_area <> p_restrict_area THEN
                IF (tt_parent_format(p_child_qr)).capacity IS NOT NULL THEN
                    PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_child_qr));
                END IF;
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to another dispatch area', p_child_qr));
            END IF;
            IF c.type <> 'child' THEN
                PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
            END IF;
            IF c.dispatch_area <> p.dispatch_area THEN  -- an admin's link, too, stays in one area
                PERFORM tt_fail('TT403', 'wrong_area',
                                format('%s belongs to another dispatch area than %s', p_child_qr, p.qr_id));
            END IF;
            IF c.parent_id = p.id THEN
                RETURN 'already_linked';
            END IF;
            IF c.parent_id IS NOT NULL THEN
                PERFORM tt_fail('TT409', 'child_in_other_parent',
                                format('%s is already in another parent', p_child_qr));
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

CREATE OR REPLACE FUNCTION tt_unlink_child(p_child_qr text, p_user bigint, p_restrict_area text, p_key text)
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
        IF seen.id IS NULL OR (p_restrict_area IS NOT NULL AND seen.dispatch_area <> p_restrict_area) THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('bag %s not found', p_child_qr));
        END IF;
        IF seen.type <> 'child' THEN
            PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
        END IF;
        IF seen.parent_id IS NULL THEN
            PERFORM tt_fail('TT409', 'child_not_linked', format('%s is not in a parent', p_child_qr));
        END IF;
        -- Lock parent then child; a link that moved meanwhile undoes this
        -- attempt and its locks (see 0002) and looks again.
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
    IF p_restrict_area IS NOT NULL AND p.dispatch_area <> p_restrict_area THEN  -- an admin mixed areas
        PERFORM tt_fail('TT403', 'wrong_area', format('%s is in a parent of another dispatch area', p_child_qr));
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

CREATE OR REPLACE FUNCTION tt_delete_bag(p_qr text, p_user bigint, p_restrict_area text, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    seen bag;
    p bag;
    b bag;
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

-- 4a. A bill whose last parent leaves goes back to new (it holds nothing,
--     as a bill that never had a parent).
CREATE OR REPLACE FUNCTION tt_bill_remove_parent(p_bill_no text, p_parent_qr text, p_user bigint, p_key text)
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
                    status = CASE WHEN linked_parent_count - 1 = 0 THEN 'new' ELSE status END,
                    updated_at = now()
    WHERE id = bl.id;
    PERFORM tt_event('bill_remove', p_user, NULL, p, bl, p_key);
    RETURN bl.id;
END $$;

-- 4b. An edit that changes nothing writes nothing: no update, no event.
CREATE OR REPLACE FUNCTION tt_bill_update(p_bill_no text, p_capacity integer, p_description text,
                                          p_destination text, p_vehicle_number text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bl bill;
    changes jsonb;
BEGIN
    bl := tt_lock_bill(p_bill_no);
    IF bl.status = 'completed' THEN
        PERFORM tt_fail('TT409', 'bill_completed', format('bill %s is completed: reopen it first', bl.bill_no));
    END IF;
    IF p_capacity IS NOT NULL AND p_capacity < bl.linked_parent_count THEN
        PERFORM tt_fail('TT409', 'bill_capacity_too_small',
                        format('bill %s already holds %s parents', bl.bill_no, bl.linked_parent_count));
    END IF;
    changes := jsonb_strip_nulls(jsonb_build_object(
        'capacity', CASE WHEN p_capacity IS DISTINCT FROM bl.capacity THEN p_capacity END,
        'description', CASE WHEN p_description IS DISTINCT FROM bl.description THEN p_description END,
        'destination', CASE WHEN p_destination IS DISTINCT FROM bl.destination THEN p_destination END,
        'vehicle_number', CASE WHEN p_vehicle_number IS DISTINCT FROM bl.vehicle_number
                               THEN p_vehicle_number END));
    IF changes = '{}'::jsonb THEN
        RETURN bl.id;
    END IF;
    UPDATE bill SET capacity = coalesce(p_capacity, capacity),
                    description = coalesce(p_description, description),
                    destination = coalesce(p_destination, destination),
                    vehicle_number = coalesce(p_vehicle_number, vehicle_number),
                    updated_at = now()
    WHERE id = bl.id;
    PERFORM tt_event('bill_updated', p_user, NULL, NULL, bl, p_key, changes);
    RETURN bl.id;
END $$;

-- 4c. A deleted bill is answered by its own number, whatever spelling found it.
DROP FUNCTION tt_bill_delete(text, bigint, text);
CREATE FUNCTION tt_bill_delete(p_bill_no text, p_user bigint, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
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
    RETURN bl.bill_no;
END $$;

-- 5. The library's Event, written once (recent scans and a bag's history).
CREATE VIEW event_row AS
SELECT e.id, e.occurred_at, e.kind, e.user_id,
       (SELECT u.username FROM app_user u WHERE u.id = e.user_id) AS username,
       e.bag_id, e.qr_id, e.parent_id, e.parent_qr, e.bill_id, e.bill_no, e.dispatch_area,
       e.idempotency_key, e.details
FROM event e;
