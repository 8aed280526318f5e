-- name: list_formats :many
-- The parent QR formats, in matching order (the first match decides).
SELECT name, pattern, capacity, expected_weight_kg FROM parent_format ORDER BY id;

-- name: get_format :one
-- One parent format by name.
SELECT name, pattern, capacity, expected_weight_kg FROM parent_format WHERE name = %(name)s;

-- name: add_format :one
-- Add a parent format (tt_parent_format_add: checks, overlap, format_exists).
SELECT name, pattern, capacity, expected_weight_kg
FROM tt_parent_format_add(%(name)s::text, %(pattern)s::text, %(capacity)s::integer, %(expected_weight_kg)s::numeric);

-- name: change_format :one
-- Change a parent format's pattern (only while no parent uses it), capacity or expected weight (NULL keeps it).
SELECT name, pattern, capacity, expected_weight_kg
FROM tt_parent_format_change(%(name)s::text, %(pattern)s::text, %(capacity)s::integer,
                             %(expected_weight_kg)s::numeric);

-- name: remove_format :one
-- Remove a parent format no parent uses.
SELECT name, pattern, capacity, expected_weight_kg FROM tt_parent_format_remove(%(name)s::text);
