"""Short-lived counters and marks shared by every process through PostgreSQL
(the UNLOGGED `throttle` table): what the HTTP service uses for its login
throttle and export marks when there is no Redis. Expired rows are reused in
place and purged by the view refresher."""

from __future__ import annotations

from .database import Database


def incr(db: Database, key: str, ttl: float) -> int:
    """Count one more under `key`; a count lives `ttl` seconds from its first increment."""
    return db.scalar("throttle_incr", {"key": key, "ttl": ttl})


def add(db: Database, key: str, ttl: float) -> bool:
    """Set `key` for `ttl` seconds unless it is set and unexpired; whether it was set."""
    return bool(db.scalar("throttle_add", {"key": key, "ttl": ttl}))


def record_write_position(db: Database, key: str, ttl: float) -> int:
    """Keep the primary's WAL insert position now under `key` for `ttl` seconds (the
    greater of it and an unexpired one): one round trip after a write."""
    return db.scalar("write_position_record", {"key": key, "ttl": ttl})


def write_position(db: Database, key: str) -> int | None:
    """The position kept under `key`, None when there is none (or it expired)."""
    return db.scalar("write_position_of", {"key": key})


def delete(db: Database, *keys: str) -> None:
    if keys:
        db.execute("throttle_delete", {"keys": list(keys)})


def purge(db: Database) -> int:
    """Forget expired counters and marks; how many."""
    return db.execute("purge_throttle")
