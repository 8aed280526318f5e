"""The event log: recent scans and the full history of a bag.

`restrict_area` (a dispatcher's area) confines both in SQL: another area's
bag is not found, exactly like an unknown QR, and other areas' events are
never returned.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from . import bags, story
from .cursor import paginate
from .database import Database
from .listing import Where, newest_first
from .models import BagHistory, Event, Page
from .qr import normalize_qr

HISTORY_LIMIT = 10_000


def bag_history(
    db: Database, qr_id: str, *, restrict_area: str | None = None, limit: int = HISTORY_LIMIT
) -> BagHistory:
    """Every event of the bag, of its children and of its bill, oldest first
    (also for a deleted bag), each with its sentence (tracetrack_db.story).
    Raises BagNotFound."""
    qr = normalize_qr(qr_id)
    items = db.many("bag_history", {"qr_id": qr, "limit": limit, "area": restrict_area}, row=Event, read=True)
    if not items:  # no events: a bag that exists (for this caller) but was never scanned, or none
        bags.visible_bag_id(db, qr, restrict_area=restrict_area)
    return BagHistory(qr_id=qr, items=[story.entry(e) for e in items], retained_from=_cut_at(db, qr, items))


def _cut_at(db: Database, qr: str, items: list[Event]) -> datetime | None:
    """The first retained moment when anything the history draws on (the bag, its
    children, its bill) existed before it: its history was archived in part. Else
    None. A deleted bag's creation is known from its bag_created event only:
    without it in what is left, its start was archived."""
    kept = db.one("history_retention", {"qr_id": qr}, row=dict, read=True)
    retained_from = kept["retained_from"] if kept else None
    if retained_from is None:
        return None
    created_at = kept["created_at"]
    if created_at is not None:
        return retained_from if created_at < retained_from else None
    created = any(e.kind == "bag_created" and e.qr_id == qr for e in items)
    return None if created else retained_from


def list_query(
    db: Database,
    *,
    user_id: int | None = None,
    qr_id: str | None = None,
    since: datetime | None = None,
    dispatch_area: str | None = None,
    kinds: tuple[str, ...] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[sql.Composed, dict]:
    """The statement of `recent_events` (also for `tracetrack db explain list_events`).
    A bag filter is resolved first: an unknown bag, or one of another area than
    `dispatch_area`, raises BagNotFound."""
    where = Where()
    if user_id is not None:
        where.add("r.user_id = %(user_id)s", user_id=user_id)
    if qr_id is not None:
        bag_id = bags.visible_bag_id(db, qr_id, restrict_area=dispatch_area, field="bag")
        # the bag's own events, and for a parent those of its links and bills
        where.add("(r.bag_id = %(bag_id)s OR r.parent_id = %(bag_id)s)", bag_id=bag_id)
    if since is not None:
        where.add("r.occurred_at >= %(since)s", since=since)
    if dispatch_area is not None:
        where.add("r.dispatch_area = %(area)s", area=dispatch_area)
    if kinds:
        where.add("r.kind = ANY(%(kinds)s)", kinds=list(kinds))
    return newest_first("SELECT r.* FROM event_row r", where, cursor=cursor, limit=limit)


def recent_events(db: Database, *, limit: int = 50, cursor: str | None = None, **filters) -> Page[Event]:
    """Events newest first, keyset by id; filter by user, bag QR (as bag or
    parent), time, area (a dispatcher's: their bags only), kinds."""
    query, params = list_query(db, limit=limit, cursor=cursor, **filters)
    return paginate(db.run_sql(query, params, row=Event), limit)
