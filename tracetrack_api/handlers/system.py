"""GET /health: public, so it says only whether the service can answer."""

from __future__ import annotations

from tracetrack_db import errors, maintenance

from ..answers import Checks, Health
from ..table import Ctx, Reply


def health(ctx: Ctx) -> Reply:
    try:
        maintenance.ping(ctx.db)
        database = True
    except errors.DatabaseUnavailable:
        database = False
    checks = Checks(database=database, cache=ctx.services.cache.ping() is not None)
    if database:
        return Reply(Health("ok", checks), 200)
    return Reply(Health("unavailable", checks), 503, {"Retry-After": "2"})
