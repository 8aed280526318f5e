-- name: event_partitions_ahead :scalar
-- Partitions of event for this month and the next `months` (and the default),
-- strays in the default set aside and their months made; how many it made (0021).
SELECT tt_event_partitions_ahead(%(months)s::integer);

-- name: event_strays_move :scalar
-- Strays set aside put back into event, up to `rows` (or all of one month at
-- once, attached as its partition); how many (0: none left).
SELECT tt_event_strays_move(%(rows)s::integer);

-- name: event_partition_count :scalar
-- How many partitions event has (the default included).
SELECT count(*) FROM tt_event_partitions();

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
-- nothing was archived), and the earliest creation among what the history draws
-- on: the bag, its current children, its bill (its parent's, for a child); NULL
-- for a deleted bag. A child's stays in parents begin after the child was made.
WITH cut AS (SELECT max(range_to) AS retained_from FROM event_archive)
SELECT cut.retained_from,
       (SELECT least(b.created_at,
                     (SELECT min(c.created_at) FROM bag c WHERE c.parent_id = b.id),
                     (SELECT l.created_at FROM bill l
                      WHERE l.id = coalesce(b.bill_id, (SELECT p.bill_id FROM bag p WHERE p.id = b.parent_id))))
        FROM bag b WHERE b.qr_id = %(qr_id)s AND cut.retained_from IS NOT NULL) AS created_at
FROM cut;
