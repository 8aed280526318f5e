"""Answers of the HTTP service that are not library rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tracetrack_db import User


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    token: str
    expires_at: datetime
    user: User


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
    checks: Checks
