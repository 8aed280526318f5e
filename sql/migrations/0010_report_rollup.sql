-- Reports in the site's time zone (issue 11).
--
-- Activity reports count events per local hour or day over weeks: at 6M+
-- events a month holds millions of rows, too many to count per request. The
-- refresher (with the dashboard's views, one at a time by advisory lock) rolls
-- them up into counts per UTC quarter hour, area, user and kind. A quarter
-- hour, because every time zone in use today is offset from UTC by a whole
-- number of quarter hours (India +05:30, Nepal +05:45): the quarters of any
-- local hour or day are exactly that hour or day, whatever TRACETRACK_TIMEZONE
-- says, so the rollup need not know the zone and a new zone needs no rebuild.
-- Nothing is added to the write path (no trigger on event).
--
-- Quarters before event_rollup_state.rolled_to are in the rollup; a report
-- counts later events from `event` itself (the BRIN index on occurred_at: a
-- few minutes' worth). Each roll-up recounts the last hour before rolled_to,
-- so a transaction that commits up to an hour after it started (its events
-- carry its start time) is still counted; events written with an older
-- occurred_at are counted after `tt_roll_up_events(since)` recounts from then.

CREATE TABLE event_rollup (
    quarter        timestamptz NOT NULL,  -- start of a UTC quarter hour
    dispatch_area  text NOT NULL,         -- '' for events of no area (bill created, completed ...)
    user_id        bigint NOT NULL,       -- 0 for events of no user
    kind           text NOT NULL,
    events         bigint NOT NULL,
    PRIMARY KEY (quarter, dispatch_area, user_id, kind)
);

CREATE TABLE event_rollup_state (
    single     boolean PRIMARY KEY DEFAULT true CHECK (single),
    rolled_to  timestamptz NOT NULL,  -- every quarter before this is in event_rollup
    rolled_at  timestamptz NOT NULL
);

-- Recount from `p_since` (default: an hour before rolled_to; the first time:
-- everything) up to the last quarter that ended two minutes ago, and move
-- rolled_to there. Runs as the owner (the service role cannot write these
-- tables); one at a time (the state row's lock).
CREATE FUNCTION tt_roll_up_events(p_since timestamptz DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_old timestamptz;
    v_to timestamptz := to_timestamp(floor(extract(epoch FROM now() - interval '2 minutes') / 900) * 900);
    v_from timestamptz;
BEGIN
    SELECT rolled_to INTO v_old FROM event_rollup_state FOR UPDATE;
    v_to := greatest(v_to, v_old);
    v_from := CASE WHEN v_old IS NULL THEN '-infinity'
                   ELSE to_timestamp(floor(extract(epoch FROM least(coalesce(p_since, v_old - interval '1 hour'),
                                                                      v_old)) / 900) * 900) END;
    DELETE FROM event_rollup WHERE quarter >= v_from;
    INSERT INTO event_rollup (quarter, dispatch_area, user_id, kind, events)
    SELECT to_timestamp(floor(extract(epoch FROM occurred_at) / 900) * 900), coalesce(dispatch_area, ''),
           coalesce(user_id, 0), kind, count(*)
    FROM event
    WHERE occurred_at >= v_from AND occurred_at < v_to
    GROUP BY 1, 2, 3, 4;
    INSERT INTO event_rollup_state (rolled_to, rolled_at) VALUES (v_to, now())
    ON CONFLICT (single) DO UPDATE SET rolled_to = excluded.rolled_to, rolled_at = excluded.rolled_at;
    RETURN v_to;
END $$;

SELECT tt_roll_up_events();

-- The bill report selects bills by the day they were created or completed.
CREATE INDEX bill_created_at_idx ON bill (created_at, id);
CREATE INDEX bill_completed_at_idx ON bill (completed_at, id) WHERE completed_at IS NOT NULL;

-- 0007's privileges, plus: the service reads the rollup and runs the roll-up
-- (as the owner). A later migration that replaces this function keeps these.
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
                       'mv_bag_totals, mv_bill_totals, mv_hourly_scans, mv_user_activity, mv_recent_scans, '
                       'event_rollup, event_rollup_state '
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
