"""The probes, public and without a token: GET /health (whether the service can
answer, and its version), GET /livez (the process answers; nothing else is
touched) and GET /readyz (the database answers and has every migration this
version ships: send traffic here)."""

from __future__ import annotations

from functools import cache

from tracetrack_db import __version__, errors, maintenance, migrations

from ..answers import Checks, Health, Liveness, Readiness
from ..table import Ctx, Reply

_LIVE = Liveness("ok", __version__)


def health(ctx: Ctx) -> Reply:
    try:
        maintenance.ping(ctx.db)
        database = True
    except errors.DatabaseUnavailable:
        database = False
    checks = Checks(database=database, cache=ctx.services.cache.ping() is not None)
    if database:
        return Reply(Health("ok", __version__, checks), 200)
    return Reply(Health("unavailable", __version__, checks), 503, {"Retry-After": "2"})


def livez(ctx: Ctx) -> Liveness:
    return _LIVE


@cache
def _shipped() -> list[migrations.Migration]:
    """The migrations of this version, read once (the files of the running code)."""
    return migrations.discover()


def readyz(ctx: Ctx) -> Reply:
    try:
        maintenance.ping(ctx.db)  # asks again once after a connection kept across a database restart
        left = maintenance.unapplied_migrations(ctx.db, _shipped())
    except errors.DatabaseUnavailable:
        return Reply(
            Readiness("not_ready", "database_unavailable", "the database does not answer", []),
            503,
            {"Retry-After": "2"},
        )
    if left:
        return Reply(
            Readiness(
                "not_ready",
                "migrations_pending",
                f"{len(left)} migration(s) of version {__version__} not applied: run `tracetrack db migrate`",
                left,
            ),
            503,
            {"Retry-After": "2"},
        )
    return Reply(Readiness("ready", None, None, []), 200)
