"""Bills: create, read with parents, list, update, add/remove parents,
complete, reopen, delete. Locks: bill, then parent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import Connection, sql

from . import errors
from .cursor import like_prefix, paginate
from .database import Database
from .listing import Where, newest_first
from .models import AddParentResult, Bag, Bill, BillDetail, Page
from .qr import normalize_qr

STATUSES = ("new", "processing", "completed")
MIN_CAPACITY, MAX_CAPACITY = 1, 500
MAX_BILL_NO = 64
# Segments the route table puts after a bill number (/api/bills/{bill_no}/parents ...).
RESERVED_SEGMENTS = ("parents", "complete", "reopen", "manifest", "manifest.csv", "manifest.pdf")
# Around a bill number these are dropped (what str.strip() would drop, spelled out
# so that Python and ECMAScript agree in the OpenAPI pattern).
_SPACE = r" \t\n\r\f\v"
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_BILL_NO = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
BILL_NO_RULE = (
    f"a bill number is 1-{MAX_BILL_NO} characters of A-Z a-z 0-9 _ . - in segments joined by "
    f"single '/', each starting with a letter or digit, none named {', '.join(RESERVED_SEGMENTS)}"
)


def normalize_bill_no(bill_no: object, field: str = "bill_no") -> str:
    """A bill number without the whitespace around it, or ValidationError."""
    if not isinstance(bill_no, str):
        raise errors.ValidationError("bill_no must be a string", field=field)
    text = bill_no.strip(" \t\n\r\f\v")
    if (
        len(text) > MAX_BILL_NO
        or not _BILL_NO.fullmatch(text)
        or any(s.lower() in RESERVED_SEGMENTS for s in text.split("/"))
    ):
        raise errors.ValidationError(f"invalid bill number {bill_no!r}: {BILL_NO_RULE}", field=field)
    return text


def input_pattern() -> str:
    """A regular expression (Python and ECMAScript) matching exactly the strings
    `normalize_bill_no` accepts, for the OpenAPI document."""
    reserved = "|".join("".join(f"[{c.upper()}{c}]" for c in w) for w in RESERVED_SEGMENTS)
    length = f"(?=[A-Za-z0-9_./-]{{1,{MAX_BILL_NO}}}[{_SPACE}]*$)"
    not_reserved = f"(?!(?:[A-Za-z0-9_.-]*/)*(?:{reserved})(?:/|[{_SPACE}]*$))"
    return f"^[{_SPACE}]*{length}{not_reserved}{_SEGMENT}(?:/{_SEGMENT})*[{_SPACE}]*$"


def _check_capacity(capacity: object) -> int:
    if not isinstance(capacity, int) or isinstance(capacity, bool) or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise errors.ValidationError(
            f"capacity must be a whole number from {MIN_CAPACITY} to {MAX_CAPACITY}", field="capacity"
        )
    return capacity


def create_bill(
    db: Database,
    bill_no: str,
    capacity: int,
    *,
    description: str = "",
    destination: str = "",
    vehicle_number: str = "",
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bill:
    """Create a bill of `capacity` parents (1-500). Raises BillExists."""
    params = {
        "bill_no": normalize_bill_no(bill_no),
        "capacity": _check_capacity(capacity),
        "description": description,
        "destination": destination,
        "vehicle_number": vehicle_number,
        "user_id": user_id,
        "idempotency_key": idempotency_key,
    }
    with db.connection(conn=conn) as conn:
        return _written(db, db.scalar("create_bill", params, conn=conn), conn)


def get_bill(db: Database, bill_no: str, *, conn: Connection | None = None) -> Bill:
    bill = db.one("get_bill", {"bill_no": normalize_bill_no(bill_no)}, row=Bill, conn=conn, read=True)
    if bill is None:
        raise errors.BillNotFound(f"bill {bill_no.strip()} not found")
    return bill


def _written(db: Database, bill_id: int, conn: Connection | None) -> Bill:
    """A bill just written, read from the primary (a replica may lag)."""
    return db.one("get_bill_by_id", {"id": bill_id}, row=Bill, conn=conn)


def get_bill_detail(db: Database, bill_no: str) -> BillDetail:
    """A bill with its parents (each with its child count and weight)."""
    with db.connection(read=True) as conn:
        bill = get_bill(db, bill_no, conn=conn)
        parents = db.many("bill_parents", {"bill_id": bill.id}, row=Bag, conn=conn)
    return BillDetail(bill=bill, parents=parents)


def bill_filters(status: str | None = None, q: str | None = None) -> Where:
    """The bill filters of the list and the CSV export (columns of bill_row r)."""
    where = Where()
    if status is not None:
        if status not in STATUSES:
            raise errors.ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        where.add("r.status = %(status)s", status=status)
    if q:
        where.add("lower(r.bill_no) LIKE %(q)s", q=like_prefix(q.strip().lower()))
    return where


def list_query(
    *, status: str | None = None, q: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[sql.Composed, dict]:
    """The statement of `list_bills` (also for `tracetrack db explain list_bills`)."""
    return newest_first("SELECT r.* FROM bill_row r", bill_filters(status, q), cursor=cursor, limit=limit)


def list_bills(
    db: Database, *, status: str | None = None, q: str | None = None, limit: int = 50, cursor: str | None = None
) -> Page[Bill]:
    """Bills newest first, keyset-paginated; `q` is a bill number prefix."""
    query, params = list_query(status=status, q=q, limit=limit, cursor=cursor)
    return paginate(db.run_sql(query, params, row=Bill), limit)


@dataclass(frozen=True)
class BillChanges:
    capacity: int | None = None
    description: str | None = None
    destination: str | None = None
    vehicle_number: str | None = None


def update_bill(
    db: Database,
    bill_no: str,
    changes: BillChanges,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bill:
    """Change capacity or descriptive fields; a change to the same values writes
    nothing. Raises ValidationError when `changes` names nothing, BillCompleted,
    BillCapacityTooSmall."""
    if changes == BillChanges():
        raise errors.ValidationError(
            "nothing to change: name at least one of capacity, description, destination, vehicle_number"
        )
    if changes.capacity is not None:
        _check_capacity(changes.capacity)
    with db.connection(conn=conn) as conn:
        bill_id = db.scalar(
            "bill_update",
            {
                "bill_no": normalize_bill_no(bill_no),
                "capacity": changes.capacity,
                "description": changes.description,
                "destination": changes.destination,
                "vehicle_number": changes.vehicle_number,
                "user_id": user_id,
                "idempotency_key": idempotency_key,
            },
            conn=conn,
        )
        return _written(db, bill_id, conn)


def add_parent(
    db: Database,
    bill_no: str,
    parent_qr: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> AddParentResult:
    """Put a parent on a bill. Raises BillFull, ParentOnOtherBill, BillCompleted,
    ParentEmpty, NotAParent, BagNotFound, BillNotFound."""
    with db.connection(conn=conn) as conn:
        row = db.one(
            "bill_add_parent",
            {
                "bill_no": normalize_bill_no(bill_no),
                "parent_qr": normalize_qr(parent_qr, "parent_qr"),
                "user_id": user_id,
                "idempotency_key": idempotency_key,
            },
            row=dict,
            conn=conn,
        )
        return AddParentResult(result=row["result"], bill=_written(db, row["bill_id"], conn))


def remove_parent(
    db: Database,
    bill_no: str,
    parent_qr: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bill:
    """Take a parent off a bill; the last one out sends the bill back to new.
    Raises ParentNotOnBill, BillCompleted."""
    return _call_returning_bill(
        db,
        "bill_remove_parent",
        conn,
        bill_no=normalize_bill_no(bill_no),
        parent_qr=normalize_qr(parent_qr, "parent_qr"),
        user_id=user_id,
        idempotency_key=idempotency_key,
    )


def complete_bill(
    db: Database,
    bill_no: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bill:
    """Complete a bill; it must hold exactly its capacity (BillNotFull)."""
    return _call_returning_bill(
        db, "bill_complete", conn, bill_no=normalize_bill_no(bill_no), user_id=user_id, idempotency_key=idempotency_key
    )


def reopen_bill(
    db: Database,
    bill_no: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> Bill:
    """Reopen a completed bill (back to processing). Raises BillNotCompleted."""
    return _call_returning_bill(
        db, "bill_reopen", conn, bill_no=normalize_bill_no(bill_no), user_id=user_id, idempotency_key=idempotency_key
    )


def _call_returning_bill(db: Database, query: str, conn: Connection | None, **params) -> Bill:
    with db.connection(conn=conn) as conn:
        return _written(db, db.scalar(query, params, conn=conn), conn)


def delete_bill(
    db: Database,
    bill_no: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> str:
    """Delete a bill; its parents stay and come off it; its history stays.
    Returns the deleted bill's own number."""
    return db.scalar(
        "bill_delete",
        {"bill_no": normalize_bill_no(bill_no), "user_id": user_id, "idempotency_key": idempotency_key},
        conn=conn,
    )
