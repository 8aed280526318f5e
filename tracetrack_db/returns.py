"""Return tickets (issue 12, items 1 and 2): parents that came back from a depot.

A biller or admin opens a ticket (`open_return`), scans the returned parents
into it (`return_parent`: each leaves its bill at once, the bill's counters go
down and a completed bill goes back to processing, or to new when its last
parent leaves), then finalises it (`finalise_return`) or cancels it
(`cancel_return`: recorded as abandoned, nothing goes back: the parents stay
off their bills). A returned parent on no bill goes on a bill again through
`bills.add_parent`, the same bill or another.

Each write is one call of a server-side function (migration 0017) taking its
row locks in the fixed order ticket, bill, parent, with one event per change
(return_opened, return_add, return_finalised, return_cancelled).
"""

from __future__ import annotations

from psycopg import Connection, sql

from . import errors
from .cursor import paginate
from .database import Database
from .listing import Where, newest_first
from .models import Page, ReturnDetail, ReturnItem, ReturnResult, ReturnTicket
from .qr import normalize_qr

STATUSES = ("open", "finalised", "cancelled")
MAX_DEPOT, MAX_REASON = 200, 1000
MAX_PARENTS = 1000  # per ticket (return_ticket.parent_count's CHECK; 409 return_full)
# A depot holds at least one character that is no ASCII space or control; the
# ASCII whitespace around it is dropped (the OpenAPI pattern says the same).
DEPOT_PATTERN = r"^[^\x00]*[^\x00-\x20\x7f][^\x00]*$"
_SPACE = " \t\n\r\f\v"

__all__ = [
    "ReturnDetail",
    "ReturnItem",
    "ReturnResult",
    "ReturnTicket",
    "cancel_return",
    "finalise_return",
    "get_return",
    "list_returns",
    "open_return",
    "return_parent",
]


def _check_depot(depot: object) -> str:
    if not isinstance(depot, str) or "\x00" in depot:
        raise errors.ValidationError("depot must be a string without NUL characters", field="depot")
    text = depot.strip(_SPACE)
    if not text or len(text) > MAX_DEPOT or not any(c > " " and c != "\x7f" for c in text):
        raise errors.ValidationError(f"a depot is 1-{MAX_DEPOT} characters, not only spaces", field="depot")
    return text


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str) or "\x00" in reason or len(reason) > MAX_REASON:
        raise errors.ValidationError(f"a reason is a text of at most {MAX_REASON} characters", field="reason")
    return reason


def _ticket_id(ticket_id: object) -> int:
    if not isinstance(ticket_id, int) or isinstance(ticket_id, bool) or not 1 <= ticket_id <= 2**63 - 1:
        raise errors.ValidationError("a return ticket id is a whole number from 1", field="return_id")
    return ticket_id


def _written(db: Database, ticket_id: int, conn: Connection) -> ReturnTicket:
    """A ticket just written, read from the primary (a replica may lag)."""
    return db.one("get_return", {"id": ticket_id}, row=ReturnTicket, conn=conn)


def open_return(
    db: Database,
    depot: str,
    reason: str = "",
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> ReturnTicket:
    """Open a return ticket for parents coming back from `depot`."""
    params = {
        "depot": _check_depot(depot),
        "reason": _check_reason(reason),
        "user_id": user_id,
        "idempotency_key": idempotency_key,
    }
    with db.connection(conn=conn) as conn:
        return _written(db, db.scalar("return_open", params, conn=conn), conn)


def get_return(db: Database, ticket_id: int, *, conn: Connection | None = None) -> ReturnDetail:
    """A ticket with its items, in the order they were scanned. Raises ReturnNotFound."""
    ticket_id = _ticket_id(ticket_id)
    with db.connection(read=True, conn=conn) as conn:
        ticket = db.one("get_return", {"id": ticket_id}, row=ReturnTicket, conn=conn, read=True)
        if ticket is None:
            raise errors.ReturnNotFound(f"return ticket R{ticket_id} not found")
        items = db.many("return_items", {"ticket_id": ticket_id}, row=ReturnItem, conn=conn, read=True)
    return ReturnDetail(ticket=ticket, items=items)


def list_query(*, status: str | None = None, limit: int = 50, cursor: str | None = None) -> tuple[sql.Composed, dict]:
    """The statement of `list_returns` (also for `tracetrack db explain list_returns`)."""
    where = Where()
    if status is not None:
        if status not in STATUSES:
            raise errors.ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        where.add("r.status = %(status)s", status=status)
    return newest_first("SELECT r.* FROM return_ticket_row r", where, cursor=cursor, limit=limit)


def list_returns(
    db: Database, *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> Page[ReturnTicket]:
    """Tickets newest first, keyset-paginated, optionally of one status."""
    query, params = list_query(status=status, limit=limit, cursor=cursor)
    return paginate(db.run_sql(query, params, row=ReturnTicket), limit)


def return_parent(
    db: Database,
    ticket_id: int,
    parent_qr: str,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> ReturnResult:
    """Scan a returned parent into an open ticket: it leaves its bill (the bill's
    counters go down, a completed bill goes back to processing, an emptied one
    to new). Result returned, or already_returned when it is on this ticket
    already and on no bill since (nothing recorded). Raises ReturnNotFound,
    ReturnNotOpen, ParentNotOnBill, ReturnedOnThisTicket (returned here, then
    billed again), ReturnFull, NotAParent, BagNotFound."""
    ticket_id = _ticket_id(ticket_id)
    params = {
        "ticket_id": ticket_id,
        "parent_qr": normalize_qr(parent_qr, "parent_qr"),
        "user_id": user_id,
        "idempotency_key": idempotency_key,
    }
    with db.connection(conn=conn) as conn:
        row = db.one("return_add_parent", params, row=dict, conn=conn)
        item = db.one("get_return_item", {"id": row["item_id"]}, row=ReturnItem, conn=conn)
        return ReturnResult(result=row["result"], item=item, ticket=_written(db, ticket_id, conn))


def _close(db: Database, ticket_id: int, status: str, user_id, idempotency_key, conn) -> ReturnTicket:
    params = {
        "ticket_id": _ticket_id(ticket_id),
        "status": status,
        "user_id": user_id,
        "idempotency_key": idempotency_key,
    }
    with db.connection(conn=conn) as conn:
        return _written(db, db.scalar("return_close", params, conn=conn), conn)


def finalise_return(
    db: Database,
    ticket_id: int,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> ReturnTicket:
    """Finalise an open ticket holding at least one parent (a finalised one stays
    as it is). Raises ReturnNotFound, ReturnNotOpen (cancelled), ReturnEmpty."""
    return _close(db, ticket_id, "finalised", user_id, idempotency_key, conn)


def cancel_return(
    db: Database,
    ticket_id: int,
    *,
    user_id: int | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> ReturnTicket:
    """Record that an open ticket was abandoned (a cancelled one stays as it is).
    Nothing goes back: its parents stay off their bills. Raises ReturnNotFound,
    ReturnNotOpen (finalised)."""
    return _close(db, ticket_id, "cancelled", user_id, idempotency_key, conn)
