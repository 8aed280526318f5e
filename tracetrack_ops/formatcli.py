"""`tracetrack formats`: parent QR formats from the command line, through the
library (no HTTP): the same checks and answers as /api/parent-formats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import click

from tracetrack_db import Database, errors, formats
from tracetrack_db.audit import cli_origin
from tracetrack_db.models import ParentFormat
from tracetrack_db.runtime import database_url, migrate_and_bootstrap
from tracetrack_db.settings import Settings

from .dbcli import fail


@contextmanager
def _database() -> Iterator[Database]:
    settings = Settings.from_env()
    with database_url(settings) as url:
        migrate_and_bootstrap(settings, url)  # nothing to do on a current database
        with Database(url, min_size=1, max_size=2, timeout=30) as db:
            yield db


def _line(f: ParentFormat) -> str:
    return f"{f.name}\t{f.pattern}\tcapacity {f.capacity}\texpected {f.expected_weight_kg} kg"


@click.group("formats")
def formats_group() -> None:
    """Parent QR formats: a QR matching one opens as a parent of its capacity.

    In use (a parent bag's QR matches it), a format cannot be removed and its
    pattern cannot change; capacity and expected weight apply to parents
    created from then on."""


@formats_group.command("list")
def list_formats_command() -> None:
    """Every format, in matching order: name, pattern, capacity, expected weight."""
    with _database() as db:
        for f in formats.list_formats(db):
            click.echo(_line(f))


@formats_group.command("add")
@click.argument("name")
@click.argument("pattern")
@click.option("--capacity", type=int, default=formats.DEFAULT_CAPACITY, show_default=True, help="Children per parent.")
@click.option(
    "--expected-weight",
    "weight",
    type=Decimal,
    default=formats.DEFAULT_WEIGHT,
    show_default=True,
    help="Expected weight of a full parent, kg.",
)
def add_format_command(name: str, pattern: str, capacity: int, weight: Decimal) -> None:
    """Add a format NAME with an anchored PostgreSQL PATTERN, e.g. '^SB[0-9]{5}$'."""
    with _database() as db:
        try:
            added = formats.add_format(db, name, pattern, capacity, weight, origin=cli_origin())
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    click.echo(f"added {_line(added)}")


@formats_group.command("change")
@click.argument("name")
@click.option("--pattern", help="Only while no parent bag matches the current one.")
@click.option("--capacity", type=int, help="For parents created from now on.")
@click.option("--expected-weight", "weight", type=Decimal, help="kg, for parents created from now on.")
def change_format_command(name: str, pattern: str | None, capacity: int | None, weight: Decimal | None) -> None:
    """Change a format's pattern, capacity or expected weight."""
    if pattern is None and capacity is None and weight is None:
        fail("give --pattern, --capacity or --expected-weight")
    with _database() as db:
        try:
            changed = formats.change_format(
                db, name, pattern=pattern, capacity=capacity, expected_weight_kg=weight, origin=cli_origin()
            )
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    click.echo(f"changed {_line(changed)}")


@formats_group.command("remove")
@click.argument("name")
def remove_format_command(name: str) -> None:
    """Remove a format no parent bag uses."""
    with _database() as db:
        try:
            removed = formats.remove_format(db, name, origin=cli_origin())
        except errors.TraceTrackError as exc:
            fail(f"{exc.code}: {exc.message}")
    click.echo(f"removed {removed.name}")
