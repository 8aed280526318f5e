"""The dashboard (materialized views + cache), the streamed CSV exports, and
the bill and activity reports in the site's time zone."""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Callable, Generator
from typing import Any

from tracetrack_db import areas, exports, reports, views
from tracetrack_db.jsontext import dumps

from ..errors import TooManyExports
from ..metrics import CACHE
from ..table import CsvStream, Ctx, RawJson

DASHBOARD_TTL = 5.0


def dashboard(ctx: Ctx, dispatch_area: str | None = None) -> RawJson:
    """From the views; the ready JSON bytes are cached for a few seconds per
    area. The answer states `as_of` (the views' refresh time)."""
    area = ctx.confine(dispatch_area)
    key = f"dashboard:{area if area is not None else '*'}"  # area names never contain '*'
    cache = ctx.services.cache
    data = cache.get(key)
    if data is None:
        if area is not None and area != ctx.area:  # asked for by name: only an area that exists is cached
            areas.require_area(ctx.db, area)
        CACHE.labels("miss").inc()
        data = dumps(views.analytics(ctx.db, area, zone=ctx.services.settings.db.zone))
        cache.set(key, data, DASHBOARD_TTL)
    else:
        CACHE.labels("hit").inc()
    return RawJson(data)


# An export holds a database connection and a server thread for as long as
# the client reads: a few at a time per process keep scans from waiting for
# either, and one at a time per user (in the counters every process shares)
# keeps one client from taking them all. The library aborts an export whose
# reader stalls: its database session ends, and its user may export again;
# the process's slot comes back only when the server closes the response (the
# thread stays blocked on the client until then: nginx's send_timeout closes
# it), so the slots keep bounding the threads exports hold.
EXPORTS_AT_ONCE = 2
_export_slots = threading.BoundedSemaphore(EXPORTS_AT_ONCE)


class _Slot:
    """This process's export slot and the user's export mark, each given back once."""

    def __init__(self, counters, user_key: str):
        self._counters, self._user_key = counters, user_key
        self._lock = threading.Lock()
        self._slot_held = self._mark_held = True

    def release_mark(self) -> None:
        with self._lock:
            held, self._mark_held = self._mark_held, False
        if held:
            self._counters.delete(self._user_key)

    def release(self) -> None:
        with self._lock:
            held, self._slot_held = self._slot_held, False
        if held:
            _export_slots.release()
        self.release_mark()


class _Chunks:
    """The CSV chunks; closing them closes the export (and its connection)."""

    def __init__(self, first: bytes, chunks: Generator[bytes, None, None], slot: _Slot):
        self._chunks = itertools.chain((first,), chunks)
        self._generator = chunks
        self._slot = slot

    def __iter__(self):
        return self._chunks

    def close(self) -> None:
        try:
            self._generator.close()
        finally:
            self._slot.release()


def _csv(ctx: Ctx, make_chunks: Callable[..., Generator[bytes, None, None]], filename: str) -> CsvStream:
    counters = ctx.services.counters
    user_key = f"export:{ctx.caller.id}"
    if not counters.add(user_key, b"1", exports.timeout_seconds() + exports.stall_seconds() + 60):
        raise TooManyExports("you have an export running: wait for it to finish", retry_after=10)
    if not _export_slots.acquire(blocking=False):
        counters.delete(user_key)
        raise TooManyExports(f"at most {EXPORTS_AT_ONCE} exports at once per server process: retry shortly")
    slot = _Slot(counters, user_key)
    try:
        chunks = make_chunks(on_abort=slot.release_mark)
        # Start the COPY before the headers go out, so a database error is
        # still a proper 503 rather than a cut stream.
        first = next(chunks, b"")
    except BaseException:
        slot.release()
        raise
    return CsvStream(_Chunks(first, chunks, slot), filename)


def export_bags(ctx: Ctx, dispatch_area: str | None = None, **filters) -> CsvStream:
    area = ctx.confine(dispatch_area)
    return _csv(
        ctx, lambda on_abort: exports.bags_csv(ctx.db, dispatch_area=area, on_abort=on_abort, **filters), "bags.csv"
    )


def export_bills(ctx: Ctx, status: str | None = None, q: str | None = None) -> CsvStream:
    return _csv(ctx, lambda on_abort: exports.bills_csv(ctx.db, status=status, q=q, on_abort=on_abort), "bills.csv")


# reports ---------------------------------------------------------------------------
def _known_area(ctx: Ctx, area: str | None) -> None:
    if area is not None and area != ctx.area:
        areas.require_area(ctx.db, area)


def bill_report(ctx: Ctx, **params: Any) -> reports.BillReport:
    """Bills of the local days from..to (both included) by `on` (created_at or
    completed_at): totals per day, biller and area, and one page of bills."""
    _known_area(ctx, params.get("dispatch_area"))
    return reports.bill_report(
        ctx.db,
        params.get("from"),
        params.get("to"),
        zone=ctx.services.settings.db.zone,
        on=params["on"],
        created_by=params.get("created_by"),
        dispatch_area=params.get("dispatch_area"),
        status=params.get("status"),
        cursor=params.get("cursor"),
        limit=params["limit"],
    )


BILL_CSV_COLUMNS = (
    "bill_no",
    "status",
    "capacity",
    "parents",
    "children",
    "expected_weight_kg",
    "actual_weight_kg",
    "difference_kg",
    "dispatch_areas",
    "created_by",
    "created_by_username",
    "created_at",
    "completed_by",
    "completed_by_username",
    "completed_at",
    "day",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(value)
    if not isinstance(value, str):  # numbers and times
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return exports.spreadsheet_text(value)  # a would-be formula shown as text, as the exports do


def bill_report_csv(ctx: Ctx, **params: Any) -> CsvStream:
    """Every bill of the range, one row each (the range is at most
    reports.MAX_DAYS days: bounded, so it is built whole)."""
    _known_area(ctx, params.get("dispatch_area"))
    span, rows = reports.bill_rows(
        ctx.db,
        params.get("from"),
        params.get("to"),
        zone=ctx.services.settings.db.zone,
        on=params["on"],
        created_by=params.get("created_by"),
        dispatch_area=params.get("dispatch_area"),
        status=params.get("status"),
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BILL_CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in BILL_CSV_COLUMNS])
    return CsvStream([out.getvalue().encode()], f"bills-{span.first_day}-{span.last_day}.csv")


def activity_report(ctx: Ctx, **params: Any) -> reports.ActivityReport:
    """Scans, links, unlinks and bill actions per local hour or day, per user
    and per area; a dispatcher sees their own area only."""
    area = ctx.confine(params.get("dispatch_area"))
    _known_area(ctx, area)
    return reports.activity_report(
        ctx.db,
        params.get("from"),
        params.get("to"),
        zone=ctx.services.settings.db.zone,
        bucket=params["bucket"],
        dispatch_area=area,
        user_id=params.get("user"),
    )
