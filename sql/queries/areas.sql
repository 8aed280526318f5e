-- name: list_areas :many
-- Every dispatch area, by name.
SELECT name, label FROM dispatch_area ORDER BY name;

-- name: create_area :one
-- Add a dispatch area.
INSERT INTO dispatch_area (name, label) VALUES (%(name)s, %(label)s) RETURNING name, label;

-- name: list_parent_formats :many
-- The parent QR formats, in matching order.
SELECT name, pattern, capacity, expected_weight_kg FROM parent_format ORDER BY id;

-- name: create_parent_format :one
-- Add a parent QR format.
INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg)
VALUES (%(name)s, %(pattern)s, %(capacity)s, %(expected_weight_kg)s)
RETURNING name, pattern, capacity, expected_weight_kg;

-- name: area_exists :scalar
-- Whether a dispatch area of this name exists.
SELECT EXISTS (SELECT 1 FROM dispatch_area WHERE name = %(name)s);
