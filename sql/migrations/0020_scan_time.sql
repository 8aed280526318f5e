-- Reports count an offline scanner's events when they were scanned (issue 12,
-- item 6). An event's scan time is least(device_time, occurred_at): the
-- device's clock where a sync gave one (0018), never later than the server
-- applied it (a device clock ahead of the server's is skew, not a later scan),
-- and occurred_at for every other event. So scan time <= occurred_at always.
--
-- The rollup still covers the events whose occurred_at is before rolled_to
-- (a report counts the later ones from the event log), but it counts each in
-- the quarter of its scan time. A sync that brings events scanned hours or
-- days ago adds them to those old quarters (and their local days) at the next
-- roll-up: a recount from the last hour cannot see them, as their quarters lie
-- before it, so they are added to the quarter rows (ON CONFLICT ... + n)
-- instead. Each event is counted once: events newer than the last roll-up
-- (occurred_at >= the old rolled_to) whose quarter lies before the recount are
-- added; older ones are in the rows already. (An event whose transaction ran
-- for longer than the two minutes the roll-up stays behind, and whose scan
-- time lies before the recount, is missed; tt_roll_up_events(since) recounts.)
CREATE OR REPLACE FUNCTION tt_roll_up_events(p_since timestamptz DEFAULT NULL, p_zone text DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql AS $$
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
