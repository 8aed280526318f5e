"""GET /health."""

from __future__ import annotations

import time

import falcon

from tracetrack_db import errors

from ..http import send
from .base import Resource


class Health(Resource):
    auth_exempt = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks: dict = {}
        start = time.perf_counter()
        try:
            self.db.scalar("ping")
            checks["database"] = {"ok": True, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}
        except errors.DatabaseUnavailable as exc:
            checks["database"] = {"ok": False, "error": exc.message,
                                  "latency_ms": round((time.perf_counter() - start) * 1000, 2)}
        latency = self.s.cache.ping()
        checks["cache"] = {"kind": self.s.cache.kind, "ok": latency is not None,
                           "latency_ms": None if latency is None else round(latency, 2)}
        healthy = checks["database"]["ok"]
        body = {"status": "ok" if healthy else "unavailable", "checks": checks, "pool": self.db.stats()}
        send(resp, body, 200 if healthy else 503)
        if not healthy:
            resp.set_header("Retry-After", "2")
