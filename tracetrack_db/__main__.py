"""`python -m tracetrack_db`: the library's own commands (what `tracetrack db` and
`tracetrack users` do), for a service that installed the library alone."""

import click

from tracetrack_ops.dbcli import db_group, users_group


@click.group(commands={**db_group.commands, "users": users_group})
@click.version_option(package_name="tracetrack")
def library_cli() -> None:
    """TraceTrack's database library: migrations, status, seed, maintenance, users.
    Without DATABASE_URL an embedded PostgreSQL (the 'server' extra) is used."""


if __name__ == "__main__":
    from tracetrack_ops.cli import main

    main(library_cli, prog_name="python -m tracetrack_db")
