-- name: open_parent :one
-- Open a parent for scanning, creating it if its QR is new.
SELECT created, bag_id FROM tt_open_parent(%(qr_id)s, %(user_id)s, %(dispatch_area)s,
                                           %(restrict_area)s, %(idempotency_key)s);

-- name: link_child :one
-- Link a child into a parent; the link that fills the parent completes it.
SELECT result, child_count, capacity, parent_status, weight_kg
FROM tt_link_child(%(parent_qr)s, %(child_qr)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: link_children :many
-- Link many children into one parent: a result per child (ord is the input position, 1-based).
SELECT ord, child_qr, result, error_code, message, child_count, capacity, parent_status
FROM tt_link_children(%(parent_qr)s, %(child_qrs)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s)
ORDER BY ord;

-- name: unlink_child :one
-- Take a child out of its parent; the child stays and the parent reopens.
SELECT parent_qr, child_count, capacity, parent_status
FROM tt_unlink_child(%(child_qr)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: move_child :one
-- Move a child into another parent: moved or already_linked (locks both parents in QR order, then the child).
SELECT result, from_parent_qr, child_count, capacity, parent_status, from_child_count
FROM tt_move_child(%(child_qr)s, %(to_parent_qr)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: close_parent :scalar
-- Close a parent short with a reason: closed, or already_closed (nothing changed).
SELECT tt_close_parent(%(qr_id)s, %(reason)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: reopen_parent :scalar
-- Reopen a parent closed short: reopened, or not_closed (nothing changed).
SELECT tt_reopen_parent(%(qr_id)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: undo_last_link :one
-- Undo the user's own last link if it is their last scan and within the window.
SELECT child_qr, parent_qr, linked_at, child_count, capacity, parent_status
FROM tt_undo_last_link(%(user_id)s, make_interval(secs => %(window_seconds)s), %(restrict_area)s,
                       %(idempotency_key)s);
