-- Least privilege: migrations run as the owner of the tables; the service
-- connects as a role that can do only what it needs (`tracetrack db
-- service-role NAME` records one in service_role). That role
--   * reads what it serves,
--   * changes bags, bills and the event log only through the write functions
--     below, which run as their owner (SECURITY DEFINER, search_path pinned):
--     no INSERT, UPDATE or DELETE of its own on bag, bill or event, so the
--     event log stays append-only even for a compromised service,
--   * writes users (only the columns a login or an admin changes), areas,
--     Idempotency-Key answers and view refresh times directly,
--   * owns nothing: no ALTER, DROP or TRUNCATE, and no trigger to disable.
-- Every `tracetrack db migrate` runs tt_apply_privileges() last, after the
-- dashboard's views are re-created, so what a migration (re)creates is
-- granted again.

CREATE TABLE service_role (
    role_name name PRIMARY KEY
);

-- A bill is created through a function, like every other write to bill.
CREATE FUNCTION tt_bill_create(p_bill_no text, p_capacity integer, p_description text, p_destination text,
                               p_vehicle_number text, p_user bigint, p_key text)
RETURNS bigint LANGUAGE sql AS $$
    WITH b AS (
        INSERT INTO bill (bill_no, capacity, description, destination, vehicle_number, created_by)
        VALUES (p_bill_no, p_capacity, p_description, p_destination, p_vehicle_number, p_user)
        RETURNING id, bill_no
    ), e AS (
        INSERT INTO event (kind, user_id, bill_id, bill_no, idempotency_key)
        SELECT 'bill_created', p_user, b.id, b.bill_no, p_key FROM b
    )
    SELECT id FROM b
$$;

-- REFRESH MATERIALIZED VIEW needs the view's owner: the refresher asks this.
CREATE FUNCTION tt_refresh_view(p_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_name NOT IN ('mv_bag_totals', 'mv_bill_totals', 'mv_hourly_scans', 'mv_user_activity',
                      'mv_recent_scans') THEN
        RAISE EXCEPTION 'not a dashboard view: %', p_name USING ERRCODE = 'TT400', HINT = 'validation_error';
    END IF;
    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', p_name);
END $$;

-- A service role cannot create objects in the schema (PostgreSQL 15 already
-- refuses PUBLIC; older servers allow it). Needs the schema's owner: when the
-- migrating role is not, say so and go on.
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'cannot revoke CREATE on schema % from PUBLIC: ask its owner to', current_schema();
END $$;

-- Counters and marks shared by every API process (login throttling, one
-- export per user) when there is no Redis: short-lived, so UNLOGGED (a crash
-- empties it, which only forgives some waits). Expired rows are reused in
-- place and purged by the refresher.
CREATE UNLOGGED TABLE throttle (
    key        text PRIMARY KEY,
    value      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The privileges, (re)applied by every migrate. A later migration that adds a
-- write function or a table the service uses replaces this function.
CREATE FUNCTION tt_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    f regprocedure;
    r name;
    seq text;
    definer text[] := ARRAY['tt_register_bag', 'tt_open_parent', 'tt_link_child', 'tt_link_children',
                            'tt_unlink_child', 'tt_delete_bag', 'tt_bill_create', 'tt_bill_add_parent',
                            'tt_bill_remove_parent', 'tt_bill_complete', 'tt_bill_reopen', 'tt_bill_update',
                            'tt_bill_delete', 'tt_refresh_view'];
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
                       'mv_bag_totals, mv_bill_totals, mv_hourly_scans, mv_user_activity, mv_recent_scans '
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

-- A change that ends a user's tokens or changes what they may do is announced
-- at commit (NOTIFY tracetrack_user, the user's id): every API worker that
-- LISTENs forgets its cached copy at once, instead of after its refresh time.
CREATE FUNCTION tt_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tracetrack_user', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER app_user_changed
AFTER UPDATE OF role, dispatch_area, is_active, token_version ON app_user
FOR EACH ROW
WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.dispatch_area IS DISTINCT FROM NEW.dispatch_area
      OR OLD.is_active IS DISTINCT FROM NEW.is_active OR OLD.token_version IS DISTINCT FROM NEW.token_version)
EXECUTE FUNCTION tt_user_changed();
