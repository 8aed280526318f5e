-- name: record_security_event :exec
-- Append one row to the security log. The user concerned is looked up by
-- name when only the name is known (a failed login, a lockout); texts from
-- the client are cut to the columns' lengths, never refused.
INSERT INTO security_log (kind, actor_id, actor, user_id, username, reason, client_address, user_agent, details)
VALUES (%(kind)s, %(actor_id)s, left(%(actor)s, 100),
        coalesce(%(user_id)s::bigint,
                 (SELECT u.id FROM app_user u WHERE lower(u.username) = lower(%(username)s::text))),
        left(%(username)s, 100), %(reason)s, left(%(address)s, 100), left(%(user_agent)s, 500), %(details)s);
