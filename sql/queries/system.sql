-- name: ping :scalar
-- Liveness of the database (GET /health).
SELECT 1;

-- name: max_connections :scalar
-- The server's connection limit (pool sizing at start-up).
SELECT current_setting('max_connections')::int;
