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
class Deleted:
    deleted: str  # the bag's QR or the bill's number, as stored


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CacheCheck:
    kind: str  # local | redis
    ok: bool
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class Checks:
    database: DatabaseCheck
    cache: CacheCheck


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # ok | unavailable
    checks: Checks
    pool: dict[str, dict[str, int]]  # psycopg_pool statistics per pool (write, read)
