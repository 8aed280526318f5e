-- name: claim_idempotency_key :one
-- Claim a key inside the caller's transaction. A concurrent claim of the same
-- key waits for this one to commit or roll back.
INSERT INTO idempotency_key (user_id, key, fingerprint)
VALUES (%(user_id)s, %(key)s, %(fingerprint)s)
ON CONFLICT (user_id, key) DO NOTHING
RETURNING true AS claimed;

-- name: get_idempotency_key :one
-- A stored first answer.
SELECT fingerprint, status, response FROM idempotency_key
WHERE user_id = %(user_id)s AND key = %(key)s;

-- name: store_idempotent_response :exec
-- Record the first answer for replay.
UPDATE idempotency_key SET status = %(status)s, response = %(response)s
WHERE user_id = %(user_id)s AND key = %(key)s;

-- name: purge_idempotency_keys :execrows
-- Forget keys older than the retention period.
DELETE FROM idempotency_key WHERE created_at < now() - make_interval(hours => %(hours)s);
