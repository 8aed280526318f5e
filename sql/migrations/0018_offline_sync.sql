-- Offline scanners that sync (issue 12, items 6-7): POST /api/scans/sync sends
-- the operations a scanner captured offline, each with a client operation id
-- and the device's time; the library applies each in its own transaction
-- (tracetrack_db/sync.py) and keeps its verdict here.

-- The device's time of an event written by a synced operation (NULL for every
-- other event). The operation's transaction sets tracetrack.device_time
-- (set_config(..., true): it ends with the transaction, so pooled connections
-- and PgBouncer's transaction mode are safe), and the column's default reads
-- it: no write function changes its signature, and a scan that is no sync
-- pays one current_setting() per event.
-- The default is STABLE, not volatile: PostgreSQL evaluates it once for the
-- rows already there (NULL: the setting is unset while this runs), so the
-- event table is not rewritten (an ALTER of a few milliseconds at 6M events;
-- tests/test_sync.py checks the table keeps its file).
ALTER TABLE event ADD COLUMN device_time timestamptz
    DEFAULT nullif(current_setting('tracetrack.device_time', true), '')::timestamptz;

-- The library's Event gains device_time (last, so OR REPLACE keeps the view's
-- other columns and their order).
CREATE OR REPLACE VIEW event_row AS
SELECT e.id, e.occurred_at, e.kind, e.user_id,
       (SELECT u.username FROM app_user u WHERE u.id = e.user_id) AS username,
       e.bag_id, e.qr_id, e.parent_id, e.parent_qr, e.bill_id, e.bill_no, e.dispatch_area,
       e.idempotency_key, e.details, e.device_time
FROM event e;

-- One verdict per (device, client operation id), written in the same
-- transaction as the operation (an error's with nothing else: the operation
-- changed nothing). A resend of the same operation answers this verdict and
-- runs nothing; the same id with another operation (or from another user) is
-- refused. Append-only for the service: a verdict never changes.
CREATE TABLE sync_op (
    device_id     text NOT NULL CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    client_op_id  text NOT NULL CHECK (client_op_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    user_id       bigint,                  -- who sent it (NULL: a library caller naming no user)
    op            text NOT NULL,           -- open_parent, link_child, unlink_child, move_child
    args          jsonb NOT NULL,          -- the operation's normalised arguments
    device_time   timestamptz NOT NULL,
    status        integer NOT NULL,        -- what the single call would have answered (200, 201, 409 ...)
    code          text,                    -- an error's code (NULL: ok)
    message       text,
    result        json,                    -- an ok operation's answer, as the single call's (json: kept as written)
    synced_at     timestamptz NOT NULL DEFAULT now(),
    -- each user's devices are their own: another user naming the same device id
    -- (by mistake, or to squat on its next ids) never meets this user's verdicts
    user_key      bigint GENERATED ALWAYS AS (coalesce(user_id, 0)) STORED,
    PRIMARY KEY (user_key, device_id, client_op_id),
    CHECK ((code IS NULL) = (result IS NOT NULL))
);

INSERT INTO service_grant (object, privileges) VALUES ('sync_op', 'SELECT'), ('sync_op', 'INSERT');

-- Verdicts are kept for a while, not forever: one older than the device clock
-- bound (TRACETRACK_SYNC_MAX_BEHIND) can no longer be asked for, since a resend
-- of its operation is refused by that bound (device_time_out_of_range) before
-- any verdict is looked up. The service's refresher purges them with this
-- owner's function (the service itself may not delete a verdict); the kept
-- time is never less than a day more than the bound it is given.
CREATE INDEX sync_op_synced_at_idx ON sync_op (synced_at);

CREATE FUNCTION tt_purge_sync_ops(p_max_behind_seconds integer) RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM sync_op
        WHERE synced_at < now() - make_interval(secs => greatest(p_max_behind_seconds, 0) + 86400)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

INSERT INTO definer_function (name) VALUES ('tt_purge_sync_ops');
