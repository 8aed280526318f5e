"""`tracetrack import FILE` and `tracetrack rules`: bulk import and label
extraction rules from the command line, through the library (no HTTP)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from tracetrack_db import Database, errors, extraction, imports, users
from tracetrack_db.audit import cli_origin
from tracetrack_db.importfiles import ENCODINGS
from tracetrack_db.runtime import database_url, migrate_and_bootstrap
from tracetrack_db.settings import Settings

from .dbcli import fail, interactive


@contextmanager
def _database() -> Iterator[Database]:
    settings = Settings.from_env()
    with database_url(settings) as url:
        migrate_and_bootstrap(settings, url)  # nothing to do on a current database
        with Database(url, min_size=1, max_size=imports.DEFAULT_WORKERS + 1, timeout=30) as db:
            yield db


@contextmanager
def _progress(name: str) -> Iterator[imports.Progress | None]:
    """A rich progress bar on a terminal (never in CI); nothing otherwise."""
    if not interactive():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task(name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layout", type=click.Choice(tuple(imports.LAYOUTS)), required=True)
@click.option("--rule", help="An extraction rule applied to every QR cell (see `tracetrack rules list`).")
@click.option("--dry-run", is_flag=True, help="Check every row against the current data; change nothing.")
@click.option("--all-or-nothing", is_flag=True, help="Apply nothing unless every row can be applied.")
@click.option("--dispatch-area", help="The area of new parents; bags of another area are refused.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="utf-8", show_default=True, help="Of a CSV file.")
@click.option("--as", "username", help="Record the import as this user's (default: nobody, the command line).")
@click.option("--max-bytes", type=click.IntRange(1), default=imports.DEFAULT_MAX_BYTES, show_default=True)
def import_command(
    file: Path,
    layout: str,
    rule: str | None,
    dry_run: bool,
    all_or_nothing: bool,
    dispatch_area: str | None,
    encoding: str,
    username: str | None,
    max_bytes: int,
) -> None:
    """Import a CSV or XLSX FILE of links, blocks, bills or bags (see the README's
    Import section). Prints the job's counts; `--dry-run` changes nothing.
    Exit status 1 when some rows failed."""
    with _database() as db:
        user_id = None
        if username is not None:
            user = users.find_user(db, username)
            if user is None:
                fail(f"no user named {username!r}")
            user_id = user.id
        try:
            with file.open("rb") as source, _progress(f"importing {file.name}") as progress:
                job = imports.run_import(
                    db,
                    source,
                    layout=layout,
                    file_name=file.name,
                    rule=rule,
                    dry_run=dry_run,
                    all_or_nothing=all_or_nothing,
                    dispatch_area=dispatch_area,
                    encoding=encoding,
                    user_id=user_id,
                    max_bytes=max_bytes,
                    progress=progress,
                )
            detail = imports.import_detail(db, job, problems=10)
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    what = "checked (dry run, nothing changed)" if job.dry_run else "imported"
    counts = ", ".join(f"{job.verdicts.get(v, 0)} {v}" for v in imports.VERDICTS)
    click.echo(f"import {job.id}: {what} {job.rows} rows in {job.blocks} blocks: {counts}")
    if job.message:
        click.echo(job.message)
    for row in detail.problems:
        click.echo(f"  row {row.row_no}: {row.verdict} {row.code}: {row.message}", err=True)
    if job.verdicts.get("error"):
        click.echo(f"every row's result: GET /api/imports/{job.id}/results.csv", err=True)
        sys.exit(1)


@click.group("rules")
def rules_group() -> None:
    """Label extraction rules: a regular expression with a named group qr."""


@rules_group.command("list")
def list_rules_command() -> None:
    """Every rule, by name."""
    with _database() as db:
        for rule in extraction.list_rules(db):
            click.echo(f"{rule.name}\t{rule.pattern}\t{rule.description}")


@rules_group.command("add")
@click.argument("name")
@click.argument("pattern")
@click.option("--description", default="")
def add_rule_command(name: str, pattern: str, description: str) -> None:
    """Add a rule NAME with PATTERN, e.g. 'LABEL NO\\.(?P<qr>\\d+)'."""
    with _database() as db:
        try:
            rule = extraction.add_rule(db, name, pattern, description, origin=cli_origin())
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    click.echo(f"added rule {rule.name}: {rule.pattern}")


@rules_group.command("change")
@click.argument("name")
@click.option("--pattern")
@click.option("--description")
def change_rule_command(name: str, pattern: str | None, description: str | None) -> None:
    """Change a rule's pattern or description."""
    if pattern is None and description is None:
        fail("give --pattern or --description")
    with _database() as db:
        try:
            rule = extraction.change_rule(db, name, pattern=pattern, description=description, origin=cli_origin())
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    click.echo(f"changed rule {rule.name}: {rule.pattern}")
