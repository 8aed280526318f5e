-- name: create_bill :scalar
-- Create a bill and record it in the event log; its id.
SELECT tt_bill_create(%(bill_no)s, %(capacity)s, %(description)s, %(destination)s, %(vehicle_number)s,
                      %(user_id)s, %(idempotency_key)s);

-- name: get_bill :one
-- One bill (a Bill row) by number, case-insensitive.
SELECT r.* FROM bill_row r WHERE lower(r.bill_no) = lower(%(bill_no)s);

-- name: get_bill_by_id :one
-- One bill by id.
SELECT r.* FROM bill_row r WHERE r.id = %(id)s;

-- name: bill_parents :many
-- The parents on a bill, by QR.
SELECT r.* FROM bag_row r WHERE r.bill_id = %(bill_id)s ORDER BY r.qr_id;

-- name: bill_add_parent :one
-- Put a parent on a bill: added or already_added.
SELECT result, bill_id FROM tt_bill_add_parent(%(bill_no)s, %(parent_qr)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_remove_parent :scalar
-- Take a parent off a bill (the last one out sends the bill back to new).
SELECT tt_bill_remove_parent(%(bill_no)s, %(parent_qr)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_complete :scalar
-- Complete a full bill (a completed bill stays as it is).
SELECT tt_bill_complete(%(bill_no)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_reopen :scalar
-- Reopen a completed bill.
SELECT tt_bill_reopen(%(bill_no)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_update :scalar
-- Change a bill's capacity or descriptive fields (NULL keeps a field; no
-- event when nothing changes).
SELECT tt_bill_update(%(bill_no)s, %(capacity)s, %(description)s, %(destination)s,
                      %(vehicle_number)s, %(user_id)s, %(idempotency_key)s);

-- name: bill_delete :scalar
-- Delete a bill; its parents stay and come off it. The bill's own number.
SELECT tt_bill_delete(%(bill_no)s, %(user_id)s, %(idempotency_key)s);
