"""Authentication: bearer tokens checked with one HMAC (no database), and the
caller's role, area, active flag and token version from a per-process cache
refreshed at most every `user_refresh_seconds`. A token carries the token
version of its user when issued; a logout, a new password, a deactivation or
a role change bumps the version, which ends every older token: at once in
the process that made the change, within `user_refresh_seconds` in the
others, without a database round trip on the hot path."""

from __future__ import annotations

import threading
import time

from tracetrack_db import Database, Principal, users

from .errors import Unauthenticated
from .tokens import TokenSigner


class UserDirectory:
    """Current role/area/active flag per user id, cached for a short time."""

    def __init__(self, db: Database, refresh_seconds: float):
        self.db = db
        self.refresh = refresh_seconds
        self._cache: dict[int, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: int) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = users.get_principal(self.db, user_id)
        with self._lock:
            self._cache[user_id] = (now + self.refresh, principal)
        return principal

    def forget(self, user_id: int) -> None:
        self._cache.pop(user_id, None)


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
            raise Unauthenticated("this token has been ended (a logout, a new password or role, or a "
                                  "deactivation): log in again")
        return user
