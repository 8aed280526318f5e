"""The cache: a real Redis (REDIS_URL for the basics, a private redis-server
we can stop and start for outages) and the in-process fallback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import falcon.testing
import pytest

from tracetrack_api.app import create_app
from tracetrack_api.cache import LocalCache, RedisCache, make_cache
from tracetrack_api.config import ApiSettings
from tracetrack_db import Settings, users

from .conftest import service_missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server on a free port, for stopping and starting."""

    def __init__(self, tmp_path, binary: str | None = None):
        binary = binary or shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server is not installed")
        self.binary, self.dir, self.port = binary, tmp_path, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_cache_basics_on_the_real_redis(redis_url):
    cache = RedisCache(redis_url, prefix=f"tt-test-{uuid.uuid4().hex[:8]}:")
    assert cache.get("k") is None
    cache.set("k", b"value", ttl=5)
    assert cache.get("k") == b"value"
    assert cache.client.pttl(cache.prefix + "k") > 0  # expires on its own
    cache.delete("k")
    assert cache.get("k") is None
    assert [cache.incr("n", 5) for _ in range(3)] == [1, 2, 3]
    assert cache.ping() is not None
    cache.close()


def test_make_cache_picks_redis_only_when_configured(redis_url):
    assert isinstance(make_cache(None), LocalCache)
    assert isinstance(make_cache(redis_url), RedisCache)


def test_local_cache_expiry_and_counters():
    now = [100.0]
    cache = LocalCache(clock=lambda: now[0])
    cache.set("k", b"v", ttl=5)
    now[0] += 4.9
    assert cache.get("k") == b"v"
    now[0] += 0.2
    assert cache.get("k") is None
    assert [cache.incr("c", 60) for _ in range(3)] == [1, 2, 3]
    now[0] += 59
    assert cache.incr("c", 60) == 4  # the counter lives 60 s from its first increment ...
    now[0] += 2
    assert cache.incr("c", 60) == 1  # ... then starts again


def test_redis_outage_costs_no_failed_request_and_recovery_is_picked_up(db, own_redis):
    users.create_user(db, "boss", "boss-password", "admin")
    cache = RedisCache(own_redis.url)
    settings = ApiSettings(db=Settings(), redis_url=own_redis.url, secret_key="cache-test-secret-0123456789")
    client = falcon.testing.TestClient(create_app(db, settings, cache=cache))

    def login():
        return client.simulate_post("/api/auth/login", json={"username": "boss", "password": "boss-password"})

    token = login().json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.simulate_get("/api/dashboard/analytics", headers=headers).status_code == 200
    assert cache.client.exists("tracetrack:dashboard:*") == 1  # answered and cached in Redis

    own_redis.stop()
    for _ in range(5):
        assert client.simulate_get("/api/dashboard/analytics", headers=headers).status_code == 200
        assert client.simulate_get("/health").json["checks"]["cache"] is False
    assert login().status_code == 200  # the login rate limit degrades, login still works

    own_redis.start()
    assert client.simulate_get("/api/dashboard/analytics", headers=headers).status_code == 200
    deadline = time.monotonic() + 10
    while not cache.client.exists("tracetrack:dashboard:*"):  # the next miss repopulates Redis
        assert time.monotonic() < deadline, "Redis was not used again after it came back"
        client.simulate_get("/api/dashboard/analytics", headers=headers)
        time.sleep(0.2)
    assert client.simulate_get("/health").json["checks"]["cache"] is True


def test_the_local_cache_is_bounded():
    now = [0.0]
    cache = LocalCache(clock=lambda: now[0])
    cache.MAX_ITEMS = 100
    for i in range(250):
        cache.set(f"k{i}", b"v", ttl=60)
    assert len(cache._data) == 100 and cache.get("k249") == b"v" and cache.get("k0") is None
    now[0] += 61  # all expired: the next set clears them rather than evicting live ones
    cache.set("fresh", b"v", ttl=60)
    assert list(cache._data) == ["fresh"]
