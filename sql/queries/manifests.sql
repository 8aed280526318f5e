-- name: manifest :many
-- A bill's manifest in one statement (so one snapshot: the totals a
-- document adds up always match its rows): one row per parent on the bill,
-- by QR, each with its children's QRs, and the bill's own columns repeated;
-- a bill with no parent gives one row whose parent columns are NULL; an
-- unknown bill gives none. Who completed the bill is the last bill_complete
-- event of a completed bill (bill has no column for it), found backwards
-- along event_bill_id_idx. Parents come by bag_bill_id_idx, each one's
-- children by bag_parent_id_idx: no N+1, no scan of bag.
SELECT b.id AS bill_id, b.bill_no, b.capacity AS bill_capacity, b.description, b.destination,
       b.vehicle_number, b.status AS bill_status, b.created_by, creator.username AS created_by_username,
       b.created_at, b.updated_at, done.user_id AS completed_by, completer.username AS completed_by_username,
       b.completed_at, now() AS generated_at,
       p.qr_id AS parent_qr, p.status AS parent_status, p.dispatch_area, p.capacity AS parent_capacity,
       p.child_count, p.weight_kg, coalesce(p.expected_weight_kg, 0) AS expected_weight_kg,
       kids.child_qrs
FROM bill b
LEFT JOIN app_user creator ON creator.id = b.created_by
LEFT JOIN LATERAL (
    SELECT e.user_id FROM event e
    WHERE e.bill_id = b.id AND e.kind = 'bill_complete' AND b.status = 'completed'
    ORDER BY e.id DESC LIMIT 1
) done ON true
LEFT JOIN app_user completer ON completer.id = done.user_id
LEFT JOIN bag p ON p.bill_id = b.id
LEFT JOIN LATERAL (
    SELECT coalesce(array_agg(c.qr_id ORDER BY c.qr_id), '{}') AS child_qrs FROM bag c WHERE c.parent_id = p.id
) kids ON true
WHERE lower(b.bill_no) = lower(%(bill_no)s)
ORDER BY p.qr_id;
