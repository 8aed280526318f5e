-- name: throttle_incr :scalar
-- Count one more under `key`; a count lives `ttl` seconds from its first increment.
INSERT INTO throttle AS t (key, value, expires_at)
VALUES (%(key)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE
SET value = CASE WHEN t.expires_at < clock_timestamp() THEN 1 ELSE t.value + 1 END,
    expires_at = CASE WHEN t.expires_at < clock_timestamp() THEN excluded.expires_at ELSE t.expires_at END
RETURNING value;

-- name: throttle_add :scalar
-- Set `key` for `ttl` seconds unless it is set and unexpired: true when it was set.
INSERT INTO throttle AS t (key, value, expires_at)
VALUES (%(key)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE SET value = 1, expires_at = excluded.expires_at
WHERE t.expires_at < clock_timestamp()
RETURNING true;

-- name: write_position_record :scalar
-- A user's last write position for read-your-writes without Redis: the primary's
-- WAL insert position now (past the write's commit) under `key`, for `ttl`
-- seconds, keeping the greater of it and an unexpired one (two writes racing:
-- the earlier one's record landing last must not win); the position kept.
INSERT INTO throttle AS t (key, value, expires_at)
VALUES (%(key)s, (pg_current_wal_insert_lsn() - '0/0')::bigint, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE
SET value = CASE WHEN t.expires_at < clock_timestamp() THEN excluded.value ELSE greatest(t.value, excluded.value) END,
    expires_at = excluded.expires_at
RETURNING value;

-- name: write_position_of :scalar
-- The position recorded under `key` (write_position_record), unless expired.
SELECT value FROM throttle WHERE key = %(key)s AND expires_at >= clock_timestamp();

-- name: throttle_delete :exec
-- Forget keys.
DELETE FROM throttle WHERE key = ANY(%(keys)s);

-- name: purge_throttle :execrows
-- Forget expired counters and marks.
DELETE FROM throttle WHERE expires_at < clock_timestamp();
