"""Read-your-writes across API processes: where each user's last write
reached in the primary's WAL, kept where every process sees it: Redis when
REDIS_URL is set, else PostgreSQL (the UNLOGGED `throttle` table the login
throttle uses without Redis), so that the next request may land on any
process or machine.

Each store keeps the maximum of the positions recorded (two writes of one
user racing: the earlier one's record landing last must not win). A write
whose position cannot be recorded (the primary gone just after the commit,
no pool connection, Redis down) is never failed for it: the user's reads go
to the primary for the TTL instead, by a marker in the store when it
answers, and in this process in any case.

Only with a replica (DATABASE_READ_URL): without one every read is on the
primary and nothing here runs.
"""

from __future__ import annotations

import logging

import psycopg

from tracetrack_db import Database, throttle
from tracetrack_db.errors import TraceTrackError
from tracetrack_db.replica import PRIMARY

from .cache import UNANSWERED, LocalCache, RedisCache

log = logging.getLogger(__name__)
UNKNOWN = (1 << 63) - 1  # the marker: this user's position is not known, read the primary

# SET if greater: Lua numbers are doubles, exact to 2**53 bytes of WAL (8 PiB);
# the marker (2**63 - 1) is greater than any position all the same
SET_MAX = """
local old = redis.call('GET', KEYS[1])
if not old or tonumber(ARGV[1]) > tonumber(old) then
  return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


class WritePositions:
    def __init__(self, db: Database, cache: LocalCache | RedisCache, max_lag: float):
        self.db = db
        self.redis = cache if isinstance(cache, RedisCache) else None
        self._set_max = self.redis.client.register_script(SET_MAX) if self.redis is not None else None
        # past this, the lag bound alone keeps a write from going missing (a replica
        # further behind gets no reads), so the position may be forgotten
        self.ttl = max_lag + 10.0
        self.unrecorded = LocalCache()  # users whose last position this process could not record

    def wrote(self, user_id: int) -> None:
        """After a write of `user_id` (committed, or some of it: call it in a
        `finally`): remember the primary's position. Never raises."""
        key = f"wrote:{user_id}"
        try:
            if self.redis is None:
                throttle.record_write_position(self.db, key, self.ttl)  # one round trip, the position read in it
                return
            try:
                position = self.db.write_position() or UNKNOWN
            except Exception as exc:  # noqa: BLE001 - any failure: the marker, in Redis, for every process
                log.warning("the position of a write is unknown (the user's reads go to the primary): %s", exc)
                position = UNKNOWN
            self.record(key, position)
        except Exception as exc:  # noqa: BLE001 - the write committed: its answer must not depend on this
            log.warning("the position of a write was not recorded (the user's reads go to the primary): %s", exc)
            self.unrecorded.set(key, b"1", self.ttl)

    def record(self, key: str, position: int) -> None:
        """Redis: `position` under `key`, unless a greater one is there already."""
        assert self.redis is not None and self._set_max is not None
        self._set_max(keys=[self.redis.prefix + key], args=[position, int(self.ttl * 1000)])

    def of(self, user_id: int) -> int:
        """The position `user_id`'s reads must see (0: none; PRIMARY["unknown"]
        when it is not known: not recorded, or the store does not answer)."""
        key = f"wrote:{user_id}"
        if self.unrecorded.get(key) is not None:
            return PRIMARY["unknown"]
        if self.redis is not None:
            raw = self.redis.get_shared(key)
            if raw == UNANSWERED:
                return PRIMARY["unknown"]
            position = int(raw) if raw else 0
        else:
            try:
                position = throttle.write_position(self.db, key) or 0
            except (TraceTrackError, psycopg.Error):  # not known: the primary answers (or says it is down)
                return PRIMARY["unknown"]
        return PRIMARY["unknown"] if position == UNKNOWN else position
