"""The dashboard (materialized views + cache) and the streamed CSV exports."""

from __future__ import annotations

import itertools
import time

import falcon

from tracetrack_db import exports, views

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
        key = f"dashboard:{area or '*'}"
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


class _Export(Resource):
    filename = "export.csv"

    def send_csv(self, resp: falcon.Response, chunks) -> None:
        # Start the COPY before the headers go out, so a database error is
        # still a proper 503 rather than a cut stream.
        first = next(chunks, b"")
        resp.content_type = "text/csv; charset=utf-8"
        resp.set_header("Content-Disposition", f'attachment; filename="{self.filename}"')
        resp.stream = itertools.chain((first,), chunks)


class BagsExport(_Export):
    filename = "bags.csv"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, "admin", "biller")
        self.send_csv(resp, exports.bags_csv(self.db, **bag_list_filters(req, user)))


class BillsExport(_Export):
    filename = "bills.csv"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, "admin", "biller")
        self.send_csv(resp, exports.bills_csv(
            self.db, status=param_str(req, "status"), q=param_str(req, "q", max_length=64)))
