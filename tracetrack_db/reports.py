"""Reports in the site's time zone: bills, activity, and the end-of-day summary.

Days and hours are those of the site's zone (`Settings.timezone`,
TRACETRACK_TIMEZONE); stored times stay UTC. A report takes local dates
`first`..`last`, both included, and reads the UTC range from the first one's
local midnight to the midnight after the last one. Every time in an answer
is an aware datetime in the site's zone (its offset says how far from UTC).

Bounded by construction: a report spans at most MAX_DAYS days (hourly
activity MAX_HOURLY_DAYS), the bill report's JSON pages its bills (totals
always cover the whole range), and activity is counted from the rollup of
sql/migrations/0010 (per quarter hour) plus the few minutes since it last ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .cursor import check_limit, decode_cursor, encode_cursor
from .database import Database
from .errors import ValidationError

MAX_DAYS = 92  # about a quarter: a 30-day report fits with room
MAX_HOURLY_DAYS = 31  # 744 hourly buckets
BILL_BASES = ("created", "completed")
BUCKETS = ("hour", "day")
BILL_ACTIONS = (
    "bill_created",
    "bill_updated",
    "bill_add",
    "bill_remove",
    "bill_complete",
    "bill_reopen",
    "bill_deleted",
    "return_add",  # a returned parent leaves its bill (a ticket's own events are not bill actions)
)
ZERO = Decimal("0.000")
# Bills changed this long before mv_bills_by_area' refresh began are read from the
# view; later ones from the bags (a transaction may commit after the refresh
# took its snapshot, with the time it started).
AREAS_MARGIN = timedelta(minutes=5)


class InvalidRange(ValidationError):
    """`from` after `to`, or a range longer than a report may span."""

    code = "invalid_range"


def as_zone(zone: ZoneInfo | str) -> ZoneInfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


# ranges ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DayRange:
    first_day: date  # local dates, both included
    last_day: date
    start: datetime  # the first day's local midnight, in the zone
    end: datetime  # the midnight after the last day (excluded)

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first moment of `day` in `zone` (normalised through UTC: a DST change at midnight moves it)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC).astimezone(zone)


def today(zone: ZoneInfo | str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(as_zone(zone)).date()


FIRST_YEAR, LAST_YEAR = 1900, 9998


def day_range(first: date | None, last: date | None, zone: ZoneInfo, max_days: int = MAX_DAYS) -> DayRange:
    """Local dates `first`..`last` (both included; either missing: the other, or today)."""
    last = last or first or today(zone)
    first = first or last
    if first > last:
        raise InvalidRange(f"from ({first}) is after to ({last})", field="from")
    if (last - first).days + 1 > max_days:
        raise InvalidRange(f"a report spans at most {max_days} days; ask for a shorter range", field="to")
    for name, day in (("from", first), ("to", last)):
        # the calendar's edges: local midnights of year 1 or 9999 fall outside what datetime holds in UTC
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise InvalidRange(f"{name} must be a date from {FIRST_YEAR} to {LAST_YEAR}", field=name)
    return DayRange(first, last, local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone))


# bills ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BillReportRow:
    bill_no: str
    status: str
    capacity: int
    parents: int
    children: int
    expected_weight_kg: Decimal
    actual_weight_kg: Decimal
    difference_kg: Decimal  # actual - expected
    dispatch_areas: list[str]  # the areas of its parents
    created_by: int | None
    created_by_username: str | None
    created_at: datetime
    completed_by: int | None
    completed_by_username: str | None
    completed_at: datetime | None
    day: str  # YYYY-MM-DD: the local day of created_at (on=created) or completed_at (on=completed)


@dataclass(slots=True)
class BillFigures:
    bills: int = 0
    completed: int = 0
    parents: int = 0
    children: int = 0
    expected_weight_kg: Decimal = ZERO
    actual_weight_kg: Decimal = ZERO
    difference_kg: Decimal = ZERO

    def add(self, parents: int, children: int, expected: Decimal, actual: Decimal, completed: bool) -> None:
        self.bills += 1
        self.completed += completed
        self.parents += parents
        self.children += children
        self.expected_weight_kg += expected
        self.actual_weight_kg += actual
        self.difference_kg = self.actual_weight_kg - self.expected_weight_kg


@dataclass(frozen=True, slots=True)
class DayBillTotals:
    day: str  # YYYY-MM-DD, local
    totals: BillFigures


@dataclass(frozen=True, slots=True)
class BillerTotals:
    user_id: int | None
    username: str | None
    totals: BillFigures


@dataclass(frozen=True, slots=True)
class AreaBillTotals:
    """The parents of one area on the bills of the report (a bill counts in each area it holds parents of)."""

    dispatch_area: str
    totals: BillFigures


@dataclass(frozen=True, slots=True)
class BillReport:
    time_zone: str
    on: str  # created | completed: which time puts a bill in the range
    first_day: str  # YYYY-MM-DD, local, included
    last_day: str  # YYYY-MM-DD, local, included
    start: datetime
    end: datetime
    totals: BillFigures
    by_day: list[DayBillTotals]  # every day of the range, oldest first
    by_biller: list[BillerTotals]  # by who created the bills (on=created) or completed them (on=completed)
    by_area: list[AreaBillTotals]
    bills: list[BillReportRow]  # one page, newest first
    next_cursor: str | None = field(default=None)


def _bill_params(
    db: Database,
    conn: Any,
    span: DayRange,
    zone: ZoneInfo,
    on: str,
    created_by: int | None,
    dispatch_area: str | None,
    status: str | None,
) -> dict[str, Any]:
    if on not in BILL_BASES:
        raise ValidationError(f"on must be one of {', '.join(BILL_BASES)}", field="on")
    # a bill's parents per area come from mv_bills_by_area unless the bill changed
    # since (or shortly before: a write may commit after the refresh took its
    # snapshot, with the time it started) its refresh, then from the bags
    refreshed = db.scalar("report_areas_refreshed_at", conn=conn)
    return {
        "on": on,
        "start": span.start,
        "end": span.end,
        "tz": zone.key,
        "created_by": created_by,
        "status": status,
        "area": dispatch_area,
        "settled": refreshed - AREAS_MARGIN if refreshed is not None else None,
    }


def bill_rows(
    db: Database,
    first: date | None = None,
    last: date | None = None,
    *,
    zone: ZoneInfo | str = "UTC",
    on: str = "created",
    created_by: int | None = None,
    dispatch_area: str | None = None,
    status: str | None = None,
) -> tuple[DayRange, list[BillReportRow]]:
    """Every bill of the range (created, or completed, on the local days
    `first`..`last`), newest first, with its areas and who completed it.
    `dispatch_area`: only bills holding a parent of that area."""
    zone = as_zone(zone)
    span = day_range(first, last, zone)
    with db.connection(read=True) as conn:
        params = _bill_params(db, conn, span, zone, on, created_by, dispatch_area, status)
        rows = db.many("report_bill_page", {**params, "before_id": None, "limit": None}, row=dict, conn=conn)
    return span, [_row(r, zone) for r in rows]


def bill_report(
    db: Database,
    first: date | None = None,
    last: date | None = None,
    *,
    zone: ZoneInfo | str = "UTC",
    on: str = "created",
    created_by: int | None = None,
    dispatch_area: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> BillReport:
    """Totals of the whole range (per local day, per biller, per area) and one
    page of its bills, newest first (`cursor`: the last page's next_cursor)."""
    zone = as_zone(zone)
    limit = check_limit(limit)
    span = day_range(first, last, zone)
    before_id = decode_cursor(cursor) if cursor is not None else None
    # figures and one page in SQL: the range may hold thousands of bills
    with db.connection(read=True) as conn:
        params = _bill_params(db, conn, span, zone, on, created_by, dispatch_area, status)
        groups = db.many("report_bill_totals", params, row=dict, conn=conn)
        page = db.many("report_bill_page", {**params, "before_id": before_id, "limit": limit + 1}, row=dict, conn=conn)
        names = _usernames(db, conn, groups)
    totals, by_day, by_biller, by_area = _figures(groups, span, names)
    return BillReport(
        time_zone=zone.key,
        on=on,
        first_day=span.first_day.isoformat(),
        last_day=span.last_day.isoformat(),
        start=span.start,
        end=span.end,
        totals=totals,
        by_day=by_day,
        by_biller=by_biller,
        by_area=by_area,
        bills=[_row(r, zone) for r in page[:limit]],
        next_cursor=encode_cursor(page[limit - 1]["id"]) if len(page) > limit else None,
    )


def _usernames(db: Database, conn: Any, groups: list[dict[str, Any]]) -> dict[int, str]:
    ids = sorted({int(g["key"]) for g in groups if g["grouping"] == "biller" and g["key"]})
    return {u["id"]: u["username"] for u in db.many("report_users", {"ids": ids}, row=dict, conn=conn)} if ids else {}


def _figures(
    groups: list[dict[str, Any]], span: DayRange, names: dict[int, str]
) -> tuple[BillFigures, list[DayBillTotals], list[BillerTotals], list[AreaBillTotals]]:
    """report_bill_totals' rows: in all, per local day (every day of the range), per biller, per area."""
    figures: dict[str, dict[str, BillFigures]] = {"all": {}, "day": {}, "biller": {}, "area": {}}
    for g in groups:
        figures[g["grouping"]][g["key"]] = BillFigures(
            bills=g["bills"],
            completed=g["completed"],
            parents=g["parents"],
            children=g["children"],
            expected_weight_kg=g["expected_weight_kg"],
            actual_weight_kg=g["actual_weight_kg"],
            difference_kg=g["actual_weight_kg"] - g["expected_weight_kg"],
        )
    by_biller = [
        BillerTotals(int(key) if key else None, names.get(int(key)) if key else None, totals)
        for key, totals in figures["biller"].items()
    ]
    by_biller.sort(key=lambda b: (-b.totals.bills, b.username or ""))
    return (
        figures["all"].get("", BillFigures()),
        [DayBillTotals(d.isoformat(), figures["day"].get(d.isoformat(), BillFigures())) for d in span.days],
        by_biller,
        [AreaBillTotals(a, t) for a, t in sorted(figures["area"].items())],
    )


def _row(r: dict[str, Any], zone: ZoneInfo) -> BillReportRow:
    return BillReportRow(
        bill_no=r["bill_no"],
        status=r["status"],
        capacity=r["capacity"],
        parents=r["parents"],
        children=r["children"],
        expected_weight_kg=r["expected_weight_kg"],
        actual_weight_kg=r["actual_weight_kg"],
        difference_kg=r["actual_weight_kg"] - r["expected_weight_kg"],
        dispatch_areas=list(r["dispatch_areas"]),
        created_by=r["created_by"],
        created_by_username=r["created_by_username"],
        created_at=r["created_at"].astimezone(zone),
        completed_by=r["completed_by"],
        completed_by_username=r["completed_by_username"],
        completed_at=r["completed_at"].astimezone(zone) if r["completed_at"] else None,
        day=r["day"].isoformat(),
    )


# activity --------------------------------------------------------------------------
@dataclass(slots=True)
class ActivityCounts:
    parent_scans: int = 0
    links: int = 0
    unlinks: int = 0
    bill_actions: int = 0  # bill created, edited, parent added, removed or returned, completed, reopened, deleted

    def add(self, kind: str, events: int) -> None:
        if kind == "parent_scan":
            self.parent_scans += events
        elif kind == "link":
            self.links += events
        elif kind == "unlink":
            self.unlinks += events
        elif kind in BILL_ACTIONS:
            self.bill_actions += events


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    start: datetime  # a local hour or day, in the zone
    counts: ActivityCounts


@dataclass(frozen=True, slots=True)
class UserActivityTotals:
    user_id: int | None  # None: events of no user
    username: str | None
    role: str | None
    dispatch_area: str | None  # the user's own area (a dispatcher's)
    counts: ActivityCounts


@dataclass(frozen=True, slots=True)
class AreaActivityTotals:
    dispatch_area: str  # '': events of no area (bill created, completed, reopened, edited, deleted)
    counts: ActivityCounts


@dataclass(frozen=True, slots=True)
class ActivityReport:
    time_zone: str
    bucket: str  # hour | day
    first_day: str  # YYYY-MM-DD, local, included
    last_day: str  # YYYY-MM-DD, local, included
    start: datetime
    end: datetime
    dispatch_area: str | None
    user_id: int | None
    totals: ActivityCounts
    buckets: list[ActivityBucket]  # every hour or day of the range, oldest first
    by_user: list[UserActivityTotals]
    by_area: list[AreaActivityTotals]
    rolled_to: datetime | None  # counted from the rollup before this, from the event log after


def activity_report(
    db: Database,
    first: date | None = None,
    last: date | None = None,
    *,
    zone: ZoneInfo | str = "UTC",
    bucket: str = "day",
    dispatch_area: str | None = None,
    user_id: int | None = None,
) -> ActivityReport:
    """Parent scans, links, unlinks and bill actions per local hour or day,
    per user and per area, on the local days `first`..`last`."""
    zone = as_zone(zone)
    if bucket not in BUCKETS:
        raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}", field="bucket")
    span = day_range(first, last, zone, MAX_HOURLY_DAYS if bucket == "hour" else MAX_DAYS)
    with db.connection(read=True) as conn:
        rolled_to = db.scalar("report_rolled_to", {"time_zone": ""}, conn=conn)
        days_to = db.scalar("report_rolled_to", {"time_zone": zone.key}, conn=conn) if bucket == "day" else None
    if bucket == "day" and days_to is None and rolled_to is not None:
        # the first day report in this zone: count its days once; the refresher keeps them
        roll_up(db, zone=zone.key)
    with db.connection(read=True) as conn, conn.transaction():
        # One snapshot for the roll-up's state, its rows and the event log: a roll-up
        # committing between two reads would move late events from the log into the
        # rows both reads see, and count them twice. (The pool's connections autocommit:
        # the transaction is this block's.)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rolled_to = db.scalar("report_rolled_to", {"time_zone": ""}, conn=conn)
        days_to = db.scalar("report_rolled_to", {"time_zone": zone.key}, conn=conn) if bucket == "day" else None
        # whole local days from the day rows, then quarters (the events applied before
        # the roll-up), then the events applied since, from the event log, on any day
        # of the range: a sync brings events scanned earlier (counted by scan time)
        days_end = max(span.start, min(span.end, days_to)) if days_to is not None else span.start
        q_from = days_end
        live_from = max(span.start, rolled_to) if rolled_to is not None else span.start
        q_to = min(span.end, max(q_from, live_from))
        rows = db.many(
            "report_activity",
            {
                "tz": zone.key,
                "bucket": bucket,
                "start": span.start,
                "days_end": days_end,
                "q_from": q_from,
                "q_to": q_to,
                "live_from": live_from,
                "end": span.end,
                "area": dispatch_area,
                "user_id": user_id,
            },
            row=dict,
            conn=conn,
        )
        ids = sorted({r["user_id"] for r in rows if r["user_id"]})
        users = {u["id"]: u for u in db.many("report_users", {"ids": ids}, row=dict, conn=conn)} if ids else {}
    # every bucket of the range, keyed by its local wall-clock start
    starts: list[datetime] = []
    for day in span.days:
        if bucket == "day":
            starts.append(datetime.combine(day, time()))
        else:
            starts.extend(datetime.combine(day, time(h)) for h in range(24))
    buckets = {s: ActivityCounts() for s in starts}
    totals = ActivityCounts()
    by_user: dict[int, ActivityCounts] = {}
    by_area: dict[str, ActivityCounts] = {}
    for r in rows:
        if r["bucket"] is not None:
            local = r["bucket"].astimezone(zone).replace(tzinfo=None)
            buckets.setdefault(local, ActivityCounts()).add(r["kind"], r["events"])
            totals.add(r["kind"], r["events"])
        elif r["dispatch_area"] is not None:
            by_area.setdefault(r["dispatch_area"], ActivityCounts()).add(r["kind"], r["events"])
        elif r["user_id"] is not None:
            by_user.setdefault(r["user_id"], ActivityCounts()).add(r["kind"], r["events"])
    return ActivityReport(
        time_zone=zone.key,
        bucket=bucket,
        first_day=span.first_day.isoformat(),
        last_day=span.last_day.isoformat(),
        start=span.start,
        end=span.end,
        dispatch_area=dispatch_area,
        user_id=user_id,
        totals=totals,
        buckets=[
            ActivityBucket(local.replace(tzinfo=zone).astimezone(UTC).astimezone(zone), counts)
            for local, counts in sorted(buckets.items())
        ],
        by_user=[
            UserActivityTotals(
                uid or None,
                users.get(uid, {}).get("username"),
                users.get(uid, {}).get("role"),
                users.get(uid, {}).get("dispatch_area"),
                counts,
            )
            for uid, counts in sorted(by_user.items())
            if _any(counts)
        ],
        by_area=[AreaActivityTotals(a, counts) for a, counts in sorted(by_area.items()) if _any(counts)],
        rolled_to=rolled_to.astimezone(zone) if rolled_to is not None else None,
    )


def _any(counts: ActivityCounts) -> bool:
    return bool(counts.parent_scans or counts.links or counts.unlinks or counts.bill_actions)


# the end of a day ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DispatcherScans:
    user_id: int
    username: str | None
    dispatch_area: str | None
    parent_scans: int
    links: int
    unlinks: int


@dataclass(frozen=True, slots=True)
class EndOfDay:
    """What a manager reads at the end of a shift: the bills completed on the
    local day, what they dispatched, per biller (who completed them) and per
    area, and each dispatcher's scans."""

    day: str  # YYYY-MM-DD, local
    time_zone: str
    start: datetime
    end: datetime
    dispatched: BillFigures  # the bills completed that day and their parents, children, weights
    by_biller: list[BillerTotals]
    by_area: list[AreaBillTotals]
    bills: list[BillReportRow]  # every bill completed that day, in the order they were completed
    scans: list[DispatcherScans]  # per dispatcher (users of another role who scanned too)
    generated_at: datetime


def end_of_day(db: Database, day: date | None = None, *, zone: ZoneInfo | str = "UTC") -> EndOfDay:
    zone = as_zone(zone)
    day = day or today(zone)
    span = day_range(day, day, zone)
    with db.connection(read=True) as conn:
        params = _bill_params(db, conn, span, zone, "completed", None, None, None)
        groups = db.many("report_bill_totals", params, row=dict, conn=conn)
        rows = db.many("report_bill_page", {**params, "before_id": None, "limit": None}, row=dict, conn=conn)
        names = _usernames(db, conn, groups)
    dispatched, _, by_biller, by_area = _figures(groups, span, names)
    activity = activity_report(db, day, day, zone=zone, bucket="day")
    scans = [
        DispatcherScans(u.user_id, u.username, u.dispatch_area, u.counts.parent_scans, u.counts.links, u.counts.unlinks)
        for u in activity.by_user
        if u.user_id is not None and (u.counts.parent_scans or u.counts.links or u.counts.unlinks)
    ]
    return EndOfDay(
        day=day.isoformat(),
        time_zone=zone.key,
        start=span.start,
        end=span.end,
        dispatched=dispatched,
        by_biller=by_biller,
        by_area=by_area,
        bills=[_row(r, zone) for r in sorted(rows, key=lambda r: (r["completed_at"], r["id"]))],
        scans=sorted(scans, key=lambda s: (s.dispatch_area or "", -(s.parent_scans + s.links), s.user_id)),
        generated_at=datetime.now(UTC).astimezone(zone),
    )


def ready(db: Database) -> bool:
    """Whether the database has what the reports read (migration 0010)."""
    return bool(db.scalar("report_schema_ready", read=True))


def roll_up(db: Database, since: datetime | None = None, zone: str | None = None) -> datetime:
    """Count events into the rollup now (the refresher does it with the views):
    from `since` (say, after events were written with an older time), or from
    an hour before where it got to; `zone` also counts that zone's local days
    from now on. Returns how far it got."""
    with db.connection() as conn:
        return db.scalar("roll_up_events", {"since": since, "zone": zone}, conn=conn)
