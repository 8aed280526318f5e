-- name: get_bag :one
-- One bag (a Bag row) by its QR; with area set, only if it belongs to that area.
SELECT r.* FROM bag_row r
WHERE r.qr_id = %(qr_id)s AND (%(area)s::text IS NULL OR r.dispatch_area = %(area)s);

-- name: get_bag_by_id :one
-- One bag by id.
SELECT r.* FROM bag_row r WHERE r.id = %(id)s;

-- name: get_bag_detail_json :scalar
-- The hot read: {bag, parent, children, bill} as JSON text built by PostgreSQL
-- from the same rows as get_bag (children by QR; the bill is the bag's own or
-- its parent's). With area set, a bag of another area is not found.
SELECT json_build_object(
    'bag', to_json(s),
    'parent', to_json(p),
    'children', coalesce((SELECT json_agg(c ORDER BY c.qr_id) FROM bag_row c
                          WHERE c.parent_id = s.id AND s.type = 'parent'), '[]'::json),
    'bill', to_json(x))::text
FROM bag_row s
LEFT JOIN bag_row p ON p.id = s.parent_id
LEFT JOIN bill_row x ON x.id = coalesce(s.bill_id, p.bill_id)
WHERE s.qr_id = %(qr_id)s AND (%(area)s::text IS NULL OR s.dispatch_area = %(area)s);

-- name: visible_bag_id :scalar
-- The id of the bag with this QR that the caller may see (area NULL: any), or
-- of the deleted bag that had it (through its bag_deleted event); NULL if none.
SELECT coalesce(
    (SELECT b.id FROM bag b
     WHERE b.qr_id = %(qr_id)s AND (%(area)s::text IS NULL OR b.dispatch_area = %(area)s)),
    (SELECT e.bag_id FROM event e
     WHERE e.kind = 'bag_deleted' AND e.qr_id = %(qr_id)s
       AND (%(area)s::text IS NULL OR e.dispatch_area = %(area)s)
     ORDER BY e.id DESC LIMIT 1));

-- name: register_bag :scalar
-- Register a bag by hand; the type must fit the QR (parent formats).
SELECT id FROM tt_register_bag(%(qr_id)s, %(type)s, %(dispatch_area)s, %(user_id)s, %(idempotency_key)s);

-- name: delete_bag :scalar
-- Delete a bag under its rules (not on a bill, no children); a linked child leaves its parent.
SELECT tt_delete_bag(%(qr_id)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);
