-- name: ping :scalar
-- Liveness of the database (GET /health).
SELECT 1;
