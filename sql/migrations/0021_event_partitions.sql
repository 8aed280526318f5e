-- tracetrack: no-transaction
-- The event log partitioned by month of occurred_at, the server's time (issue 13, item 1).
--
-- `event` becomes a partitioned table: one partition per calendar month (UTC),
-- event_YYYY_MM, created a few months ahead by tt_event_partitions_ahead() (the
-- refresher and `tracetrack db maintain` call it), and a DEFAULT partition that
-- catches rows no month partition covers should that stop; the same function
-- moves such strays into their months. Old months are archived to files and
-- dropped by `tracetrack db archive` (event_archive records them).
--
-- The primary key is (id, occurred_at): a partitioned table's unique keys must
-- hold its partition key. Nothing references an event by foreign key; ids stay
-- unique (one identity sequence, the parent's).
--
-- Converting a live log without stopping writes (no transaction, each step
-- re-runnable after a failure part-way):
--   1. the new partitioned table, empty, beside the old one, with its indexes;
--   2. a CHECK (occurred_at < B) NOT VALID on the old table, B the start of a
--      month at least a week ahead, then VALIDATE: a full scan, but under SHARE
--      UPDATE EXCLUSIVE (scans and writes go on);
--   3. a unique index (id, occurred_at) on the old table, CONCURRENTLY;
--   4. one short transaction: rename old to event_legacy, new to event, attach
--      event_legacy as the partition [MINVALUE, B) (the validated CHECK spares
--      the scan, its indexes are attached, not built), carry the identity
--      sequence on, recreate event_row (a view keeps the old table's OID),
--      grant the service its SELECT again. An empty old table (a new install)
--      is dropped instead;
--   5. the months after B and the default partition, and ANALYZE event (the
--      partitioned table's own statistics, which autovacuum never makes).
-- The dashboard's views are rebuilt by the migration runner after this file
-- (their record is removed), while readers keep the old ones.
-- Writes wait only for step 4 (milliseconds; it gives way to a long reader
-- after 2 s and tries again).
--
-- event_legacy is archived whole, once B is before `--before`.
--
-- Abandoning the conversion part-way (before step 4): the bound binds new rows
-- from step 2 on, so once B passes every write of an event would fail. As the
-- owner: ALTER TABLE event DROP CONSTRAINT IF EXISTS event_legacy_bound;
-- DROP INDEX CONCURRENTLY IF EXISTS event_legacy_id_occurred_at;
-- DROP TABLE IF EXISTS event_partitioned;

CREATE TABLE IF NOT EXISTS event_archive (
    range_from     timestamptz NOT NULL PRIMARY KEY,  -- -infinity for event_legacy
    range_to       timestamptz NOT NULL CHECK (range_to > range_from),
    partition_name text NOT NULL,
    file           text NOT NULL,
    rows           bigint NOT NULL CHECK (rows >= 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    archived_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO service_grant (object, privileges) VALUES ('event_archive', 'SELECT') ON CONFLICT DO NOTHING;

-- The reports' roll-up (0020's) keeps the counts of archived months: a recount
-- (tt_roll_up_events(since)) starts no earlier than the first retained moment.
-- SECURITY DEFINER here too: OR REPLACE would make it the caller's until the
-- runner applies the privileges again, and a running service's refresher rolls up.
CREATE OR REPLACE FUNCTION tt_roll_up_events(p_since timestamptz DEFAULT NULL, p_zone text DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_old timestamptz;
    v_to timestamptz := to_timestamp(floor(extract(epoch FROM now() - interval '2 minutes') / 900) * 900);
    v_from timestamptz;
    v_late timestamptz;  -- the oldest quarter a late event was added to
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
    -- never recount what was archived: its events are gone, its counts are all that is left
    v_from := greatest(v_from, coalesce((SELECT max(range_to) FROM event_archive), '-infinity'));
    DELETE FROM event_rollup WHERE time_zone = '' AND period_start >= v_from;
    WITH seen AS (
        SELECT to_timestamp(floor(extract(epoch FROM least(device_time, occurred_at)) / 900) * 900) AS quarter,
               occurred_at, coalesce(dispatch_area, '') AS dispatch_area, coalesce(user_id, 0) AS user_id, kind
        FROM event
        WHERE occurred_at >= v_from AND occurred_at < v_to
    ), recounted AS (
        INSERT INTO event_rollup (time_zone, period_start, dispatch_area, user_id, kind, events)
        SELECT '', quarter, dispatch_area, user_id, kind, count(*)
        FROM seen WHERE quarter >= v_from
        GROUP BY 2, 3, 4, 5
    ), late AS (
        INSERT INTO event_rollup AS r (time_zone, period_start, dispatch_area, user_id, kind, events)
        SELECT '', quarter, dispatch_area, user_id, kind, count(*)
        FROM seen WHERE quarter < v_from AND occurred_at >= v_old
        GROUP BY 2, 3, 4, 5
        ON CONFLICT (time_zone, period_start, dispatch_area, user_id, kind)
        DO UPDATE SET events = r.events + excluded.events
        RETURNING period_start
    )
    SELECT min(period_start) INTO v_late FROM late;
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
        d_from := least(z.rolled_to, date_trunc('day', least(v_from, v_late) AT TIME ZONE z.time_zone)
                                     AT TIME ZONE z.time_zone);
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

-- An import asks for fresh statistics when bag or event changed by half (0011):
-- a partitioned table has no row in pg_stat_user_tables, its partitions do.
CREATE OR REPLACE FUNCTION tt_import_analyze() RETURNS boolean LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    stale boolean;
BEGIN
    SELECT coalesce(bool_or(c.reltuples < 0 OR s.n_mod_since_analyze > greatest(c.reltuples, 1000) / 2), false)
    INTO stale
    FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid = 'bag'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'event'::regclass);
    IF stale THEN
        ANALYZE bag;
        ANALYZE event;  -- the parent's statistics and every partition's
    END IF;
    RETURN stale;
END $$;

-- The partitions of event and their bounds ([range_from, range_to); NULLs for the default).
CREATE OR REPLACE FUNCTION tt_event_partitions()
RETURNS TABLE (partition regclass, range_from timestamptz, range_to timestamptz, is_default boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           CASE WHEN b.expr ~ 'FROM \(MINVALUE\)' THEN '-infinity'::timestamptz
                ELSE substring(b.expr FROM 'FROM \(''([^'']+)''\)')::timestamptz END,
           CASE WHEN b.expr ~ 'TO \(MAXVALUE\)' THEN 'infinity'::timestamptz
                ELSE substring(b.expr FROM 'TO \(''([^'']+)''\)')::timestamptz END,
           b.expr = 'DEFAULT'
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
    WHERE i.inhparent = 'event'::regclass
$$;

CREATE OR REPLACE FUNCTION tt_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only' USING ERRCODE = 'TT409', HINT = 'append_only';
END $$;

-- A partition is a table of its own: UPDATE, DELETE or TRUNCATE aimed at it
-- directly fires its triggers, not the parent's statement trigger. Row
-- triggers on the parent are cloned to every partition (so UPDATE and DELETE
-- of rows are refused on any partition, however it was made), TRUNCATE
-- triggers are not: each partition gets this statement trigger too. The
-- service role is granted nothing on a partition (it reads through `event`).
CREATE OR REPLACE FUNCTION tt_event_protect_partition(p_partition regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = p_partition AND tgname = 'event_append_only') THEN
        EXECUTE format('CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION tt_event_append_only()', p_partition);
    END IF;
    FOR r IN SELECT role_name FROM service_role WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %I', p_partition, r);
    END LOOP;
END $$;

-- The partition of the UTC month holding p_month, unless a partition covers
-- any of it already (event_legacy's months, say): made empty and attached
-- (SHARE UPDATE EXCLUSIVE on event: scans and writes go on; the default is
-- scanned for rows of the month, locked). Returns whether it made one. The
-- owner's: the seed calls it for the past months it writes. Never a month
-- that was archived: a partition of it would be archived again, to the same
-- file name; its late rows stay in the default partition.
CREATE OR REPLACE FUNCTION tt_event_partition_make(p_month timestamptz) RETURNS boolean
LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    v_month timestamptz := date_trunc('month', p_month);
    v_name text := 'event_' || to_char(date_trunc('month', p_month), 'YYYY_MM');
BEGIN
    IF EXISTS (SELECT 1 FROM event_archive WHERE range_from < v_month + interval '1 month' AND range_to > v_month) THEN
        RAISE WARNING 'event partitions: % is archived; rows of it stay in the default partition',
            to_char(v_month, 'YYYY-MM');
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM tt_event_partitions()
               WHERE NOT is_default AND range_from < v_month + interval '1 month' AND range_to > v_month) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    EXECUTE format('ALTER TABLE event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_month, v_month + interval '1 month');
    PERFORM tt_event_protect_partition(v_name::regclass);
    RETURN true;
END $$;

-- Make sure the months from this one to `p_months` ahead have partitions (and
-- the default exists). Returns how many partitions it made. Runs as the owner
-- (SECURITY DEFINER: the refresher calls it as the service). A lock not had in
-- a second is left for the next call (months are made ahead). Months are UTC
-- months. Strays (rows in the default of a month not archived) are set aside
-- in one short transaction (the caller's: a moment's ACCESS EXCLUSIVE on event,
-- no scan of them): the default is detached as event_strays and an empty
-- default attached; tt_event_strays_move then puts them back, each call its own
-- transaction (tracetrack_db.partitions.maintain). Until then they are in no
-- partition: reads of event do not see them.
CREATE OR REPLACE FUNCTION tt_event_partitions_ahead(p_months integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql SET lock_timeout = '1s' SET timezone = 'UTC' AS $$
DECLARE
    v_made integer := 0;
    v_default regclass;
BEGIN
    IF p_months IS NULL OR p_months < 0 OR p_months > 24 THEN
        PERFORM tt_fail('TT400', 'validation_error', 'months ahead must be 0 to 24');
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) <> 'p' THEN
        RETURN 0;  -- not converted yet (0021 part-way)
    END IF;
    SELECT partition INTO v_default FROM tt_event_partitions() WHERE is_default;
    BEGIN
        IF v_default IS NULL THEN
            -- made, then attached: CREATE TABLE ... PARTITION OF would hold ACCESS EXCLUSIVE on event
            CREATE TABLE event_default (LIKE event INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
            ALTER TABLE event ATTACH PARTITION event_default DEFAULT;
            PERFORM tt_event_protect_partition('event_default');
            v_made := v_made + 1;
        ELSIF to_regclass('event_strays') IS NULL  -- else the last strays are still being moved
              AND EXISTS (SELECT 1 FROM event_default d
                          WHERE NOT EXISTS (SELECT 1 FROM event_archive a
                                            WHERE d.occurred_at >= a.range_from AND d.occurred_at < a.range_to)) THEN
            ALTER TABLE event DETACH PARTITION event_default;
            ALTER TABLE event_default RENAME TO event_strays;
            -- tt_event_strays_move deletes what it has inserted into event again
            ALTER TABLE event_strays DISABLE TRIGGER USER;
            -- made, then attached: CREATE TABLE ... PARTITION OF would hold ACCESS EXCLUSIVE on event
            CREATE TABLE event_default (LIKE event INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
            ALTER TABLE event ATTACH PARTITION event_default DEFAULT;
            PERFORM tt_event_protect_partition('event_default');
            -- their months are made by tt_event_strays_move, after this commit: no scan of
            -- the strays while event is locked
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        RAISE WARNING 'event partitions: the default partition is busy; its strays wait for the next call';
        RETURN v_made;
    END;
    FOR i IN 0..p_months LOOP
        BEGIN
            v_made := v_made + tt_event_partition_make(date_trunc('month', now()) + make_interval(months => i))::integer;
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'event partitions: month % not made (event is busy); the next call tries again', i;
            RETURN v_made;
        END;
    END LOOP;
    RETURN v_made;
END $$;
-- The strays set aside by tt_event_partitions_ahead put back into event, never
-- by a DELETE of the log (append-only). When they are all of one month that no
-- partition covers (the usual case: the refresher was off across a month's
-- start), event_strays itself is attached as that month's partition (SHARE
-- UPDATE EXCLUSIVE on event: reads and writes go on; its indexes are the old
-- default's, attached, not built). Else up to p_rows of them are moved through
-- event (their months made first; an archived month's rows go to the default)
-- and deleted here. Returns how many it moved or attached: call it until 0,
-- each call its own transaction (a plpgsql function cannot commit inside a
-- caller's transaction), so no lock on event outlasts a batch's inserts.
CREATE OR REPLACE FUNCTION tt_event_strays_move(p_rows integer) RETURNS integer
LANGUAGE plpgsql SET lock_timeout = '1s' SET timezone = 'UTC' AS $$
DECLARE
    v_moved integer;
    v_month timestamptz;
    v_ctids tid[];
    v_whole boolean;
BEGIN
    IF to_regclass('event_strays') IS NULL THEN
        RETURN 0;
    END IF;
    -- dynamic: the table comes and goes
    EXECUTE 'SELECT date_trunc(''month'', occurred_at) FROM event_strays LIMIT 1' INTO v_month;
    IF v_month IS NULL THEN
        DROP TABLE event_strays;
        RETURN 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tt_event_partitions()
                   WHERE NOT is_default AND range_from < v_month + interval '1 month' AND range_to > v_month)
       AND NOT EXISTS (SELECT 1 FROM event_archive
                       WHERE range_from < v_month + interval '1 month' AND range_to > v_month) THEN
        -- EXISTS: stops at the first row of another month (a batch's months are made: not again)
        EXECUTE 'SELECT NOT EXISTS (SELECT 1 FROM event_strays '
                'WHERE occurred_at < $1 OR occurred_at >= $1 + interval ''1 month'')' INTO v_whole USING v_month;
        IF v_whole THEN  -- all of one month: the table becomes its partition, rows unmoved
            EXECUTE 'SELECT count(*) FROM event_strays' INTO v_moved;
            EXECUTE format('ALTER TABLE event_strays RENAME TO %I', 'event_' || to_char(v_month, 'YYYY_MM'));
            EXECUTE format('ALTER TABLE %I ENABLE TRIGGER USER', 'event_' || to_char(v_month, 'YYYY_MM'));
            EXECUTE format('ALTER TABLE event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           'event_' || to_char(v_month, 'YYYY_MM'), v_month, v_month + interval '1 month');
            PERFORM tt_event_protect_partition(('event_' || to_char(v_month, 'YYYY_MM'))::regclass);
            RETURN v_moved;
        END IF;
    END IF;
    EXECUTE 'SELECT array(SELECT ctid FROM event_strays LIMIT $1)' INTO v_ctids USING greatest(p_rows, 1);
    FOR v_month IN EXECUTE 'SELECT DISTINCT date_trunc(''month'', occurred_at) FROM event_strays '
                           'WHERE ctid = ANY ($1)' USING v_ctids LOOP
        PERFORM tt_event_partition_make(v_month);
    END LOOP;
    EXECUTE 'WITH moved AS (DELETE FROM event_strays WHERE ctid = ANY ($1) RETURNING *) '
            'INSERT INTO event OVERRIDING SYSTEM VALUE SELECT * FROM moved' USING v_ctids;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
EXCEPTION WHEN lock_not_available THEN
    RAISE WARNING 'event partitions: event or its strays busy; the next call puts the strays back';
    RETURN 0;
END $$;

-- the owner's alone: a partition of any month, and changes to a partition's protection
REVOKE EXECUTE ON FUNCTION tt_event_partition_make(timestamptz), tt_event_protect_partition(regclass) FROM PUBLIC;
INSERT INTO definer_function (name) VALUES ('tt_event_partitions_ahead'), ('tt_event_strays_move') ON CONFLICT DO NOTHING;

-- 1. The new table, made only while `event` is still the plain table.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) <> 'r'
       OR to_regclass('event_partitioned') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE TABLE event_partitioned (LIKE event INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)
        PARTITION BY RANGE (occurred_at);
    ALTER TABLE event_partitioned ADD CONSTRAINT event_partitioned_pkey PRIMARY KEY (id, occurred_at);
    -- the same definitions as event's (0001, 0010), so that attaching reuses its indexes
    CREATE INDEX event_partitioned_bag_id_idx ON event_partitioned (bag_id, id) WHERE bag_id IS NOT NULL;
    CREATE INDEX event_partitioned_parent_id_idx ON event_partitioned (parent_id, id) WHERE parent_id IS NOT NULL;
    CREATE INDEX event_partitioned_bill_id_idx ON event_partitioned (bill_id, id) WHERE bill_id IS NOT NULL;
    CREATE INDEX event_partitioned_user_id_idx ON event_partitioned (user_id, id);
    CREATE INDEX event_partitioned_deleted_qr_idx ON event_partitioned (qr_id) WHERE kind = 'bag_deleted';
    CREATE INDEX event_partitioned_occurred_at_brin ON event_partitioned USING brin (occurred_at);
    CREATE INDEX event_partitioned_bill_complete_idx ON event_partitioned (bill_id, id) INCLUDE (user_id)
        WHERE kind = 'bill_complete';
    CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON event_partitioned
        FOR EACH STATEMENT EXECUTE FUNCTION tt_event_append_only();
    CREATE TRIGGER event_append_only_rows BEFORE UPDATE OR DELETE ON event_partitioned
        FOR EACH ROW EXECUTE FUNCTION tt_event_append_only();
END $$;

-- 2. The bound: every row of the old table is before B, a month start a week or more ahead.
DO $$
DECLARE
    v_bound timestamptz := date_trunc('month', (now() + interval '7 days') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                           + interval '1 month';
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) <> 'r'
       OR EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'event'::regclass AND conname = 'event_legacy_bound') THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE event ADD CONSTRAINT event_legacy_bound CHECK (occurred_at < %L) NOT VALID',
                   v_bound);
END $$;

DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) = 'r' THEN
        ALTER TABLE event VALIDATE CONSTRAINT event_legacy_bound;
    END IF;
END $$;

-- 3. The old table's rows under the new primary key. (After the swap `event` is
-- partitioned and this name is event_legacy's index: IF NOT EXISTS skips it.)
-- A build that failed (cancelled, a deadlock, a duplicate) leaves an INVALID
-- index of the name, which IF NOT EXISTS would keep and the swap cannot use: it
-- is renamed aside (SHARE UPDATE EXCLUSIVE: writes go on) and dropped
-- CONCURRENTLY, which no DO block may run. The first drop is for a rerun
-- interrupted between the rename and the drop.
DROP INDEX CONCURRENTLY IF EXISTS event_legacy_id_occurred_at_invalid;
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) = 'r'
       AND EXISTS (SELECT 1 FROM pg_index
                   WHERE indexrelid = to_regclass('event_legacy_id_occurred_at') AND NOT indisvalid) THEN
        ALTER INDEX event_legacy_id_occurred_at RENAME TO event_legacy_id_occurred_at_invalid;
    END IF;
END $$;
DROP INDEX CONCURRENTLY IF EXISTS event_legacy_id_occurred_at_invalid;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS event_legacy_id_occurred_at ON event (id, occurred_at);

-- 4. The swap.
DO $$
DECLARE
    v_view text;
    v_bound timestamptz;
    v_last bigint;
    v_called boolean;
    v_renames text[] := ARRAY['bag_id_idx', 'parent_id_idx', 'bill_id_idx', 'user_id_idx', 'deleted_qr_idx',
                              'occurred_at_brin', 'bill_complete_idx'];
    v_suffix text;
    v_tries integer := 0;
    v_grant record;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'event'::regclass) <> 'r' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '2s', true);
    LOOP  -- give way to a long reader rather than queue every writer behind this lock
        BEGIN
            LOCK TABLE event IN ACCESS EXCLUSIVE MODE;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            v_tries := v_tries + 1;
            IF v_tries >= 30 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(1);
        END;
    END LOOP;
    v_view := pg_get_viewdef('event_row'::regclass);
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz INTO v_bound
    FROM pg_constraint WHERE conrelid = 'event'::regclass AND conname = 'event_legacy_bound';
    SELECT last_value, is_called INTO v_last, v_called FROM event_id_seq;

    ALTER TABLE event RENAME TO event_legacy;
    ALTER INDEX event_pkey RENAME TO event_legacy_pkey;
    FOREACH v_suffix IN ARRAY v_renames LOOP
        EXECUTE format('ALTER INDEX event_%s RENAME TO event_legacy_%s', v_suffix, v_suffix);
        EXECUTE format('ALTER INDEX event_partitioned_%s RENAME TO event_%s', v_suffix, v_suffix);
    END LOOP;
    ALTER TABLE event_partitioned RENAME TO event;
    ALTER TABLE event RENAME CONSTRAINT event_partitioned_pkey TO event_pkey;
    PERFORM setval(pg_get_serial_sequence('event', 'id'), v_last, v_called);

    EXECUTE 'CREATE OR REPLACE VIEW event_row AS ' || v_view;
    -- the dashboard's views read event_legacy now: the runner builds them again after this file
    DELETE FROM schema_views WHERE filename = 'dashboard.sql';

    IF EXISTS (SELECT 1 FROM event_legacy) THEN
        ALTER TABLE event_legacy ADD CONSTRAINT event_legacy_id_occurred_at UNIQUE
            USING INDEX event_legacy_id_occurred_at;
        ALTER TABLE event_legacy ALTER COLUMN id DROP IDENTITY;
        EXECUTE format('ALTER TABLE event ATTACH PARTITION event_legacy FOR VALUES FROM (MINVALUE) TO (%L)', v_bound);
        ALTER TABLE event_legacy DROP CONSTRAINT event_legacy_bound;  -- the partition's bound says it now
        ALTER TABLE event_legacy DROP CONSTRAINT event_legacy_pkey;  -- (id, occurred_at) finds an id as well
        PERFORM tt_event_protect_partition('event_legacy');
    ELSE
        DROP TABLE event_legacy CASCADE;  -- with the dashboard's views, rebuilt after this file
        PERFORM tt_event_partitions_ahead(3);  -- a new install: this month's partition, now
    END IF;
    ALTER SEQUENCE event_partitioned_id_seq RENAME TO event_id_seq;  -- the old one went with its identity
    -- the service reads event again (the runner applies every grant when it ends; not here,
    -- where writers wait)
    FOR v_grant IN SELECT r.role_name, g.privileges FROM service_role r CROSS JOIN service_grant g
                   WHERE g.object = 'event' AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.role_name) LOOP
        EXECUTE format('GRANT %s ON event TO %I', v_grant.privileges, v_grant.role_name);
    END LOOP;
END $$;

-- The months after event_legacy's and the default partition (writers go on meanwhile).
SELECT tt_event_partitions_ahead(3);

-- Statistics of the partitioned table as a whole: without them a join over event is
-- planned blind (the history query scanned all of event_legacy: 7 s instead of 1 ms at
-- 6,000,000 bags). Autovacuum analyzes the partitions, never the parent: `tracetrack
-- db analyze` (the nightly maintenance) does. SHARE UPDATE EXCLUSIVE: writes go on.
ANALYZE event;
