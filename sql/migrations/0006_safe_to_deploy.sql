-- Safe to deploy (issue 9).

-- CSV cells a spreadsheet would run as a formula (=, +, -, @, and tab or CR
-- that some of them skip first) get a leading apostrophe in every export: the
-- cell shows as the text it is. Inlined by the planner (a plain SQL function).
CREATE FUNCTION tt_csv_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v ~ '^[-=+@\t\r]' THEN '''' || v ELSE v END
$$;

-- Tokens carry their user's token_version; a logout, a password change, a
-- deactivation and a role change bump it, which ends every token issued
-- before (replaces tokens_valid_after, whose whole seconds let a token issued
-- in the same second as a password change live on). No account lock: failed
-- logins are throttled per username and client address by the service, so a
-- stranger cannot lock a user out (the lock columns go).
ALTER TABLE app_user ADD COLUMN token_version integer NOT NULL DEFAULT 0;
ALTER TABLE app_user DROP COLUMN tokens_valid_after, DROP COLUMN failed_logins, DROP COLUMN locked_until;

-- The library's User, written once.
CREATE VIEW user_row AS
SELECT id, username, role, dispatch_area, is_active, last_login_at, created_at, updated_at FROM app_user;
