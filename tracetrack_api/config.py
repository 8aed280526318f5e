"""The HTTP service's settings: the library's (how to reach PostgreSQL) plus
what only the service needs (token secret, Redis, limits)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tracetrack_db import Settings
from tracetrack_db.settings import env_float, env_int


@dataclass(frozen=True)
class ApiSettings:
    db: Settings = field(default_factory=Settings)
    secret_key: str = ""
    redis_url: str | None = None
    token_ttl_seconds: int = 12 * 3600
    # a changed role or a deactivation takes effect within this many seconds
    user_refresh_seconds: int = 15
    max_body_bytes: int = 64 * 1024
    login_attempts_per_minute: int = 10
    # seconds between materialized-view refreshes (0: no refresher in this process)
    refresh_interval: float = 30.0

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            db=Settings.from_env(),
            secret_key=os.environ.get("TRACETRACK_SECRET_KEY") or "",
            redis_url=os.environ.get("REDIS_URL") or None,
            token_ttl_seconds=env_int("TRACETRACK_TOKEN_TTL", 12 * 3600),
            user_refresh_seconds=env_int("TRACETRACK_USER_REFRESH", 15),
            max_body_bytes=env_int("TRACETRACK_MAX_BODY", 64 * 1024),
            login_attempts_per_minute=env_int("TRACETRACK_LOGIN_RATE", 10),
            refresh_interval=env_float("TRACETRACK_REFRESH_INTERVAL", 30.0),
        )
