-- Materialized views behind GET /api/dashboard/analytics. Re-run by
-- `tracetrack db migrate` only when this text changes: built beside the live
-- views, then swapped in (tracetrack_db/migrations.py), so no DROP here.
-- Refreshed CONCURRENTLY (each has a unique index) by `tracetrack db
-- refresh-views` and the service's refresher.

CREATE MATERIALIZED VIEW mv_bag_totals AS
SELECT dispatch_area, type, status, (parent_id IS NOT NULL) AS linked, count(*)::bigint AS bags,
       coalesce(sum(weight_kg) FILTER (WHERE type = 'parent'), 0) AS parent_weight_kg
FROM bag
GROUP BY dispatch_area, type, status, (parent_id IS NOT NULL);
CREATE UNIQUE INDEX mv_bag_totals_key ON mv_bag_totals (dispatch_area, type, status, linked);

-- Each bill's parents per dispatch area (a bill may hold several areas'):
-- the bill report's per-area figures, and mv_bill_totals below. Its name sorts
-- after mv_bill_totals on purpose: the runner swaps a changed file's objects in
-- by name (drop the old, move the new in), and the old mv_bill_totals, which
-- depends on this view, must go first.
CREATE MATERIALIZED VIEW mv_bills_by_area AS
SELECT p.bill_id, p.dispatch_area, count(*)::bigint AS parents, sum(p.child_count)::bigint AS children,
       sum(p.weight_kg) AS actual_weight_kg, sum(coalesce(p.expected_weight_kg, 0)) AS expected_weight_kg
FROM bag p
WHERE p.bill_id IS NOT NULL
GROUP BY p.bill_id, p.dispatch_area;
CREATE UNIQUE INDEX mv_bills_by_area_key ON mv_bills_by_area (bill_id, dispatch_area);

-- Bills by status, for every area ('': all bills, the empty ones too) and per
-- area: the bills holding at least one of that area's parents, and only those
-- parents and their weight, so a dispatcher's dashboard counts nothing of
-- another area's. From mv_bills_by_area (refreshed just before, in the same
-- transaction), so the bills' parents are read once per refresh.
CREATE MATERIALIZED VIEW mv_bill_totals AS
SELECT CASE WHEN grouping(a.dispatch_area) = 1 THEN '' ELSE a.dispatch_area END AS dispatch_area, b.status,
       count(DISTINCT b.id)::bigint AS bills, coalesce(sum(a.parents), 0)::bigint AS parents,
       coalesce(sum(a.actual_weight_kg), 0) AS weight_kg
FROM bill b LEFT JOIN mv_bills_by_area a ON a.bill_id = b.id
GROUP BY GROUPING SETS ((b.status), (a.dispatch_area, b.status))
HAVING grouping(a.dispatch_area) = 1 OR a.dispatch_area IS NOT NULL;
CREATE UNIQUE INDEX mv_bill_totals_key ON mv_bill_totals (dispatch_area, status);

-- Scans per UTC quarter hour over the last 2 days (the BRIN index keeps this
-- a short scan; the dashboard shows 24 hours and today, at most 25 hours ago).
-- Quarters, not hours: every time zone in use is a whole number of quarter
-- hours from UTC (India +05:30, Nepal +05:45), so the dashboard sums them into
-- the hours and the day of TRACETRACK_TIMEZONE, and the view need not know the
-- zone. (The reports count older days from event_rollup.) An offline scanner's
-- synced events count in the quarter they were scanned (their scan time,
-- least(device_time, occurred_at), is never after occurred_at, see 0020).
CREATE MATERIALIZED VIEW mv_hourly_scans AS
SELECT to_timestamp(floor(extract(epoch FROM least(device_time, occurred_at)) / 900) * 900) AS quarter,
       coalesce(dispatch_area, '') AS dispatch_area, kind, count(*)::bigint AS events
FROM event
WHERE occurred_at >= now() - interval '2 days'
GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX mv_hourly_scans_key ON mv_hourly_scans (quarter, dispatch_area, kind);

-- Activity per user over the last 7 days.
CREATE MATERIALIZED VIEW mv_user_activity AS
SELECT e.user_id, u.username, u.role, coalesce(u.dispatch_area, '') AS dispatch_area,
       count(*)::bigint AS events_7d,
       count(*) FILTER (WHERE e.occurred_at >= now() - interval '24 hours')::bigint AS events_24h,
       count(*) FILTER (WHERE e.kind = 'link')::bigint AS links_7d,
       max(e.occurred_at) AS last_event_at
FROM event e JOIN app_user u ON u.id = e.user_id
WHERE e.occurred_at >= now() - interval '7 days'
GROUP BY e.user_id, u.username, u.role, u.dispatch_area;
CREATE UNIQUE INDEX mv_user_activity_key ON mv_user_activity (user_id);

-- The most recent scans (the tail of the event table, by id).
CREATE MATERIALIZED VIEW mv_recent_scans AS
SELECT e.id, e.occurred_at, e.kind, e.user_id, u.username, e.qr_id, e.parent_qr, e.bill_no,
       coalesce(e.dispatch_area, '') AS dispatch_area
FROM (SELECT id, occurred_at, kind, user_id, qr_id, parent_qr, bill_no, dispatch_area
      FROM event WHERE kind IN ('parent_scan', 'link', 'unlink')
      ORDER BY id DESC LIMIT 500) e
LEFT JOIN app_user u ON u.id = e.user_id;
CREATE UNIQUE INDEX mv_recent_scans_key ON mv_recent_scans (id);

INSERT INTO view_refresh (view_name, refreshed_at, duration_ms)
SELECT v, now(), 0 FROM unnest(ARRAY['mv_bag_totals', 'mv_bills_by_area', 'mv_bill_totals', 'mv_hourly_scans',
                                     'mv_user_activity', 'mv_recent_scans']) AS v
ON CONFLICT (view_name) DO UPDATE SET refreshed_at = excluded.refreshed_at, duration_ms = 0;
