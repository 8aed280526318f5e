"""Settings read from the environment, once, into a frozen dataclass.

Every variable is declared once, as a `Var` (name, default, parser, help),
so that a bad value always fails the same way (ConfigError naming the
variable; the `tracetrack` command prints it and exits 2) and `tracetrack
config` can list each setting with its value and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import platformdirs


class ConfigError(ValueError):
    """A setting's value is unusable; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Var:
    """One environment variable: how to read it and what it means."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    def source(self, environ: Mapping[str, str] | None = None) -> str:
        raw = (os.environ if environ is None else environ).get(self.name)
        return "environment" if raw not in (None, "") else "default"

    def get(self, environ: Mapping[str, str] | None = None) -> Any:
        raw = (os.environ if environ is None else environ).get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError as exc:  # a secret's value is never repeated (it goes to logs and journals)
            raise ConfigError(self.name, str(exc) if self.secret else f"{exc}, got {raw!r}") from None

    def shown(self, value: str) -> str:
        """The value as `tracetrack config` prints it: a secret masked."""
        if not self.secret:
            return value
        return masked(value) if self.parse in (postgres_url, redis_url) else "****"


def whole(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be between {low} and {high}" if high is not None else f"must be at least {low}")
        return value

    return parse


def number(low: float = 0.0) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if not value >= low or value == float("inf"):  # also refuses nan
            raise ValueError(f"must be a finite number of at least {low:g}")
        return value

    return parse


def text(raw: str) -> str:
    return raw


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.lower()

    return parse


def flag(raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off."""
    word = raw.lower()
    if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("must be 1 or 0 (true/false, yes/no, on/off)")
    return word in ("1", "true", "yes", "on")


def postgres_url(raw: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(raw)
    except Exception as exc:  # noqa: BLE001 - psycopg.ProgrammingError: say it as a setting error
        raise ValueError(f"not a PostgreSQL connection string ({str(exc).strip()})") from None
    return raw


def redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def optional_whole(raw: str) -> int | None:
    """A whole number, or none/off for none."""
    if raw.lower() in ("none", "off"):
        return None
    return whole(0)(raw)


def name_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def time_zone(raw: str) -> str:
    """An IANA time zone name (Asia/Kolkata, UTC), checked against the zone
    database (the tzdata package where the system has none)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed key
        raise ValueError("not a known IANA time zone (e.g. UTC, Asia/Kolkata, Europe/Berlin)") from None
    return raw


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tracetrack", appauthor=False))


DATABASE_URL = Var(
    "DATABASE_URL",
    None,
    postgres_url,
    "PostgreSQL the service connects to (its least-privilege role); unset: embedded",
    secret=True,
)
OWNER_URL = Var(
    "TRACETRACK_OWNER_URL",
    None,
    postgres_url,
    "the same database as the tables' owner, for migrations; unset: DATABASE_URL",
    secret=True,
)
DATABASE_READ_URL = Var(
    "DATABASE_READ_URL", None, postgres_url, "replica for lag-tolerant reads; unset: DATABASE_URL", secret=True
)
REPLICA_WAIT = Var(
    "TRACETRACK_REPLICA_WAIT",
    0.1,
    number(0),
    "seconds a read after the caller's own write waits for the replica to replay it, then reads the primary",
)
REPLICA_MAX_LAG = Var(
    "TRACETRACK_REPLICA_MAX_LAG", 5.0, number(0), "seconds the replica may lag before reads go to the primary"
)
REPLICA_RETRY = Var(
    "TRACETRACK_REPLICA_RETRY", 5.0, number(0.1), "seconds reads stay off a replica that failed or did not answer"
)
DATA_DIR = Var("TRACETRACK_DATA_DIR", None, Path, "embedded PostgreSQL data and the generated token secret")
POOL_MIN_SIZE = Var("TRACETRACK_POOL_MIN_SIZE", 1, whole(0), "connections a process keeps open")
POOL_MAX_SIZE = Var("TRACETRACK_POOL_MAX_SIZE", 8, whole(1), "connections a process may open")
POOL_TIMEOUT = Var("TRACETRACK_POOL_TIMEOUT", 2.0, number(0.001), "seconds a request waits for a connection")
PREPARE_THRESHOLD = Var(
    "TRACETRACK_PREPARE_THRESHOLD",
    5,
    optional_whole,
    "psycopg prepares after N executions; none: never (PgBouncer < 1.21)",
)
ADMIN_USERNAME = Var("TRACETRACK_ADMIN_USERNAME", None, text, "bootstrap admin created by migrate if missing")
ADMIN_PASSWORD = Var("TRACETRACK_ADMIN_PASSWORD", None, text, "its password", secret=True)
EXPORT_TIMEOUT = Var("TRACETRACK_EXPORT_TIMEOUT", 600.0, number(0.001), "seconds an export's COPY may run")
EXPORT_STALL = Var(
    "TRACETRACK_EXPORT_STALL", 30.0, number(1), "seconds an export may wait for its reader before it is aborted"
)
TIMEZONE = Var(
    "TRACETRACK_TIMEZONE",
    "UTC",
    time_zone,
    "IANA zone of the site: what today, an hour and a day mean in the dashboard and reports",
)
UNDO_WINDOW = Var(
    "TRACETRACK_UNDO_WINDOW", 600, whole(0), "seconds within which a scanner may undo their own last link"
)
# Read by single commands (never by the service): listed by `tracetrack config`, checked the same way.
SERVICE_PASSWORD = Var(
    "TRACETRACK_SERVICE_PASSWORD", None, text, "password `tracetrack db service-role` gives the role", secret=True
)
SEED_PASSWORD = Var("TRACETRACK_SEED_PASSWORD", None, text, "password of the users `db seed` makes", secret=True)
USER_PASSWORD = Var("TRACETRACK_PASSWORD", None, text, "password for `tracetrack users create`", secret=True)

LIBRARY_VARS: tuple[Var, ...] = (
    DATABASE_URL,
    OWNER_URL,
    DATABASE_READ_URL,
    REPLICA_WAIT,
    REPLICA_MAX_LAG,
    REPLICA_RETRY,
    DATA_DIR,
    POOL_MIN_SIZE,
    POOL_MAX_SIZE,
    POOL_TIMEOUT,
    PREPARE_THRESHOLD,
    ADMIN_USERNAME,
    ADMIN_PASSWORD,
    EXPORT_TIMEOUT,
    EXPORT_STALL,
    TIMEZONE,
    UNDO_WINDOW,
    SERVICE_PASSWORD,
    SEED_PASSWORD,
    USER_PASSWORD,
)


def masked(url: str) -> str:
    """A connection URL (PostgreSQL or Redis) as `tracetrack config` shows it:
    where it points, never its password. Read the way the client reads it
    (libpq decodes `pass%77ord=`), rebuilt without the password; what cannot be
    read is all stars."""
    from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            parts = urlsplit(url)
            netloc = parts.netloc
            if "@" in netloc:  # user:password@host, or a password alone
                userinfo, host = netloc.rsplit("@", 1)
                netloc = f"{userinfo.split(':', 1)[0]}:****@{host}" if ":" in userinfo else f"****@{host}"
            query = [
                (k, "****" if unquote(k).lower() == "password" else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
            shown = f"{parts.scheme}://{netloc}{parts.path}"  # urlunsplit drops unix:// with no host
            return shown + (f"?{urlencode(query, safe='*')}" if query else "")
        except ValueError:
            return "****"
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - psycopg.ProgrammingError: not readable, so nothing of it is shown
        return "****"
    if "password" in params:
        params["password"] = "****"
    return make_conninfo("", **params)


def check(variables: Iterable[Var], environ: Mapping[str, str] | None = None) -> None:
    """Read every variable once: the first bad one raises ConfigError."""
    for var in variables:
        var.get(environ)


@dataclass(frozen=True)
class Settings:
    """What the library needs to reach PostgreSQL, with the defaults a laptop needs
    (the HTTP service's own settings live in tracetrack_api.config)."""

    database_url: str | None = None
    database_read_url: str | None = None
    # with a replica: a read after one's own write waits this long for it, then reads the primary;
    # reads go to the primary while it lags more than max_lag, or for retry seconds after it failed
    replica_wait: float = 0.1
    replica_max_lag: float = 5.0
    replica_retry: float = 5.0
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
    # the site's IANA time zone: days and hours of the dashboard and reports (stored times are UTC)
    timezone: str = "UTC"
    # seconds within which a scanner may undo their own last link
    undo_window: int = 600

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Raises ConfigError naming the first variable with a bad value."""
        settings = cls(
            database_url=DATABASE_URL.get(environ),
            database_read_url=DATABASE_READ_URL.get(environ),
            replica_wait=REPLICA_WAIT.get(environ),
            replica_max_lag=REPLICA_MAX_LAG.get(environ),
            replica_retry=REPLICA_RETRY.get(environ),
            owner_url=OWNER_URL.get(environ),
            data_dir=DATA_DIR.get(environ) or default_data_dir(),
            pool_min_size=POOL_MIN_SIZE.get(environ),
            pool_max_size=POOL_MAX_SIZE.get(environ),
            pool_timeout=POOL_TIMEOUT.get(environ),
            prepare_threshold=PREPARE_THRESHOLD.get(environ),
            admin_username=ADMIN_USERNAME.get(environ),
            admin_password=ADMIN_PASSWORD.get(environ),
            timezone=TIMEZONE.get(environ),
            undo_window=UNDO_WINDOW.get(environ),
        )
        if settings.pool_min_size > settings.pool_max_size:
            raise ConfigError(
                POOL_MIN_SIZE.name,
                f"must not exceed TRACETRACK_POOL_MAX_SIZE ({settings.pool_max_size}), got {settings.pool_min_size}",
            )
        check((EXPORT_TIMEOUT, EXPORT_STALL), environ)  # read per export; checked at start too
        return settings

    def with_database_url(self, url: str) -> Settings:
        return replace(self, database_url=url)
