-- The service role's privileges as data. Until now every migration that added
-- a table or a write function replaced tt_apply_privileges() whole, copying
-- the lists of the one before (0007, 0010, 0011): a copy missing one grant
-- broke the service at run time (0010's mv_bills_by_area did). Now a migration
-- adds rows here, and the function, written once, reads them.

-- What the service role may do to a table, view or sequence: privileges as
-- GRANT spells them ('SELECT', 'INSERT, UPDATE', 'UPDATE (col, col)').
CREATE TABLE service_grant (
    object      text NOT NULL,
    privileges  text NOT NULL CHECK (privileges ~ '^[A-Z][A-Za-z_, ()]*$'),
    PRIMARY KEY (object, privileges)
);

-- Write functions the service runs as their owner (SECURITY DEFINER, search_path
-- pinned); only the service roles may call them.
CREATE TABLE definer_function (
    name  text PRIMARY KEY CHECK (name ~ '^tt_[a-z0-9_]+$')
);

INSERT INTO service_grant (object, privileges) VALUES
    ('dispatch_area', 'SELECT'), ('dispatch_area', 'INSERT'),
    ('parent_format', 'SELECT'), ('app_setting', 'SELECT'),
    ('app_user', 'SELECT'),
    ('app_user', 'INSERT (username, password_hash, role, dispatch_area)'),
    ('app_user', 'UPDATE (role, dispatch_area, is_active, password_hash, token_version, last_login_at, updated_at)'),
    ('bag', 'SELECT'), ('bill', 'SELECT'), ('event', 'SELECT'),
    ('idempotency_key', 'SELECT'), ('idempotency_key', 'INSERT, UPDATE, DELETE'),
    ('view_refresh', 'SELECT'), ('view_refresh', 'INSERT, UPDATE'),
    ('schema_migrations', 'SELECT'),
    ('bag_row', 'SELECT'), ('bill_row', 'SELECT'), ('event_row', 'SELECT'), ('user_row', 'SELECT'),
    ('mv_bag_totals', 'SELECT'), ('mv_bills_by_area', 'SELECT'), ('mv_bill_totals', 'SELECT'),
    ('mv_hourly_scans', 'SELECT'), ('mv_user_activity', 'SELECT'), ('mv_recent_scans', 'SELECT'),
    ('throttle', 'SELECT, INSERT, UPDATE, DELETE'),
    ('event_rollup', 'SELECT'), ('event_rollup_state', 'SELECT'),
    ('extraction_rule', 'SELECT'), ('extraction_rule', 'INSERT'),
    ('extraction_rule', 'UPDATE (pattern, description, updated_at)'),
    ('import_job', 'SELECT'), ('import_job', 'INSERT'),
    ('import_job', 'UPDATE (finished_at, status, rows, blocks, failed_blocks, verdicts, codes, message)'),
    ('import_row', 'SELECT'), ('import_row', 'INSERT');

INSERT INTO definer_function (name) VALUES
    ('tt_register_bag'), ('tt_open_parent'), ('tt_link_child'), ('tt_link_children'), ('tt_unlink_child'),
    ('tt_delete_bag'), ('tt_bill_create'), ('tt_bill_add_parent'), ('tt_bill_remove_parent'),
    ('tt_bill_complete'), ('tt_bill_reopen'), ('tt_bill_update'), ('tt_bill_delete'), ('tt_refresh_view'),
    ('tt_roll_up_events'), ('tt_import_links'), ('tt_import_bills'), ('tt_import_bags'), ('tt_import_analyze');

-- Run by every migrate that applied something (and after a views rebuild).
-- A later migration adds rows above instead of replacing this.
CREATE OR REPLACE FUNCTION tt_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    f regprocedure;
    r name;
    g record;
    seq text;
BEGIN
    -- The writers run as the owner, with a search_path no caller can change;
    -- only the service roles may call them (not PUBLIC, the default).
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN definer_function d ON d.name = p.proname
             WHERE p.pronamespace = s::regnamespace LOOP
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
        FOR g IN SELECT object, privileges FROM service_grant ORDER BY object, privileges LOOP
            IF to_regclass(format('%I.%I', s, g.object)) IS NULL THEN
                RAISE WARNING 'service_grant names %, which does not exist: skipped', g.object;
                CONTINUE;
            END IF;
            -- privileges is checked (letters, commas, column lists): it cannot carry SQL of its own
            EXECUTE format('GRANT %s ON %I.%I TO %I', g.privileges, s, g.object, r);
        END LOOP;
        -- the sequences of the tables the service inserts into
        FOR seq IN SELECT DISTINCT pg_get_serial_sequence(format('%I.%I', s, c.relname), a.attname)
                   FROM service_grant sg
                   JOIN pg_class c ON c.relname = sg.object AND c.relnamespace = s::regnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attidentity <> '' AND NOT a.attisdropped
                   WHERE sg.privileges LIKE 'INSERT%' OR sg.privileges LIKE '%, INSERT%' LOOP
            IF seq IS NOT NULL THEN
                EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', seq, r);
            END IF;
        END LOOP;
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN definer_function d ON d.name = p.proname
                 WHERE p.pronamespace = s::regnamespace LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
        END LOOP;
    END LOOP;
END $$;
