"""The security log: a page of it, or all of it as CSV (admins)."""

from __future__ import annotations

from datetime import datetime

from tracetrack_db import Page, audit, exports

from ..table import CsvStream, Ctx
from .reports import _csv


def _filters(
    start: datetime | None, end: datetime | None, user: int | None, kind: str | None
) -> dict[str, datetime | int | str | None]:
    return {"occurred_from": start, "occurred_to": end, "user_id": user, "kind": kind}


def list_log(
    ctx: Ctx, limit: int, cursor: str | None = None, user: int | None = None, kind: str | None = None, **range_
) -> Page[audit.SecurityEvent]:
    filters = _filters(range_.get("from"), range_.get("to"), user, kind)
    return audit.list_log(ctx.db, limit=limit, cursor=cursor, **filters)


def export_log(ctx: Ctx, user: int | None = None, kind: str | None = None, **range_) -> CsvStream:
    filters = _filters(range_.get("from"), range_.get("to"), user, kind)
    return _csv(ctx, lambda on_abort: exports.security_log_csv(ctx.db, on_abort=on_abort, **filters), "audit.csv")
