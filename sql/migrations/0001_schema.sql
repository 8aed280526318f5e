-- TraceTrack schema: reference data, users, bags, bills, the event log and
-- idempotency keys. Current-state tables are the fast path; `event` is the
-- append-only truth for history and audit.

CREATE TABLE dispatch_area (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,49}$'),
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO dispatch_area (name, label) VALUES
    ('lucknow', 'Lucknow'), ('indore', 'Indore'), ('jaipur', 'Jaipur'),
    ('hisar', 'Hisar'), ('sri_ganganagar', 'Sri Ganganagar'),
    ('sangaria', 'Sangaria'), ('bathinda', 'Bathinda'), ('raipur', 'Raipur'),
    ('ranchi', 'Ranchi'), ('akola', 'Akola');

-- A parent QR is one that matches a format; the format fixes the parent's
-- capacity (children) and expected weight when the parent is created.
CREATE TABLE parent_format (
    id                  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    -- anchored, and a valid regular expression (an invalid one fails here, not at every scan)
    pattern             text NOT NULL CHECK (pattern LIKE '^%$' AND ('' ~ pattern) IS NOT NULL),
    capacity            integer NOT NULL DEFAULT 30 CHECK (capacity BETWEEN 1 AND 1000),
    expected_weight_kg  numeric(12, 3) NOT NULL DEFAULT 30 CHECK (expected_weight_kg >= 0),
    created_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg) VALUES
    ('SB', '^SB[0-9]{5}$', 30, 30),
    ('M444', '^M444-[0-9]{5}$', 30, 30);

CREATE TABLE app_user (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@-]{3,64}$'),
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'biller', 'dispatcher')),
    dispatch_area   text REFERENCES dispatch_area (name),
    is_active       boolean NOT NULL DEFAULT true,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    last_login_at   timestamptz,
    -- tokens issued before this are refused (set when the password changes)
    tokens_valid_after timestamptz NOT NULL DEFAULT '-infinity',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT app_user_dispatcher_area CHECK (role <> 'dispatcher' OR dispatch_area IS NOT NULL)
);
CREATE UNIQUE INDEX app_user_username_key ON app_user (lower(username));

-- The last active admin can be neither demoted nor deactivated. The advisory
-- lock serialises concurrent demotions so two admins cannot demote each other.
CREATE FUNCTION tt_keep_one_admin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'admin' AND OLD.is_active
       AND (NEW.role <> 'admin' OR NOT NEW.is_active) THEN
        PERFORM pg_advisory_xact_lock(hashtext('tracetrack:last_admin'));
        IF NOT EXISTS (SELECT 1 FROM app_user
                       WHERE role = 'admin' AND is_active AND id <> OLD.id) THEN
            RAISE EXCEPTION 'the last active admin cannot be demoted or deactivated'
                USING ERRCODE = 'TT409', HINT = 'last_admin';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER app_user_keep_one_admin BEFORE UPDATE OF role, is_active ON app_user
    FOR EACH ROW EXECUTE FUNCTION tt_keep_one_admin();

CREATE TABLE bill (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "/" is allowed (INV/24-25/001) but not a segment the bill routes use
    bill_no              text NOT NULL CHECK (bill_no ~ '^[A-Za-z0-9][A-Za-z0-9_/.-]{0,63}$'
                                              AND bill_no !~* '(^|/)(parents|complete|reopen)(/|$)'),
    capacity             integer NOT NULL CHECK (capacity BETWEEN 1 AND 500),
    description          text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    destination          text NOT NULL DEFAULT '' CHECK (length(destination) <= 200),
    vehicle_number       text NOT NULL DEFAULT '' CHECK (length(vehicle_number) <= 50),
    status               text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'processing', 'completed')),
    linked_parent_count  integer NOT NULL DEFAULT 0,
    total_child_count    integer NOT NULL DEFAULT 0 CHECK (total_child_count >= 0),
    total_weight_kg      numeric(14, 3) NOT NULL DEFAULT 0 CHECK (total_weight_kg >= 0),
    expected_weight_kg   numeric(14, 3) NOT NULL DEFAULT 0 CHECK (expected_weight_kg >= 0),
    created_by           bigint REFERENCES app_user (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz,
    CONSTRAINT bill_within_capacity CHECK (linked_parent_count BETWEEN 0 AND capacity),
    CONSTRAINT bill_completed_is_full CHECK (status <> 'completed' OR linked_parent_count = capacity),
    CONSTRAINT bill_completed_at CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE UNIQUE INDEX bill_bill_no_key ON bill (lower(bill_no));
CREATE INDEX bill_status_id_idx ON bill (status, id);
CREATE INDEX bill_bill_no_prefix_idx ON bill (lower(bill_no) text_pattern_ops);

CREATE TABLE bag (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qr_id          text NOT NULL CHECK (qr_id ~ '^[A-Z0-9_/-]{4,100}$'),
    type           text NOT NULL CHECK (type IN ('parent', 'child')),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'in_progress', 'completed')),
    dispatch_area  text NOT NULL REFERENCES dispatch_area (name),
    parent_id      bigint REFERENCES bag (id),
    bill_id        bigint REFERENCES bill (id),
    capacity       integer,
    child_count    integer NOT NULL DEFAULT 0,
    weight_kg      numeric(12, 3) NOT NULL DEFAULT 0 CHECK (weight_kg >= 0),
    expected_weight_kg numeric(12, 3),
    created_by     bigint REFERENCES app_user (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bag_qr_id_key UNIQUE (qr_id),
    CONSTRAINT bag_parent_fields CHECK (
        type = 'parent' OR (capacity IS NULL AND child_count = 0 AND bill_id IS NULL)),
    CONSTRAINT bag_child_fields CHECK (type = 'child' OR parent_id IS NULL),
    CONSTRAINT bag_within_capacity CHECK (
        type = 'child' OR (capacity IS NOT NULL AND child_count BETWEEN 0 AND capacity)),
    CONSTRAINT bag_full_is_completed CHECK (
        type = 'child' OR (status = 'completed') = (child_count = capacity))
);
-- Children of a parent (bag detail, unlink, history) and the unlinked filter.
CREATE INDEX bag_parent_id_idx ON bag (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX bag_bill_id_idx ON bag (bill_id) WHERE bill_id IS NOT NULL;
-- Keyset listing (id DESC) per area and type, and QR prefix search.
CREATE INDEX bag_area_type_id_idx ON bag (dispatch_area, type, id);
CREATE INDEX bag_type_status_id_idx ON bag (type, status, id);
CREATE INDEX bag_qr_prefix_idx ON bag (qr_id text_pattern_ops);
CREATE INDEX bag_created_at_brin ON bag USING brin (created_at);

-- A bag's type never changes: a QR known as a child can never be a parent.
CREATE FUNCTION tt_bag_type_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type <> OLD.type THEN
        RAISE EXCEPTION 'a bag''s type never changes' USING ERRCODE = 'TT422', HINT = 'type_immutable';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER bag_type_immutable BEFORE UPDATE OF type ON bag
    FOR EACH ROW EXECUTE FUNCTION tt_bag_type_immutable();

-- Append-only history. Bags and bills are referenced by id and by their
-- QR / bill number so the history survives a deletion.
CREATE TABLE event (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    kind             text NOT NULL CHECK (kind IN (
                         'bag_created', 'parent_scan', 'link', 'unlink', 'bag_deleted',
                         'bill_created', 'bill_updated', 'bill_add', 'bill_remove',
                         'bill_complete', 'bill_reopen', 'bill_deleted')),
    user_id          bigint,
    bag_id           bigint,
    qr_id            text,
    parent_id        bigint,
    parent_qr        text,
    bill_id          bigint,
    bill_no          text,
    dispatch_area    text,
    idempotency_key  text,
    details          jsonb
);
CREATE INDEX event_bag_id_idx ON event (bag_id, id) WHERE bag_id IS NOT NULL;
CREATE INDEX event_parent_id_idx ON event (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX event_bill_id_idx ON event (bill_id, id) WHERE bill_id IS NOT NULL;
CREATE INDEX event_user_id_idx ON event (user_id, id);
CREATE INDEX event_deleted_qr_idx ON event (qr_id) WHERE kind = 'bag_deleted';
CREATE INDEX event_occurred_at_brin ON event USING brin (occurred_at);

CREATE FUNCTION tt_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only' USING ERRCODE = 'TT409', HINT = 'append_only';
END $$;

CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON event
    FOR EACH STATEMENT EXECUTE FUNCTION tt_event_append_only();

-- The first answer to a write carrying an Idempotency-Key, replayed on repeats.
CREATE TABLE idempotency_key (
    user_id      bigint NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    fingerprint  text NOT NULL,
    status       integer,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_key_created_at_idx ON idempotency_key (created_at);

CREATE TABLE app_setting (
    name   text PRIMARY KEY,
    value  jsonb NOT NULL
);
INSERT INTO app_setting (name, value) VALUES ('child_weight_kg', '1');
