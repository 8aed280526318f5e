"""Answers of the HTTP service that are not library rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tracetrack_db.models import Account


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    """A bearer token for this device (a login, or a password change) and the
    user; user.must_change_password: only the password change is open yet."""

    token: str
    expires_at: datetime
    user: Account


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """Every token of the caller has ended (this one too)."""

    logged_out: bool


@dataclass(frozen=True, slots=True)
class Deleted:
    deleted: str  # the bag's QR or the bill's number, as stored


@dataclass(frozen=True, slots=True)
class Checks:
    database: bool
    cache: bool


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the service can answer. Latencies, error text and pool figures are
    for monitoring: GET /health and /metrics on the metrics listener."""

    status: str  # ok | unavailable
    version: str  # of the running code
    checks: Checks


@dataclass(frozen=True, slots=True)
class Liveness:
    """The process answers (GET /livez touches nothing else)."""

    status: str  # ok
    version: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this process should get traffic: the database answers and has
    applied every migration this version ships."""

    status: str  # ready | not_ready
    reason: str | None  # database_unavailable | migrations_pending; null when ready
    message: str | None
    pending_migrations: list[str]  # "0008_name (pending)": what `tracetrack db migrate` would do
