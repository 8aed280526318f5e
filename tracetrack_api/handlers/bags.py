"""Bags: register, list, look up (the hot read), history, delete."""

from __future__ import annotations

from tracetrack_db import bags, errors, events

from ..answers import Deleted
from ..table import Ctx, RawJson


def list_bags(ctx: Ctx, limit: int, cursor: str | None = None, dispatch_area: str | None = None, **filters):
    return bags.list_bags(ctx.db, limit=limit, cursor=cursor, dispatch_area=ctx.confine(dispatch_area), **filters)


def register_bag(ctx: Ctx, qr_id: str, type: str, dispatch_area: str | None = None):
    area = ctx.confine(dispatch_area)
    if area is None:
        raise errors.DispatchAreaRequired("dispatch_area is required", field="dispatch_area")
    return bags.register_bag(ctx.db, qr_id, type, area, **ctx.writes)


def get_bag(ctx: Ctx, qr: str) -> RawJson:
    return RawJson(bags.get_bag_detail_json(ctx.db, qr, restrict_area=ctx.area))


def bag_history(ctx: Ctx, qr: str):
    return events.bag_history(ctx.db, qr, restrict_area=ctx.area)


def delete_bag(ctx: Ctx, qr: str) -> Deleted:
    return Deleted(bags.delete_bag(ctx.db, qr, restrict_area=ctx.area, **ctx.writes))
