"""Read-your-writes across API processes: where each user's last write
reached in the primary's WAL, kept in the shared cache (Redis when set, so
that the next request may land on any process or machine).

Only with a replica (DATABASE_READ_URL): without one every read is on the
primary and nothing here runs.
"""

from __future__ import annotations

from tracetrack_db import Database
from tracetrack_db.replica import PRIMARY

from .cache import UNANSWERED, LocalCache, RedisCache


class WritePositions:
    def __init__(self, db: Database, cache: LocalCache | RedisCache, max_lag: float):
        self.db = db
        self.cache = cache
        # past this, the lag bound alone keeps a write from going missing (a replica
        # further behind gets no reads), so the position may be forgotten
        self.ttl = max_lag + 10.0

    def wrote(self, user_id: int) -> None:
        """After a write of `user_id` committed: remember the primary's position."""
        position = self.db.write_position()
        if position is not None:
            self.cache.set(f"wrote:{user_id}", b"%d" % position, self.ttl)

    def of(self, user_id: int) -> int:
        """The position `user_id`'s reads must see (0: none; PRIMARY["unknown"]
        when Redis does not answer: the write may have been on another process)."""
        raw = self.cache.get_shared(f"wrote:{user_id}")
        if raw == UNANSWERED:
            return PRIMARY["unknown"]
        return int(raw) if raw else 0
