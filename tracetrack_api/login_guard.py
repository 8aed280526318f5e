"""Login throttling that slows a guesser down without letting anyone lock a
user out.

- Per client address: at most `address_rate` login attempts in a minute, whatever
  the usernames (a flood of made-up names costs a password check each).
- Per username and client address: 5 free attempts in 15 minutes; after
  that each attempt must wait for the one before: 1 s, then 2, 4, ... up to
  5 minutes. Guessing someone's password from one address slows that address
  down; the user, from their own address, logs in as usual.
- Per process: at most `concurrent` argon2 checks at once (64 MiB and a few
  hundred ms each) and at most as many logins waiting for one (each for up to
  `queue_seconds`); any other login is refused at once. Logins thus hold at
  most 2 x `concurrent` of a worker's threads, whatever the flood, and the
  rest keep serving scans.

Each attempt is counted (atomically, in the shared counters) before its
password is checked, so parallel guesses cannot all slip in before the count
lands. Refusals are RateLimited (429) with Retry-After. The counters are
shared by every process of every server: in Redis when REDIS_URL is set,
else in PostgreSQL (the `throttle` table); while either is unreachable, in
the process.

The security log hears of it (the login handler writes the rows): a lockout
when a username from an address has used its free tries (each further attempt
waits), and a refused attempt once per refusal period and scope (`first_refusal`),
so a flood of refused attempts costs the database one row, not one each.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .cache import LocalCache, RedisCache, SharedCounters
from .errors import RateLimited

FREE_TRIES = 5
WINDOW_SECONDS = 15 * 60
MAX_DELAY_SECONDS = 5 * 60


class LoginGuard:
    def __init__(
        self,
        cache: LocalCache | RedisCache | SharedCounters,
        address_rate: int,
        concurrent: int,
        queue_seconds: float = 5.0,
    ):
        self.cache = cache
        self.address_rate = address_rate
        self.queue_seconds = queue_seconds
        self._checks = threading.BoundedSemaphore(concurrent)
        self._max_waiting = concurrent
        self._waiting = 0
        self._lock = threading.Lock()

    @contextmanager
    def attempt(self, name: str, address: str, on_lockout: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Hold one password check for `name` (already login_name'd) from
        `address`; raises RateLimited (with `scope`: address, user or busy)
        instead when the attempt must wait. `on_lockout` runs when this attempt
        is the first past the free tries of the window."""
        if self.cache.incr(f"login-address:{address_key(address)}", 60) > self.address_rate:  # a minute
            raise _refused("too many login attempts from this address: wait a minute", 60, "address")
        tries = f"login-tries:{name}:{address}"
        count = self.cache.incr(tries, WINDOW_SECONDS)
        if count > FREE_TRIES:
            if count == FREE_TRIES + 1:
                on_lockout()
            delay = min(2 ** (count - FREE_TRIES - 1), MAX_DELAY_SECONDS)
            if not self.cache.add(f"login-wait:{name}:{address}", b"1", delay):
                raise _refused(f"too many failed logins for this user from this address: wait {delay} s", delay, "user")
        self._take_a_check()
        try:
            yield
        finally:
            self._checks.release()
        self.cache.delete(tries)  # reached only when the login succeeded

    def _take_a_check(self) -> None:
        if self._checks.acquire(blocking=False):
            return
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise _refused("too many logins at once: retry in a moment", 1, "busy")
            self._waiting += 1
        try:
            if not self._checks.acquire(timeout=self.queue_seconds):
                raise _refused("too many logins at once: retry in a moment", 1, "busy")
        finally:
            with self._lock:
                self._waiting -= 1

    def first_refusal(self, name: str, address: str, refusal: RateLimited) -> bool:
        """Whether `refusal` is the first of its kind in its period (then it is
        worth a security log row): per address for the address limit, per
        username and address for the user one, one for all when logins are busy."""
        key = {"address": address_key(address), "user": f"{name}:{address}"}.get(refusal.scope, "")
        return bool(self.cache.add(f"login-refused:{refusal.scope}:{key}", b"1", refusal.retry_after))


def _refused(message: str, retry_after: int, scope: str) -> RateLimited:
    return RateLimited(message, retry_after=retry_after, scope=scope)


def address_key(address: str) -> str:
    """An IPv4 address as is; an IPv6 address by its /64, which one host can
    fill with addresses of its own."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address
