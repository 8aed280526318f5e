-- name: index_usage :many
-- Index scans and sizes of the tracetrack tables; unused (0 scans, not unique) first.
SELECT s.relname AS table_name, s.indexrelname AS index_name, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes, i.indisunique AS is_unique
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
ORDER BY (s.idx_scan = 0 AND NOT i.indisunique) DESC, s.relname, s.indexrelname;

-- name: table_stats :many
-- Rows, dead tuples, size and the last vacuum/analyze of each table.
SELECT relname AS table_name, n_live_tup AS live_rows, n_dead_tup AS dead_rows,
       pg_total_relation_size(relid) AS bytes,
       greatest(last_vacuum, last_autovacuum) AS last_vacuum,
       greatest(last_analyze, last_autoanalyze) AS last_analyze
FROM pg_stat_user_tables
ORDER BY pg_total_relation_size(relid) DESC;

-- name: unaddressable_identifiers :many
-- QRs and bill numbers written before the path rules of migration 0005 (whose
-- constraints are NOT VALID) that no URL path can name: rename or retire them.
-- A full scan: for `tracetrack verify`, never a request.
(SELECT 'bag' AS kind, qr_id AS identifier FROM bag
 WHERE qr_id !~ '^[A-Z0-9_-]+(/[A-Z0-9_-]+)*$' OR qr_id ~ '/HISTORY$' ORDER BY id LIMIT 20)
UNION ALL
(SELECT 'bill', bill_no FROM bill
 WHERE bill_no !~ '^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$'
    OR bill_no ~* '(^|/)(parents|complete|reopen)(/|$)' ORDER BY id LIMIT 20);
