"""Return tickets: open, list, read, scan returned parents in, finalise, cancel."""

from __future__ import annotations

from tracetrack_db import returns

from ..table import Ctx


def list_returns(ctx: Ctx, limit: int, cursor: str | None = None, status: str | None = None):
    return returns.list_returns(ctx.db, status=status, limit=limit, cursor=cursor)


def open_return(ctx: Ctx, depot: str, reason: str = ""):
    return returns.open_return(ctx.db, depot, reason, **ctx.writes)


def get_return(ctx: Ctx, return_id: int):
    return returns.get_return(ctx.db, return_id)


def return_parent(ctx: Ctx, return_id: int, parent_qr: str):
    return returns.return_parent(ctx.db, return_id, parent_qr, **ctx.writes)


def finalise_return(ctx: Ctx, return_id: int):
    return returns.finalise_return(ctx.db, return_id, **ctx.writes)


def cancel_return(ctx: Ctx, return_id: int):
    return returns.cancel_return(ctx.db, return_id, **ctx.writes)
