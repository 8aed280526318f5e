-- name: create_user :scalar
-- Create a user with an argon2id hash; its id.
INSERT INTO app_user (username, password_hash, role, dispatch_area)
VALUES (%(username)s, %(password_hash)s, %(role)s, %(dispatch_area)s)
RETURNING id;

-- name: get_user :one
-- One user (a User row) by id.
SELECT r.* FROM user_row r WHERE r.id = %(id)s;

-- name: get_account :one
-- A user as they see themselves (an Account row): the User and whether they
-- must change their password before anything else.
SELECT r.*, u.must_change_password FROM user_row r JOIN app_user u ON u.id = r.id WHERE r.id = %(id)s;

-- name: get_user_by_username :one
-- One user by username (ASCII, case-insensitive).
SELECT r.* FROM user_row r WHERE lower(r.username) = %(username)s;

-- name: get_principal :one
-- What a token check needs of a user: role, area, active, token version, and
-- whether they must change their password first.
SELECT id, username, role, dispatch_area, is_active, token_version, must_change_password
FROM app_user WHERE id = %(id)s;

-- name: get_login :one
-- What a login needs: the hash and whether the user may log in.
SELECT id, password_hash, is_active FROM app_user WHERE lower(username) = %(username)s;

-- name: login_succeeded :scalar
-- Record a login (optionally storing a rehashed password) and write its
-- security log row in the same statement; the token version the new token
-- carries.
WITH u AS (
    UPDATE app_user
    SET last_login_at = now(), password_hash = coalesce(%(password_hash)s, password_hash)
    WHERE id = %(id)s
    RETURNING id, username, token_version
), logged AS (
    INSERT INTO security_log (kind, actor_id, actor, user_id, username, client_address, user_agent)
    SELECT 'login_succeeded', u.id, u.username, u.id, u.username, left(%(address)s, 100), left(%(user_agent)s, 500)
    FROM u
)
SELECT token_version FROM u;

-- name: update_user :one
-- Change role, area, active flag or password (NULL keeps a field; clear_area
-- empties the area; must_change_password true: an admin's reset, which the
-- user must replace at next login). A new password, a deactivation or a new
-- role ends every token issued before (token_version). The row before and
-- after, for the security log (no row: no such user).
WITH old AS (
    SELECT id, role, dispatch_area, is_active, token_version FROM app_user WHERE id = %(id)s FOR UPDATE
)
UPDATE app_user u
SET role = coalesce(%(role)s, u.role),
    must_change_password = coalesce(%(must_change_password)s, u.must_change_password),
    dispatch_area = CASE WHEN %(clear_area)s THEN NULL ELSE coalesce(%(dispatch_area)s, u.dispatch_area) END,
    is_active = coalesce(%(is_active)s, u.is_active),
    password_hash = coalesce(%(password_hash)s, u.password_hash),
    token_version = u.token_version + CASE
        WHEN %(password_hash)s::text IS NOT NULL
          OR (%(is_active)s::boolean IS FALSE AND u.is_active)
          OR (%(role)s::text IS NOT NULL AND %(role)s::text <> u.role) THEN 1 ELSE 0 END,
    updated_at = now()
FROM old
WHERE u.id = old.id
RETURNING u.id, u.username, old.role AS old_role, u.role, old.dispatch_area AS old_dispatch_area, u.dispatch_area,
          old.is_active AS old_is_active, u.is_active, u.token_version > old.token_version AS tokens_revoked;

-- name: get_password :one
-- What a password change needs: the user's name, hash and whether active.
SELECT id, username, password_hash, is_active FROM app_user WHERE id = %(id)s;

-- name: change_password :scalar
-- A user's own new password: clears must_change_password and ends every older
-- token; only if the hash is still the one whose password was checked (a reset
-- or another change meanwhile: no row). The new token version.
UPDATE app_user
SET password_hash = %(password_hash)s,
    must_change_password = false,
    token_version = token_version + 1,
    updated_at = now()
WHERE id = %(id)s AND password_hash = %(checked_hash)s AND is_active
RETURNING token_version;

-- name: revoke_tokens :scalar
-- End every token of a user (a logout); the new token version.
UPDATE app_user SET token_version = token_version + 1 WHERE id = %(id)s RETURNING token_version;

-- name: list_users :many
-- Users by id, keyset after a cursor.
SELECT r.* FROM user_row r
WHERE r.id > %(after_id)s
ORDER BY r.id
LIMIT %(limit)s;

-- name: count_active_admins :scalar
-- Active admins (bootstrap checks).
SELECT count(*) FROM app_user WHERE role = 'admin' AND is_active;
