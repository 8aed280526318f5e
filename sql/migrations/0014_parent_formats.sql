-- tracetrack: no-transaction
-- Parent formats managed by admins (issue 12, item 9): add, change and remove
-- them through the functions below (SECURITY DEFINER: the service role still
-- may not write parent_format itself).
--
-- A format is IN USE while a parent bag's QR matches its pattern
-- (bag.type = 'parent' AND qr_id ~ pattern). In use, it cannot be removed and
-- its pattern cannot change; its capacity and expected weight can, and apply to
-- parents created from then on (a parent copied both when it was created).
--
-- No transaction (hence the header line): the index below is built
-- CONCURRENTLY, so scans go on while it builds over millions of bags. Every
-- statement can run again (CREATE OR REPLACE, IF EXISTS, ON CONFLICT), so a
-- run that failed part-way starts over cleanly.

-- "In use" looks only at parents (about 1 bag in 31): this partial index holds
-- their QRs alone. A pattern with a literal prefix (^SB...) is a range of it
-- (well under 1 ms at 6,000,000 bags); one without (^[A-Z]{2}...) reads it whole,
-- index only (about 0.1 s for 190,000 parents), where the whole table took 6.7 s.
DROP INDEX CONCURRENTLY IF EXISTS bag_parent_qr_idx;
CREATE INDEX CONCURRENTLY bag_parent_qr_idx ON bag (qr_id text_pattern_ops) WHERE type = 'parent';

-- A parent is created only with a format that matches its QR, and holds that
-- format (FOR KEY SHARE) until its transaction ends: a removal or pattern change
-- (which lock the format FOR UPDATE) waits for the scans creating parents with
-- it, then sees their parents (in use); a scan that comes after finds no format
-- and is refused (409 conflict: scan again, and the QR is no parent any more).
-- So no parent ever lacks a format. Children pay nothing (WHEN): a child's QR
-- may match a format added after it was registered; it stays a child (a bag's
-- type never changes).
CREATE OR REPLACE FUNCTION tt_parent_needs_format() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM parent_format f WHERE NEW.qr_id ~ f.pattern FOR KEY SHARE;
    IF NOT FOUND THEN
        PERFORM tt_fail('TT409', 'conflict',
                        format('%s matches no parent format now (one was changed or removed meanwhile): '
                               'scan it again', NEW.qr_id));
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER bag_parent_needs_format BEFORE INSERT ON bag
    FOR EACH ROW WHEN (NEW.type = 'parent') EXECUTE FUNCTION tt_parent_needs_format();

-- A parent bag whose QR matches the pattern, or NULL. Planned for this very
-- pattern (EXECUTE with a literal): its literal prefix becomes a range of
-- bag_parent_qr_idx, which a generic plan could not use.
CREATE OR REPLACE FUNCTION tt_parent_format_used_by(p_pattern text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SELECT qr_id FROM bag WHERE type = %L AND qr_id ~ %L LIMIT 1', 'parent', p_pattern) INTO v;
    RETURN v;
END $$;

-- The checks of a new name, pattern, capacity or weight (NULL: not given). A bad
-- pattern raises invalid_regular_expression, which the library answers as a
-- validation_error on the field pattern.
CREATE OR REPLACE FUNCTION tt_parent_format_check(p_name text, p_pattern text, p_capacity integer,
                                                  p_expected_weight_kg numeric) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NOT NULL AND p_name !~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$' THEN
        PERFORM tt_fail('TT400', 'validation_error',
                        'a format name is 1-50 characters of A-Z a-z 0-9 _ -, starting with a letter or digit');
    END IF;
    IF p_pattern IS NOT NULL THEN
        IF length(p_pattern) > 200 OR length(p_pattern) < 3 OR p_pattern NOT LIKE '^%$' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_regular_expression',
                MESSAGE = 'a pattern is 3-200 characters, anchored: ^ first and $ last, as in ^SB[0-9]{5}$';
        END IF;
        IF '' ~ p_pattern THEN  -- also what raises for an invalid regular expression
            RAISE EXCEPTION USING ERRCODE = 'invalid_regular_expression',
                MESSAGE = 'the pattern matches an empty text: it must describe the parent QRs';
        END IF;
    END IF;
    IF p_capacity IS NOT NULL AND p_capacity NOT BETWEEN 1 AND 1000 THEN
        PERFORM tt_fail('TT400', 'validation_error', 'capacity must be from 1 to 1000');
    END IF;
    IF p_expected_weight_kg IS NOT NULL AND (p_expected_weight_kg < 0 OR p_expected_weight_kg > 999999999.999) THEN
        PERFORM tt_fail('TT400', 'validation_error', 'expected_weight_kg must be from 0 to 999999999.999');
    END IF;
END $$;

-- Formats must not share QRs: a pattern another format has, or one that an
-- existing parent (made with another format) matches, is refused. (Two patterns
-- that would overlap only on QRs no parent has yet are not found: PostgreSQL
-- cannot intersect regular expressions. Then the first format by id wins, as
-- tt_parent_format() always did.)
CREATE OR REPLACE FUNCTION tt_parent_format_overlap(p_id integer, p_pattern text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    other text;
    used text;
BEGIN
    SELECT name INTO other FROM parent_format WHERE pattern = p_pattern AND id IS DISTINCT FROM p_id;
    IF other IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'format_exists', format('format %s has this pattern already', other));
    END IF;
    used := tt_parent_format_used_by(p_pattern);
    IF used IS NOT NULL THEN
        SELECT name INTO other FROM parent_format WHERE used ~ pattern AND id IS DISTINCT FROM p_id
        ORDER BY id LIMIT 1;
        PERFORM tt_fail('TT409', 'format_exists',
                        format('the pattern matches parent %s (format %s): formats must not share QRs',
                               used, coalesce(other, 'none')));
    END IF;
END $$;

-- Every writer below first takes the table in SHARE ROW EXCLUSIVE mode: format
-- changes run one at a time (two adds cannot both pass the overlap check),
-- while reads and scans (ROW SHARE for the trigger's FOR KEY SHARE) go on.
CREATE OR REPLACE FUNCTION tt_parent_format_add(p_name text, p_pattern text, p_capacity integer,
                                                p_expected_weight_kg numeric) RETURNS parent_format
LANGUAGE plpgsql AS $$
DECLARE
    f parent_format;
BEGIN
    LOCK TABLE parent_format IN SHARE ROW EXCLUSIVE MODE;
    IF p_name IS NULL OR p_pattern IS NULL THEN
        PERFORM tt_fail('TT400', 'validation_error', 'a format needs a name and a pattern');
    END IF;
    PERFORM tt_parent_format_check(p_name, p_pattern, coalesce(p_capacity, 30), coalesce(p_expected_weight_kg, 30));
    IF EXISTS (SELECT 1 FROM parent_format WHERE name = p_name) THEN
        PERFORM tt_fail('TT409', 'format_exists', format('a parent format named %s exists already', p_name));
    END IF;
    PERFORM tt_parent_format_overlap(NULL, p_pattern);
    INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg)
    VALUES (p_name, p_pattern, coalesce(p_capacity, 30), coalesce(p_expected_weight_kg, 30))
    RETURNING * INTO f;
    RETURN f;
END $$;

-- NULL keeps a value. Capacity and expected weight apply to parents created
-- from now on; the pattern changes only while no parent matches the current one.
CREATE OR REPLACE FUNCTION tt_parent_format_change(p_name text, p_pattern text, p_capacity integer,
                                                   p_expected_weight_kg numeric) RETURNS parent_format
LANGUAGE plpgsql AS $$
DECLARE
    f parent_format;
    used text;
BEGIN
    LOCK TABLE parent_format IN SHARE ROW EXCLUSIVE MODE;
    PERFORM tt_parent_format_check(NULL, p_pattern, p_capacity, p_expected_weight_kg);
    IF p_pattern IS NULL THEN
        SELECT * INTO f FROM parent_format WHERE name = p_name;
    ELSE  -- waits for the scans creating parents with it (the trigger's FOR KEY SHARE)
        SELECT * INTO f FROM parent_format WHERE name = p_name FOR UPDATE;
    END IF;
    IF f.id IS NULL THEN
        PERFORM tt_fail('TT404', 'format_not_found', format('no parent format named %s', p_name));
    END IF;
    IF p_pattern IS NOT NULL AND p_pattern <> f.pattern THEN
        used := tt_parent_format_used_by(f.pattern);
        IF used IS NOT NULL THEN
            PERFORM tt_fail('TT409', 'format_in_use',
                            format('the pattern of %s cannot change: parent %s matches it', f.name, used));
        END IF;
        PERFORM tt_parent_format_overlap(f.id, p_pattern);
    END IF;
    UPDATE parent_format SET pattern = coalesce(p_pattern, pattern),
                             capacity = coalesce(p_capacity, capacity),
                             expected_weight_kg = coalesce(p_expected_weight_kg, expected_weight_kg)
    WHERE id = f.id
    RETURNING * INTO f;
    RETURN f;
END $$;

-- Remove a format no parent uses (409 format_in_use otherwise). QRs it matched
-- are child QRs from then on.
CREATE OR REPLACE FUNCTION tt_parent_format_remove(p_name text) RETURNS parent_format
LANGUAGE plpgsql AS $$
DECLARE
    f parent_format;
    used text;
BEGIN
    LOCK TABLE parent_format IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO f FROM parent_format WHERE name = p_name FOR UPDATE;
    IF f.id IS NULL THEN
        PERFORM tt_fail('TT404', 'format_not_found', format('no parent format named %s', p_name));
    END IF;
    used := tt_parent_format_used_by(f.pattern);
    IF used IS NOT NULL THEN
        PERFORM tt_fail('TT409', 'format_in_use',
                        format('format %s is in use: parent %s matches it', f.name, used));
    END IF;
    DELETE FROM parent_format WHERE id = f.id;
    RETURN f;
END $$;

INSERT INTO definer_function (name) VALUES
    ('tt_parent_format_add'), ('tt_parent_format_change'), ('tt_parent_format_remove')
ON CONFLICT DO NOTHING;
