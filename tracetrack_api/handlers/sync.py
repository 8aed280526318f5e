"""Offline sync: a scanner's list of operations, a verdict each."""

from __future__ import annotations

from tracetrack_db import sync

from ..table import Ctx


def sync_operations(ctx: Ctx, device_id: str, operations: list[sync.SyncOp]) -> sync.SyncAnswer:
    settings = ctx.services.settings
    return sync.sync(
        ctx.db,
        device_id,
        operations,
        user_id=ctx.caller.id,
        restrict_area=ctx.area,
        max_ahead_seconds=settings.sync_max_ahead_seconds,
        max_behind_seconds=settings.sync_max_behind_seconds,
    )
