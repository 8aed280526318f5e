"""Authentication and authorisation.

A request's token is checked with one HMAC (no database). The user's role,
area and active flag come from a per-process cache refreshed at most every
`user_refresh_seconds`, so a deactivation or a role change takes effect
within that time without a database round trip on the hot path.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import falcon

from tracetrack_db import Database, errors

from .tokens import TokenSigner


class Unauthenticated(errors.TraceTrackError):
    code, status = "unauthenticated", 401


class RateLimited(errors.TraceTrackError):
    code, status = "rate_limited", 429


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    username: str
    role: str
    dispatch_area: str | None
    tokens_valid_after: int = 0  # epoch seconds: older tokens are refused (password changed)

    @property
    def restrict_area(self) -> str | None:
        """The only area this user may see and scan (dispatchers), else None."""
        return self.dispatch_area if self.role == "dispatcher" else None


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
        principal = self._load(user_id)
        with self._lock:
            self._cache[user_id] = (now + self.refresh, principal)
        return principal

    def _load(self, user_id: int) -> Principal | None:
        """The user as the database has it now (None: inactive or gone)."""
        row = self.db.one("get_principal", {"id": user_id}, row=dict)
        if row is None or not row["is_active"]:
            return None
        return Principal(row["id"], row["username"], row["role"], row["dispatch_area"], row["tokens_valid_after"])

    def forget(self, user_id: int) -> None:
        self._cache.pop(user_id, None)


class AuthMiddleware:
    """Sets req.context.user for resources that are not `auth_exempt`."""

    def __init__(self, signer: TokenSigner, directory: UserDirectory):
        self.signer = signer
        self.directory = directory

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if resource is None or getattr(resource, "auth_exempt", False):
            return
        header = req.get_header("Authorization")
        if not header:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use Authorization: Bearer <token>")
        claims = self.signer.verify(token.strip())
        if claims is None:
            raise Unauthenticated("invalid or expired token")
        user = self.directory.get(claims.user_id)
        if user is None:
            raise Unauthenticated("this account is deactivated or gone")
        if claims.issued_at < user.tokens_valid_after:
            raise Unauthenticated("this token was issued before the password changed: log in again")
        req.context.user = user


def require(req: falcon.Request, *roles: str) -> Principal:
    """The caller, if their role is one of `roles` (403 forbidden otherwise)."""
    user: Principal = req.context.user
    if user.role not in roles:
        raise errors.Forbidden(f"this needs the role {' or '.join(roles)}")
    return user


def check_area(user: Principal, area: str | None) -> None:
    """Dispatchers see and touch only their own area."""
    if user.role == "dispatcher" and area is not None and area != user.dispatch_area:
        raise errors.WrongArea(f"you work in {user.dispatch_area}, this is in {area}")
