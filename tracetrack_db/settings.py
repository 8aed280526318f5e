"""Settings read from the environment, once, into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs


def env_int(name: str, default: int) -> int:
    """A whole number from the environment, or the default; a bad value stops the program with its name."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """A number from the environment, or the default; a bad value stops the program with its name."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tracetrack", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """What the library needs to reach PostgreSQL, with the defaults a laptop needs
    (the HTTP service's own settings live in tracetrack_api.config)."""

    database_url: str | None = None
    database_read_url: str | None = None
    # the tables' owner, for migrations and operator commands; unset: DATABASE_URL
    owner_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    pool_min_size: int = 1
    pool_max_size: int = 8
    pool_timeout: float = 2.0
    # psycopg prepares a statement after this many executions; None disables
    # server-side prepared statements (PgBouncer older than 1.21).
    prepare_threshold: int | None = 5
    admin_username: str | None = None
    admin_password: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        threshold = env("TRACETRACK_PREPARE_THRESHOLD", "5")
        return cls(
            database_url=env("DATABASE_URL") or None,
            database_read_url=env("DATABASE_READ_URL") or None,
            owner_url=env("TRACETRACK_OWNER_URL") or None,
            data_dir=Path(env("TRACETRACK_DATA_DIR") or default_data_dir()),
            pool_min_size=env_int("TRACETRACK_POOL_MIN_SIZE", 1),
            pool_max_size=env_int("TRACETRACK_POOL_MAX_SIZE", 8),
            pool_timeout=env_float("TRACETRACK_POOL_TIMEOUT", 2.0),
            prepare_threshold=None if threshold.lower() in ("", "none", "off") else int(threshold),
            admin_username=env("TRACETRACK_ADMIN_USERNAME") or None,
            admin_password=env("TRACETRACK_ADMIN_PASSWORD") or None,
        )

    def with_database_url(self, url: str) -> Settings:
        return replace(self, database_url=url)
