"""The dashboard (materialized views + cache) and the streamed CSV exports."""

from __future__ import annotations

import itertools
import threading
import time

import falcon

from tracetrack_db import errors, exports, views

from ..auth import require
from ..metrics import CACHE
from ..http import dumps, param_str
from .bags import area_filter, bag_list_filters
from .base import Resource

DASHBOARD_TTL = 5.0


class Dashboard(Resource):
    """Answers from the views; the ready JSON bytes are cached for a few
    seconds per area. The answer states `as_of` (the views' refresh time)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.context.user
        area = area_filter(req, user)
        key = f"dashboard:{area if area is not None else '*'}"  # area names never contain '*'

        data = self.s.cache.get(key)
        if data is None:
            CACHE.labels("miss").inc()
            answer = views.analytics(self.db, area)
            answer["generated_at"] = time.time()
            data = dumps(answer)
            self.s.cache.set(key, data, DASHBOARD_TTL)
        else:
            CACHE.labels("hit").inc()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data


# An export holds a database connection for as long as the client reads; a
# few at a time per process keep scans from waiting for a connection.
EXPORTS_AT_ONCE = 2
_export_slots = threading.BoundedSemaphore(EXPORTS_AT_ONCE)


class TooManyExports(errors.TraceTrackError):
    code, status = "too_many_exports", 429


class _Stream:
    """The CSV chunks, giving back the export slot (and the connection, by
    closing the generator) as soon as the server closes the response."""

    def __init__(self, first: bytes, chunks):
        self._chunks = itertools.chain((first,), chunks)
        self._generator = chunks

    def __iter__(self):
        return self._chunks

    def close(self) -> None:
        try:
            self._generator.close()
        finally:
            _export_slots.release()


class _Export(Resource):
    filename = "export.csv"

    def send_csv(self, resp: falcon.Response, make_chunks) -> None:
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
        resp.content_type = "text/csv; charset=utf-8"
        resp.set_header("Content-Disposition", f'attachment; filename="{self.filename}"')
        resp.stream = _Stream(first, chunks)


class BagsExport(_Export):
    filename = "bags.csv"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, "admin", "biller")
        filters = bag_list_filters(req, user)
        self.send_csv(resp, lambda: exports.bags_csv(self.db, **filters))


class BillsExport(_Export):
    filename = "bills.csv"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, "admin", "biller")
        status, q = param_str(req, "status"), param_str(req, "q", max_length=64)
        self.send_csv(resp, lambda: exports.bills_csv(self.db, status=status, q=q))
