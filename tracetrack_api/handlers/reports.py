"""The dashboard (materialized views + cache) and the streamed CSV exports."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

from tracetrack_db import areas, exports, views
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
        data = dumps(views.analytics(ctx.db, area))
        cache.set(key, data, DASHBOARD_TTL)
    else:
        CACHE.labels("hit").inc()
    return RawJson(data)


# An export holds a database connection for as long as the client reads; a
# few at a time per process keep scans from waiting for a connection.
EXPORTS_AT_ONCE = 2
_export_slots = threading.BoundedSemaphore(EXPORTS_AT_ONCE)


class _Chunks:
    """The CSV chunks, giving back the export slot (and the connection, by
    closing the generator) as soon as the server closes the response."""

    def __init__(self, first: bytes, chunks: Iterator[bytes]):
        self._chunks = itertools.chain((first,), chunks)
        self._generator = chunks

    def __iter__(self):
        return self._chunks

    def close(self) -> None:
        try:
            self._generator.close()
        finally:
            _export_slots.release()


def _csv(make_chunks: Callable[[], Iterator[bytes]], filename: str) -> CsvStream:
    if not _export_slots.acquire(blocking=False):
        raise TooManyExports(f"at most {EXPORTS_AT_ONCE} exports at once per server process: retry shortly")
    try:
        chunks = make_chunks()
        # Start the COPY before the headers go out, so a database error is
        # still a proper 503 rather than a cut stream.
        first = next(chunks, b"")
    except BaseException:
        _export_slots.release()
        raise
    return CsvStream(_Chunks(first, chunks), filename)


def export_bags(ctx: Ctx, dispatch_area: str | None = None, **filters) -> CsvStream:
    area = ctx.confine(dispatch_area)
    return _csv(lambda: exports.bags_csv(ctx.db, dispatch_area=area, **filters), "bags.csv")


def export_bills(ctx: Ctx, status: str | None = None, q: str | None = None) -> CsvStream:
    return _csv(lambda: exports.bills_csv(ctx.db, status=status, q=q), "bills.csv")
