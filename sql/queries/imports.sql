-- name: list_rules :many
-- Every label extraction rule, by name.
SELECT id, name, pattern, description, created_at, updated_at FROM extraction_rule ORDER BY name;

-- name: get_rule :one
-- One extraction rule by name.
SELECT id, name, pattern, description, created_at, updated_at FROM extraction_rule WHERE name = %(name)s;

-- name: add_rule :one
-- Store a new extraction rule.
INSERT INTO extraction_rule (name, pattern, description, created_by)
VALUES (%(name)s, %(pattern)s, %(description)s, %(user_id)s)
RETURNING id, name, pattern, description, created_at, updated_at;

-- name: change_rule :one
-- Change a rule's pattern or description (NULL keeps it).
UPDATE extraction_rule SET pattern = coalesce(%(pattern)s, pattern),
                           description = coalesce(%(description)s, description),
                           updated_at = now()
WHERE name = %(name)s
RETURNING id, name, pattern, description, created_at, updated_at;

-- name: parent_qrs :many
-- Which of these QRs match a parent format (the blocks layout's parents).
SELECT q FROM unnest(%(qrs)s::text[]) AS q WHERE EXISTS (SELECT 1 FROM parent_format f WHERE q ~ f.pattern);

-- name: start_import :scalar
-- Record an import as it starts; its id.
INSERT INTO import_job (created_by, file_name, file_sha256, file_bytes, file_format, layout, rule, rule_pattern,
                        dry_run, all_or_nothing, dispatch_area)
VALUES (%(user_id)s, %(file_name)s, %(file_sha256)s, %(file_bytes)s, %(file_format)s, %(layout)s, %(rule)s,
        %(rule_pattern)s, %(dry_run)s, %(all_or_nothing)s, %(dispatch_area)s)
RETURNING id;

-- name: finish_import :exec
-- Record an import's outcome.
UPDATE import_job SET finished_at = now(), status = %(status)s, rows = %(rows)s, blocks = %(blocks)s,
                      failed_blocks = %(failed_blocks)s, verdicts = %(verdicts)s, codes = %(codes)s,
                      message = %(message)s
WHERE id = %(job_id)s;

-- name: fail_import :exec
-- An import that stopped after it was recorded: the rows its committed chunks
-- applied stay applied (and their results are kept); the counts come from them.
UPDATE import_job j SET finished_at = now(), status = 'failed', message = %(message)s,
                        rows = (SELECT count(*) FROM import_row r WHERE r.job_id = j.id)
WHERE j.id = %(job_id)s;

-- name: copy_import_rows :exec
-- Per-row results, written with COPY.
COPY import_row (job_id, row_no, input, qr, block, verdict, code, message) FROM STDIN;

-- name: import_analyze :scalar
-- Fresh statistics for the writers' plans when bag or event changed a lot (see 0011).
SELECT tt_import_analyze();

-- name: import_links :many
-- Apply (or check) a chunk of links blocks: a verdict per row.
SELECT row_no, verdict, code, message
FROM tt_import_links(%(job_id)s, %(user_id)s, %(dispatch_area)s, %(parents)s::text[], %(parent_rows)s::integer[],
                     %(ends)s::integer[], %(rows)s::integer[], %(qrs)s::text[]);

-- name: import_bills :many
-- Apply (or check) a chunk of bills blocks: a verdict per row.
SELECT row_no, verdict, code, message
FROM tt_import_bills(%(job_id)s, %(user_id)s, %(bills)s::text[], %(capacities)s::integer[],
                     %(destinations)s::text[], %(vehicles)s::text[], %(descriptions)s::text[],
                     %(ends)s::integer[], %(rows)s::integer[], %(qrs)s::text[]);

-- name: import_bags :many
-- Register (or check) a chunk of bags: a verdict per row.
SELECT row_no, verdict, code, message
FROM tt_import_bags(%(job_id)s, %(user_id)s, %(rows)s::integer[], %(qrs)s::text[], %(types)s::text[],
                    %(areas)s::text[]);

-- name: get_import :one
-- One import job.
SELECT j.id, j.created_by, u.username AS created_by_username, j.created_at, j.finished_at, j.file_name,
       j.file_sha256, j.file_bytes, j.file_format, j.layout, j.rule, j.rule_pattern, j.dry_run, j.all_or_nothing,
       j.dispatch_area, j.status, j.rows, j.blocks, j.failed_blocks, j.verdicts, j.codes, j.message
FROM import_job j LEFT JOIN app_user u ON u.id = j.created_by
WHERE j.id = %(job_id)s;

-- name: import_problems :many
-- The first rows of an import that were not applied, by row number.
SELECT row_no, input, qr, block, verdict, code, message FROM import_row
WHERE job_id = %(job_id)s AND verdict IN ('error', 'skipped')
ORDER BY row_no LIMIT %(limit)s;
