-- Safe to deploy (issue 9).

-- CSV cells a spreadsheet would run as a formula (=, +, -, @, and tab or CR
-- that some of them skip first) get a leading apostrophe in every export: the
-- cell shows as the text it is. Inlined by the planner (a plain SQL function).
CREATE FUNCTION tt_csv_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v ~ '^[-=+@\t\r]' THEN '''' || v ELSE v END
$$;

-- Tokens carry their user's token_version; a logout, a password change, a
-- deactivation and a role change bump it, which ends every token issued
-- before (replaces tokens_valid_after, whose whole seconds let a token issued
-- in the same second as a password change live on). No account lock: failed
-- logins are throttled per username and client address by the service, so a
-- stranger cannot lock a user out (the lock columns go).
ALTER TABLE app_user ADD COLUMN token_version integer NOT NULL DEFAULT 0;
ALTER TABLE app_user DROP COLUMN tokens_valid_after, DROP COLUMN failed_logins, DROP COLUMN locked_until;

-- The library's User, written once.
CREATE VIEW user_row AS
SELECT id, username, role, dispatch_area, is_active, last_login_at, created_at, updated_at FROM app_user;

-- Linking: a parent given as a child is refused before it is locked (below).
CREATE OR REPLACE FUNCTION tt_link_locked(p_parent_id bigint, p_child_qr text, p_user bigint,
                                          p_restrict_area text, p_key text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p bag;
    c bag;
BEGIN
    SELECT * INTO p FROM bag WHERE id = p_parent_id;  -- locked by the caller
    -- A parent given as the child is refused before any lock on it: locking it
    -- first let link(P1, child P2) and link(P2, child P1) deadlock, each holding
    -- its parent. A bag's type never changes (trigger), so the unlocked look is
    -- final; confined callers get the answer an unknown parent QR gets.
    IF EXISTS (SELECT 1 FROM bag x WHERE x.qr_id = p_child_qr AND x.type = 'parent') THEN
        PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_child_qr));
    END IF;
    FOR attempt IN 1..3 LOOP
        SELECT * INTO c FROM bag WHERE qr_id = p_child_qr FOR UPDATE;
        IF c.id IS NOT NULL THEN
            IF p_restrict_area IS NOT NULL AND c.dispatch_area <> p_restrict_area THEN
                IF (tt_parent_format(p_child_qr)).capacity IS NOT NULL THEN
                    PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_child_qr));
                END IF;
                PERFORM tt_fail('TT403', 'wrong_area', format('%s belongs to another dispatch area', p_child_qr));
            END IF;
            IF c.type <> 'child' THEN
                PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent bag', p_child_qr));
            END IF;
            IF c.dispatch_area <> p.dispatch_area THEN  -- an admin's link, too, stays in one area
                PERFORM tt_fail('TT403', 'wrong_area',
                                format('%s belongs to another dispatch area than %s', p_child_qr, p.qr_id));
            END IF;
            IF c.parent_id = p.id THEN
                RETURN 'already_linked';
            END IF;
            IF c.parent_id IS NOT NULL THEN
                PERFORM tt_fail('TT409', 'child_in_other_parent',
                                format('%s is already in another parent', p_child_qr));
            END IF;
            IF p.child_count >= p.capacity THEN
                PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', p.qr_id, p.capacity));
            END IF;
            UPDATE bag SET parent_id = p.id, status = 'completed', updated_at = now()
            WHERE id = c.id RETURNING * INTO c;
            EXIT;
        END IF;
        IF (tt_parent_format(p_child_qr)).capacity IS NOT NULL THEN
            PERFORM tt_fail('TT422', 'not_a_child', format('%s is a parent QR', p_child_qr));
        END IF;
        IF p.child_count >= p.capacity THEN
            PERFORM tt_fail('TT409', 'parent_full', format('%s is full (%s)', p.qr_id, p.capacity));
        END IF;
        INSERT INTO bag (qr_id, type, status, dispatch_area, parent_id, weight_kg, created_by)
        VALUES (p_child_qr, 'child', 'completed', p.dispatch_area, p.id, tt_child_weight(), p_user)
        ON CONFLICT (qr_id) DO NOTHING
        RETURNING * INTO c;
        EXIT WHEN c.id IS NOT NULL;
        -- another transaction registered this QR meanwhile: look again
    END LOOP;
    IF c.id IS NULL OR c.parent_id IS DISTINCT FROM p.id THEN
        PERFORM tt_fail('TT409', 'child_in_other_parent', format('%s was taken concurrently', p_child_qr));
    END IF;
    UPDATE bag SET child_count = child_count + 1,
                   weight_kg = weight_kg + c.weight_kg,
                   status = CASE WHEN child_count + 1 = capacity THEN 'completed' ELSE 'in_progress' END,
                   updated_at = now()
    WHERE id = p.id;
    PERFORM tt_event('link', p_user, c, p, NULL, p_key);
    RETURN 'linked';
END $$;
