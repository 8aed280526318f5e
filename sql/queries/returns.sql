-- name: return_open :scalar
-- Open a return ticket (event return_opened); its id.
SELECT tt_return_open(%(depot)s, %(reason)s, %(user_id)s, %(idempotency_key)s);

-- name: get_return :one
-- One return ticket (a ReturnTicket row) by id.
SELECT r.* FROM return_ticket_row r WHERE r.id = %(id)s;

-- name: return_items :many
-- The parents returned on a ticket, in the order they were scanned.
SELECT r.* FROM return_item_row r WHERE r.ticket_id = %(ticket_id)s ORDER BY r.id;

-- name: get_return_item :one
-- One returned parent by item id.
SELECT r.* FROM return_item_row r WHERE r.id = %(id)s;

-- name: return_add_parent :one
-- Scan a returned parent into an open ticket: returned (it left its bill) or already_returned.
SELECT result, item_id FROM tt_return_add_parent(%(ticket_id)s, %(parent_qr)s, %(user_id)s, %(idempotency_key)s);

-- name: return_close :scalar
-- Finalise or cancel an open ticket (the same again changes nothing); its id.
SELECT tt_return_close(%(ticket_id)s, %(status)s, %(user_id)s, %(idempotency_key)s);
