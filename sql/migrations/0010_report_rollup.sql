-- tracetrack: no-transaction
-- Reports in the site's time zone (issue 11).
--
-- Activity reports count events per local hour or day over weeks: at 6M+
-- events a month holds millions of rows, too many to count per request. The
-- refresher (with the dashboard's views, one at a time by advisory lock) rolls
-- them up into counts per UTC quarter hour, area, user and kind. A quarter
-- hour, because every time zone in use today is offset from UTC by a whole
-- number of quarter hours (India +05:30, Nepal +05:45): the quarters of any
-- local hour or day are exactly that hour or day, whatever TRACETRACK_TIMEZONE
-- says. From the quarters, in the same table, counts per local day of each
-- time zone a report has asked for (a month of days is ~20 times fewer rows
-- than its quarters).
-- Nothing is added to the scans' write path (no trigger on event).
--
-- Quarters before event_rollup_state.rolled_to are in the rollup; a report
-- counts later events from `event` itself (the BRIN index on occurred_at: a
-- few minutes' worth). Each roll-up recounts the last hour before rolled_to,
-- so a transaction that commits up to an hour after it started (its events
-- carry its start time) is still counted; events written with an older
-- occurred_at are counted after `tt_roll_up_events(since)` recounts from then.
--
-- No transaction (the header line): the indexes on event and bill are built
-- CONCURRENTLY, so scans and bills go on meanwhile; every statement can run
-- again after a failure part-way (IF NOT EXISTS, OR REPLACE, DROP of an
-- INVALID index first).

CREATE TABLE IF NOT EXISTS event_rollup (
    time_zone      text NOT NULL,         -- '': the row counts a UTC quarter hour; else a local day of that zone
    period_start   timestamptz NOT NULL,  -- the quarter's start, or the local day's midnight
    dispatch_area  text NOT NULL,         -- '' for events of no area (bill created, completed ...)
    user_id        bigint NOT NULL,       -- 0 for events of no user
    kind           text NOT NULL,
    events         bigint NOT NULL,
    PRIMARY KEY (time_zone, period_start, dispatch_area, user_id, kind)
);

CREATE TABLE IF NOT EXISTS event_rollup_state (
    time_zone  text PRIMARY KEY,          -- '': the quarters; else the days of that zone
    rolled_to  timestamptz NOT NULL,      -- every period starting before this is in event_rollup
    rolled_at  timestamptz NOT NULL
);

-- Recount from `p_since` (default: an hour before rolled_to; the first time:
-- everything) up to the last quarter that ended two minutes ago, and move
-- rolled_to there; then the local days those quarters touched, for every zone
-- asked for (`p_zone` adds one: an unknown name fails here). Runs as the owner
-- (the service role cannot write these tables); one at a time (the state
-- row's lock).
DROP FUNCTION IF EXISTS tt_roll_up_events(timestamptz);
CREATE OR REPLACE FUNCTION tt_roll_up_events(p_since timestamptz DEFAULT NULL, p_zone text DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_old timestamptz;
    v_to timestamptz := to_timestamp(floor(extract(epoch FROM now() - interval '2 minutes') / 900) * 900);
    v_from timestamptz;
    z record;
    d_from timestamptz;
    d_to timestamptz;
BEGIN
    SELECT rolled_to INTO v_old FROM event_rollup_state WHERE time_zone = '' FOR UPDATE;
    IF v_old IS NULL THEN  -- the first time: keep a concurrent first run out too
        LOCK TABLE event_rollup_state IN EXCLUSIVE MODE;
        SELECT rolled_to INTO v_old FROM event_rollup_state WHERE time_zone = '';
    END IF;
    v_to := greatest(v_to, v_old);
    v_from := CASE WHEN v_old IS NULL THEN '-infinity'
                   ELSE to_timestamp(floor(extract(epoch FROM least(coalesce(p_since, v_old - interval '1 hour'),
                                                                      v_old)) / 900) * 900) END;
    DELETE FROM event_rollup WHERE time_zone = '' AND period_start >= v_from;
    INSERT INTO event_rollup (time_zone, period_start, dispatch_area, user_id, kind, events)
    SELECT '', to_timestamp(floor(extract(epoch FROM occurred_at) / 900) * 900), coalesce(dispatch_area, ''),
           coalesce(user_id, 0), kind, count(*)
    FROM event
    WHERE occurred_at >= v_from AND occurred_at < v_to
    GROUP BY 2, 3, 4, 5;
    INSERT INTO event_rollup_state (time_zone, rolled_to, rolled_at) VALUES ('', v_to, now())
    ON CONFLICT (time_zone) DO UPDATE SET rolled_to = excluded.rolled_to, rolled_at = excluded.rolled_at;

    IF coalesce(p_zone, '') <> '' THEN
        PERFORM now() AT TIME ZONE p_zone;  -- an unknown zone fails here
        INSERT INTO event_rollup_state (time_zone, rolled_to, rolled_at) VALUES (p_zone, '-infinity', now())
        ON CONFLICT (time_zone) DO NOTHING;
    END IF;
    FOR z IN SELECT time_zone, rolled_to FROM event_rollup_state WHERE time_zone <> '' FOR UPDATE LOOP
        -- the midnight of the local day holding v_to: every day before it is whole
        d_to := date_trunc('day', v_to AT TIME ZONE z.time_zone) AT TIME ZONE z.time_zone;
        d_from := least(z.rolled_to, date_trunc('day', v_from AT TIME ZONE z.time_zone) AT TIME ZONE z.time_zone);
        DELETE FROM event_rollup WHERE time_zone = z.time_zone AND period_start >= d_from;
        INSERT INTO event_rollup (time_zone, period_start, dispatch_area, user_id, kind, events)
        SELECT z.time_zone, date_trunc('day', period_start AT TIME ZONE z.time_zone) AT TIME ZONE z.time_zone,
               dispatch_area, user_id, kind, sum(events)
        FROM event_rollup
        WHERE time_zone = '' AND period_start >= d_from AND period_start < d_to
        GROUP BY 2, 3, 4, 5;
        UPDATE event_rollup_state SET rolled_to = d_to, rolled_at = now() WHERE time_zone = z.time_zone;
    END LOOP;
    RETURN v_to;
END $$;

SELECT tt_roll_up_events();

-- The bill report selects bills by the day they were created or completed.
DROP INDEX CONCURRENTLY IF EXISTS bill_created_at_idx;
CREATE INDEX CONCURRENTLY bill_created_at_idx ON bill (created_at, id);
DROP INDEX CONCURRENTLY IF EXISTS bill_completed_at_idx;
CREATE INDEX CONCURRENTLY bill_completed_at_idx ON bill (completed_at, id) WHERE completed_at IS NOT NULL;

-- Who completed each bill (the report's completed_by): one small entry per
-- completion, read index-only (events never change, so their pages stay
-- all-visible). Partial: every other event adds nothing to it.
DROP INDEX CONCURRENTLY IF EXISTS event_bill_complete_idx;
CREATE INDEX CONCURRENTLY event_bill_complete_idx ON event (bill_id, id) INCLUDE (user_id)
    WHERE kind = 'bill_complete';

-- mv_bills_by_area (sql/views/dashboard.sql) joins the views the refresher refreshes.
-- Still the owner's (SECURITY DEFINER; OR REPLACE keeps who may run it) while this
-- file runs, so a running service's refresher goes on; tt_apply_privileges() pins
-- its search_path again when the migration ends.
CREATE OR REPLACE FUNCTION tt_refresh_view(p_name text) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF p_name NOT IN ('mv_bag_totals', 'mv_bills_by_area', 'mv_bill_totals', 'mv_hourly_scans', 'mv_user_activity',
                      'mv_recent_scans') THEN
        RAISE EXCEPTION 'not a dashboard view: %', p_name USING ERRCODE = 'TT400', HINT = 'validation_error';
    END IF;
    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', p_name);
END $$;

-- 0007's privileges, plus: the service reads the rollup and runs the roll-up
-- (as the owner), and mv_bills_by_area (a views-file matview: granted again on
-- every rebuild). A later migration that replaces this function keeps these.
CREATE OR REPLACE FUNCTION tt_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    f regprocedure;
    r name;
    seq text;
    definer text[] := ARRAY['tt_register_bag', 'tt_open_parent', 'tt_link_child', 'tt_link_children',
                            'tt_unlink_child', 'tt_delete_bag', 'tt_bill_create', 'tt_bill_add_parent',
                            'tt_bill_remove_parent', 'tt_bill_complete', 'tt_bill_reopen', 'tt_bill_update',
                            'tt_bill_delete', 'tt_refresh_view', 'tt_roll_up_events'];
BEGIN
    -- The writers run as the owner, with a search_path no caller can change;
    -- only the service roles may call them (not PUBLIC, the default).
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = s::regnamespace AND p.proname = ANY (definer) LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    -- and nothing but the owner runs this
    REVOKE EXECUTE ON FUNCTION tt_apply_privileges() FROM PUBLIC;
    FOR r IN SELECT role_name FROM service_role LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            RAISE WARNING 'service role % does not exist: skipped', r;
            CONTINUE;
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT SELECT ON dispatch_area, parent_format, app_setting, app_user, bag, bill, event, '
                       'idempotency_key, view_refresh, schema_migrations, bag_row, bill_row, event_row, user_row, '
                       'mv_bag_totals, mv_bills_by_area, mv_bill_totals, mv_hourly_scans, mv_user_activity, '
                       'mv_recent_scans, event_rollup, event_rollup_state '
                       'TO %I', r);
        EXECUTE format('GRANT INSERT ON dispatch_area TO %I', r);
        EXECUTE format('GRANT INSERT (username, password_hash, role, dispatch_area) ON app_user TO %I', r);
        EXECUTE format('GRANT UPDATE (role, dispatch_area, is_active, password_hash, token_version, '
                       'last_login_at, updated_at) ON app_user TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON idempotency_key TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE ON view_refresh TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON throttle TO %I', r);
        seq := pg_get_serial_sequence('app_user', 'id');
        IF seq IS NOT NULL THEN
            EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', seq, r);
        END IF;
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = s::regnamespace AND p.proname = ANY (definer) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
        END LOOP;
    END LOOP;
END $$;
