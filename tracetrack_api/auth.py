"""Authentication: bearer tokens checked with one HMAC (no database), and the
caller's role, area, active flag and token version from a per-process cache.
A token carries its user's token version when issued; a logout, a new
password, a deactivation or a role change bumps the version, which ends
every older token. The database announces such a change at commit
(NOTIFY), and UserChangeListener makes every listening worker forget the
user at once; where nothing listens, the cache's refresh time
(`user_refresh_seconds`) bounds the delay. No database round trip on the
hot path either way."""

from __future__ import annotations

import logging
import threading
import time

from tracetrack_db import Database, Principal, users
from tracetrack_db.errors import TraceTrackError

from .errors import Unauthenticated
from .tokens import TokenSigner


class UserDirectory:
    """Current role/area/active flag per user id, cached for a short time."""

    def __init__(self, db: Database, refresh_seconds: float):
        self.db = db
        self.refresh = refresh_seconds
        self._cache: dict[int, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self._forgotten = 0  # bumped by every forget: a lookup that raced one is not kept

    def get(self, user_id: int) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        before = self._forgotten
        principal = users.get_principal(self.db, user_id)
        with self._lock:
            if self._forgotten == before:  # else it may predate the change just announced
                self._cache[user_id] = (now + self.refresh, principal)
        return principal

    def forget(self, user_id: int) -> None:
        with self._lock:
            self._forgotten += 1
            self._cache.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._forgotten += 1
            self._cache.clear()


log = logging.getLogger(__name__)


class UserChangeListener:
    """Forgets a cached user as soon as the database announces a change to it
    (LISTEN tracetrack_user; a trigger NOTIFYs at commit): a logout, a new
    password, a deactivation or a role change then ends that user's tokens in
    every worker of every server at once. While it cannot listen (a lost
    connection) the cache's refresh time still bounds the delay; after a
    reconnection it forgets everything it may have missed. One connection of
    its own per worker process, a session: through PgBouncer in transaction
    mode LISTEN lands on a pooled server connection and nothing ever arrives,
    so `conninfo` (TRACETRACK_LISTEN_URL) must reach PostgreSQL itself."""

    CHANNEL = "tracetrack_user"

    def __init__(self, conninfo: str, directory: UserDirectory, retry_seconds: float = 2.0):
        self.conninfo = conninfo
        self.directory = directory
        self.retry = retry_seconds
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracetrack-user-listener", daemon=True)

    def start(self) -> UserChangeListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # whatever changed while nobody listened is forgotten once listening
                for user_id in users.watch_changes(self.conninfo, self._stop, self._listening):
                    self.directory.forget(user_id)
            except TraceTrackError as exc:
                log.warning("user change listener: %s; the user cache refresh time applies meanwhile", exc)
            except users.CannotListen as exc:  # a setting to fix, not an outage to wait out
                log.warning(
                    "user change listener: %s; until then user changes reach this worker within "
                    "TRACETRACK_USER_REFRESH (%s s)",
                    exc,
                    self.directory.refresh,
                )
                return
            self.listening.clear()
            self._stop.wait(self.retry)

    def _listening(self) -> None:
        self.directory.clear()
        self.listening.set()


class Authenticator:
    def __init__(self, signer: TokenSigner, directory: UserDirectory):
        self.signer = signer
        self.directory = directory

    def __call__(self, header: str | None) -> Principal:
        """The caller of an `Authorization: Bearer <token>` header, or Unauthenticated."""
        if not header:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use Authorization: Bearer <token>")
        claims = self.signer.verify(token.strip())
        if claims is None:
            raise Unauthenticated("invalid or expired token")
        user = self.directory.get(claims.user_id)
        if user is not None and claims.version > user.token_version:
            # issued after this process last looked (a login after a logout or a new
            # password, served by another worker): look again rather than refuse it
            self.directory.forget(claims.user_id)
            user = self.directory.get(claims.user_id)
        if user is None:
            raise Unauthenticated("this account is deactivated or gone")
        if claims.version != user.token_version:
            raise Unauthenticated(
                "this token has been ended (a logout, a new password or role, or a deactivation): log in again"
            )
        return user
