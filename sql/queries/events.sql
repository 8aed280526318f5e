-- name: bag_history :many
-- The full genealogy of a bag in one query: its own events, its children's
-- (current children and any that were linked to it), and its bill's.
WITH target AS (
    SELECT b.id, coalesce(b.bill_id, p.bill_id) AS bill_id
    FROM bag b LEFT JOIN bag p ON p.id = b.parent_id
    WHERE b.qr_id = %(qr_id)s
), ids AS (
    SELECT e.id FROM event e, target t WHERE e.bag_id = t.id
    UNION
    SELECT e.id FROM event e, target t WHERE e.parent_id = t.id
    UNION
    SELECT e.id FROM event e JOIN bag c ON e.bag_id = c.id, target t WHERE c.parent_id = t.id
    UNION
    SELECT e.id FROM event e, target t WHERE e.bill_id = t.bill_id
)
SELECT e.id, e.occurred_at, e.kind, e.user_id, u.username, e.bag_id, e.qr_id, e.parent_id, e.parent_qr,
       e.bill_id, e.bill_no, e.dispatch_area, e.idempotency_key, e.details
FROM ids JOIN event e ON e.id = ids.id
LEFT JOIN app_user u ON u.id = e.user_id
ORDER BY e.id
LIMIT %(limit)s;
