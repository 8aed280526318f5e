"""The `tracetrack` command."""

from __future__ import annotations

import click

from tracetrack_db.cli import db_group, users_group


@click.group()
@click.version_option(package_name="tracetrack")
def main() -> None:
    """TraceTrack: bag traceability. Without DATABASE_URL an embedded
    PostgreSQL keeps its data in the per-user data directory."""


main.add_command(db_group)
main.add_command(users_group)
