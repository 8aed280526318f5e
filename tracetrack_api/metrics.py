"""Prometheus metrics (prometheus-client). With several worker processes,
`tracetrack serve` sets PROMETHEUS_MULTIPROC_DIR so every worker writes to
shared files and any worker's /metrics answers for all of them."""

from __future__ import annotations

import os
import time

import falcon
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

from tracetrack_db import Database, views

REQUESTS = Counter("tracetrack_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("tracetrack_http_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
POOL = Gauge("tracetrack_pool_connections", "Connection pool state per process", ["pool", "state"],
             multiprocess_mode="livesum")
CACHE = Counter("tracetrack_cache_total", "Dashboard cache lookups", ["result"])
VIEW_AGE = Gauge("tracetrack_view_age_seconds", "Seconds since each materialized view was refreshed",
                 ["view"], multiprocess_mode="mostrecent")


_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))


class MetricsMiddleware:
    def __init__(self, db: Database):
        self.db = db
        self._pool_sampled = 0.0
        self._children: dict[tuple[str, str, str], tuple] = {}  # labels() costs a lock and a lookup

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        started = req.context.get("started")
        if started is None:
            return
        route = req.uri_template or "unmatched"
        method = req.method if req.method in _METHODS else "OTHER"  # bounded label values
        status = resp.status[:3] if isinstance(resp.status, str) else str(resp.status)
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (LATENCY.labels(method, route), REQUESTS.labels(method, route, status))
        children[0].observe(time.perf_counter() - started)
        children[1].inc()
        now = time.monotonic()
        if now - self._pool_sampled > 1.0:  # pool stats take the pool's lock: sample, don't poll
            self._pool_sampled = now
            for name, stats in self.db.stats().items():
                POOL.labels(name, "size").set(stats.get("pool_size", 0))
                POOL.labels(name, "available").set(stats.get("pool_available", 0))
                POOL.labels(name, "waiting").set(stats.get("requests_waiting", 0))


class Metrics:
    auth_exempt = True

    def __init__(self, db: Database):
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            refreshed = views.refresh_times(self.db)
            now = time.time()
            for view, at in refreshed.items():
                VIEW_AGE.labels(view).set(now - at.timestamp())
        except Exception:  # noqa: BLE001 - metrics must answer even with the database down
            pass
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            data = generate_latest(registry)
        else:
            from prometheus_client import REGISTRY

            data = generate_latest(REGISTRY)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = data
