"""Bills: create, read with parents, list, update, add/remove parents,
complete, reopen, delete. Locks: bill, then parent."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection, sql

from . import errors
from .cursor import check_limit, decode_cursor, like_prefix, paginate
from .database import Database
from .models import AddParentResult, Bag, Bill, BillDetail, Page
from .qr import normalize_qr

STATUSES = ("new", "processing", "completed")
_BILL_COLUMNS = sql.SQL(
    "id, bill_no, capacity, description, destination, vehicle_number, status, linked_parent_count, "
    "total_child_count, total_weight_kg, expected_weight_kg, created_by, created_at, updated_at, completed_at")


def _bill_no(bill_no: object) -> str:
    if not isinstance(bill_no, str) or not bill_no.strip():
        raise errors.ValidationError("bill_no must be a non-empty string", field="bill_no")
    return bill_no.strip()


def create_bill(db: Database, bill_no: str, capacity: int, *, description: str = "",
                destination: str = "", vehicle_number: str = "", user_id: int | None = None,
                idempotency_key: str | None = None, conn: Connection | None = None) -> Bill:
    """Create a bill of `capacity` parents (1-500). Raises BillExists."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or not 1 <= capacity <= 500:
        raise errors.ValidationError("capacity must be a whole number from 1 to 500", field="capacity")
    return db.one("create_bill", {
        "bill_no": _bill_no(bill_no), "capacity": capacity, "description": description,
        "destination": destination, "vehicle_number": vehicle_number, "user_id": user_id,
        "idempotency_key": idempotency_key}, row=Bill, conn=conn)


def get_bill(db: Database, bill_no: str, *, conn: Connection | None = None) -> Bill:
    bill = db.one("get_bill", {"bill_no": _bill_no(bill_no)}, row=Bill, conn=conn, read=True)
    if bill is None:
        raise errors.BillNotFound(f"bill {bill_no} not found")
    return bill


def get_bill_by_id(db: Database, bill_id: int, *, conn: Connection | None = None) -> Bill | None:
    return db.one("get_bill_by_id", {"id": bill_id}, row=Bill, conn=conn, read=True)


def _written(db: Database, bill_id: int, conn: Connection | None) -> Bill:
    """A bill just written, read from the primary (a replica may lag)."""
    return db.one("get_bill_by_id", {"id": bill_id}, row=Bill, conn=conn)


def get_bill_detail(db: Database, bill_no: str) -> BillDetail:
    """A bill with its parents (each with its child count and weight)."""
    with db.connection(read=True) as conn:
        bill = get_bill(db, bill_no, conn=conn)
        parents = db.many("bill_parents", {"bill_id": bill.id, "bill_no": bill.bill_no}, row=Bag, conn=conn)
    return BillDetail(bill=bill, parents=parents)


def bill_filters(status: str | None = None, q: str | None = None) -> tuple[list[sql.Composable], dict]:
    """WHERE fragments and bound parameters for the bill filters (list and export)."""
    where: list[sql.Composable] = []
    params: dict = {}
    if status is not None:
        if status not in STATUSES:
            raise errors.ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        where.append(sql.SQL("status = %(status)s"))
        params["status"] = status
    if q:
        where.append(sql.SQL("lower(bill_no) LIKE %(q)s"))
        params["q"] = like_prefix(q.strip().lower())
    return where, params


def list_bills(db: Database, *, status: str | None = None, q: str | None = None,
               limit: int = 50, cursor: str | None = None) -> Page[Bill]:
    """Bills newest first, keyset-paginated; `q` is a bill number prefix."""
    where, params = bill_filters(status, q)
    params["limit"] = check_limit(limit) + 1
    if cursor:
        where.append(sql.SQL("id < %(before_id)s"))
        params["before_id"] = decode_cursor(cursor)
    query = sql.SQL("SELECT {cols} FROM bill {where} ORDER BY id DESC LIMIT %(limit)s").format(
        cols=_BILL_COLUMNS,
        where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    return paginate(db.run_sql(query, params, row=Bill), limit)


@dataclass(frozen=True)
class BillChanges:
    capacity: int | None = None
    description: str | None = None
    destination: str | None = None
    vehicle_number: str | None = None


def update_bill(db: Database, bill_no: str, changes: BillChanges, *, user_id: int | None = None,
                idempotency_key: str | None = None, conn: Connection | None = None) -> Bill:
    """Change capacity or descriptive fields. Raises BillCompleted, BillCapacityTooSmall."""
    cap = changes.capacity
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 500):
        raise errors.ValidationError("capacity must be a whole number from 1 to 500", field="capacity")
    bill_id = db.scalar("bill_update", {
        "bill_no": _bill_no(bill_no), "capacity": cap, "description": changes.description,
        "destination": changes.destination, "vehicle_number": changes.vehicle_number,
        "user_id": user_id, "idempotency_key": idempotency_key}, conn=conn)
    return _written(db, bill_id, conn)


def add_parent(db: Database, bill_no: str, parent_qr: str, *, user_id: int | None = None,
               idempotency_key: str | None = None, conn: Connection | None = None) -> AddParentResult:
    """Put a parent on a bill. Raises BillFull, ParentOnOtherBill, BillCompleted,
    ParentEmpty, NotAParent, BagNotFound, BillNotFound."""
    row = db.one("bill_add_parent", {
        "bill_no": _bill_no(bill_no), "parent_qr": normalize_qr(parent_qr, "parent_qr"),
        "user_id": user_id, "idempotency_key": idempotency_key}, row=dict, conn=conn)
    return AddParentResult(result=row["result"], bill=_written(db, row["bill_id"], conn))


def remove_parent(db: Database, bill_no: str, parent_qr: str, *, user_id: int | None = None,
                  idempotency_key: str | None = None, conn: Connection | None = None) -> Bill:
    """Take a parent off a bill. Raises ParentNotOnBill, BillCompleted."""
    bill_id = db.scalar("bill_remove_parent", {
        "bill_no": _bill_no(bill_no), "parent_qr": normalize_qr(parent_qr, "parent_qr"),
        "user_id": user_id, "idempotency_key": idempotency_key}, conn=conn)
    return _written(db, bill_id, conn)


def complete_bill(db: Database, bill_no: str, *, user_id: int | None = None,
                  idempotency_key: str | None = None, conn: Connection | None = None) -> Bill:
    """Complete a bill; it must hold exactly its capacity (BillNotFull)."""
    bill_id = db.scalar("bill_complete", {"bill_no": _bill_no(bill_no), "user_id": user_id,
                                          "idempotency_key": idempotency_key}, conn=conn)
    return _written(db, bill_id, conn)


def reopen_bill(db: Database, bill_no: str, *, user_id: int | None = None,
                idempotency_key: str | None = None, conn: Connection | None = None) -> Bill:
    """Reopen a completed bill (back to processing). Raises BillNotCompleted."""
    bill_id = db.scalar("bill_reopen", {"bill_no": _bill_no(bill_no), "user_id": user_id,
                                        "idempotency_key": idempotency_key}, conn=conn)
    return _written(db, bill_id, conn)


def delete_bill(db: Database, bill_no: str, *, user_id: int | None = None,
                idempotency_key: str | None = None, conn: Connection | None = None) -> None:
    """Delete a bill; its parents stay and come off it; its history stays."""
    db.scalar("bill_delete", {"bill_no": _bill_no(bill_no), "user_id": user_id,
                              "idempotency_key": idempotency_key}, conn=conn)
