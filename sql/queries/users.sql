-- name: create_user :one
-- Create a user with an argon2id hash.
INSERT INTO app_user (username, password_hash, role, dispatch_area)
VALUES (%(username)s, %(password_hash)s, %(role)s, %(dispatch_area)s)
RETURNING id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at;

-- name: get_user :one
-- One user by id.
SELECT id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at
FROM app_user WHERE id = %(id)s;

-- name: get_user_by_username :one
-- One user by username (case-insensitive).
SELECT id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at
FROM app_user WHERE lower(username) = lower(%(username)s);

-- name: get_principal :one
-- What a token check needs of a user: role, area, active, and the oldest
-- token issue time (epoch seconds) still accepted.
SELECT id, username, role, dispatch_area, is_active,
       CASE WHEN tokens_valid_after = '-infinity' THEN 0
            ELSE floor(extract(epoch FROM tokens_valid_after))::bigint END AS tokens_valid_after
FROM app_user WHERE id = %(id)s;

-- name: get_login :one
-- What a login needs: the hash and the lockout state.
SELECT id, password_hash, is_active, failed_logins, locked_until, locked_until > now() AS locked
FROM app_user WHERE lower(username) = lower(%(username)s);

-- name: login_failed :scalar
-- Count a failed login; the Nth failure in a row locks the account.
UPDATE app_user
SET failed_logins = CASE WHEN failed_logins + 1 >= %(max_failures)s THEN 0 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN failed_logins + 1 >= %(max_failures)s
                        THEN now() + make_interval(secs => %(lock_seconds)s) ELSE locked_until END
WHERE id = %(id)s
RETURNING locked_until > now() AS locked;

-- name: login_succeeded :one
-- Reset the failure count; optionally store a rehashed password.
UPDATE app_user
SET failed_logins = 0, locked_until = NULL, last_login_at = now(),
    password_hash = coalesce(%(password_hash)s, password_hash)
WHERE id = %(id)s
RETURNING id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at;

-- name: update_user :one
-- Change role, area, active flag or password (NULL keeps a field; clear_area empties the area).
UPDATE app_user
SET role = coalesce(%(role)s, role),
    dispatch_area = CASE WHEN %(clear_area)s THEN NULL ELSE coalesce(%(dispatch_area)s, dispatch_area) END,
    is_active = coalesce(%(is_active)s, is_active),
    password_hash = coalesce(%(password_hash)s, password_hash),
    failed_logins = CASE WHEN %(password_hash)s::text IS NULL THEN failed_logins ELSE 0 END,
    tokens_valid_after = CASE WHEN %(password_hash)s::text IS NULL THEN tokens_valid_after ELSE now() END,
    locked_until = CASE WHEN %(password_hash)s::text IS NULL THEN locked_until END,
    updated_at = now()
WHERE id = %(id)s
RETURNING id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at;

-- name: list_users :many
-- Users by id, keyset after a cursor.
SELECT id, username, role, dispatch_area, is_active, locked_until, last_login_at, created_at, updated_at
FROM app_user
WHERE id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: count_active_admins :scalar
-- Active admins (bootstrap checks).
SELECT count(*) FROM app_user WHERE role = 'admin' AND is_active;
