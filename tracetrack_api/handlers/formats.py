"""Parent formats: any role reads them (a scanning console shows capacities);
admins add, change and remove them."""

from __future__ import annotations

from decimal import Decimal

from tracetrack_db import formats
from tracetrack_db.models import ParentFormat

from ..answers import Deleted
from ..table import Ctx


def list_formats(ctx: Ctx) -> list[ParentFormat]:
    return formats.list_formats(ctx.db)


def add_format(
    ctx: Ctx,
    name: str,
    pattern: str,
    capacity: int = formats.DEFAULT_CAPACITY,
    expected_weight_kg: Decimal = formats.DEFAULT_WEIGHT,
) -> ParentFormat:
    return formats.add_format(ctx.db, name, pattern, capacity, expected_weight_kg, origin=ctx.origin, conn=ctx.conn)


def change_format(
    ctx: Ctx,
    format_name: str,
    pattern: str | None = None,
    capacity: int | None = None,
    expected_weight_kg: Decimal | None = None,
) -> ParentFormat:
    return formats.change_format(
        ctx.db,
        format_name,
        pattern=pattern,
        capacity=capacity,
        expected_weight_kg=expected_weight_kg,
        origin=ctx.origin,
        conn=ctx.conn,
    )


def remove_format(ctx: Ctx, format_name: str) -> Deleted:
    return Deleted(formats.remove_format(ctx.db, format_name, origin=ctx.origin, conn=ctx.conn).name)
