-- name: create_bill :one
-- Create a bill and record it in the event log.
WITH b AS (
    INSERT INTO bill (bill_no, capacity, description, destination, vehicle_number, created_by)
    VALUES (%(bill_no)s, %(capacity)s, %(description)s, %(destination)s, %(vehicle_number)s, %(user_id)s)
    RETURNING id, bill_no, capacity, description, destination, vehicle_number, status,
              linked_parent_count, total_child_count, total_weight_kg, expected_weight_kg,
              created_by, created_at, updated_at, completed_at
), e AS (
    INSERT INTO event (kind, user_id, bill_id, bill_no, idempotency_key)
    SELECT 'bill_created', %(user_id)s, b.id, b.bill_no, %(idempotency_key)s FROM b
)
SELECT id, bill_no, capacity, description, destination, vehicle_number, status,
       linked_parent_count, total_child_count, total_weight_kg, expected_weight_kg,
       created_by, created_at, updated_at, completed_at
FROM b;

-- name: get_bill :one
-- One bill by number (case-insensitive).
SELECT id, bill_no, capacity, description, destination, vehicle_number, status,
       linked_parent_count, total_child_count, total_weight_kg, expected_weight_kg,
       created_by, created_at, updated_at, completed_at
FROM bill WHERE lower(bill_no) = lower(%(bill_no)s);

-- name: get_bill_by_id :one
-- One bill by id.
SELECT id, bill_no, capacity, description, destination, vehicle_number, status,
       linked_parent_count, total_child_count, total_weight_kg, expected_weight_kg,
       created_by, created_at, updated_at, completed_at
FROM bill WHERE id = %(id)s;

-- name: bill_parents :many
-- The parents on a bill, by QR.
SELECT b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id, NULL::text AS parent_qr,
       b.bill_id, %(bill_no)s::text AS bill_no, b.capacity, b.child_count, b.weight_kg, b.created_by,
       b.created_at, b.updated_at
FROM bag b WHERE b.bill_id = %(bill_id)s
ORDER BY b.qr_id;

-- name: bill_add_parent :one
-- Put a parent on a bill: added or already_added.
SELECT result, bill_id FROM tt_bill_add_parent(%(bill_no)s, %(parent_qr)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_remove_parent :scalar
-- Take a parent off a bill.
SELECT tt_bill_remove_parent(%(bill_no)s, %(parent_qr)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_complete :scalar
-- Complete a full bill (a completed bill stays as it is).
SELECT tt_bill_complete(%(bill_no)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_reopen :scalar
-- Reopen a completed bill.
SELECT tt_bill_reopen(%(bill_no)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_update :scalar
-- Change a bill's capacity or descriptive fields (NULL keeps a field).
SELECT tt_bill_update(%(bill_no)s, %(capacity)s, %(description)s, %(destination)s,
                      %(vehicle_number)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_delete :scalar
-- Delete a bill; its parents stay and come off it.
SELECT tt_bill_delete(%(bill_no)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_real_totals :one
-- The real counts behind a bill's counters (to check them).
SELECT count(*)::int AS linked_parent_count, coalesce(sum(child_count), 0)::int AS total_child_count,
       coalesce(sum(weight_kg), 0) AS total_weight_kg
FROM bag WHERE bill_id = %(bill_id)s;
