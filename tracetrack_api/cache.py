"""A small cache: Redis when REDIS_URL is set, else in-process.

Redis trouble never becomes a request error: a failed call counts as a miss
(or a no-op) and the next call tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


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

    def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that lives `ttl` seconds from its first increment."""
        now = self._clock()
        with self._lock:
            expires, value = self._counters.get(key, (now + ttl, 0))
            if expires < now:
                expires, value = now + ttl, 0
            self._counters[key] = (expires, value + 1)
            if len(self._counters) > self.MAX_ITEMS:
                self._counters = {k: v for k, v in self._counters.items() if v[0] >= now}
            return value + 1

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
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, health_check_interval=10,
            retry_on_timeout=False, max_connections=64)

    def _guard(self, what: str, default, call):
        try:
            return call()
        except self._errors as exc:
            log.warning("redis %s failed: %s", what, exc)
            return default

    def get(self, key: str) -> bytes | None:
        return self._guard("get", None, lambda: self.client.get(self.prefix + key))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._guard("set", None, lambda: self.client.set(self.prefix + key, value, px=int(ttl * 1000)))

    def delete(self, *keys: str) -> None:
        if keys:
            self._guard("delete", None, lambda: self.client.delete(*(self.prefix + k for k in keys)))

    def incr(self, key: str, ttl: float) -> int:
        def go() -> int:
            pipe = self.client.pipeline()
            pipe.incr(self.prefix + key)
            pipe.pexpire(self.prefix + key, int(ttl * 1000), nx=True)
            return pipe.execute()[0]

        return self._guard("incr", 0, go)

    def ping(self) -> float | None:
        """Round-trip latency in ms, or None when Redis is unreachable."""
        start = time.perf_counter()
        ok = self._guard("ping", False, self.client.ping)
        return (time.perf_counter() - start) * 1000 if ok else None

    def close(self) -> None:
        self.client.close()


def make_cache(redis_url: str | None) -> LocalCache | RedisCache:
    return RedisCache(redis_url) if redis_url else LocalCache()
