-- The security log (issue 12, items 10 and 11): logins and their failures,
-- lockouts, logouts, password changes and resets, user changes, token
-- revocations, parent-format and extraction-rule changes; who did it (actor),
-- to whom (user), when, from which client address and user agent.
--
-- Append-only twice over, like the event log:
--   * the service role may SELECT it and INSERT the descriptive columns only
--     (never id or occurred_at: the server's clock dates every row), and has
--     no UPDATE, DELETE or TRUNCATE on it or on event (service_grant below
--     refuses such a row, so no later migration grants one by mistake);
--   * a statement trigger refuses UPDATE, DELETE and TRUNCATE to everyone,
--     the owner and every SECURITY DEFINER function included.
-- The library writes a row in the transaction of the change it records (a
-- change that fails leaves none); a failed login writes its row on its own.
CREATE TABLE security_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN (
                        'login_succeeded', 'login_failed', 'lockout', 'logout', 'tokens_revoked',
                        'password_changed', 'password_change_failed', 'password_reset',
                        'user_created', 'role_changed', 'area_changed', 'active_changed',
                        'format_added', 'format_changed', 'format_removed', 'rule_added', 'rule_changed')),
    -- who: a user (NULL: nobody logged in, as for a login, the CLI or a library caller) and a name
    -- (their username, cli:<OS user>, library)
    actor_id        bigint,
    actor           text NOT NULL DEFAULT '' CHECK (length(actor) <= 100),
    -- to whom: the account concerned, and its name (for a failed login: the name typed)
    user_id         bigint,
    username        text CHECK (length(username) <= 100),
    -- why a login failed or tokens ended: the code the API answered (invalid_credentials, rate_limited) or
    -- the change that ended them (logout, password_changed ...)
    reason          text CHECK (reason ~ '^[a-z_]{1,50}$'),
    client_address  text CHECK (length(client_address) <= 100),
    user_agent      text CHECK (length(user_agent) <= 500),
    details         jsonb CHECK (octet_length(details::text) <= 4000)
);
-- GET /api/audit: newest first by id (the primary key), or by kind, by user (as actor or as
-- the one concerned), or from / to a time.
CREATE INDEX security_log_kind_idx ON security_log (kind, id);
CREATE INDEX security_log_actor_idx ON security_log (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX security_log_user_idx ON security_log (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX security_log_occurred_at_idx ON security_log (occurred_at);

CREATE FUNCTION tt_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tt_fail('TT409', 'append_only', format('%s is append-only: rows are never changed or deleted',
                                                   TG_TABLE_NAME));
    RETURN NULL;
END $$;

CREATE TRIGGER security_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON security_log
    FOR EACH STATEMENT EXECUTE FUNCTION tt_append_only();

INSERT INTO service_grant (object, privileges) VALUES
    ('security_log', 'SELECT'),
    ('security_log', 'INSERT (kind, actor_id, actor, user_id, username, reason, client_address, user_agent, details)');

-- History is never granted for change: a row giving the service UPDATE, DELETE
-- or TRUNCATE (or ALL) on the event log or the security log is refused.
ALTER TABLE service_grant ADD CONSTRAINT service_grant_history_append_only CHECK (
    object NOT IN ('event', 'security_log') OR upper(privileges) !~ '(UPDATE|DELETE|TRUNCATE|ALL)');
