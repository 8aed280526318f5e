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
    # login attempts a minute from one client address (any usernames)
    login_address_rate: int = 60
    # password checks (argon2id: 64 MiB, ~0.17 s of one core) at once per process;
    # as many more may wait, others are refused at once (429)
    login_concurrency: int = 1
    # seconds a login waits for one of those before 429
    login_queue_seconds: float = 5.0
    # peers whose X-Real-IP names the client (the nginx in front); anyone
    # else is the client itself
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
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
            login_address_rate=env_int("TRACETRACK_LOGIN_ADDRESS_RATE", 60),
            login_concurrency=env_int("TRACETRACK_LOGIN_CONCURRENCY", 1),
            login_queue_seconds=env_float("TRACETRACK_LOGIN_QUEUE", 5.0),
            trusted_proxies=tuple(a.strip() for a in os.environ.get(
                "TRACETRACK_TRUSTED_PROXIES", "127.0.0.1,::1").split(",") if a.strip()),
            refresh_interval=env_float("TRACETRACK_REFRESH_INTERVAL", 30.0),
        )
