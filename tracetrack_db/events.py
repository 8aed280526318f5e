"""The event log: recent scans and the full history of a bag."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from . import errors
from .cursor import check_limit, decode_cursor, paginate
from .database import Database
from .models import Event, Page
from .qr import normalize_qr

HISTORY_LIMIT = 10_000
_EVENT_COLUMNS = sql.SQL(
    "e.id, e.occurred_at, e.kind, e.user_id, u.username, e.bag_id, e.qr_id, e.parent_id, e.parent_qr, "
    "e.bill_id, e.bill_no, e.dispatch_area, e.idempotency_key, e.details")


def bag_history(db: Database, qr_id: str, *, restrict_area: str | None = None,
                limit: int = HISTORY_LIMIT) -> list[Event]:
    """Every event of the bag, of its children and of its bill, oldest first
    (also for a deleted bag). With `restrict_area`, only that area's events
    and bill-level ones."""
    qr = normalize_qr(qr_id)
    events = db.many("bag_history", {"qr_id": qr, "limit": limit, "area": restrict_area}, row=Event, read=True)
    if not events and db.one("get_bag", {"qr_id": qr}, read=True) is None:
        raise errors.BagNotFound(f"bag {qr} not found")
    return events


def recent_events(db: Database, *, user_id: int | None = None, qr_id: str | None = None,
                  since: datetime | None = None, dispatch_area: str | None = None,
                  kinds: tuple[str, ...] | None = None,
                  limit: int = 50, cursor: str | None = None) -> Page[Event]:
    """Events newest first, keyset by id; filter by user, bag QR (as bag or parent), time, area."""
    where: list[sql.Composable] = []
    params: dict = {"limit": check_limit(limit) + 1}
    if user_id is not None:
        where.append(sql.SQL("e.user_id = %(user_id)s"))
        params["user_id"] = user_id
    if qr_id is not None:
        qr = normalize_qr(qr_id, "bag")
        # the bag's own events, and for a parent those of its links and bills
        where.append(sql.SQL("(e.bag_id = (SELECT id FROM bag WHERE qr_id = %(qr)s) "
                             "OR e.parent_id = (SELECT id FROM bag WHERE qr_id = %(qr)s))"))
        params["qr"] = qr
    if since is not None:
        where.append(sql.SQL("e.occurred_at >= %(since)s"))
        params["since"] = since
    if dispatch_area is not None:
        where.append(sql.SQL("e.dispatch_area = %(area)s"))
        params["area"] = dispatch_area
    if kinds:
        where.append(sql.SQL("e.kind = ANY(%(kinds)s)"))
        params["kinds"] = list(kinds)
    if cursor:
        where.append(sql.SQL("e.id < %(before_id)s"))
        params["before_id"] = decode_cursor(cursor)
    query = sql.SQL(
        "SELECT {cols} FROM event e LEFT JOIN app_user u ON u.id = e.user_id {where} "
        "ORDER BY e.id DESC LIMIT %(limit)s"
    ).format(cols=_EVENT_COLUMNS,
             where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    rows = db.run_sql(query, params, row=Event)
    return paginate(rows, limit)
