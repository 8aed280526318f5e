-- tracetrack: no-transaction
-- Return tickets (issue 12, items 1 and 2). Parents come back from a depot: a
-- biller or admin opens a ticket, scans the returned parents into it, then
-- finalises it (done) or cancels it (abandoned). Each parent scanned in leaves
-- its bill at once: the bill's counters go down and a completed bill goes back
-- to processing (to new when its last parent leaves, as tt_bill_remove_parent
-- does); the ticket keeps the bill number, child count and weight the parent
-- had when it came back. Cancelling records that the ticket was abandoned and
-- puts nothing back: the parents stay off their bills, and the bill routes put
-- them on a bill again (the same or another).
--
-- Locks: ticket, then bill, then parent (a new outermost level above the
-- scans' bill, parent, child; nothing else locks a ticket). The parent's bill
-- is read first unlocked, then bill and parent are locked; a parent that
-- changed bills meanwhile undoes that attempt and its locks and looks again
-- (the retry-on-moved pattern of tt_unlink_child, 0002/0005).
--
-- Events: return_opened, return_add (bag NULL, the parent, the bill it left,
-- details {return_id, depot, child_count, weight_kg, bill_status}),
-- return_finalised, return_cancelled. The CHECK on event.kind is replaced
-- without a long lock: NOT VALID first (a catalog change), then VALIDATE,
-- which scans the table under a lock that lets scans go on writing events.
--
-- No transaction (the header line) for that VALIDATE; every statement can run
-- again (IF NOT EXISTS, OR REPLACE, ON CONFLICT, a DO block), so a run that
-- failed part-way starts over cleanly.

CREATE TABLE IF NOT EXISTS return_ticket (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    depot              text NOT NULL CHECK (length(depot) BETWEEN 1 AND 200),
    reason             text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finalised', 'cancelled')),
    -- counters of its items, kept by the functions below under the ticket's lock
    parent_count       integer NOT NULL DEFAULT 0 CHECK (parent_count BETWEEN 0 AND 1000),
    total_child_count  integer NOT NULL DEFAULT 0 CHECK (total_child_count >= 0),
    total_weight_kg    numeric(14, 3) NOT NULL DEFAULT 0 CHECK (total_weight_kg >= 0),
    created_by         bigint REFERENCES app_user (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    closed_by          bigint REFERENCES app_user (id),
    closed_at          timestamptz,
    CONSTRAINT return_ticket_closed CHECK ((status = 'open') = (closed_at IS NULL))
);
CREATE INDEX IF NOT EXISTS return_ticket_status_id_idx ON return_ticket (status, id);

-- One returned parent. No foreign key to bag or bill: either may be deleted
-- later, and the ticket keeps what it recorded (ids, QR, bill number).
CREATE TABLE IF NOT EXISTS return_item (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint NOT NULL REFERENCES return_ticket (id),
    parent_id    bigint NOT NULL,
    parent_qr    text NOT NULL,
    bill_id      bigint NOT NULL,
    bill_no      text NOT NULL,
    child_count  integer NOT NULL CHECK (child_count >= 0),
    weight_kg    numeric(12, 3) NOT NULL CHECK (weight_kg >= 0),
    returned_by  bigint REFERENCES app_user (id),
    returned_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT return_item_once UNIQUE (ticket_id, parent_id)
);
CREATE INDEX IF NOT EXISTS return_item_parent_id_idx ON return_item (parent_id, id);

-- The library's ReturnTicket and ReturnItem (tracetrack_db.models), written once.
-- ticket_no is what people say and print: R7.
CREATE OR REPLACE VIEW return_ticket_row AS
SELECT id, 'R' || id AS ticket_no, depot, reason, status, parent_count, total_child_count, total_weight_kg,
       created_by, created_at, updated_at, closed_by, closed_at
FROM return_ticket;

CREATE OR REPLACE VIEW return_item_row AS
SELECT i.id, i.ticket_id, 'R' || i.ticket_id AS ticket_no, i.parent_id, i.parent_qr, i.bill_id, i.bill_no,
       i.child_count, i.weight_kg, i.returned_by,
       (SELECT u.username FROM app_user u WHERE u.id = i.returned_by) AS returned_by_username, i.returned_at
FROM return_item i;

-- The event kinds: the list before this migration, 'close_short' and 'reopen_parent' (0016), and the
-- four of returns. Every CHECK on event that names kind is dropped, whatever its
-- name, so no older list is left behind to refuse the new kinds.
DO $$
DECLARE
    c name;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'event'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) ~ '\mkind\M' LOOP
        EXECUTE format('ALTER TABLE event DROP CONSTRAINT %I', c);
    END LOOP;
    ALTER TABLE event ADD CONSTRAINT event_kind_check CHECK (kind IN (
        'bag_created', 'parent_scan', 'link', 'unlink', 'bag_deleted',
        'bill_created', 'bill_updated', 'bill_add', 'bill_remove',
        'bill_complete', 'bill_reopen', 'bill_deleted',
        'close_short', 'reopen_parent',
        'return_opened', 'return_add', 'return_finalised', 'return_cancelled')) NOT VALID;
END $$;

ALTER TABLE event VALIDATE CONSTRAINT event_kind_check;

-- A ticket's details for its events.
CREATE OR REPLACE FUNCTION tt_return_details(t return_ticket) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('return_id', t.id, 'ticket_no', 'R' || t.id, 'depot', t.depot)
$$;

CREATE OR REPLACE FUNCTION tt_return_open(p_depot text, p_reason text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t return_ticket;
BEGIN
    INSERT INTO return_ticket (depot, reason, created_by)
    VALUES (p_depot, coalesce(p_reason, ''), p_user)
    RETURNING * INTO t;
    PERFORM tt_event('return_opened', p_user, NULL, NULL, NULL, p_key,
                     tt_return_details(t) || jsonb_build_object('reason', t.reason));
    RETURN t.id;
END $$;

CREATE OR REPLACE FUNCTION tt_return_lock(p_ticket bigint) RETURNS return_ticket LANGUAGE plpgsql AS $$
DECLARE
    t return_ticket;
BEGIN
    SELECT * INTO t FROM return_ticket WHERE id = p_ticket FOR UPDATE;
    IF t.id IS NULL THEN
        PERFORM tt_fail('TT404', 'return_not_found', format('return ticket R%s not found', p_ticket));
    END IF;
    RETURN t;
END $$;

-- Scan a returned parent into an open ticket: it leaves its bill. A parent
-- already on this ticket (and on no bill since) answers already_returned and
-- records nothing.
CREATE OR REPLACE FUNCTION tt_return_add_parent(p_ticket bigint, p_parent_qr text, p_user bigint, p_key text)
RETURNS TABLE (result text, item_id bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t return_ticket;
    seen bag;
    p bag;
    bl bill;
    done return_item;
    v_item bigint;
BEGIN
    t := tt_return_lock(p_ticket);
    IF t.status <> 'open' THEN
        PERFORM tt_fail('TT409', 'return_not_open', format('return ticket R%s is %s', t.id, t.status));
    END IF;
    FOR attempt IN 1..5 LOOP
        SELECT * INTO seen FROM bag WHERE qr_id = p_parent_qr;
        IF seen.id IS NULL THEN
            PERFORM tt_fail('TT404', 'bag_not_found', format('parent %s not found', p_parent_qr));
        END IF;
        IF seen.type <> 'parent' THEN
            PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_parent_qr));
        END IF;
        -- this ticket's items change only under its lock, which we hold
        SELECT * INTO done FROM return_item i WHERE i.ticket_id = t.id AND i.parent_id = seen.id;
        IF done.id IS NOT NULL THEN
            IF seen.bill_id IS NULL THEN
                RETURN QUERY SELECT 'already_returned'::text, done.id;
                RETURN;
            END IF;
            PERFORM tt_fail('TT409', 'returned_on_this_ticket',
                            format('%s was returned on R%s and is on a bill again: open a new ticket',
                                   p_parent_qr, t.id));
        END IF;
        IF seen.bill_id IS NULL THEN
            PERFORM tt_fail('TT409', 'parent_not_on_bill', format('%s is on no bill', p_parent_qr));
        END IF;
        BEGIN  -- one attempt; a parent that changed bills meanwhile undoes it and its locks
            SELECT * INTO bl FROM bill WHERE id = seen.bill_id FOR UPDATE;
            SELECT * INTO p FROM bag WHERE id = seen.id FOR UPDATE;
            IF bl.id IS NULL OR p.id IS NULL OR p.bill_id IS DISTINCT FROM bl.id THEN
                RAISE EXCEPTION USING ERRCODE = 'TT499';
            END IF;
            EXIT;
        EXCEPTION WHEN SQLSTATE 'TT499' THEN
            p := NULL;
        END;
    END LOOP;
    IF p.id IS NULL THEN
        PERFORM tt_fail('TT409', 'conflict', format('%s keeps changing: try again', p_parent_qr));
    END IF;
    IF t.parent_count >= 1000 THEN
        PERFORM tt_fail('TT409', 'return_full', format('return ticket R%s holds 1000 parents: open another', t.id));
    END IF;
    UPDATE bag SET bill_id = NULL, updated_at = now() WHERE id = p.id;
    UPDATE bill SET linked_parent_count = linked_parent_count - 1,
                    total_child_count = total_child_count - p.child_count,
                    total_weight_kg = greatest(total_weight_kg - p.weight_kg, 0),
                    expected_weight_kg = greatest(expected_weight_kg - coalesce(p.expected_weight_kg, 0), 0),
                    status = CASE WHEN linked_parent_count - 1 = 0 THEN 'new' ELSE 'processing' END,
                    completed_at = NULL,
                    updated_at = now()
    WHERE id = bl.id;
    INSERT INTO return_item (ticket_id, parent_id, parent_qr, bill_id, bill_no, child_count, weight_kg, returned_by)
    VALUES (t.id, p.id, p.qr_id, bl.id, bl.bill_no, p.child_count, p.weight_kg, p_user)
    RETURNING id INTO v_item;
    UPDATE return_ticket SET parent_count = parent_count + 1,
                             total_child_count = total_child_count + p.child_count,
                             total_weight_kg = total_weight_kg + p.weight_kg,
                             updated_at = now()
    WHERE id = t.id;
    PERFORM tt_event('return_add', p_user, NULL, p, bl, p_key,
                     tt_return_details(t) || jsonb_build_object('child_count', p.child_count,
                                                                'weight_kg', p.weight_kg,
                                                                'bill_status', bl.status));
    RETURN QUERY SELECT 'returned'::text, v_item;
END $$;

-- Close a ticket: finalised (done) or cancelled (abandoned: nothing goes back).
-- Closing it again the same way changes nothing; the other way is return_not_open.
CREATE OR REPLACE FUNCTION tt_return_close(p_ticket bigint, p_status text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t return_ticket;
BEGIN
    IF p_status NOT IN ('finalised', 'cancelled') THEN
        PERFORM tt_fail('TT400', 'validation_error', 'a ticket closes as finalised or cancelled');
    END IF;
    t := tt_return_lock(p_ticket);
    IF t.status = p_status THEN
        RETURN t.id;
    END IF;
    IF t.status <> 'open' THEN
        PERFORM tt_fail('TT409', 'return_not_open', format('return ticket R%s is %s', t.id, t.status));
    END IF;
    IF p_status = 'finalised' AND t.parent_count = 0 THEN
        PERFORM tt_fail('TT409', 'return_empty',
                        format('return ticket R%s holds no parent: scan one in, or cancel it', t.id));
    END IF;
    UPDATE return_ticket SET status = p_status, closed_by = p_user, closed_at = now(), updated_at = now()
    WHERE id = t.id;
    PERFORM tt_event(CASE p_status WHEN 'finalised' THEN 'return_finalised' ELSE 'return_cancelled' END,
                     p_user, NULL, NULL, NULL, p_key,
                     tt_return_details(t) || jsonb_build_object('parent_count', t.parent_count));
    RETURN t.id;
END $$;

INSERT INTO service_grant (object, privileges) VALUES
    ('return_ticket', 'SELECT'), ('return_item', 'SELECT'),
    ('return_ticket_row', 'SELECT'), ('return_item_row', 'SELECT')
ON CONFLICT DO NOTHING;

INSERT INTO definer_function (name) VALUES
    ('tt_return_open'), ('tt_return_add_parent'), ('tt_return_close')
ON CONFLICT DO NOTHING;
