"""GET /health."""

from __future__ import annotations

import time

from tracetrack_db import errors, maintenance

from ..answers import CacheCheck, Checks, DatabaseCheck, Health
from ..table import Ctx, Reply


def health(ctx: Ctx) -> Reply:
    start = time.perf_counter()
    try:
        database = DatabaseCheck(True, round(maintenance.ping(ctx.db), 2))
    except errors.DatabaseUnavailable as exc:
        database = DatabaseCheck(False, round((time.perf_counter() - start) * 1000, 2), exc.message)
    cache = ctx.services.cache
    latency = cache.ping()
    checks = Checks(database, CacheCheck(cache.kind, latency is not None,
                                         None if latency is None else round(latency, 2)))
    if database.ok:
        return Reply(Health("ok", checks, ctx.db.stats()), 200)
    return Reply(Health("unavailable", checks, ctx.db.stats()), 503, {"Retry-After": "2"})
