"""Corrections of scans: close a parent short, reopen it, undo one's last link."""

from __future__ import annotations

from tracetrack_db import scans

from ..table import Ctx


def close_parent(ctx: Ctx, parent_qr: str, reason: str):
    return scans.close_parent(ctx.db, parent_qr, reason, restrict_area=ctx.area, **ctx.writes)


def reopen_parent(ctx: Ctx, parent_qr: str):
    return scans.reopen_parent(ctx.db, parent_qr, restrict_area=ctx.area, **ctx.writes)


def undo_last_link(ctx: Ctx):
    writes = ctx.writes
    return scans.undo_last_link(
        ctx.db,
        writes.pop("user_id"),
        window_seconds=ctx.services.settings.db.undo_window,
        restrict_area=ctx.area,
        **writes,
    )
