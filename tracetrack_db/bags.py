"""Bags: register, look up with family and bill, list, delete."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from psycopg import sql

from . import errors
from psycopg import Connection

from .cursor import check_limit, decode_cursor, like_prefix, paginate
from .database import Database
from .models import Bag, BagDetail, Bill, Page
from .qr import normalize_qr

TYPES = ("parent", "child")
STATUSES = ("pending", "in_progress", "completed")


def register_bag(db: Database, qr_id: str, type: str, dispatch_area: str | None, *,
                 user_id: int | None = None, idempotency_key: str | None = None,
                 conn: Connection | None = None) -> Bag:
    """Register a bag by hand. Raises QrTaken, NotAParent, NotAChild, UnknownArea."""
    if type not in TYPES:
        raise errors.ValidationError("type must be parent or child", field="type")
    qr = normalize_qr(qr_id)
    with db.connection(conn=conn) as conn:
        bag_id = db.scalar("register_bag", {
            "qr_id": qr, "type": type, "dispatch_area": dispatch_area,
            "user_id": user_id, "idempotency_key": idempotency_key}, conn=conn)
        return db.one("get_bag_by_id", {"id": bag_id}, row=Bag, conn=conn)


def get_bag(db: Database, qr_id: str) -> Bag:
    bag = db.one("get_bag", {"qr_id": normalize_qr(qr_id)}, row=Bag, read=True)
    if bag is None:
        raise errors.BagNotFound(f"bag {qr_id} not found")
    return bag


def get_bag_detail(db: Database, qr_id: str) -> BagDetail:
    """A bag with its parent or children and its bill (the parent's bill for a
    child), in one round trip."""
    qr = normalize_qr(qr_id)
    rows = db.many("get_bag_family", {"qr_id": qr}, read=True)
    if not rows:
        raise errors.BagNotFound(f"bag {qr} not found")
    parent = None
    children: list[Bag] = []
    bag = bill = None
    for r in rows:
        rel = r[0]
        if rel == "child":
            children.append(Bag(*r[1:_BAG_END]))
        elif rel == "parent":
            parent = Bag(*r[1:_BAG_END])
        else:
            bag = Bag(*r[1:_BAG_END])
            bill = Bill(*r[_BAG_END:]) if r[_BAG_END] is not None else None
    return BagDetail(bag=bag, parent=parent, children=children, bill=bill)


def get_bag_detail_json(db: Database, qr_id: str) -> tuple[str, bytes]:
    """(dispatch_area, JSON of the BagDetail) built by PostgreSQL: the same
    answer as `get_bag_detail` with no Python objects in between (the HTTP hot path)."""
    qr = normalize_qr(qr_id)
    row = db.one("get_bag_detail_json", {"qr_id": qr}, read=True)
    if row is None:
        raise errors.BagNotFound(f"bag {qr} not found")
    return row[0], row[1].encode()


_BAG_END = 1 + len(fields(Bag))  # get_bag_family: rel, the Bag columns, then the Bill columns


def delete_bag(db: Database, qr_id: str, *, user_id: int | None = None,
               restrict_area: str | None = None, idempotency_key: str | None = None,
               conn: Connection | None = None) -> None:
    """Delete a bag. Raises BagOnBill, BagHasChildren, BagNotFound, WrongArea."""
    db.scalar("delete_bag", {"qr_id": normalize_qr(qr_id), "user_id": user_id,
                             "restrict_area": restrict_area, "idempotency_key": idempotency_key}, conn=conn)


# parent_qr and bill_no as scalar subqueries: PostgreSQL evaluates them only
# for the rows that survive ORDER BY … LIMIT (an index lookup each), never a join
# over every matching row.
_BAG_COLUMNS = sql.SQL(
    "b.id, b.qr_id, b.type, b.status, b.dispatch_area, b.parent_id, "
    "(SELECT p.qr_id FROM bag p WHERE p.id = b.parent_id) AS parent_qr, "
    "b.bill_id, (SELECT bl.bill_no FROM bill bl WHERE bl.id = b.bill_id) AS bill_no, "
    "b.capacity, b.child_count, b.weight_kg, b.created_by, b.created_at, b.updated_at")


def bag_filters(*, type: str | None = None, status: str | None = None,
                dispatch_area: str | None = None, q: str | None = None,
                linked: bool | None = None, billed: bool | None = None,
                created_after: datetime | None = None,
                created_before: datetime | None = None) -> tuple[list[sql.Composable], dict]:
    """WHERE fragments and bound parameters for the bag filters (list and export)."""
    where: list[sql.Composable] = []
    params: dict = {}
    if type is not None:
        if type not in TYPES:
            raise errors.ValidationError("type must be parent or child", field="type")
        where.append(sql.SQL("b.type = %(type)s"))
        params["type"] = type
    if status is not None:
        if status not in STATUSES:
            raise errors.ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        where.append(sql.SQL("b.status = %(status)s"))
        params["status"] = status
    if dispatch_area is not None:
        where.append(sql.SQL("b.dispatch_area = %(dispatch_area)s"))
        params["dispatch_area"] = dispatch_area
    if q:
        prefix = "".join(ch for ch in q.upper() if ch.isalnum() or ch in "-_/")
        where.append(sql.SQL("b.qr_id LIKE %(q)s"))
        params["q"] = like_prefix(prefix)
    if linked is not None:
        where.append(sql.SQL("b.type = 'child' AND b.parent_id IS {} NULL").format(
            sql.SQL("NOT") if linked else sql.SQL("")))
    if billed is not None:
        where.append(sql.SQL("b.type = 'parent' AND b.bill_id IS {} NULL").format(
            sql.SQL("NOT") if billed else sql.SQL("")))
    if created_after is not None:
        where.append(sql.SQL("b.created_at >= %(created_after)s"))
        params["created_after"] = created_after
    if created_before is not None:
        where.append(sql.SQL("b.created_at < %(created_before)s"))
        params["created_before"] = created_before
    return where, params


def list_bags(db: Database, *, limit: int = 50, cursor: str | None = None, **filters) -> Page[Bag]:
    """Bags newest first, keyset-paginated, with the filters of `bag_filters`."""
    where, params = bag_filters(**filters)
    if cursor:
        where.append(sql.SQL("b.id < %(before_id)s"))
        params["before_id"] = decode_cursor(cursor)
    params["limit"] = check_limit(limit) + 1
    query = sql.SQL(
        "SELECT {cols} FROM bag b {where} ORDER BY b.id DESC LIMIT %(limit)s"
    ).format(cols=_BAG_COLUMNS,
             where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    rows = db.run_sql(query, params, row=Bag)
    return paginate(rows, limit)
