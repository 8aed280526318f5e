"""API settings: the library's settings plus what only the HTTP layer needs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tracetrack_db import Settings


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class ApiSettings:
    db: Settings = field(default_factory=Settings)
    secret_key: str = ""
    token_ttl_seconds: int = 12 * 3600
    # a changed role or a deactivation takes effect within this many seconds
    user_refresh_seconds: int = 15
    max_body_bytes: int = 64 * 1024
    login_attempts_per_minute: int = 10
    # seconds between materialized-view refreshes (0: no refresher in this process)
    refresh_interval: float = 30.0

    @classmethod
    def from_env(cls) -> ApiSettings:
        db = Settings.from_env()
        secret = db.secret_key or os.environ.get("TRACETRACK_SECRET_KEY") or ""
        return cls(
            db=db,
            secret_key=secret,
            token_ttl_seconds=_int("TRACETRACK_TOKEN_TTL", 12 * 3600),
            user_refresh_seconds=_int("TRACETRACK_USER_REFRESH", 15),
            max_body_bytes=_int("TRACETRACK_MAX_BODY", 64 * 1024),
            login_attempts_per_minute=_int("TRACETRACK_LOGIN_RATE", 10),
            refresh_interval=float(os.environ.get("TRACETRACK_REFRESH_INTERVAL") or 30),
        )
