"""Materialized views: refresh (one refresher at a time) and the dashboard read."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from . import errors, partitions, throttle
from .database import Database
from .models import BagTotals, BillTotals, Dashboard, HourBucket, RecentScan, ScanTotals, TypeCounts, UserActivity

log = logging.getLogger(__name__)

# In this order: mv_bill_totals is made from mv_bills_by_area.
VIEWS = (
    "mv_bag_totals",
    "mv_bills_by_area",
    "mv_bill_totals",
    "mv_hourly_scans",
    "mv_user_activity",
    "mv_recent_scans",
)
# The reports' counts per quarter hour (sql/migrations/0010): rolled up with the views, as the owner.
ROLLUP = "event_rollup"


def refresh_views(db: Database, *, min_interval: float = 0.0) -> dict[str, float] | None:
    """Refresh every view CONCURRENTLY (readers never wait).

    Returns {view: milliseconds}; {} when the views are fresher than
    `min_interval` seconds; None when another process holds the refresher lock.
    """
    with db.connection() as conn, conn.transaction():
        if not db.scalar("try_refresh_lock", conn=conn):
            return None
        if min_interval > 0:
            age = db.scalar("oldest_view_refresh", conn=conn)
            if age is not None and age < min_interval * 0.9:
                return {}
        timings: dict[str, float] = {}
        for view in VIEWS:
            start = time.perf_counter()
            # REFRESH needs the view's owner; the service role asks tt_refresh_view (SECURITY DEFINER)
            conn.execute("SELECT tt_refresh_view(%s)", (view,))
            timings[view] = (time.perf_counter() - start) * 1000
            db.execute("record_view_refresh", {"view_name": view, "duration_ms": timings[view]}, conn=conn)
        start = time.perf_counter()
        db.scalar("roll_up_events", {"since": None, "zone": None}, conn=conn)
        timings[ROLLUP] = (time.perf_counter() - start) * 1000
        db.execute("record_view_refresh", {"view_name": ROLLUP, "duration_ms": timings[ROLLUP]}, conn=conn)
        return timings


def refresh_times(db: Database) -> dict[str, datetime]:
    return {r["view_name"]: r["refreshed_at"] for r in db.many("view_refresh_times", row=dict, read=True)}


class Refresher:
    """A daemon thread refreshing the views every `interval` seconds (and
    purging idempotency keys older than `idempotency_hours`, expired login
    counters, and sync verdicts a day older than `sync_max_behind_seconds`;
    making the event log's partitions for the months ahead).

    Every worker of every server may run one: the advisory lock lets one
    refresh at a time and the age check skips views someone just refreshed.
    """

    def __init__(
        self,
        db: Database,
        interval: float = 30.0,
        idempotency_hours: int = 24,
        sync_max_behind_seconds: int = 7 * 86400,
    ):
        self.db = db
        self.interval = interval
        self.idempotency_hours = idempotency_hours
        self.sync_max_behind_seconds = sync_max_behind_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracetrack-refresher", daemon=True)
        self.last_result: dict[str, float] | None = None

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        unavailable = False  # said once per outage: a database restart is no bug to trace
        while not self._stop.wait(self.interval):
            try:
                self.last_result = refresh_views(self.db, min_interval=self.interval)
                if self.last_result:  # this process refreshed: it also forgets old idempotency keys
                    self.db.execute("purge_idempotency_keys", {"hours": self.idempotency_hours})
                    throttle.purge(self.db)  # and expired login counters and export marks
                    # and sync verdicts no resend can reach (a day past TRACETRACK_SYNC_MAX_BEHIND)
                    self.db.scalar("purge_sync_ops", {"max_behind_seconds": self.sync_max_behind_seconds})
                    # and the event log's partitions for the months ahead (strays moved out of the default)
                    partitions.maintain(self.db)
                if unavailable:
                    unavailable = False
                    log.info("view refresh: the database is back")
            except errors.DatabaseUnavailable as exc:
                if not unavailable:
                    unavailable = True
                    log.warning("view refresh: %s; retrying every %s s", exc, self.interval)
            except Exception:
                log.exception("view refresh failed; retrying in %s s", self.interval)


def local_hours(now: datetime, zone: ZoneInfo, count: int = 24) -> list[datetime]:
    """The starts of the last `count` local hours (the current one last), in `zone`.
    In Asia/Kolkata they fall on :30 UTC, in Asia/Kathmandu on :15."""
    this_hour = now.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return [(this_hour - timedelta(hours=h)).astimezone(zone) for h in range(count - 1, -1, -1)]


def local_midnight(now: datetime, zone: ZoneInfo) -> datetime:
    """Today's start in `zone` (its first moment, should a DST change skip midnight)."""
    day = now.astimezone(zone).date()
    return datetime.combine(day, clock(), tzinfo=zone).astimezone(UTC).astimezone(zone)


def _in_zone(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone) if value is not None else None


def analytics(db: Database, area: str | None = None, recent: int = 20, zone: ZoneInfo | str = "UTC") -> Dashboard:
    """The dashboard, from the materialized views only (never bag or event).

    Hours and today are those of `zone` (the site's, `Settings.zone`): the
    view counts per UTC quarter hour and every zone is a whole number of
    quarters from UTC, so its quarters add up to exact local hours."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    now = datetime.now(UTC)
    hours = local_hours(now, zone)
    today = local_midnight(now, zone)
    since = min(hours[0], today)  # a 25-hour day (DST ends) starts before the 24 hours shown
    with db.connection(read=True) as conn:
        totals = db.many("dashboard_bag_totals", {"area": area}, row=dict, conn=conn)
        bills = db.many("dashboard_bill_totals", {"area": area}, row=dict, conn=conn)
        quarters = db.many("dashboard_hourly", {"area": area, "since": since}, row=dict, conn=conn)
        activity = db.many("dashboard_user_activity", {"area": area}, row=UserActivity, conn=conn)
        scans = db.many("dashboard_recent_scans", {"area": area, "limit": recent}, row=RecentScan, conn=conn)
        refreshed = db.many("view_refresh_times", row=dict, conn=conn)
    by_type = {"parent": 0, "child": 0}
    by_status: dict[str, dict[str, int]] = {"parent": {}, "child": {}}
    by_area: dict[str, dict[str, int]] = {}
    unlinked = 0
    for r in totals:
        by_type[r["type"]] += r["bags"]
        by_status[r["type"]][r["status"]] = by_status[r["type"]].get(r["status"], 0) + r["bags"]
        area_row = by_area.setdefault(r["dispatch_area"], {"parent": 0, "child": 0})
        area_row[r["type"]] += r["bags"]
        if r["type"] == "child" and not r["linked"]:
            unlinked += r["bags"]
    per_hour = dict.fromkeys(hours, 0)
    for r in quarters:
        start = r["quarter"]
        hour = hours[-1] if start >= hours[-1] else None
        if hour is None and start >= hours[0]:
            hour = hours[int((start - hours[0]) // timedelta(hours=1))]
        if hour is not None:
            per_hour[hour] += r["events"]
    buckets = [HourBucket(hour, per_hour[hour]) for hour in hours]
    return Dashboard(
        as_of=_in_zone(min((r["refreshed_at"] for r in refreshed), default=None), zone),
        dispatch_area=area,
        bags=BagTotals(
            total=sum(by_type.values()),
            by_type=TypeCounts(**by_type),
            by_status=by_status,
            by_area={a: TypeCounts(**c) for a, c in by_area.items()},
            unlinked_children=unlinked,
        ),
        bills=BillTotals(
            by_status={r["status"]: r["bills"] for r in bills}, parents_billed=sum(r["parents"] for r in bills)
        ),
        scans=ScanTotals(
            today=sum(r["events"] for r in quarters if r["quarter"] >= today),
            last_hour=buckets[-1].scans,  # the current local clock hour
            hourly=buckets,
        ),
        users=[replace(u, last_event_at=_in_zone(u.last_event_at, zone)) for u in activity],
        recent_scans=[replace(s, occurred_at=s.occurred_at.astimezone(zone)) for s in scans],
        generated_at=now.astimezone(zone),
        time_zone=zone.key,
    )
