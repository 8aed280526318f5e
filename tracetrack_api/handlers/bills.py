"""Bills: create, list, read, edit, delete, add/remove parents, complete, reopen."""

from __future__ import annotations

from tracetrack_db import bills
from tracetrack_db.bills import BillChanges
from tracetrack_db.models import RemoveParentResult

from ..answers import Deleted
from ..table import Ctx


def list_bills(ctx: Ctx, limit: int, cursor: str | None = None, status: str | None = None, q: str | None = None):
    return bills.list_bills(ctx.db, status=status, q=q, limit=limit, cursor=cursor)


def create_bill(
    ctx: Ctx, bill_no: str, capacity: int, description: str = "", destination: str = "", vehicle_number: str = ""
):
    return bills.create_bill(
        ctx.db,
        bill_no,
        capacity,
        description=description,
        destination=destination,
        vehicle_number=vehicle_number,
        **ctx.writes,
    )


def get_bill(ctx: Ctx, bill_no: str):
    return bills.get_bill_detail(ctx.db, bill_no)


def update_bill(ctx: Ctx, bill_no: str, **changes):
    return bills.update_bill(ctx.db, bill_no, BillChanges(**changes), **ctx.writes)


def delete_bill(ctx: Ctx, bill_no: str) -> Deleted:
    return Deleted(bills.delete_bill(ctx.db, bill_no, **ctx.writes))


def add_parent(ctx: Ctx, bill_no: str, parent_qr: str):
    return bills.add_parent(ctx.db, bill_no, parent_qr, **ctx.writes)


def remove_parent(ctx: Ctx, bill_no: str, parent_qr: str) -> RemoveParentResult:
    return RemoveParentResult("removed", bills.remove_parent(ctx.db, bill_no, parent_qr, **ctx.writes))


def complete_bill(ctx: Ctx, bill_no: str):
    return bills.complete_bill(ctx.db, bill_no, **ctx.writes)


def reopen_bill(ctx: Ctx, bill_no: str):
    return bills.reopen_bill(ctx.db, bill_no, **ctx.writes)
