"""A small cache: Redis when REDIS_URL is set, else in-process.

Redis trouble never becomes a request error: a failed call is answered by
an in-process cache instead, and the next call tries Redis again. Counters
and reservations fall back too, so a login throttle keeps counting (per
process) while Redis is down rather than letting every guess through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tracetrack_db import throttle
from tracetrack_db.errors import TraceTrackError

log = logging.getLogger(__name__)
UNANSWERED = b"\x00unanswered"  # get_shared's answer when the shared store did not answer


class LocalCache:
    """The in-process cache: bounded, so that no stream of keys grows it without end."""

    kind = "local"
    MAX_ITEMS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # injectable: tests move time without sleeping
        self._data: dict[str, tuple[float, bytes]] = {}
        self._counters: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None or item[0] < self._clock():
            return None
        return item[1]

    def get_shared(self, key: str) -> bytes | None:
        """`get`: this cache is the one every user of it shares."""
        return self.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        now = self._clock()
        with self._lock:
            if len(self._data) >= self.MAX_ITEMS and key not in self._data:
                self._data = {k: v for k, v in self._data.items() if v[0] >= now}  # the expired go first
                while len(self._data) >= self.MAX_ITEMS:  # then the oldest
                    del self._data[next(iter(self._data))]
            self._data[key] = (now + ttl, value)

    def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)
            self._counters.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that lives `ttl` seconds from its first increment."""
        now = self._clock()
        with self._lock:
            expires, value = self._counters.get(key, (now + ttl, 0))
            if expires < now:
                expires, value = now + ttl, 0
            self._counters[key] = (expires, value + 1)
            if len(self._counters) > self.MAX_ITEMS:  # the expired go first, then the oldest, in one pass
                live = [(k, v) for k, v in self._counters.items() if v[0] >= now]
                self._counters = dict(live[-(self.MAX_ITEMS * 9 // 10) :])
            return value + 1

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set `key` unless it is already set (and unexpired): whether it was set."""
        now = self._clock()
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] >= now:
                return False
        self.set(key, value, ttl)
        return True

    def ping(self) -> float | None:
        return 0.0

    def close(self) -> None:
        pass


class RedisCache:
    kind = "redis"

    def __init__(self, url: str, prefix: str = "tracetrack:"):
        import redis

        self._errors = (redis.RedisError, OSError)
        self.prefix = prefix
        self.local = LocalCache()  # answers while Redis does not
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            health_check_interval=10,
            retry_on_timeout=False,
            max_connections=64,
        )

    def _guard(self, what: str, call, fallback):
        try:
            return call()
        except self._errors as exc:
            log.warning("redis %s failed (answered in-process): %s", what, exc)
            return fallback()

    def get(self, key: str) -> bytes | None:
        return self._guard("get", lambda: self.client.get(self.prefix + key), lambda: self.local.get(key))

    def get_shared(self, key: str) -> bytes | None:
        """What every process sees under `key`; None when Redis does not answer
        (this process's own copy would not be what the others wrote)."""
        return self._guard("get", lambda: self.client.get(self.prefix + key), lambda: UNANSWERED)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._guard(
            "set",
            lambda: self.client.set(self.prefix + key, value, px=int(ttl * 1000)),
            lambda: self.local.set(key, value, ttl),
        )

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return self._guard(
            "add",
            lambda: bool(self.client.set(self.prefix + key, value, px=int(ttl * 1000), nx=True)),
            lambda: self.local.add(key, value, ttl),
        )

    def delete(self, *keys: str) -> None:
        self.local.delete(*keys)
        if keys:
            self._guard("delete", lambda: self.client.delete(*(self.prefix + k for k in keys)), lambda: None)

    def incr(self, key: str, ttl: float) -> int:
        def go() -> int:
            # SET NX gives a new counter its lifetime, INCR keeps it (PEXPIRE NX would need Redis 7)
            pipe = self.client.pipeline()
            pipe.set(self.prefix + key, 0, px=int(ttl * 1000), nx=True)
            pipe.incr(self.prefix + key)
            return pipe.execute()[1]

        return self._guard("incr", go, lambda: self.local.incr(key, ttl))

    def ping(self) -> float | None:
        """Round-trip latency in ms, or None when Redis is unreachable."""
        start = time.perf_counter()
        ok = self._guard("ping", self.client.ping, lambda: False)
        return (time.perf_counter() - start) * 1000 if ok else None

    def close(self) -> None:
        self.client.close()


def make_cache(redis_url: str | None) -> LocalCache | RedisCache:
    return RedisCache(redis_url) if redis_url else LocalCache()


class SharedCounters:
    """Counters and marks every API process shares through PostgreSQL (the
    `throttle` table), for when there is no Redis: the login throttle and the
    one-export-per-user mark must not be per process. A database error is
    answered from an in-process LocalCache, as a Redis error is."""

    kind = "postgres"

    def __init__(self, db) -> None:
        self.db = db
        self.local = LocalCache()

    def _guard(self, what: str, call, fallback):
        try:
            return call()
        except TraceTrackError as exc:
            log.warning("shared counter %s failed (answered in-process): %s", what, exc)
            return fallback()

    def incr(self, key: str, ttl: float) -> int:
        return self._guard("incr", lambda: throttle.incr(self.db, key, ttl), lambda: self.local.incr(key, ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return self._guard("add", lambda: throttle.add(self.db, key, ttl), lambda: self.local.add(key, value, ttl))

    def delete(self, *keys: str) -> None:
        self.local.delete(*keys)
        self._guard("delete", lambda: throttle.delete(self.db, *keys), lambda: None)


def shared_counters(cache: LocalCache | RedisCache, db) -> RedisCache | SharedCounters | LocalCache:
    """Where counters every process must share live: Redis when configured, else
    PostgreSQL. (A LocalCache given explicitly, in tests, stays itself.)"""
    return cache if isinstance(cache, RedisCache) else SharedCounters(db)
