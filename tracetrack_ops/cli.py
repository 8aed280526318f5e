"""The `tracetrack` command."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import urllib.parse
from pathlib import Path

import click

from tracetrack_db import Database, Settings, __version__, maintenance, migrations, privileges
from tracetrack_db.runtime import database_urls, migrate_and_bootstrap

from .configcli import config_command
from .dbcli import db_group, fail, progress_printer, users_group
from .formatcli import formats_group
from .importcli import import_command, rules_group
from .reportcli import report_group

# tracetrack_api.logs.LEVELS and FORMATS (not imported: the library alone has no tracetrack_api extras)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


@click.group()
@click.version_option(__version__, prog_name="tracetrack")
def cli() -> None:
    """TraceTrack: bag traceability. Without DATABASE_URL an embedded
    PostgreSQL keeps its data in the per-user data directory."""


cli.add_command(db_group)
cli.add_command(users_group)
cli.add_command(config_command)
cli.add_command(report_group)
cli.add_command(import_command)
cli.add_command(rules_group)
cli.add_command(formats_group)


def main(command: click.Group | None = None, prog_name: str | None = None) -> None:
    """The `tracetrack` entry point (and `python -m tracetrack_api|tracetrack_db`):
    an unreachable database is one clear line naming the target, never a
    traceback, whatever the command; so is a bad setting (exit code 2, as click
    does for a bad option)."""
    import psycopg

    from tracetrack_db.database import describe_target
    from tracetrack_db.errors import DatabaseUnavailable
    from tracetrack_db.settings import ConfigError

    try:
        (command or cli)(prog_name=prog_name)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except (psycopg.OperationalError, DatabaseUnavailable) as exc:
        url = os.environ.get("DATABASE_URL")
        target = describe_target(url) if url else "the embedded PostgreSQL"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(text if text.startswith("cannot connect") else f"cannot connect to PostgreSQL at {target}: {text}")


def local_secret(data_dir: Path) -> str:
    """A token secret kept in the data directory, for a laptop with nothing configured:
    created readable by its owner only, in one step, and refused if others can read it."""
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            fail(
                f"{path} can be read by others: chmod 600 it (or delete it to make a new one; "
                "tokens signed with it end)"
            )
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--demo/--no-demo",
    default=None,
    help="Create demo users and data when the database has no admin. Default: only on the embedded "
    "PostgreSQL, never on a DATABASE_URL database unless --demo.",
)
@click.option("--workers", type=int, help="Worker processes (default: one per CPU).")
@click.option("--threads", type=int, help="Threads per worker (default: 6).")
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Where the metrics listener (GET /metrics, GET /health with details) listens.",
)
@click.option("--metrics-port", default=9464, show_default=True, type=int, help="Its port (0: any free one).")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Of every logger (default: TRACETRACK_LOG_LEVEL, else info).",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help="text, or json: one object a line for log shippers (default: TRACETRACK_LOG_FORMAT, else text).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One line per request: method, route, status, duration, request id, user id "
    "(default: on; TRACETRACK_ACCESS_LOG=0 turns it off).",
)
def serve(
    host: str,
    port: int,
    demo: bool | None,
    workers: int | None,
    threads: int | None,
    metrics_host: str,
    metrics_port: int,
    log_level: str | None,
    log_format: str | None,
    access_log: bool | None,
) -> None:
    """Migrate, then serve the API with granian. Put nginx in front of it
    (deploy/nginx/tracetrack.conf): it bounds slow clients, rate-limits logins
    and buffers bodies, which granian alone does not. Logs go to stderr, an
    access line per request with its request id (X-Request-Id) unless
    --no-access-log."""
    # The service and its server are the 'server' extra; the library alone lacks them. Look,
    # don't import: prometheus-client must first be imported after PROMETHEUS_MULTIPROC_DIR
    # is set, or the workers keep their metrics to themselves.
    from importlib.util import find_spec

    from tracetrack_api.config import ACCESS_LOG, LOG_FORMAT, LOG_LEVEL  # a flag wins over the environment

    log_level = (log_level or LOG_LEVEL.get()).lower()
    log_format = log_format or LOG_FORMAT.get()
    access_log = ACCESS_LOG.get() if access_log is None else access_log
    needed = ["falcon", "granian", "prometheus_client", "redis"]
    if log_format == "json":
        needed.append("pythonjsonlogger")
    missing = [m for m in needed if find_spec(m) is None]
    if missing:
        fail(f"the HTTP service is not installed (no module {missing[0]}): pip install 'tracetrack[server]'")
    from tracetrack_api.config import ALL_VARS, ApiSettings
    from tracetrack_db.settings import check

    from .demo import DEMO_PASSWORD, DEMO_USERS, create_demo
    from .server import run_granian
    from .sizing import default_sizing

    settings = ApiSettings.from_env()
    check(ALL_VARS)  # every setting, the ones read later in a worker too, before anything starts
    with database_urls(settings.db) as urls:
        embedded, url = urls.embedded, urls.service
        try:
            report = migrate_and_bootstrap(settings.db, urls.owner, progress=progress_printer())
        except migrations.MigrationError as exc:
            fail(str(exc))
        with Database(url, min_size=1, max_size=1, prepare_threshold=settings.db.prepare_threshold) as db:
            max_connections = maintenance.max_connections(db)
            demo_created = (embedded if demo is None else demo) and create_demo(db)
            with db.connection() as conn:
                as_owner = privileges.is_owner(conn)
        sizing = default_sizing(
            max_connections, workers=workers, threads=threads, replica=bool(settings.db.database_read_url)
        )
        if sizing.connections > max_connections - 5:
            fail(
                f"{sizing.workers} workers x {sizing.pool_size} connections exceed the server's "
                f"max_connections ({max_connections})"
            )
        secret = settings.secret_key or local_secret(settings.db.data_dir)
        metrics_dir = settings.db.data_dir / "metrics" / str(port)
        if metrics_dir.exists():
            shutil.rmtree(metrics_dir)
        metrics_dir.mkdir(parents=True)
        env = {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "DATABASE_URL": url,
            "TRACETRACK_POOL_MAX_SIZE": str(sizing.pool_size),
            "TRACETRACK_POOL_MIN_SIZE": str(min(2, sizing.pool_size)),
            "TRACETRACK_SECRET_KEY": secret,
            "TRACETRACK_LOG_LEVEL": log_level,
            "TRACETRACK_LOG_FORMAT": log_format,
            "TRACETRACK_ACCESS_LOG": "1" if access_log else "0",
        }
        os.environ.update(env)  # before prometheus-client is first imported, here or in a worker
        service = settings.db.with_database_url(url)
        listener = start_metrics_listener(service, settings.redis_url, metrics_host, metrics_port)
        where = "embedded PostgreSQL" if embedded else "DATABASE_URL"
        click.echo(
            f"TraceTrack on http://{host}:{port}  ({where}; {sizing.workers} workers x "
            f"{sizing.threads} threads, pool {sizing.pool_size} each)"
        )
        click.echo(f"the warehouse console: http://{host}:{port}/console  (API docs: /docs)")
        click.echo(f"metrics and health details on http://{metrics_host}:{listener.port} (/metrics, /health)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(
                "serve behind nginx (deploy/nginx/tracetrack.conf): it bounds slow clients and login "
                "floods, which the server alone does not"
            )
        if as_owner:
            click.echo(
                "note: DATABASE_URL's role owns the tables (it could alter them or the event log's "
                "trigger): connect as a service role (tracetrack db service-role) and migrate with "
                "TRACETRACK_OWNER_URL"
            )
        if report.admin_created:
            click.echo(f"created admin {report.admin_created!r}")
        if demo_created:
            click.echo("demo data created. Log in with one of:")
            for username, role, _area in DEMO_USERS:
                click.echo(f"  {username} / {DEMO_PASSWORD}   ({role})")
            click.echo(
                f"  curl -s -X POST http://{host}:{port}/api/auth/login "
                f"-H 'Content-Type: application/json' "
                f'-d \'{{"username": "admin", "password": "{DEMO_PASSWORD}"}}\''
            )
        try:
            run_granian(host, port, sizing, env, log_level, log_format)
        finally:
            listener.stop()


def start_metrics_listener(settings: Settings, redis_url: str | None, host: str, port: int):
    """The metrics listener, in this (the main) process, with its own small pool
    (TRACETRACK_PREPARE_THRESHOLD as the workers: none through PgBouncer) and,
    with DATABASE_READ_URL, its own view of the replica (the lag it reports)."""
    from tracetrack_api.cache import make_cache
    from tracetrack_api.metrics import MetricsListener

    db = Database.from_settings(settings, min_size=0, max_size=2, timeout=2).open(wait=False)
    try:
        return MetricsListener(db, make_cache(redis_url)).start(host, port)
    except OSError as exc:
        fail(f"the metrics listener cannot listen on {host}:{port}: {exc.strerror} (--metrics-port)")


@cli.command()
@click.option("--host", default="http://127.0.0.1:5000", show_default=True, help="The running server.")
@click.option("--users", default=100, show_default=True, help="Concurrent simulated users.")
@click.option("--duration", default="60s", show_default=True, help="How long (locust syntax: 30s, 2m).")
@click.option("--admin-user", default="admin", show_default=True, envvar="TRACETRACK_ADMIN_USERNAME")
@click.option("--p95-ms", default=300.0, show_default=True, help="Target: p95 latency below this.")
@click.option("--min-success", default=0.99, show_default=True, help="Target: success rate at least this.")
@click.option("--out", default="bench/results", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--profile",
    type=click.Choice(["stress", "realistic"]),
    default="stress",
    show_default=True,
    help="stress: short pauses (what one box takes); realistic: a dispatcher scans every 2-5 s, "
    "a biller or admin acts every 5-15 s.",
)
@click.option(
    "--metrics",
    default=None,
    help="The server's metrics listener: its own latency histogram is read before and after the run "
    "(default: http://127.0.0.1:9464 when --host is on this machine, else none).",
)
@click.option(
    "--spawn-rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Users started per second (default: all within 5 s, at least 10 a second).",
)
@click.option(
    "--steady",
    is_flag=True,
    help="Leave the ramp out: the client's, the server's and the generator's figures all start when "
    "every user has started (locust's --reset-stats).",
)
def loadtest(
    host: str,
    users: int,
    duration: str,
    admin_user: str,
    p95_ms: float,
    min_success: float,
    out: Path,
    profile: str,
    metrics: str | None,
    spawn_rate: float | None,
    steady: bool,
) -> None:
    """Run the locust load test headless and print a PASS/FAIL report
    (dispatchers 60%, billers 30%, admins 10%), with the server's own latencies (from
    its metrics) and the load generator's CPU. Needs `pip install "tracetrack[bench]"`.
    The admin's password comes from TRACETRACK_ADMIN_PASSWORD or a prompt, never an argument."""
    admin_password = os.environ.get("TRACETRACK_ADMIN_PASSWORD")
    if not admin_password:
        if not sys.stdin.isatty():
            fail("set TRACETRACK_ADMIN_PASSWORD (the password of --admin-user) or run on a terminal")
        admin_password = click.prompt(f"Password of {admin_user}", hide_input=True)
    from .loadtest import run

    if metrics is None and urllib.parse.urlparse(host).hostname in ("127.0.0.1", "localhost", "::1"):
        metrics = "http://127.0.0.1:9464"  # serve's default listener (another server's, with another --metrics-port)
    report = run(
        host, users, duration, admin_user, admin_password, out, p95_ms, min_success, profile, metrics,
        spawn_rate=spawn_rate, steady=steady,
    )  # fmt: skip
    click.echo(report.text())
    raise SystemExit(0 if report.passed else 1)


@cli.command()
@click.option("--users", default=20, show_default=True, help="Users of the short load test.")
@click.option("--duration", default="15s", show_default=True, help="Length of the short load test.")
@click.option("--p95-ms", default=300.0, show_default=True, help="Target of the short load test: p95 below this.")
def verify(users: int, duration: str, p95_ms: float) -> None:
    """The deployment check: migrate, analyze, refresh views, start the server,
    smoke-test every endpoint, run a short load test, print one report.
    Exits non-zero on any failure."""
    from .verify import verify as run_verify

    report = run_verify(users_count=users, duration=duration, p95_ms=p95_ms)
    click.echo(report.text())
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
