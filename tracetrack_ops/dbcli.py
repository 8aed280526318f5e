"""`tracetrack db …` and `tracetrack users …`: the library's commands.

The `tracetrack` entry point (tracetrack_ops.cli) mounts these groups next to
`serve`; they need nothing from the HTTP layer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click

from tracetrack_db import errors, migrations, users
from tracetrack_db.audit import cli_origin
from tracetrack_db.database import Database, describe_target
from tracetrack_db.runtime import database_url, migrate_and_bootstrap
from tracetrack_db.settings import Settings


def interactive() -> bool:
    """Progress output only on a terminal, never in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress_printer() -> Callable[[str], None] | None:
    if not interactive():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]…[/dim] {message}")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


@click.group("db")
def db_group() -> None:
    """Database: migrations and status (DATABASE_URL, or the embedded server)."""


@db_group.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations and rebuild changed views files; bootstrap the admin
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
            fail(
                f"cannot connect to PostgreSQL at {describe_target(settings.database_url or '')}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
            )
        raise
    where = describe_target(settings.database_url) if settings.database_url else "embedded PostgreSQL"
    applied = ", ".join(m.filename for m in report.applied) or "nothing to apply"
    click.echo(f"migrated {where}: {applied}")
    if report.admin_created:
        click.echo(f"created admin user {report.admin_created!r}")


@db_group.command("status")
def status_command() -> None:
    """List migrations (applied, pending, or changed since applied) and views
    files (current, or changed/pending: the next migrate rebuilds them)."""
    import psycopg

    settings = Settings.from_env()
    try:
        with database_url(settings) as url, psycopg.connect(url, connect_timeout=5) as conn:
            rows = migrations.status(conn)
            view_rows = migrations.views_status(conn)
    except psycopg.OperationalError as exc:
        fail(
            f"cannot connect to PostgreSQL at {describe_target(settings.database_url or '')}: "
            f"{str(exc).strip().splitlines()[0]}"
        )
    bad = False
    for row in rows:
        when = row.applied_at.isoformat(timespec="seconds") if row.applied_at else ""
        click.echo(f"{row.version:04d}  {row.name:<30} {row.state:<12} {when}")
        bad = bad or row.state in ("changed", "missing_file")
    pending = sum(r.state == "pending" for r in rows)
    for filename, state, at in view_rows:
        click.echo(f"views {filename:<25} {state:<12} {at.isoformat(timespec='seconds') if at else ''}")
    click.echo(f"{len(rows) - pending} applied, {pending} pending")
    if bad:
        raise SystemExit(1)


@db_group.command("service-role")
@click.argument("role")
@click.option(
    "--create/--no-create",
    default=True,
    show_default=True,
    help="Create the role (LOGIN, password from TRACETRACK_SERVICE_PASSWORD or generated) if it does not exist.",
)
def service_role_command(role: str, create: bool) -> None:
    """Make ROLE the service's least-privilege role: record it and grant it what
    the API needs (every `db migrate` grants it again). Run as the tables'
    owner (TRACETRACK_OWNER_URL or DATABASE_URL); then run the service with
    DATABASE_URL as ROLE."""
    from tracetrack_db import privileges

    settings = Settings.from_env()
    with database_url(settings) as url:
        migrate_and_bootstrap(settings, url)
        try:
            password = privileges.grant_service(
                url, role, create=create, password=os.environ.get("TRACETRACK_SERVICE_PASSWORD") or None
            )
        except ValueError as exc:
            fail(str(exc))
    click.echo(f"{role} is a service role of {describe_target(url)}")
    if password:
        shown = "from TRACETRACK_SERVICE_PASSWORD" if os.environ.get("TRACETRACK_SERVICE_PASSWORD") else password
        click.echo(
            f"created role {role} with password {shown} (shown once): run the service with "
            f"DATABASE_URL as {role}, and migrations with TRACETRACK_OWNER_URL"
        )


def _open(settings: Settings):
    """An open Database (and the embedded server when needed) for a command."""
    from contextlib import ExitStack

    stack = ExitStack()
    url = stack.enter_context(database_url(settings))
    db = stack.enter_context(Database(url, min_size=1, max_size=2, timeout=30))
    return stack, db


def _table(rows: list[dict], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@db_group.command("refresh-views")
def refresh_views_command() -> None:
    """Refresh the dashboard's materialized views (CONCURRENTLY) now."""
    from tracetrack_db import views

    stack, db = _open(Settings.from_env())
    with stack:
        timings = views.refresh_views(db)
    if timings is None:
        fail("another refresher holds the lock; try again in a moment")
    for view, ms in timings.items():
        click.echo(f"{view:<20} {ms:8.1f} ms")


@db_group.command("purge-idempotency")
@click.option("--hours", default=24, show_default=True, help="Keep keys younger than this.")
def purge_idempotency_command(hours: int) -> None:
    """Forget Idempotency-Key answers older than --hours (the service's
    refresher does this on its own every interval)."""
    stack, db = _open(Settings.from_env())
    with stack:
        removed = db.execute("purge_idempotency_keys", {"hours": hours})
    click.echo(f"removed {removed} idempotency keys older than {hours} h")


@db_group.command("analyze")
def analyze_command() -> None:
    """ANALYZE every TraceTrack table (planner statistics)."""
    from tracetrack_db import maintenance

    stack, db = _open(Settings.from_env())
    with stack:
        click.echo("analyzed " + ", ".join(maintenance.analyze(db)))


@db_group.command("maintain")
@click.option("--months", default=3, show_default=True, type=click.IntRange(0, 24), help="Months ahead to make.")
def maintain_command(months: int) -> None:
    """The event log's partitions: this month's and --months ahead (the refresher makes
    them too); rows that fell into the default partition are moved to their months."""
    from tracetrack_db import partitions

    stack, db = _open(Settings.from_env())
    with stack:
        made = partitions.maintain(db, months)
        rows = partitions.partitions(db)
    click.echo(f"made {made} partitions")
    _table(rows, ["name", "range_from", "range_to", "is_default", "estimated_rows", "archived"])


@db_group.command("archive")
@click.option("--before", "before", required=True, help="YYYY-MM: archive the months before this one.")
@click.option(
    "--to",
    "directory",
    required=True,  # no default: the working directory of a systemd unit is /
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the .csv.gz files.",
)
def archive_command(before: str, directory: Path) -> None:
    """Archive the event log's months before --before: each month partition is written
    to DIR/event_YYYY-MM.csv.gz (the log converted by 0021, event_legacy, whole to
    DIR/event_before_YYYY-MM.csv.gz), CSV with a header, read back and counted,
    recorded in event_archive, then detached and dropped. Never this month or later,
    never over an existing file, one archive at a time. A rerun archives what is
    left. Needs the tables' owner (TRACETRACK_OWNER_URL)."""
    from tracetrack_db import partitions

    settings = Settings.from_env()
    try:
        month = partitions.parse_month(before)
        with database_url(settings) as url:
            done = partitions.archive(url, month, directory, progress=progress_printer())
    except errors.ValidationError as exc:
        fail(f"{exc} ({exc.code})")
    except RuntimeError as exc:  # a file that did not read back, a partition that changed: kept
        fail(str(exc))
    for a in done:
        click.echo(f"{a.partition}: {a.rows} rows -> {a.file} (sha256 {a.sha256})")
    if not done:
        click.echo(f"nothing to archive before {before}")


@db_group.command("index-usage")
def index_usage_command() -> None:
    """Scans and size per index; unused non-unique indexes are listed first."""
    from tracetrack_db import maintenance

    stack, db = _open(Settings.from_env())
    with stack:
        rows = maintenance.index_usage(db)
    for row in rows:
        row["unused"] = "UNUSED" if row["scans"] == 0 and not row["is_unique"] else ""
    _table(rows, ["table_name", "index_name", "scans", "bytes", "is_unique", "unused"])


@db_group.command("table-stats")
def table_stats_command() -> None:
    """Rows, dead tuples, size, last vacuum and analyze per table."""
    from tracetrack_db import maintenance

    stack, db = _open(Settings.from_env())
    with stack:
        rows = maintenance.table_stats(db)
    _table(rows, ["table_name", "live_rows", "dead_rows", "bytes", "last_vacuum", "last_analyze"])


@db_group.command("explain")
@click.argument("query_name")
@click.option("--analyze", is_flag=True, help="Run it (in a rolled-back transaction) for real timings.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A filter of a list or export statement (list_bags, export_bills ...): type=child, "
    "linked=false, dispatch_area=lucknow, q=SB0 ...; repeatable.",
)
def explain_command(query_name: str, analyze: bool, filters: tuple[str, ...]) -> None:
    """Show the plan of a named query (sample parameters from the data) or of a
    composed list or export statement (list_bags, list_bills, list_events,
    export_bags, export_bills) with the given filters."""
    import psycopg

    from tracetrack_db import maintenance

    given = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--filter takes NAME=VALUE, not {item!r}")
        given[name] = {"true": True, "false": False}.get(value.lower(), value)
    stack, db = _open(Settings.from_env())
    with stack:
        if query_name not in maintenance.explainable():
            fail(f"unknown query {query_name!r}; known: {', '.join(maintenance.explainable())}")
        if given and query_name not in maintenance.COMPOSED:
            fail(f"--filter applies to {', '.join(maintenance.COMPOSED)}, not to a named query")
        try:
            click.echo(maintenance.explain(db, query_name, analyze=analyze, filters=given))
        except TypeError as exc:
            fail(f"{query_name} takes no such filter: {exc}")
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message} (the sample parameters come from the data: seed or scan first)")
        except psycopg.Error as exc:
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


@db_group.command("seed")
@click.option("--bags", type=int, required=True, help="How many bag rows (parents + children).")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Random seed (deterministic).")
def seed_command(bags: int, seed_value: int) -> None:
    """Load a realistic data set with COPY: parents of up to 30 children, ~10%
    unlinked children, bills in every status, users in every role and area, an
    event for every action, timestamps over the past 90 days. Refuses a
    database that already holds bags. Every seeded user (admins included) gets
    the password in TRACETRACK_SEED_PASSWORD, or a random one, printed once."""
    from tracetrack_db import maintenance

    from . import seed

    password = os.environ.get("TRACETRACK_SEED_PASSWORD") or None
    settings = Settings.from_env()
    with database_url(settings) as url:
        migrate_and_bootstrap(settings, url)
        try:
            if interactive():
                from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

                with Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    "[progress.percentage]{task.percentage:>3.0f}%",
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                ) as bar:
                    task = bar.add_task("seeding rows", total=None)
                    report = seed.seed(
                        url,
                        bags,
                        seed=seed_value,
                        password=password,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )
            else:
                report = seed.seed(url, bags, seed=seed_value, password=password)
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
        with Database(url, min_size=1, max_size=1, timeout=30) as db:
            maintenance.vacuum_analyze(db)
            from tracetrack_db import views

            views.refresh_views(db)
    click.echo(
        f"seeded {report.bags:,} bags ({report.parents:,} parents, {report.children:,} children, "
        f"{report.unlinked_children:,} unlinked), {report.bill_count:,} bills, {report.users} users, "
        f"{report.events:,} events in {report.seconds:.1f} s"
    )
    where = "from TRACETRACK_SEED_PASSWORD" if password else "generated: keep it, it is shown once"
    click.echo(f"users: {report.username_prefix}* with password {report.password} ({where})")


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
                user = users.create_user(db, username, password, role, dispatch_area, origin=cli_origin())
            except errors.TraceTrackError as exc:
                fail(f"{exc.code}: {exc.message}")
    click.echo(f"created {user.role} {user.username!r} (id {user.id})")
