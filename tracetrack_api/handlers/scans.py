"""Scanning: open a parent, link one child or a batch, unlink, recent scans."""

from __future__ import annotations

from tracetrack_db import events, scans

from ..table import Ctx, Reply


def open_parent(ctx: Ctx, qr_id: str, dispatch_area: str | None = None) -> Reply:
    opened = scans.open_parent(ctx.db, qr_id, dispatch_area=dispatch_area, restrict_area=ctx.area, **ctx.writes)
    return Reply(opened, 201 if opened.created else 200)


def link_child(ctx: Ctx, parent_qr: str, child_qr: str):
    return scans.link_child(ctx.db, parent_qr, child_qr, restrict_area=ctx.area, **ctx.writes)


def link_children(ctx: Ctx, parent_qr: str, child_qrs: list[str]):
    return scans.link_children(ctx.db, parent_qr, child_qrs, restrict_area=ctx.area, **ctx.writes)


def unlink_child(ctx: Ctx, child_qr: str):
    return scans.unlink_child(ctx.db, child_qr, restrict_area=ctx.area, **ctx.writes)


def move_child(ctx: Ctx, child_qr: str, to_parent_qr: str):
    return scans.move_child(ctx.db, child_qr, to_parent_qr, restrict_area=ctx.area, **ctx.writes)


def list_scans(
    ctx: Ctx, limit: int, cursor: str | None = None, user: int | None = None, bag: str | None = None, since=None
):
    return events.recent_events(
        ctx.db, user_id=user, qr_id=bag, since=since, dispatch_area=ctx.area, limit=limit, cursor=cursor
    )
