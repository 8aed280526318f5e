-- Bulk import of scanned batches (tracetrack_db.imports): label extraction
-- rules, import jobs with their per-row results, and the set-based writers.
--
-- A file is cut into blocks: one parent's children (links, blocks layouts),
-- one bill's parents (bills), one bag (bags). Each block applies atomically,
-- under the locks scans take (bill, then parent, then children in QR order),
-- with the same checks and error codes, and one event per change whose
-- details carry {"import_id": N}. A failed block changes nothing: its rows
-- that were fine say `skipped` (block_failed). The writers take a chunk of
-- blocks per call (one round trip for thousands of rows) and run each block
-- in a subtransaction, so a block that meets a concurrent change is undone
-- alone.

-- How a printed label's text becomes a QR: a Python regular expression with
-- a named group `qr` (PostgreSQL's regular expressions have no named groups),
-- checked by tracetrack_db.extraction before it is stored.
CREATE TABLE extraction_rule (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{1,49}$'),
    pattern     text NOT NULL CHECK (length(pattern) BETWEEN 1 AND 500),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_by  bigint REFERENCES app_user (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX extraction_rule_name_key ON extraction_rule (name);

INSERT INTO extraction_rule (name, pattern, description) VALUES
    ('label_no', 'LABEL\s*NO\.?:?\s*(?P<qr>[A-Za-z0-9][A-Za-z0-9_/-]*)',
     'the code after LABEL NO. on printed labels: LABEL NO.0016586 LOT NO.:A12 gives 0016586');

CREATE TABLE import_job (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_by      bigint REFERENCES app_user (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    file_name       text NOT NULL DEFAULT '' CHECK (length(file_name) <= 255),
    file_sha256     text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    file_bytes      bigint NOT NULL CHECK (file_bytes >= 0),
    file_format     text NOT NULL CHECK (file_format IN ('csv', 'xlsx')),
    layout          text NOT NULL CHECK (layout IN ('links', 'blocks', 'bills', 'bags')),
    rule            text,           -- the extraction rule's name and pattern as they were used
    rule_pattern    text,
    dry_run         boolean NOT NULL,
    all_or_nothing  boolean NOT NULL,
    dispatch_area   text,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    rows            integer NOT NULL DEFAULT 0,
    blocks          integer NOT NULL DEFAULT 0,
    failed_blocks   integer NOT NULL DEFAULT 0,
    verdicts        jsonb NOT NULL DEFAULT '{}',   -- {"ok": n, "already_done": n, "error": n, "skipped": n}
    codes           jsonb NOT NULL DEFAULT '{}',   -- {"parent_full": n, ...}
    message         text NOT NULL DEFAULT ''
);
CREATE INDEX import_job_created_by_idx ON import_job (created_by, id);
CREATE INDEX import_job_sha256_idx ON import_job (file_sha256);

CREATE TABLE import_row (
    job_id   bigint NOT NULL REFERENCES import_job (id) ON DELETE CASCADE,
    row_no   integer NOT NULL,      -- the file's row number (the header is row 1)
    input    text NOT NULL,         -- the row's cells as read, joined by ", "
    qr       text,                  -- the QR used (after extraction and normalisation)
    block    text,                  -- the block's parent QR or bill number
    verdict  text NOT NULL CHECK (verdict IN ('ok', 'already_done', 'error', 'skipped')),
    code     text,
    message  text,
    PRIMARY KEY (job_id, row_no)
);

-- One row's verdict, as the writers answer it.
CREATE TYPE tt_import_verdict AS (row_no integer, verdict text, code text, message text);

CREATE FUNCTION tt_import_all(p_rows integer[], p_verdict text, p_code text, p_message text)
RETURNS tt_import_verdict[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(ROW(r, p_verdict, p_code, p_message)::tt_import_verdict ORDER BY n), '{}')
    FROM unnest(p_rows) WITH ORDINALITY AS u(r, n)
$$;

-- A failed block: the rows that were fine are skipped, not applied.
CREATE FUNCTION tt_import_skip_rest(v tt_import_verdict[]) RETURNS tt_import_verdict[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(CASE WHEN x.verdict = 'ok'
                          THEN ROW(x.row_no, 'skipped', 'block_failed',
                                   'not applied: another row of its block failed')::tt_import_verdict
                          ELSE ROW(x.row_no, x.verdict, x.code, x.message)::tt_import_verdict END ORDER BY n)
    FROM unnest(v) WITH ORDINALITY AS x(row_no, verdict, code, message, n)
$$;

-- Links (and blocks): block i is parent p_parents[i] with the children
-- p_qrs[p_ends[i-1]+1 .. p_ends[i]] (rows p_rows[...]) in scanning order;
-- p_parent_rows[i] is the row of the parent's own label (blocks layout) or
-- NULL. p_area: the area of new parents; when set, bags of another area are
-- refused (wrong_area), as for a dispatcher.
CREATE FUNCTION tt_import_links(p_job bigint, p_user bigint, p_area text, p_parents text[],
                                p_parent_rows integer[], p_ends integer[], p_rows integer[], p_qrs text[])
RETURNS SETOF tt_import_verdict LANGUAGE plpgsql AS $$
DECLARE
    details jsonb := jsonb_build_object('import_id', p_job);
    w numeric := tt_child_weight();
    first integer := 1;
    last integer;
    p bag;
    fmt record;
    v tt_import_verdict[];
    pv tt_import_verdict;
    created boolean;
    places integer;
    qrs text[];
    rows integer[];
    new_qrs text[];
    old_ids bigint[];
    n_new integer;
    n_linked integer;
    old_weight numeric;
    code text;
    message text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_parents), 0) LOOP
        last := p_ends[i];
        qrs := p_qrs[first:last];
        rows := p_rows[first:last];
        v := NULL;
        created := false;
        BEGIN
            SELECT * INTO p FROM bag WHERE qr_id = p_parents[i] FOR UPDATE;
            IF p.id IS NULL THEN
                SELECT f.capacity, f.expected_weight_kg INTO fmt FROM parent_format f  -- tt_parent_format, inlined
                WHERE p_parents[i] ~ f.pattern ORDER BY f.id LIMIT 1;
                IF fmt IS NULL OR fmt.capacity IS NULL THEN
                    PERFORM tt_fail('TT422', 'not_a_parent', format('%s matches no parent format', p_parents[i]));
                END IF;
                IF p_area IS NULL THEN
                    PERFORM tt_fail('TT400', 'dispatch_area_required',
                                    format('%s is a new parent: name the dispatch_area of the import', p_parents[i]));
                END IF;
                INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg, created_by)
                VALUES (p_parents[i], 'parent', p_area, fmt.capacity, fmt.expected_weight_kg, p_user)
                ON CONFLICT (qr_id) DO NOTHING
                RETURNING * INTO p;
                created := p.id IS NOT NULL;
                IF NOT created THEN  -- another import or scanner created it a moment ago: use theirs
                    SELECT * INTO p FROM bag WHERE qr_id = p_parents[i] FOR UPDATE;
                    IF p.id IS NULL THEN  -- ... and someone deleted it since
                        PERFORM tt_fail('TT409', 'conflict', format('%s changed concurrently: import again', p_parents[i]));
                    END IF;
                END IF;
            END IF;
            IF p.type <> 'parent' THEN
                PERFORM tt_fail('TT422', 'not_a_parent', format('%s is a child bag', p_parents[i]));
            END IF;
            IF p_area IS NOT NULL AND p.dispatch_area <> p_area THEN
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to %s', p.qr_id, p.dispatch_area));
            END IF;
            -- The children known as children, locked in QR order (a QR known
            -- as a parent is never locked here: see tt_link_locked).
            PERFORM 1 FROM bag b WHERE b.qr_id = ANY (qrs) AND b.type = 'child' ORDER BY b.qr_id FOR UPDATE;
            places := p.capacity - p.child_count;
            -- A verdict per row, in one pass with one look-up of each QR; and the
            -- rows to apply: new QRs to create, known children (by id) to link.
            SELECT array_agg(ROW(k.row_no, k.verdict, k.code, k.message)::tt_import_verdict ORDER BY k.n),
                   array_agg(k.qr ORDER BY k.n) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NULL),
                   array_agg(k.bag_id ORDER BY k.n) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NOT NULL),
                   coalesce(sum(k.weight_kg) FILTER (WHERE k.verdict = 'ok' AND k.bag_id IS NOT NULL), 0)
            INTO v, new_qrs, old_ids, old_weight
            FROM (
                SELECT c.n, c.row_no, c.qr, c.bag_id, c.weight_kg,
                       CASE WHEN c.code IS NOT NULL OR (c.wants AND (c.rank > places OR p.bill_id IS NOT NULL))
                            THEN 'error' WHEN c.wants THEN 'ok' ELSE 'already_done' END AS verdict,
                       CASE WHEN c.code IS NOT NULL THEN c.code
                            WHEN c.wants AND p.bill_id IS NOT NULL THEN 'parent_on_bill'
                            WHEN c.wants AND c.rank > places THEN 'parent_full' ELSE c.done_code END AS code,
                       CASE WHEN c.code IS NOT NULL THEN c.message
                            WHEN c.wants AND p.bill_id IS NOT NULL
                            THEN format('%s is on a bill: remove it from the bill first', p.qr_id)
                            WHEN c.wants AND c.rank > places THEN format('%s is full (%s)', p.qr_id, p.capacity)
                            ELSE c.done_message END AS message
                FROM (
                    SELECT x.*, sum(x.wants::integer) OVER (ORDER BY x.n) AS rank
                    FROM (
                        SELECT u.n, u.row_no, u.qr, b.id AS bag_id, b.weight_kg, y.code, y.message,
                               y.code IS NULL AND y.done_code IS NULL AS wants, y.done_code, y.done_message
                        FROM (SELECT q.*, row_number() OVER (PARTITION BY q.qr ORDER BY q.n) AS occurrence
                              FROM unnest(qrs, rows) WITH ORDINALITY AS q(qr, row_no, n)) AS u
                        LEFT JOIN bag b ON b.qr_id = u.qr
                        -- a QR known as a parent, or a new one matching a parent format (not
                        -- tt_parent_format(): a function call per row cost more than the rest)
                        CROSS JOIN LATERAL (
                            SELECT b.type = 'parent' OR (b.id IS NULL AND EXISTS (
                                       SELECT 1 FROM parent_format f WHERE u.qr ~ f.pattern)) AS parent_like
                        ) AS pl
                        CROSS JOIN LATERAL (
                            SELECT CASE WHEN pl.parent_like THEN 'not_a_child'
                                        WHEN u.occurrence > 1 OR b.parent_id = p.id THEN NULL
                                        WHEN b.parent_id IS NOT NULL THEN 'child_in_other_parent'
                                        WHEN b.dispatch_area <> p.dispatch_area THEN 'wrong_area' END AS code,
                                   CASE WHEN pl.parent_like THEN format('%s is a parent QR', u.qr)
                                        WHEN u.occurrence > 1 OR b.parent_id = p.id THEN NULL
                                        WHEN b.parent_id IS NOT NULL THEN format('%s is already in another parent', u.qr)
                                        WHEN b.dispatch_area <> p.dispatch_area
                                        THEN format('%s belongs to another dispatch area than %s', u.qr, p.qr_id)
                                   END AS message,
                                   CASE WHEN pl.parent_like THEN NULL
                                        WHEN u.occurrence > 1 THEN 'duplicate_row'
                                        WHEN b.parent_id = p.id THEN 'already_linked' END AS done_code,
                                   CASE WHEN u.occurrence > 1 THEN format('%s appears earlier in this block', u.qr)
                                        WHEN b.parent_id = p.id THEN format('%s is already in %s', u.qr, p.qr_id)
                                   END AS done_message
                        ) AS y
                    ) AS x
                ) AS c
            ) AS k;
            IF EXISTS (SELECT 1 FROM unnest(v) AS x WHERE x.verdict = 'error') THEN
                v := tt_import_skip_rest(v);
                RAISE EXCEPTION USING ERRCODE = 'TT498';  -- undo the block (a new parent too)
            END IF;
            IF created THEN
                INSERT INTO event (kind, user_id, bag_id, qr_id, dispatch_area, details)
                VALUES ('parent_scan', p_user, p.id, p.qr_id, p.dispatch_area, details || '{"created": true}');
            END IF;
            n_new := coalesce(cardinality(new_qrs), 0);
            n_linked := n_new + coalesce(cardinality(old_ids), 0);
            IF n_linked > 0 THEN
                -- create and link in one statement; the events follow the rows' order in the file
                WITH created_rows AS (
                    INSERT INTO bag (qr_id, type, status, dispatch_area, parent_id, weight_kg, created_by)
                    SELECT q, 'child', 'completed', p.dispatch_area, p.id, w, p_user FROM unnest(new_qrs) AS q
                    RETURNING id, qr_id, dispatch_area  -- a QR registered meanwhile: unique_violation, the block undone
                ), linked_rows AS (
                    UPDATE bag SET parent_id = p.id, status = 'completed', updated_at = now()
                    WHERE id = ANY (old_ids)
                    RETURNING id, qr_id, dispatch_area
                ), all_rows AS (
                    SELECT * FROM created_rows UNION ALL SELECT * FROM linked_rows
                ), logged AS (
                    INSERT INTO event (kind, user_id, bag_id, qr_id, parent_id, parent_qr, dispatch_area, details)
                    SELECT 'link', p_user, a.id, a.qr_id, p.id, p.qr_id, a.dispatch_area, details
                    FROM all_rows a JOIN unnest(qrs) WITH ORDINALITY AS o(qr, n) ON o.qr = a.qr_id
                    ORDER BY o.n
                )
                SELECT count(*) INTO n_new FROM created_rows;
                UPDATE bag SET child_count = child_count + n_linked,
                               weight_kg = weight_kg + n_new * w + old_weight,
                               status = CASE WHEN child_count + n_linked = capacity THEN 'completed' ELSE 'in_progress' END,
                               updated_at = now()
                WHERE id = p.id;
            END IF;
            IF p_parent_rows[i] IS NOT NULL THEN
                pv := ROW(p_parent_rows[i], CASE WHEN created OR n_linked > 0 THEN 'ok' ELSE 'already_done' END,
                          CASE WHEN created THEN 'created' WHEN n_linked = 0 THEN 'already_linked' END,
                          CASE WHEN created THEN format('%s created', p.qr_id) END);
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'TT498' THEN
                pv := ROW(p_parent_rows[i], 'skipped', 'block_failed', 'not applied: a row of its block failed');
            WHEN SQLSTATE 'TT400' OR SQLSTATE 'TT403' OR SQLSTATE 'TT404' OR SQLSTATE 'TT409' OR SQLSTATE 'TT422'
                 OR check_violation OR unique_violation OR deadlock_detected OR lock_not_available THEN
                GET STACKED DIAGNOSTICS code = PG_EXCEPTION_HINT, message = MESSAGE_TEXT;
                IF code IS NULL OR code = '' THEN  -- a constraint or a lock: the block met a concurrent change
                    code := 'conflict';
                    message := format('the block could not be applied (%s): import again', message);
                END IF;
                v := tt_import_all(rows, 'error', code, message);
                pv := ROW(p_parent_rows[i], 'error', code, message);
        END;
        IF p_parent_rows[i] IS NOT NULL THEN
            v := v || pv;
        END IF;
        RETURN QUERY SELECT * FROM unnest(v);
        first := last + 1;
    END LOOP;
END $$;

-- Bills: block i is bill p_bills[i] (created with p_capacities[i] and the
-- descriptive fields when it does not exist) with the parents
-- p_qrs[p_ends[i-1]+1 .. p_ends[i]]. Locks: the bill, then its parents in QR order.
CREATE FUNCTION tt_import_bills(p_job bigint, p_user bigint, p_bills text[], p_capacities integer[],
                                p_destinations text[], p_vehicles text[], p_descriptions text[],
                                p_ends integer[], p_rows integer[], p_qrs text[])
RETURNS SETOF tt_import_verdict LANGUAGE plpgsql AS $$
DECLARE
    details jsonb := jsonb_build_object('import_id', p_job);
    first integer := 1;
    last integer;
    bl bill;
    v tt_import_verdict[];
    places integer;
    qrs text[];
    rows integer[];
    ids bigint[];
    code text;
    message text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_bills), 0) LOOP
        last := p_ends[i];
        qrs := p_qrs[first:last];
        rows := p_rows[first:last];
        v := NULL;
        BEGIN
            SELECT * INTO bl FROM bill WHERE lower(bill_no) = lower(p_bills[i]) FOR UPDATE;
            IF bl.id IS NULL THEN
                IF p_capacities[i] IS NULL THEN
                    PERFORM tt_fail('TT404', 'bill_not_found',
                                    format('bill %s does not exist: give its capacity on its first row', p_bills[i]));
                END IF;
                INSERT INTO bill (bill_no, capacity, description, destination, vehicle_number, created_by)
                VALUES (p_bills[i], p_capacities[i], coalesce(p_descriptions[i], ''), coalesce(p_destinations[i], ''),
                        coalesce(p_vehicles[i], ''), p_user)
                ON CONFLICT DO NOTHING
                RETURNING * INTO bl;
                IF bl.id IS NULL THEN  -- created a moment ago by someone else: use theirs
                    SELECT * INTO bl FROM bill WHERE lower(bill_no) = lower(p_bills[i]) FOR UPDATE;
                    IF bl.id IS NULL THEN
                        PERFORM tt_fail('TT409', 'conflict', format('bill %s changed concurrently: import again', p_bills[i]));
                    END IF;
                ELSE
                    INSERT INTO event (kind, user_id, bill_id, bill_no, details)
                    VALUES ('bill_created', p_user, bl.id, bl.bill_no, details);
                END IF;
            END IF;
            PERFORM 1 FROM bag b WHERE b.qr_id = ANY (qrs) AND b.type = 'parent' ORDER BY b.qr_id FOR UPDATE;
            places := bl.capacity - bl.linked_parent_count;
            SELECT array_agg(ROW(k.row_no,
                                 CASE WHEN k.code IS NOT NULL OR (k.wants AND (k.rank > places OR bl.status = 'completed'))
                                      THEN 'error' WHEN k.wants THEN 'ok' ELSE 'already_done' END,
                                 CASE WHEN k.code IS NOT NULL THEN k.code
                                      WHEN k.wants AND bl.status = 'completed' THEN 'bill_completed'
                                      WHEN k.wants AND k.rank > places THEN 'bill_full' ELSE k.done_code END,
                                 CASE WHEN k.code IS NOT NULL THEN k.message
                                      WHEN k.wants AND bl.status = 'completed'
                                      THEN format('bill %s is completed: reopen it first', bl.bill_no)
                                      WHEN k.wants AND k.rank > places
                                      THEN format('bill %s is full (%s parents)', bl.bill_no, bl.capacity)
                                      ELSE k.done_message END)::tt_import_verdict ORDER BY k.n)
            INTO v
            FROM (
                SELECT c.*, sum(c.wants::integer) OVER (ORDER BY c.n) AS rank
                FROM (
                    SELECT u.n, u.row_no, x.code, x.message,
                           x.code IS NULL AND x.done_code IS NULL AS wants, x.done_code, x.done_message
                    FROM (SELECT q.*, row_number() OVER (PARTITION BY q.qr ORDER BY q.n) AS occurrence
                          FROM unnest(qrs, rows) WITH ORDINALITY AS q(qr, row_no, n)) AS u
                    LEFT JOIN bag b ON b.qr_id = u.qr
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN b.id IS NULL THEN 'bag_not_found'
                                    WHEN b.type <> 'parent' THEN 'not_a_parent'
                                    WHEN u.occurrence > 1 OR b.bill_id = bl.id THEN NULL
                                    WHEN b.bill_id IS NOT NULL THEN 'parent_on_other_bill'
                                    WHEN b.child_count = 0 THEN 'parent_empty' END AS code,
                               CASE WHEN b.id IS NULL THEN format('parent %s not found', u.qr)
                                    WHEN b.type <> 'parent' THEN format('%s is a child bag', u.qr)
                                    WHEN u.occurrence > 1 OR b.bill_id = bl.id THEN NULL
                                    WHEN b.bill_id IS NOT NULL THEN format('%s is on another bill', u.qr)
                                    WHEN b.child_count = 0 THEN format('%s holds no children', u.qr) END AS message,
                               CASE WHEN b.id IS NULL OR b.type <> 'parent' THEN NULL
                                    WHEN u.occurrence > 1 THEN 'duplicate_row'
                                    WHEN b.bill_id = bl.id THEN 'already_added' END AS done_code,
                               CASE WHEN u.occurrence > 1 THEN format('%s appears earlier in this block', u.qr)
                                    WHEN b.bill_id = bl.id THEN format('%s is already on %s', u.qr, bl.bill_no) END AS done_message
                    ) AS x
                ) AS c
            ) AS k;
            IF EXISTS (SELECT 1 FROM unnest(v) AS x WHERE x.verdict = 'error') THEN
                v := tt_import_skip_rest(v);
                RAISE EXCEPTION USING ERRCODE = 'TT498';  -- undo the block (a new bill too)
            END IF;
            SELECT array_agg(b.id ORDER BY u.n) INTO ids
            FROM unnest(qrs, v) WITH ORDINALITY AS u(qr, row_no, verdict, code, message, n)
            JOIN bag b ON b.qr_id = u.qr
            WHERE u.verdict = 'ok';
            IF ids IS NOT NULL THEN
                UPDATE bag SET bill_id = bl.id, updated_at = now() WHERE id = ANY (ids);
                UPDATE bill SET linked_parent_count = linked_parent_count + cardinality(ids),
                                total_child_count = total_child_count + s.children,
                                total_weight_kg = total_weight_kg + s.weight,
                                expected_weight_kg = expected_weight_kg + s.expected,
                                status = 'processing',
                                updated_at = now()
                FROM (SELECT sum(child_count) AS children, sum(weight_kg) AS weight,
                             sum(coalesce(expected_weight_kg, 0)) AS expected
                      FROM bag WHERE id = ANY (ids)) AS s
                WHERE bill.id = bl.id;
                INSERT INTO event (kind, user_id, parent_id, parent_qr, bill_id, bill_no, dispatch_area, details)
                SELECT 'bill_add', p_user, b.id, b.qr_id, bl.id, bl.bill_no, b.dispatch_area, details
                FROM unnest(ids) WITH ORDINALITY AS u(id, n) JOIN bag b ON b.id = u.id
                ORDER BY u.n;
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'TT498' THEN
                NULL;
            WHEN SQLSTATE 'TT400' OR SQLSTATE 'TT403' OR SQLSTATE 'TT404' OR SQLSTATE 'TT409' OR SQLSTATE 'TT422'
                 OR check_violation OR unique_violation OR deadlock_detected OR lock_not_available THEN
                GET STACKED DIAGNOSTICS code = PG_EXCEPTION_HINT, message = MESSAGE_TEXT;
                IF code IS NULL OR code = '' THEN  -- a constraint or a lock: the block met a concurrent change
                    code := 'conflict';
                    message := format('the block could not be applied (%s): import again', message);
                END IF;
                v := tt_import_all(rows, 'error', code, message);
        END;
        RETURN QUERY SELECT * FROM unnest(v);
        first := last + 1;
    END LOOP;
END $$;

-- Bags: every row is its own block: registered, already there (the same
-- type and area), or refused.
CREATE FUNCTION tt_import_bags(p_job bigint, p_user bigint, p_rows integer[], p_qrs text[], p_types text[],
                               p_areas text[])
RETURNS SETOF tt_import_verdict LANGUAGE sql AS $$
    WITH r AS (
        SELECT u.n, u.row_no, u.qr, u.type, u.area, f.capacity, f.expected_weight_kg, b.id AS known,
               CASE WHEN a.name IS NULL THEN 'unknown_area'
                    WHEN u.type = 'parent' AND f.capacity IS NULL THEN 'not_a_parent'
                    WHEN u.type = 'child' AND f.capacity IS NOT NULL THEN 'not_a_child'
                    WHEN b.id IS NOT NULL AND (b.type <> u.type OR b.dispatch_area <> u.area) THEN 'qr_taken' END AS code,
               CASE WHEN a.name IS NULL THEN format('unknown dispatch area %s', u.area)
                    WHEN u.type = 'parent' AND f.capacity IS NULL THEN format('%s matches no parent format', u.qr)
                    WHEN u.type = 'child' AND f.capacity IS NOT NULL THEN format('%s is a parent QR', u.qr)
                    WHEN b.id IS NOT NULL AND (b.type <> u.type OR b.dispatch_area <> u.area)
                    THEN format('%s is already registered as a %s of %s', u.qr, b.type, b.dispatch_area) END AS message
        FROM unnest(p_rows, p_qrs, p_types, p_areas) WITH ORDINALITY AS u(row_no, qr, type, area, n)
        LEFT JOIN dispatch_area a ON a.name = u.area
        LEFT JOIN bag b ON b.qr_id = u.qr
        LEFT JOIN LATERAL (SELECT f.capacity, f.expected_weight_kg FROM parent_format f
                           WHERE u.qr ~ f.pattern ORDER BY f.id LIMIT 1) AS f ON true
    ), ins AS (
        INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg, weight_kg, created_by)
        SELECT r.qr, r.type, r.area, r.capacity, r.expected_weight_kg,
               CASE WHEN r.type = 'child' THEN tt_child_weight() ELSE 0 END, p_user
        FROM r WHERE r.code IS NULL AND r.known IS NULL
        ORDER BY r.n
        ON CONFLICT (qr_id) DO NOTHING
        RETURNING id, qr_id, dispatch_area
    ), ev AS (
        INSERT INTO event (kind, user_id, bag_id, qr_id, dispatch_area, details)
        SELECT 'bag_created', p_user, i.id, i.qr_id, i.dispatch_area, jsonb_build_object('import_id', p_job)
        FROM ins i ORDER BY i.id
    )
    SELECT r.row_no,
           CASE WHEN r.code IS NOT NULL THEN 'error' WHEN i.id IS NOT NULL THEN 'ok'
                WHEN r.known IS NOT NULL THEN 'already_done' ELSE 'error' END,
           CASE WHEN r.code IS NOT NULL THEN r.code WHEN i.id IS NOT NULL THEN NULL
                WHEN r.known IS NOT NULL THEN 'already_registered' ELSE 'conflict' END,
           CASE WHEN r.code IS NOT NULL THEN r.message WHEN i.id IS NOT NULL THEN NULL
                WHEN r.known IS NOT NULL THEN format('%s is already registered', r.qr)
                ELSE format('%s was registered concurrently: import again', r.qr) END
    FROM r LEFT JOIN ins i ON i.qr_id = r.qr
    ORDER BY r.n
$$;

-- Plans. The writers reach bag, bill and event by index for a block's rows,
-- but plpgsql caches each statement's plan, made from the table statistics
-- of that moment; an import can grow bag by 100,000 rows in seconds, long
-- before autovacuum analyzes it (within a minute, when it is on). Into a new
-- database the first 100,000-row file took 147 s instead of 9 s, each block
-- scanning every child through the wrong index. So the import asks for fresh
-- statistics before it starts and after each chunk (tracetrack_db.imports):
-- ANALYZE when bag or event has none or has changed by more than half since
-- the last; a changed statistic also makes plpgsql plan again. And no JIT:
-- an estimate past jit_above_cost compiled for about 0.4 s per statement.
CREATE FUNCTION tt_import_analyze() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    stale boolean;
BEGIN
    SELECT coalesce(bool_or(c.reltuples < 0 OR s.n_mod_since_analyze > greatest(c.reltuples, 1000) / 2), false)
    INTO stale
    FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN ('bag'::regclass, 'event'::regclass);
    IF stale THEN
        ANALYZE bag;
        ANALYZE event;
    END IF;
    RETURN stale;
END $$;

ALTER FUNCTION tt_import_links(bigint, bigint, text, text[], integer[], integer[], integer[], text[]) SET jit = off;
ALTER FUNCTION tt_import_bills(bigint, bigint, text[], integer[], text[], text[], text[], integer[], integer[], text[])
    SET jit = off;
ALTER FUNCTION tt_import_bags(bigint, bigint, integer[], text[], text[], text[]) SET jit = off;

-- The service role: runs the writers (as their owner), writes jobs, results
-- and rules. Replaces 0010's function (0007's and the rollup's grants) with these added.
CREATE OR REPLACE FUNCTION tt_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text := current_schema();
    f regprocedure;
    r name;
    seq text;
    definer text[] := ARRAY['tt_register_bag', 'tt_open_parent', 'tt_link_child', 'tt_link_children',
                            'tt_unlink_child', 'tt_delete_bag', 'tt_bill_create', 'tt_bill_add_parent',
                            'tt_bill_remove_parent', 'tt_bill_complete', 'tt_bill_reopen', 'tt_bill_update',
                            'tt_bill_delete', 'tt_refresh_view', 'tt_roll_up_events',
                            'tt_import_links', 'tt_import_bills', 'tt_import_bags', 'tt_import_analyze'];
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = s::regnamespace AND p.proname = ANY (definer) LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
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
                       'mv_recent_scans, event_rollup, event_rollup_state, extraction_rule, import_job, import_row '
                       'TO %I', r);
        EXECUTE format('GRANT INSERT ON dispatch_area TO %I', r);
        EXECUTE format('GRANT INSERT (username, password_hash, role, dispatch_area) ON app_user TO %I', r);
        EXECUTE format('GRANT UPDATE (role, dispatch_area, is_active, password_hash, token_version, '
                       'last_login_at, updated_at) ON app_user TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON idempotency_key TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE ON view_refresh TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON throttle TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE (pattern, description, updated_at) ON extraction_rule TO %I', r);
        EXECUTE format('GRANT INSERT, UPDATE (finished_at, status, rows, blocks, failed_blocks, verdicts, codes, '
                       'message) ON import_job TO %I', r);
        EXECUTE format('GRANT INSERT ON import_row TO %I', r);
        FOREACH seq IN ARRAY ARRAY[pg_get_serial_sequence('app_user', 'id'),
                                   pg_get_serial_sequence('extraction_rule', 'id'),
                                   pg_get_serial_sequence('import_job', 'id')] LOOP
            IF seq IS NOT NULL THEN
                EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', seq, r);
            END IF;
        END LOOP;
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = s::regnamespace AND p.proname = ANY (definer) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
        END LOOP;
    END LOOP;
END $$;
