-- name: bag_history :many
-- The full genealogy of a bag in one query: its own events, its children's
-- (current children and any that were linked to it), its bill's, and for a
-- child what happened to each parent while it was inside (billed, returned,
-- billed again: the parent's events without a bag, between the child's link
-- and the unlink that ended that stay); also for a bag that has been
-- deleted. With area set (a dispatcher), the bag
-- must belong to that area (else nothing), and only that area's events and
-- bill-level ones are shown, not other areas' parents on the same bill.
-- Oldest first, by the device's time where a synced operation gave one.
WITH live AS (
    SELECT b.id, coalesce(b.bill_id, p.bill_id) AS bill_id
    FROM bag b LEFT JOIN bag p ON p.id = b.parent_id
    WHERE b.qr_id = %(qr_id)s AND (%(area)s::text IS NULL OR b.dispatch_area = %(area)s)
), target AS (
    SELECT id, bill_id FROM live
    UNION ALL  -- a deleted bag: its history stays readable through its bag_deleted event
    SELECT e.bag_id, NULL::bigint FROM event e
    WHERE e.kind = 'bag_deleted' AND e.qr_id = %(qr_id)s
      AND (%(area)s::text IS NULL OR e.dispatch_area = %(area)s)
      AND NOT EXISTS (SELECT 1 FROM live)
), stays AS (  -- a child's stays in parents: from a link to the next link or unlink of it
    SELECT s.parent_id, s.id AS from_id, s.next_id AS to_id
    FROM (SELECT e.kind, e.parent_id, e.id, lead(e.id) OVER (ORDER BY e.id) AS next_id
          FROM event e, target t WHERE e.bag_id = t.id AND e.kind IN ('link', 'unlink')) s
    WHERE s.kind = 'link'
), ids AS (
    SELECT e.id, e.occurred_at FROM event e, target t WHERE e.bag_id = t.id
    UNION
    SELECT e.id, e.occurred_at FROM event e, target t WHERE e.parent_id = t.id
    UNION
    SELECT e.id, e.occurred_at FROM event e JOIN bag c ON e.bag_id = c.id, target t WHERE c.parent_id = t.id
    UNION
    SELECT e.id, e.occurred_at FROM event e, target t WHERE e.bill_id = t.bill_id
    UNION
    SELECT e.id, e.occurred_at FROM stays s JOIN event e ON e.parent_id = s.parent_id AND e.id > s.from_id
    WHERE e.bag_id IS NULL AND (s.to_id IS NULL OR e.id < s.to_id)
)
-- by the whole key (id, occurred_at): one partition's index per event, not every partition's
SELECT r.* FROM ids JOIN event_row r ON r.id = ids.id AND r.occurred_at = ids.occurred_at
WHERE %(area)s::text IS NULL OR r.dispatch_area IS NULL OR r.dispatch_area = %(area)s
ORDER BY least(r.device_time, r.occurred_at), r.id  -- an offline scanner's events when they were scanned
LIMIT %(limit)s;
