"""Materialized views: refresh (one refresher at a time) and the dashboard read."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from . import throttle
from .database import Database
from .models import BagTotals, BillTotals, Dashboard, HourBucket, RecentScan, ScanTotals, TypeCounts, UserActivity

log = logging.getLogger(__name__)

VIEWS = ("mv_bag_totals", "mv_bill_totals", "mv_hourly_scans", "mv_user_activity", "mv_recent_scans")


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
        return timings


def refresh_times(db: Database) -> dict[str, datetime]:
    return {r["view_name"]: r["refreshed_at"] for r in db.many("view_refresh_times", row=dict, read=True)}


class Refresher:
    """A daemon thread refreshing the views every `interval` seconds (and
    purging idempotency keys older than `idempotency_hours`).

    Every worker of every server may run one: the advisory lock lets one
    refresh at a time and the age check skips views someone just refreshed.
    """

    def __init__(self, db: Database, interval: float = 30.0, idempotency_hours: int = 24):
        self.db = db
        self.interval = interval
        self.idempotency_hours = idempotency_hours
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
        while not self._stop.wait(self.interval):
            try:
                self.last_result = refresh_views(self.db, min_interval=self.interval)
                if self.last_result:  # this process refreshed: it also forgets old idempotency keys
                    self.db.execute("purge_idempotency_keys", {"hours": self.idempotency_hours})
                    throttle.purge(self.db)  # and expired login counters and export marks
            except Exception:
                log.exception("view refresh failed; retrying in %s s", self.interval)


def analytics(db: Database, area: str | None = None, recent: int = 20) -> Dashboard:
    """The dashboard, from the materialized views only (never bag or event)."""
    with db.connection(read=True) as conn:
        totals = db.many("dashboard_bag_totals", {"area": area}, row=dict, conn=conn)
        bills = db.many("dashboard_bill_totals", {"area": area}, row=dict, conn=conn)
        hourly = db.many("dashboard_hourly", {"area": area}, row=dict, conn=conn)
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
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    counts = {r["hour"]: r["events"] for r in hourly}
    buckets = [
        HourBucket(hour, counts.get(hour, 0)) for hour in (this_hour - timedelta(hours=h) for h in range(23, -1, -1))
    ]
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Dashboard(
        as_of=min((r["refreshed_at"] for r in refreshed), default=None),
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
            today=sum(b.scans for b in buckets if b.hour >= today),
            last_hour=buckets[-1].scans,  # the current clock hour
            hourly=buckets,
        ),
        users=activity,
        recent_scans=scans,
        generated_at=now,
    )
