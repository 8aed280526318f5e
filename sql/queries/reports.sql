-- Reports in the site's time zone (tracetrack_db/reports.py). The library turns
-- local dates into a UTC range [start, end); %(tz)s names the zone that local
-- days and hours are read in. Optional filters are `(%(x)s IS NULL OR ...)`
-- over rows the range has already narrowed (an index range on bill or on the
-- rollup's quarters), so one generic plan fits every combination.

-- name: roll_up_events :scalar
-- Count new events into event_rollup (from `since`, or an hour before where it
-- got to) and the local days of every zone asked for (`zone` adds one); returns
-- the new rolled_to. Runs as the owner (SECURITY DEFINER).
SELECT tt_roll_up_events(%(since)s::timestamptz, %(zone)s::text);

-- name: report_rolled_to :scalar
-- Periods starting before this are in event_rollup: time_zone '' for the
-- quarters, a zone's name for its local days (NULL: not asked for yet).
SELECT rolled_to FROM event_rollup_state WHERE time_zone = %(time_zone)s;

-- name: report_areas_refreshed_at :scalar
-- When mv_bills_by_area was refreshed (bills changed since are read from bag).
SELECT refreshed_at FROM view_refresh WHERE view_name = 'mv_bills_by_area';

-- name: report_bill_totals :many
-- The bill report's totals over the whole range, one row per figure set:
-- grouping 'all', 'day' (key: the local day), 'biller' (key: user id; who
-- created the bills, or completed them with on=completed) and 'area' (the
-- parents of each area: a bill counts in each area it holds parents of).
-- %(on)s picks the time (created_at or completed_at) the range applies to;
-- %(settled)s: bills changed since are read from bag, not mv_bills_by_area.
-- Every join is a per-bill index lookup (LATERAL), never a join of two CTEs:
-- a generic plan (psycopg prepares after 5 runs) guesses 1 bill in the range.
WITH b AS (
    SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count AS parents,
           b.total_child_count AS children, b.expected_weight_kg, b.total_weight_kg AS actual_weight_kg,
           b.created_by, b.created_at, b.completed_at, b.updated_at,
           (b.created_at AT TIME ZONE %(tz)s)::date AS day
    FROM bill b
    WHERE %(on)s = 'created' AND b.created_at >= %(start)s AND b.created_at < %(end)s
      AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
      AND (%(status)s::text IS NULL OR b.status = %(status)s)
    UNION ALL
    SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count, b.total_child_count,
           b.expected_weight_kg, b.total_weight_kg, b.created_by, b.created_at, b.completed_at, b.updated_at,
           (b.completed_at AT TIME ZONE %(tz)s)::date
    FROM bill b
    WHERE %(on)s = 'completed' AND b.completed_at >= %(start)s AND b.completed_at < %(end)s
      AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
      AND (%(status)s::text IS NULL OR b.status = %(status)s)
), kept AS (  -- with a parent of the area asked for
    SELECT b.* FROM b
    WHERE %(area)s::text IS NULL
       OR EXISTS (SELECT 1 FROM mv_bills_by_area v
                  WHERE v.bill_id = b.id AND v.dispatch_area = %(area)s AND b.updated_at < %(settled)s)
       OR EXISTS (SELECT 1 FROM bag p
                  WHERE p.bill_id = b.id AND p.dispatch_area = %(area)s
                    AND (%(settled)s::timestamptz IS NULL OR b.updated_at >= %(settled)s))
), billed AS (
    SELECT k.*, CASE WHEN %(on)s = 'completed' THEN d.user_id ELSE k.created_by END AS biller
    FROM kept k
    LEFT JOIN LATERAL (  -- who completed it (event_bill_complete_idx)
        SELECT e.user_id FROM event e
        WHERE e.kind = 'bill_complete' AND e.bill_id = k.id
        ORDER BY e.id DESC LIMIT 1
    ) d ON k.completed_at IS NOT NULL
), a AS (
    SELECT k.id, k.completed_at, x.*
    FROM kept k
    CROSS JOIN LATERAL (  -- its parents per area: from mv_bills_by_area when settled before its refresh, else from bag
        SELECT v.dispatch_area, v.parents, v.children, v.actual_weight_kg, v.expected_weight_kg
        FROM mv_bills_by_area v
        WHERE v.bill_id = k.id AND k.updated_at < %(settled)s
        UNION ALL
        SELECT p.dispatch_area, count(*), sum(p.child_count), sum(p.weight_kg),
           sum(coalesce(p.expected_weight_kg, 0))
        FROM bag p
        WHERE p.bill_id = k.id AND (%(settled)s::timestamptz IS NULL OR k.updated_at >= %(settled)s)
        GROUP BY p.dispatch_area
    ) x
    WHERE %(area)s::text IS NULL OR x.dispatch_area = %(area)s
)
SELECT 'all' AS grouping, '' AS key, count(*)::bigint AS bills, count(completed_at)::bigint AS completed,
       coalesce(sum(parents), 0)::bigint AS parents, coalesce(sum(children), 0)::bigint AS children,
       coalesce(sum(expected_weight_kg), 0) AS expected_weight_kg,
       coalesce(sum(actual_weight_kg), 0) AS actual_weight_kg
FROM billed
UNION ALL
SELECT 'day', to_char(day, 'YYYY-MM-DD'), count(*), count(completed_at), sum(parents), sum(children),
       sum(expected_weight_kg), sum(actual_weight_kg)
FROM billed GROUP BY day
UNION ALL
SELECT 'biller', coalesce(biller::text, ''), count(*), count(completed_at), sum(parents), sum(children),
       sum(expected_weight_kg), sum(actual_weight_kg)
FROM billed GROUP BY biller
UNION ALL
SELECT 'area', dispatch_area, count(*), count(completed_at), sum(parents), sum(children), sum(expected_weight_kg),
       sum(actual_weight_kg)
FROM a GROUP BY dispatch_area;

-- name: report_bill_page :many
-- One page of the bill report's bills, newest first (keyset on id), with
-- their areas and who created and completed them. Same parameters as
-- report_bill_totals, and %(before_id)s (NULL: the first page), %(limit)s
-- (NULL: every bill of the range, for the CSV and the end of a day).
WITH b AS (
    SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count AS parents,
           b.total_child_count AS children, b.expected_weight_kg, b.total_weight_kg AS actual_weight_kg,
           b.created_by, b.created_at, b.completed_at, b.updated_at,
           (b.created_at AT TIME ZONE %(tz)s)::date AS day
    FROM bill b
    WHERE %(on)s = 'created' AND b.created_at >= %(start)s AND b.created_at < %(end)s
      AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
      AND (%(status)s::text IS NULL OR b.status = %(status)s)
    UNION ALL
    SELECT b.id, b.bill_no, b.status, b.capacity, b.linked_parent_count, b.total_child_count,
           b.expected_weight_kg, b.total_weight_kg, b.created_by, b.created_at, b.completed_at, b.updated_at,
           (b.completed_at AT TIME ZONE %(tz)s)::date
    FROM bill b
    WHERE %(on)s = 'completed' AND b.completed_at >= %(start)s AND b.completed_at < %(end)s
      AND (%(created_by)s::bigint IS NULL OR b.created_by = %(created_by)s)
      AND (%(status)s::text IS NULL OR b.status = %(status)s)
), kept AS (  -- with a parent of the area asked for
    SELECT b.* FROM b
    WHERE %(area)s::text IS NULL
       OR EXISTS (SELECT 1 FROM mv_bills_by_area v
                  WHERE v.bill_id = b.id AND v.dispatch_area = %(area)s AND b.updated_at < %(settled)s)
       OR EXISTS (SELECT 1 FROM bag p
                  WHERE p.bill_id = b.id AND p.dispatch_area = %(area)s
                    AND (%(settled)s::timestamptz IS NULL OR b.updated_at >= %(settled)s))
), page AS (
    SELECT * FROM kept
    WHERE %(before_id)s::bigint IS NULL OR id < %(before_id)s
    ORDER BY id DESC
    LIMIT %(limit)s
)
SELECT k.id, k.bill_no, k.status, k.capacity, k.parents, k.children, k.expected_weight_kg, k.actual_weight_kg,
       k.created_by, cu.username AS created_by_username, k.created_at, d.user_id AS completed_by,
       du.username AS completed_by_username, k.completed_at, k.day,
       coalesce((SELECT array_agg(x.dispatch_area ORDER BY x.dispatch_area)
                 FROM (SELECT v.dispatch_area FROM mv_bills_by_area v
                       WHERE v.bill_id = k.id AND k.updated_at < %(settled)s
                       UNION
                       SELECT p.dispatch_area FROM bag p
                       WHERE p.bill_id = k.id AND (%(settled)s::timestamptz IS NULL OR k.updated_at >= %(settled)s)
                      ) x), '{}') AS dispatch_areas
FROM page k
LEFT JOIN LATERAL (  -- who completed it (event_bill_complete_idx)
    SELECT e.user_id FROM event e
    WHERE e.kind = 'bill_complete' AND e.bill_id = k.id
    ORDER BY e.id DESC LIMIT 1
) d ON k.completed_at IS NOT NULL
LEFT JOIN app_user cu ON cu.id = k.created_by
LEFT JOIN app_user du ON du.id = d.user_id
ORDER BY k.id DESC;

-- name: report_activity :many
-- Events per local bucket (hour or day: %(bucket)s), per user and per area, by
-- kind, each event in the bucket of its scan time (least(device_time,
-- occurred_at): an offline scanner's events when they were scanned, see 0020).
-- Three parts, chosen by the library so that each event counts once: whole
-- local days [start, days_end) from the zone's day rows of event_rollup, UTC
-- quarters [q_from, q_to) from its quarter rows (both: the events applied
-- before the last roll-up), and the events applied since (occurred_at >=
-- live_from, a few minutes' worth) from the event log itself, whatever day of
-- the range they were scanned on.
WITH counted AS (
    SELECT d.period_start AT TIME ZONE %(tz)s AS local_at, d.dispatch_area, d.user_id, d.kind, d.events
    FROM event_rollup d
    WHERE d.time_zone = %(tz)s AND d.period_start >= %(start)s AND d.period_start < %(days_end)s
      AND (%(area)s::text IS NULL OR d.dispatch_area = %(area)s)
      AND (%(user_id)s::bigint IS NULL OR d.user_id = %(user_id)s)
    UNION ALL
    SELECT r.period_start AT TIME ZONE %(tz)s, r.dispatch_area, r.user_id, r.kind, r.events
    FROM event_rollup r
    WHERE r.time_zone = '' AND r.period_start >= %(q_from)s AND r.period_start < %(q_to)s
      AND (%(area)s::text IS NULL OR r.dispatch_area = %(area)s)
      AND (%(user_id)s::bigint IS NULL OR r.user_id = %(user_id)s)
    UNION ALL
    SELECT least(e.device_time, e.occurred_at) AT TIME ZONE %(tz)s, coalesce(e.dispatch_area, ''),
           coalesce(e.user_id, 0), e.kind, 1
    FROM event e
    WHERE e.occurred_at >= %(live_from)s
      AND least(e.device_time, e.occurred_at) >= %(start)s AND least(e.device_time, e.occurred_at) < %(end)s
      AND (%(area)s::text IS NULL OR e.dispatch_area = %(area)s)
      AND (%(user_id)s::bigint IS NULL OR e.user_id = %(user_id)s)
), local AS (
    SELECT date_trunc(%(bucket)s, c.local_at) AS bucket, c.dispatch_area, c.user_id, c.kind,
           sum(c.events) AS events
    FROM counted c
    GROUP BY 1, 2, 3, 4
)
SELECT CASE WHEN grouping(l.bucket) = 0 THEN l.bucket AT TIME ZONE %(tz)s END AS bucket,
       CASE WHEN grouping(l.dispatch_area) = 0 THEN l.dispatch_area END AS dispatch_area,
       CASE WHEN grouping(l.user_id) = 0 THEN l.user_id END AS user_id,
       l.kind, sum(l.events)::bigint AS events
FROM local l
GROUP BY GROUPING SETS ((l.bucket, l.kind), (l.dispatch_area, l.kind), (l.user_id, l.kind));

-- name: report_schema_ready :scalar
-- Whether the migration the reports need (0010) is applied.
SELECT to_regclass('event_rollup_state') IS NOT NULL;

-- name: report_users :many
-- Usernames, roles and areas of the users a report names.
SELECT id, username, role, dispatch_area FROM app_user WHERE id = ANY (%(ids)s::bigint[]);
