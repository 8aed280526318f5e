-- Offline sync (tracetrack_db/sync.py): each operation of a list runs in its own
-- transaction, which starts with sync_begin_op and ends with sync_keep_verdict.

-- name: sync_begin_op :one
-- The first statement of an operation's transaction: sets the device's time
-- for the events it writes (tracetrack.device_time, read by event.device_time's
-- default; transaction-local), says whether that time is too far ahead of or
-- behind the database's clock ('ahead', 'behind' or NULL), and returns the
-- verdict already kept for this (user, device, client op id), if any (op NULL: none).
SELECT set_config('tracetrack.device_time', %(device_time)s::timestamptz::text, true) IS NOT NULL AS ready,
       CASE WHEN %(device_time)s::timestamptz > now() + make_interval(secs => %(max_ahead)s) THEN 'ahead'
            WHEN %(device_time)s::timestamptz < now() - make_interval(secs => %(max_behind)s) THEN 'behind'
       END AS clock,
       s.user_id, s.op, s.args, s.device_time, s.status, s.code, s.message, s.result::text AS result
FROM (VALUES (1)) AS one (x)
LEFT JOIN sync_op s ON s.user_key = coalesce(%(user_id)s::bigint, 0) AND s.device_id = %(device_id)s
                   AND s.client_op_id = %(client_op_id)s;

-- name: sync_verdict :one
-- The verdict kept for (user, device, client op id), if any.
SELECT user_id, op, args, device_time, status, code, message, result::text AS result
FROM sync_op
WHERE user_key = coalesce(%(user_id)s::bigint, 0) AND device_id = %(device_id)s AND client_op_id = %(client_op_id)s;

-- name: sync_keep_verdict :scalar
-- Keep an operation's verdict, in its transaction; NULL when a concurrent
-- sync of the same (device, client op id) kept one first (this one then
-- rolls back and answers that one).
INSERT INTO sync_op (device_id, client_op_id, user_id, op, args, device_time, status, code, message, result)
VALUES (%(device_id)s, %(client_op_id)s, %(user_id)s, %(op)s, %(args)s::jsonb, %(device_time)s, %(status)s,
        %(code)s, %(message)s, %(result)s::json)
ON CONFLICT (user_key, device_id, client_op_id) DO NOTHING
RETURNING true;

-- name: purge_sync_ops :scalar
-- Forget the verdicts no resend can ask for any more (a day past the device clock bound).
SELECT tt_purge_sync_ops(%(max_behind_seconds)s);
