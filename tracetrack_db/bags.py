"""Bags: register, look up (the hot read renders its JSON in PostgreSQL), list, delete.

`restrict_area` (a dispatcher's area) confines every call in SQL: a bag of
another area is not found, exactly like an unknown QR.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection, sql

from . import errors
from .cursor import like_prefix, paginate
from .database import Database
from .listing import Where, newest_first
from .models import Bag, Page
from .qr import normalize_qr

TYPES = ("parent", "child")
STATUSES = ("pending", "in_progress", "completed")


def register_bag(
    db: Database,
    qr_id: str,
    type: str,
    dispatch_area: str | None,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bag:
    """Register a bag by hand. Raises QrTaken, NotAParent, NotAChild, UnknownArea."""
    if type not in TYPES:
        raise errors.ValidationError("type must be parent or child", field="type")
    qr = normalize_qr(qr_id)
    with db.connection(conn=conn) as conn:
        bag_id = db.scalar(
            "register_bag",
            {
                "qr_id": qr,
                "type": type,
                "dispatch_area": dispatch_area,
                "user_id": user_id,
                "idempotency_key": idempotency_key,
            },
            conn=conn,
        )
        return db.one("get_bag_by_id", {"id": bag_id}, row=Bag, conn=conn)


def get_bag(db: Database, qr_id: str, *, restrict_area: str | None = None) -> Bag:
    """One bag. Raises BagNotFound (also for another area's bag under `restrict_area`)."""
    qr = normalize_qr(qr_id)
    bag = db.one("get_bag", {"qr_id": qr, "area": restrict_area}, row=Bag, read=True)
    if bag is None:
        raise errors.BagNotFound(f"bag {qr} not found")
    return bag


def get_bag_detail_json(db: Database, qr_id: str, *, restrict_area: str | None = None) -> bytes:
    """The bag with its parent (a child's), its children (a parent's) and its
    bill (its own or its parent's) as JSON {bag, parent, children, bill},
    built by PostgreSQL in one round trip: the hot read, no Python objects in
    between. The objects have the fields of `Bag` and `Bill`."""
    qr = normalize_qr(qr_id)
    text = db.text("get_bag_detail_json", {"qr_id": qr, "area": restrict_area}, read=True)
    if text is None:
        raise errors.BagNotFound(f"bag {qr} not found")
    return text


def visible_bag_id(db: Database, qr_id: str, *, restrict_area: str | None = None, field: str = "qr_id") -> int:
    """The id of the bag with this QR that the caller may see, or of the deleted
    bag that had it. Raises BagNotFound."""
    qr = normalize_qr(qr_id, field)
    bag_id = db.scalar("visible_bag_id", {"qr_id": qr, "area": restrict_area}, read=True)
    if bag_id is None:
        raise errors.BagNotFound(f"bag {qr} not found")
    return bag_id


def delete_bag(
    db: Database,
    qr_id: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> str:
    """Delete a bag; its QR. Raises BagOnBill, BagHasChildren, BagNotFound."""
    qr = normalize_qr(qr_id)
    db.scalar(
        "delete_bag",
        {"qr_id": qr, "user_id": user_id, "restrict_area": restrict_area, "idempotency_key": idempotency_key},
        conn=conn,
    )
    return qr


def bag_filters(
    *,
    type: str | None = None,
    status: str | None = None,
    dispatch_area: str | None = None,
    q: str | None = None,
    linked: bool | None = None,
    billed: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Where:
    """The bag filters of the list and the CSV export (columns of bag_row r)."""
    where = Where()
    if type is not None:
        if type not in TYPES:
            raise errors.ValidationError("type must be parent or child", field="type")
        where.add("r.type = %(type)s", type=type)
    if status is not None:
        if status not in STATUSES:
            raise errors.ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        where.add("r.status = %(status)s", status=status)
    if dispatch_area is not None:
        where.add("r.dispatch_area = %(dispatch_area)s", dispatch_area=dispatch_area)
    if q:
        prefix = "".join(ch for ch in q.upper() if ch.isascii() and (ch.isalnum() or ch in "-_/"))
        where.add("r.qr_id LIKE %(q)s", q=like_prefix(prefix))
    for name, value in (("linked", linked), ("billed", billed)):
        if value not in (None, True, False):
            raise errors.ValidationError(f"{name} must be true or false", field=name)
    if linked is True:
        where.add("r.type = 'child' AND r.parent_id IS NOT NULL")
    elif linked is False:
        where.add("r.type = 'child' AND r.parent_id IS NULL")
    if billed is True:  # only parents have a bill (bag_parent_fields); saying so misleads the planner
        where.add("r.bill_id IS NOT NULL")
    elif billed is False:
        where.add("r.type = 'parent' AND r.bill_id IS NULL")
    if created_after is not None:
        where.add("r.created_at >= %(created_after)s", created_after=created_after)
    if created_before is not None:
        where.add("r.created_at < %(created_before)s", created_before=created_before)
    return where


def list_query(*, limit: int = 50, cursor: str | None = None, **filters) -> tuple[sql.Composed, dict]:
    """The statement of `list_bags` (also for `tracetrack db explain list_bags`)."""
    return newest_first("SELECT r.* FROM bag_row r", bag_filters(**filters), cursor=cursor, limit=limit)


def list_bags(db: Database, *, limit: int = 50, cursor: str | None = None, **filters) -> Page[Bag]:
    """Bags newest first, keyset-paginated, with the filters of `bag_filters`."""
    query, params = list_query(limit=limit, cursor=cursor, **filters)
    return paginate(db.run_sql(query, params, row=Bag), limit)
