-- Self-service accounts (issue 12): a user changes their own password
-- (POST /api/me/password, the current one required), and a password an admin
-- set for someone else must be changed at that user's next login.

-- Set when an admin sets another user's password (PATCH /api/users/{id});
-- cleared by the user's own change. While it is set the API answers that user
-- 403 password_change_required on everything but GET /api/me, the change
-- itself and logout. Both the reset and the change also bump token_version.
ALTER TABLE app_user ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;

-- The service writes the flag directly, as it writes the other user columns.
INSERT INTO service_grant (object, privileges) VALUES ('app_user', 'UPDATE (must_change_password)');

-- Workers cache each user's principal, flag included: a change to the flag is
-- announced like a role or token version change (0007), so a listening worker
-- forgets the user at once even when the flag changes alone (by hand in SQL).
DROP TRIGGER app_user_changed ON app_user;
CREATE TRIGGER app_user_changed
AFTER UPDATE OF role, dispatch_area, is_active, token_version, must_change_password ON app_user
FOR EACH ROW
WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.dispatch_area IS DISTINCT FROM NEW.dispatch_area
      OR OLD.is_active IS DISTINCT FROM NEW.is_active OR OLD.token_version IS DISTINCT FROM NEW.token_version
      OR OLD.must_change_password IS DISTINCT FROM NEW.must_change_password)
EXECUTE FUNCTION tt_user_changed();
