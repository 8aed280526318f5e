-- name: dashboard_bag_totals :many
-- Bag counts by area, type, status and linked flag (from mv_bag_totals); NULL area: all.
SELECT dispatch_area, type, status, linked, bags
FROM mv_bag_totals
WHERE %(area)s::text IS NULL OR dispatch_area = %(area)s;

-- name: dashboard_bill_totals :many
-- Bills by status: all of them (NULL area), or those holding the area's parents.
SELECT status, bills, parents, weight_kg FROM mv_bill_totals
WHERE dispatch_area = coalesce(%(area)s, '')
ORDER BY status;

-- name: dashboard_hourly :many
-- Scan events (parent scans, links, unlinks) per UTC quarter hour from `since`;
-- the library sums them into the site's local hours and day.
SELECT quarter, sum(events)::bigint AS events
FROM mv_hourly_scans
WHERE quarter >= %(since)s
  AND kind IN ('parent_scan', 'link', 'unlink')
  AND (%(area)s::text IS NULL OR dispatch_area = %(area)s)
GROUP BY quarter ORDER BY quarter;

-- name: dashboard_user_activity :many
-- The most active users of the last 7 days.
SELECT user_id, username, role, events_24h, events_7d, links_7d, last_event_at
FROM mv_user_activity
WHERE %(area)s::text IS NULL OR dispatch_area = %(area)s
ORDER BY events_24h DESC, events_7d DESC, user_id
LIMIT 10;

-- name: dashboard_recent_scans :many
-- The latest scans.
SELECT id, occurred_at, kind, username, qr_id, parent_qr
FROM mv_recent_scans
WHERE %(area)s::text IS NULL OR dispatch_area = %(area)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: view_refresh_times :many
-- When each view was last refreshed.
SELECT view_name, refreshed_at, duration_ms FROM view_refresh ORDER BY view_name;

-- name: record_view_refresh :exec
-- Record a refresh.
INSERT INTO view_refresh (view_name, refreshed_at, duration_ms)
VALUES (%(view_name)s, now(), %(duration_ms)s)
ON CONFLICT (view_name) DO UPDATE SET refreshed_at = excluded.refreshed_at, duration_ms = excluded.duration_ms;

-- name: try_refresh_lock :scalar
-- Only one refresher at a time across every process and server; held until the
-- refreshing transaction ends (transaction-scoped: safe behind PgBouncer).
SELECT pg_try_advisory_xact_lock(7314027002);

-- name: oldest_view_refresh :scalar
-- Seconds since the least recently refreshed view was refreshed.
SELECT extract(epoch FROM now() - min(refreshed_at))::float8 FROM view_refresh;
