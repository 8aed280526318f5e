-- name: event_partitions_ahead :scalar
-- Partitions of event for this month and the next `months` (and the default),
-- strays in the default set aside and their months made; how many it made (0021).
SELECT tt_event_partitions_ahead(%(months)s::integer);

-- name: event_strays_move :scalar
-- Up to `rows` strays set aside moved back into event; how many (0: none left).
SELECT tt_event_strays_move(%(rows)s::integer);

-- name: event_partitions :many
-- Every partition of event with its bounds (range_from NULL: from the beginning) and rows (planner estimate: no count),
-- oldest first, the default last; and each archived range.
SELECT p.partition::text AS name, nullif(p.range_from, '-infinity') AS range_from, p.range_to, p.is_default,
       greatest(c.reltuples, 0)::bigint AS estimated_rows, false AS archived
FROM tt_event_partitions() p JOIN pg_class c ON c.oid = p.partition
UNION ALL
SELECT partition_name, nullif(range_from, '-infinity'), range_to, false, rows, true FROM event_archive
ORDER BY is_default, range_from NULLS FIRST;

-- name: history_retention :one
-- For a bag's history: the first moment the event log still holds (NULL when
-- nothing was archived), and when the bag was created (NULL for a deleted one).
SELECT (SELECT max(range_to) FROM event_archive) AS retained_from,
       (SELECT created_at FROM bag WHERE qr_id = %(qr_id)s) AS created_at;
