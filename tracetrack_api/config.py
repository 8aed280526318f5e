"""The HTTP service's settings: the library's (how to reach PostgreSQL) plus
what only the service needs (token secret, Redis, limits), declared as the
library declares its own (tracetrack_db.settings.Var)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracetrack_db import Settings
from tracetrack_db.settings import (
    LIBRARY_VARS,
    Var,
    flag,
    name_list,
    number,
    one_of,
    postgres_url,
    redis_url,
    text,
    whole,
)

SECRET_KEY = Var(
    "TRACETRACK_SECRET_KEY",
    None,
    text,
    "HMAC key of bearer tokens; unset: generated once into the data directory",
    secret=True,
)
LISTEN_URL = Var(
    "TRACETRACK_LISTEN_URL",
    None,
    postgres_url,
    "where each worker LISTENs for user changes (a session: PostgreSQL itself, not PgBouncer); unset: DATABASE_URL",
    secret=True,
)
REDIS_URL = Var(
    "REDIS_URL", None, redis_url, "shared cache and counters; unset: in-process and PostgreSQL", secret=True
)
TOKEN_TTL = Var("TRACETRACK_TOKEN_TTL", 12 * 3600, whole(60, 366 * 86400), "token lifetime in seconds")
USER_REFRESH = Var("TRACETRACK_USER_REFRESH", 15, whole(1), "seconds a worker caches a user's role and state")
MAX_BODY = Var("TRACETRACK_MAX_BODY", 64 * 1024, whole(1024), "request body limit in bytes")
IMPORT_WORKERS = Var("TRACETRACK_IMPORT_WORKERS", 2, whole(1, 8), "connections an import applies its chunks on at once")
IMPORT_MAX = Var(
    "TRACETRACK_IMPORT_MAX_BYTES", 16 * 1024 * 1024, whole(1024), "the largest file POST /api/imports takes, in bytes"
)
LOGIN_ADDRESS_RATE = Var("TRACETRACK_LOGIN_ADDRESS_RATE", 60, whole(1), "login attempts per address a minute")
LOGIN_CONCURRENCY = Var("TRACETRACK_LOGIN_CONCURRENCY", 1, whole(1), "password checks at once per process")
LOGIN_QUEUE = Var("TRACETRACK_LOGIN_QUEUE", 5.0, number(0), "seconds a login waits for a password check")
TRUSTED_PROXIES = Var(
    "TRACETRACK_TRUSTED_PROXIES", ("127.0.0.1", "::1"), name_list, "peers whose X-Real-IP names the client"
)
SYNC_MAX_AHEAD = Var(
    "TRACETRACK_SYNC_MAX_AHEAD",
    5 * 60,
    whole(0, 86400),
    "seconds a synced operation's device_time may be ahead of the server's clock",
)
SYNC_MAX_BEHIND = Var(
    "TRACETRACK_SYNC_MAX_BEHIND",
    7 * 86400,
    whole(60, 366 * 86400),
    "seconds a synced operation's device_time may be behind the server's clock",
)
REFRESH_INTERVAL = Var(
    "TRACETRACK_REFRESH_INTERVAL", 30.0, number(0), "seconds between view refreshes (0: no refresher)"
)

LOG_LEVEL = Var(
    "TRACETRACK_LOG_LEVEL",
    "info",
    one_of("debug", "info", "warning", "error", "critical"),
    "level of every logger (serve --log-level)",
)
LOG_FORMAT = Var("TRACETRACK_LOG_FORMAT", "text", one_of("text", "json"), "text, or json a line (serve --log-format)")
ACCESS_LOG = Var("TRACETRACK_ACCESS_LOG", True, flag, "one line per request (serve --no-access-log: 0)")
DIRECT_LANE = Var(
    "TRACETRACK_DIRECT_LANE", True, flag, "the direct lane for GETs of path parameters (0: Falcon's path for all)"
)

API_VARS: tuple[Var, ...] = (
    SECRET_KEY,
    LISTEN_URL,
    REDIS_URL,
    TOKEN_TTL,
    USER_REFRESH,
    MAX_BODY,
    IMPORT_MAX,
    IMPORT_WORKERS,
    LOGIN_ADDRESS_RATE,
    LOGIN_CONCURRENCY,
    LOGIN_QUEUE,
    TRUSTED_PROXIES,
    SYNC_MAX_AHEAD,
    SYNC_MAX_BEHIND,
    REFRESH_INTERVAL,
    LOG_LEVEL,
    LOG_FORMAT,
    ACCESS_LOG,
    DIRECT_LANE,
)
ALL_VARS: tuple[Var, ...] = LIBRARY_VARS + API_VARS


@dataclass(frozen=True)
class ApiSettings:
    db: Settings = field(default_factory=Settings)
    secret_key: str = ""
    redis_url: str | None = None
    # the user-change listener's connection (LISTEN holds a session, which
    # PgBouncer's transaction pooling does not give); None: db.database_url
    listen_url: str | None = None
    token_ttl_seconds: int = TOKEN_TTL.default
    # a changed role or a deactivation takes effect within this many seconds
    user_refresh_seconds: int = USER_REFRESH.default
    max_body_bytes: int = MAX_BODY.default
    # an import's file is streamed to a spool, never held whole in memory
    import_max_bytes: int = IMPORT_MAX.default
    # an import's chunks on this many pooled connections at once (PostgreSQL-bound)
    import_workers: int = IMPORT_WORKERS.default
    # login attempts a minute from one client address (any usernames)
    login_address_rate: int = LOGIN_ADDRESS_RATE.default
    # password checks (argon2id: 64 MiB, ~0.17 s of one core) at once per process;
    # as many more may wait, others are refused at once (429)
    login_concurrency: int = LOGIN_CONCURRENCY.default
    # seconds a login waits for one of those before 429
    login_queue_seconds: float = LOGIN_QUEUE.default
    # peers whose X-Real-IP names the client (the nginx in front); anyone
    # else is the client itself
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES.default
    # seconds between materialized-view refreshes (0: no refresher in this process)
    refresh_interval: float = REFRESH_INTERVAL.default
    # POST /api/scans/sync refuses an operation whose device_time is further
    # ahead of or behind the database's clock (device_time_out_of_range)
    sync_max_ahead_seconds: int = SYNC_MAX_AHEAD.default
    sync_max_behind_seconds: int = SYNC_MAX_BEHIND.default
    # GETs of path parameters answered in front of Falcon (direct.py); off: Falcon's path for all
    direct_lane: bool = DIRECT_LANE.default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Raises tracetrack_db.settings.ConfigError naming the first bad variable."""
        return cls(
            db=Settings.from_env(environ),
            secret_key=SECRET_KEY.get(environ) or "",
            redis_url=REDIS_URL.get(environ),
            listen_url=LISTEN_URL.get(environ),
            token_ttl_seconds=TOKEN_TTL.get(environ),
            user_refresh_seconds=USER_REFRESH.get(environ),
            max_body_bytes=MAX_BODY.get(environ),
            import_max_bytes=IMPORT_MAX.get(environ),
            import_workers=IMPORT_WORKERS.get(environ),
            login_address_rate=LOGIN_ADDRESS_RATE.get(environ),
            login_concurrency=LOGIN_CONCURRENCY.get(environ),
            login_queue_seconds=LOGIN_QUEUE.get(environ),
            trusted_proxies=TRUSTED_PROXIES.get(environ),
            refresh_interval=REFRESH_INTERVAL.get(environ),
            sync_max_ahead_seconds=SYNC_MAX_AHEAD.get(environ),
            sync_max_behind_seconds=SYNC_MAX_BEHIND.get(environ),
            direct_lane=DIRECT_LANE.get(environ),
        )
