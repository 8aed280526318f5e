-- name: get_bag :one
-- One bag by its QR, with its parent's QR and its bill number.
SELECT b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id, p.qr_id AS parent_qr,
       b.bill_id, bl.bill_no, b.capacity, b.child_count, b.weight_kg, b.created_by,
       b.created_at, b.updated_at
FROM bag b
LEFT JOIN bag p ON p.id = b.parent_id
LEFT JOIN bill bl ON bl.id = b.bill_id
WHERE b.qr_id = %(qr_id)s;

-- name: get_bag_by_id :one
-- One bag by id.
SELECT b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id, p.qr_id AS parent_qr,
       b.bill_id, bl.bill_no, b.capacity, b.child_count, b.weight_kg, b.created_by,
       b.created_at, b.updated_at
FROM bag b
LEFT JOIN bag p ON p.id = b.parent_id
LEFT JOIN bill bl ON bl.id = b.bill_id
WHERE b.id = %(id)s;

-- name: get_bag_family :many
-- A bag (rel 'self'), its parent ('parent') and its children ('child') in one
-- round trip; the 'self' row also carries the bill (its own, or its parent's)
-- in the bill_* columns.
WITH self AS (
    SELECT id, parent_id, type FROM bag WHERE qr_id = %(qr_id)s
), family AS (
    SELECT 'self' AS rel, s.id FROM self s
    UNION ALL
    SELECT 'parent', s.parent_id FROM self s WHERE s.parent_id IS NOT NULL
    UNION ALL
    SELECT 'child', c.id FROM self s JOIN bag c ON c.parent_id = s.id WHERE s.type = 'parent'
)
SELECT f.rel, b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id, p.qr_id AS parent_qr,
       b.bill_id, bl.bill_no, b.capacity, b.child_count, b.weight_kg,
       b.created_by, b.created_at, b.updated_at,
       x.id AS bill__id, x.bill_no AS bill__bill_no, x.capacity AS bill__capacity,
       x.description AS bill__description, x.destination AS bill__destination,
       x.vehicle_number AS bill__vehicle_number, x.status AS bill__status,
       x.linked_parent_count AS bill__linked_parent_count, x.total_child_count AS bill__total_child_count,
       x.total_weight_kg AS bill__total_weight_kg, x.expected_weight_kg AS bill__expected_weight_kg,
       x.created_by AS bill__created_by, x.created_at AS bill__created_at, x.updated_at AS bill__updated_at,
       x.completed_at AS bill__completed_at
FROM family f
JOIN bag b ON b.id = f.id
LEFT JOIN bag p ON p.id = b.parent_id
LEFT JOIN bill bl ON bl.id = b.bill_id
LEFT JOIN bill x ON f.rel = 'self' AND x.id = coalesce(b.bill_id, p.bill_id)
ORDER BY f.rel DESC, b.qr_id;

-- name: get_bag_detail_json :one
-- The same answer as get_bag_family, rendered to JSON by PostgreSQL ({bag,
-- parent, children, bill}), with the bag's area for the caller's area check.
SELECT s.dispatch_area, json_build_object(
    'bag', tt_bag_json(s, p.qr_id, sb.bill_no),
    'parent', CASE WHEN p.id IS NULL THEN NULL ELSE tt_bag_json(p, NULL, pb.bill_no) END,
    'children', coalesce((SELECT json_agg(tt_bag_json(c, s.qr_id, NULL) ORDER BY c.qr_id)
                          FROM bag c WHERE c.parent_id = s.id AND s.type = 'parent'), '[]'::json),
    'bill', tt_bill_json(x))::text AS detail
FROM bag s
LEFT JOIN bag p ON p.id = s.parent_id
LEFT JOIN bill sb ON sb.id = s.bill_id
LEFT JOIN bill pb ON pb.id = p.bill_id
LEFT JOIN bill x ON x.id = coalesce(s.bill_id, p.bill_id)
WHERE s.qr_id = %(qr_id)s;

-- name: register_bag :scalar
-- Register a bag by hand; the type must fit the QR (parent formats).
SELECT id FROM tt_register_bag(%(qr_id)s, %(type)s, %(dispatch_area)s, %(user_id)s, %(idempotency_key)s);

-- name: delete_bag :scalar
-- Delete a bag under its rules (not on a bill, no children); a linked child leaves its parent.
SELECT tt_delete_bag(%(qr_id)s, %(user_id)s, %(restrict_area)s, %(idempotency_key)s);

-- name: bag_counts_by_parent :one
-- The real number and weight of a parent's children (to check the counters).
SELECT count(*)::int AS child_count, coalesce(sum(weight_kg), 0) AS weight_kg
FROM bag WHERE parent_id = %(parent_id)s;
