"""`tracetrack db …` and `tracetrack users …`: the library's commands.

The `tracetrack` entry point (tracetrack_api.cli) mounts these groups next to
`serve`; they need nothing from the HTTP layer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from . import errors, migrations, users
from .database import Database, describe_target
from .runtime import database_url, migrate_and_bootstrap
from .settings import Settings


def interactive() -> bool:
    """Progress output only on a terminal, never in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress_printer() -> Callable[[str], None] | None:
    if not interactive():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]…[/dim] {message}")


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


@click.group("db")
def db_group() -> None:
    """Database: migrations and status (DATABASE_URL, or the embedded server)."""


@db_group.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations and (re)create views; bootstrap the admin
    from TRACETRACK_ADMIN_USERNAME / TRACETRACK_ADMIN_PASSWORD if set."""
    settings = Settings.from_env()
    try:
        with database_url(settings) as url:
            report = migrate_and_bootstrap(settings, url, progress=progress_printer())
    except migrations.MigrationError as exc:
        fail(str(exc))
    except errors.DatabaseUnavailable as exc:
        fail(str(exc))
    except Exception as exc:  # psycopg.OperationalError on connect: name the target, no traceback
        import psycopg

        if isinstance(exc, psycopg.OperationalError):
            fail(f"cannot connect to PostgreSQL at {describe_target(settings.database_url or '')}: "
                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")
        raise
    where = describe_target(settings.database_url) if settings.database_url else "embedded PostgreSQL"
    applied = ", ".join(m.filename for m in report.applied) or "nothing to apply"
    click.echo(f"migrated {where}: {applied}")
    if report.admin_created:
        click.echo(f"created admin user {report.admin_created!r}")


@db_group.command("status")
def status_command() -> None:
    """List migrations: applied, pending, or changed since applied."""
    import psycopg

    settings = Settings.from_env()
    try:
        with database_url(settings) as url, psycopg.connect(url, connect_timeout=5) as conn:
            rows = migrations.status(conn)
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to PostgreSQL at {describe_target(settings.database_url or '')}: "
             f"{str(exc).strip().splitlines()[0]}")
    bad = False
    for row in rows:
        at = row.applied_at.isoformat(timespec="seconds") if row.applied_at else ""
        click.echo(f"{row.version:04d}  {row.name:<30} {row.state:<12} {at}")
        bad = bad or row.state in ("changed", "missing_file")
    pending = sum(r.state == "pending" for r in rows)
    click.echo(f"{len(rows) - pending} applied, {pending} pending")
    if bad:
        raise SystemExit(1)


@click.group("users")
def users_group() -> None:
    """Manage users."""


@users_group.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(users.ROLES), required=True)
@click.option("--area", "dispatch_area", help="Dispatch area (required for dispatchers).")
def create_user_command(username: str, role: str, dispatch_area: str | None) -> None:
    """Create a user. The password comes from TRACETRACK_PASSWORD or a prompt,
    never from the command line."""
    password = os.environ.get("TRACETRACK_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            fail("set TRACETRACK_PASSWORD or run on a terminal to be prompted")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = Settings.from_env()
    with database_url(settings) as url:
        migrate_and_bootstrap(settings, url)
        with Database(url, min_size=1, max_size=1) as db:
            try:
                user = users.create_user(db, username, password, role, dispatch_area)
            except errors.TraceTrackError as exc:
                fail(f"{exc.code}: {exc.message}")
    click.echo(f"created {user.role} {user.username!r} (id {user.id})")
