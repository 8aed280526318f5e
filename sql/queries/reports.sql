-- Reports in the site's time zone (tracetrack_db/reports.py). The library turns
-- local dates into a UTC range [start, end); %(tz)s names the zone that local
-- days and hours are read in. Optional filters are `(%(x)s IS NULL OR ...)`
-- over rows the range has already narrowed (an index range on bill or on the
-- rollup's quarters), so one generic plan fits every combination.

-- name: roll_up_events :scalar
-- Count new events into event_rollup (from `since`, or an hour before where it
-- got to); returns the new rolled_to. Runs as the owner (SECURITY DEFINER).
SELECT tt_roll_up_events(%(since)s::timestamptz);

-- name: report_bills_created :many
-- Bills created in [start, end), oldest first, with their creator.
SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count AS parents, b.total_child_count AS children,
       b.expected_weight_kg, b.total_weight_kg AS actual_weight_kg, b.created_by, u.username AS created_by_username,
       b.created_at, b.completed_at,
       (b.created_at AT TIME ZONE %(tz)s)::date AS day
FROM bill b LEFT JOIN app_user u ON u.id = b.created_by
WHERE b.created_at >= %(start)s AND b.created_at < %(end)s
  AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
  AND (%(status)s::text IS NULL OR b.status = %(status)s)
ORDER BY b.created_at, b.id;

-- name: report_bills_completed :many
-- Bills completed in [start, end) (and still completed), oldest first.
SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count AS parents, b.total_child_count AS children,
       b.expected_weight_kg, b.total_weight_kg AS actual_weight_kg, b.created_by, u.username AS created_by_username,
       b.created_at, b.completed_at,
       (b.completed_at AT TIME ZONE %(tz)s)::date AS day
FROM bill b LEFT JOIN app_user u ON u.id = b.created_by
WHERE b.completed_at >= %(start)s AND b.completed_at < %(end)s
  AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
  AND (%(status)s::text IS NULL OR b.status = %(status)s)
ORDER BY b.completed_at, b.id;

-- name: report_bill_areas :many
-- Each bill's parents per dispatch area (a bill may hold parents of several).
SELECT p.bill_id, p.dispatch_area, count(*)::bigint AS parents, sum(p.child_count)::bigint AS children,
       sum(p.weight_kg) AS actual_weight_kg, sum(coalesce(p.expected_weight_kg, 0)) AS expected_weight_kg
FROM bag p
WHERE p.bill_id = ANY (%(bill_ids)s::bigint[])
GROUP BY p.bill_id, p.dispatch_area;

-- name: report_bill_completers :many
-- Who completed each (completed) bill: the user of its latest bill_complete event.
SELECT b.id AS bill_id, c.user_id, u.username
FROM unnest(%(bill_ids)s::bigint[]) AS b(id)
CROSS JOIN LATERAL (SELECT e.user_id FROM event e
                    WHERE e.bill_id = b.id AND e.kind = 'bill_complete'
                    ORDER BY e.id DESC LIMIT 1) c
LEFT JOIN app_user u ON u.id = c.user_id;

-- name: report_activity :many
-- Events per local bucket (hour or day: %(bucket)s), per user and per area, by
-- kind, in [start, end): quarters before rolled_to from the rollup, the rest
-- (the last minutes) from event itself. %(rolled_to)s is read just before
-- (report_rolled_to) so the planner sees the live range as a value.
WITH counted AS (
    SELECT r.quarter, r.dispatch_area, r.user_id, r.kind, r.events
    FROM event_rollup r
    WHERE r.quarter >= %(start)s AND r.quarter < least(%(end)s, %(rolled_to)s)
      AND (%(area)s::text IS NULL OR r.dispatch_area = %(area)s)
      AND (%(user_id)s::bigint IS NULL OR r.user_id = %(user_id)s)
    UNION ALL
    SELECT to_timestamp(floor(extract(epoch FROM e.occurred_at) / 900) * 900), coalesce(e.dispatch_area, ''),
           coalesce(e.user_id, 0), e.kind, 1
    FROM event e
    WHERE e.occurred_at >= greatest(%(start)s, %(rolled_to)s) AND e.occurred_at < %(end)s
      AND (%(area)s::text IS NULL OR e.dispatch_area = %(area)s)
      AND (%(user_id)s::bigint IS NULL OR e.user_id = %(user_id)s)
), local AS (
    SELECT date_trunc(%(bucket)s, c.quarter AT TIME ZONE %(tz)s) AS bucket, c.dispatch_area, c.user_id, c.kind,
           c.events
    FROM counted c
)
SELECT CASE WHEN grouping(l.bucket) = 0 THEN l.bucket AT TIME ZONE %(tz)s END AS bucket,
       CASE WHEN grouping(l.dispatch_area) = 0 THEN l.dispatch_area END AS dispatch_area,
       CASE WHEN grouping(l.user_id) = 0 THEN l.user_id END AS user_id,
       l.kind, sum(l.events)::bigint AS events
FROM local l
GROUP BY GROUPING SETS ((l.bucket, l.kind), (l.dispatch_area, l.kind), (l.user_id, l.kind));

-- name: report_rolled_to :scalar
-- Where the rollup got to (NULL before its first run).
SELECT rolled_to FROM event_rollup_state;

-- name: report_users :many
-- Usernames, roles and areas of the users a report names.
SELECT id, username, role, dispatch_area FROM app_user WHERE id = ANY (%(ids)s::bigint[]);

-- name: report_dispatch_scans :many
-- Scans (parent scans, links, unlinks) per user and area in [start, end), from
-- the rollup and the live tail, for the end-of-day summary.
SELECT coalesce(r.user_id, 0) AS user_id, r.dispatch_area, r.kind, sum(r.events)::bigint AS events
FROM (
    SELECT user_id, dispatch_area, kind, events FROM event_rollup
    WHERE quarter >= %(start)s AND quarter < least(%(end)s, %(rolled_to)s)
      AND kind IN ('parent_scan', 'link', 'unlink')
    UNION ALL
    SELECT coalesce(user_id, 0), coalesce(dispatch_area, ''), kind, 1 FROM event
    WHERE occurred_at >= greatest(%(start)s, %(rolled_to)s) AND occurred_at < %(end)s
      AND kind IN ('parent_scan', 'link', 'unlink')
) r
GROUP BY 1, 2, 3;
