-- When each materialized view was last refreshed, for `as_of` and /metrics.
CREATE TABLE view_refresh (
    view_name     text PRIMARY KEY,
    refreshed_at  timestamptz NOT NULL,
    duration_ms   double precision NOT NULL
);
