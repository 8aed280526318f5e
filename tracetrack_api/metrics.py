"""Prometheus metrics (prometheus-client), served on their own listener.

Every worker records into PROMETHEUS_MULTIPROC_DIR (set by `tracetrack
serve`, or deploy/gunicorn.conf.py, before any worker starts). The metrics
listener (`MetricsListener`, started by `tracetrack serve` in its main
process, or by gunicorn's master as tracetrack_ops.gunicorn_metrics; bound to
127.0.0.1 by default) answers GET /metrics for all workers together and GET
/health with the details the public /health leaves out. The API port serves
neither.
"""

from __future__ import annotations

import os
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from tracetrack_db import Database, errors, maintenance, views
from tracetrack_db.jsontext import dumps

from .deferred import flush_all
from .logs import Answered

REQUESTS = Counter("tracetrack_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tracetrack_http_request_duration_seconds",
    "Time to answer an HTTP request, in seconds",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
POOL = Gauge(
    "tracetrack_pool_connections",
    "Database connections of the pools (size: open, available: idle), summed over live processes",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "tracetrack_pool_requests_waiting",
    "Requests waiting for a connection of the pool, summed over live processes",
    ["pool"],
    multiprocess_mode="livesum",
)
CACHE = Counter(
    "tracetrack_dashboard_cache_requests_total",
    "Dashboard requests by cache result: hit (answered from the cached JSON) or miss (built from the views)",
    ["result"],
)
READS = Counter(
    "tracetrack_read_routing_total",
    "Lag-tolerant reads with a replica, by the server that answered and why: replica (current: it had "
    "replayed what the caller wrote; waited: it caught up within TRACETRACK_REPLICA_WAIT) or primary "
    "(own_write: it did not; lag: past TRACETRACK_REPLICA_MAX_LAG; down: breaker open; failed: a retry "
    "after a replica read failed; write: a read inside a write request; unknown: where the caller's last "
    "write reached is not known (its store did not answer, or it was not recorded); busy: every read "
    "connection was busy)",
    ["server", "reason"],
)


def count_reads(db: Database) -> None:
    """Count where `db`'s reads go (with a replica; without one nothing is counted, nothing costs)."""
    if db.replica is None:
        return
    children: dict[tuple[str, str], Any] = {}

    def routed(server: str, reason: str) -> None:
        child = children.get((server, reason))
        if child is None:
            child = children[(server, reason)] = READS.labels(server, reason)
        child.inc()

    db.replica.on_route = routed


_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))


class RequestMetrics:
    """The requests' count and duration by method, route and status, and the pools'
    gauges, from the answered requests RequestLog hands over in batches (deferred.py)."""

    def __init__(self, db: Database):
        self.db = db
        self._pool_sampled = 0.0
        self._children: dict[tuple[str, str, str], tuple] = {}  # labels() costs a lock and a lookup

    def record(self, answered: list[Answered]) -> None:
        # the requests counted once per label set and batch (each inc() is a lock and an
        # mmap write); a scrape between the two loops sees the latency histogram's count
        # ahead of requests_total by at most this batch
        counts: dict[tuple[str, str, str], int] = {}
        for request in answered:
            method = request.method if request.method in _METHODS else "OTHER"  # bounded label values
            key = (method, request.route, str(request.status))
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (LATENCY.labels(*key[:2]), REQUESTS.labels(*key))
            children[0].observe(request.seconds)
            counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            self._children[key][1].inc(n)
        now = time.monotonic()
        if now - self._pool_sampled > 1.0:  # pool stats take the pool's lock: sample, don't poll
            self._pool_sampled = now
            for name, stats in self.db.stats().items():
                POOL.labels(name, "size").set(stats.get("pool_size", 0))
                POOL.labels(name, "available").set(stats.get("pool_available", 0))
                POOL_WAITING.labels(name).set(stats.get("requests_waiting", 0))


class ViewAges:
    """A collector: seconds since each materialized view was refreshed, read at scrape time."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self):
        family = GaugeMetricFamily(
            "tracetrack_view_age_seconds", "Seconds since each materialized view was refreshed", labels=["view"]
        )
        try:
            now = time.time()
            for view, at in views.refresh_times(self.db).items():
                family.add_metric([view], now - at.timestamp())
        except errors.DatabaseUnavailable:
            pass  # the database being down is /health's to say; metrics still answer
        yield family


class ReplicaLag:
    """A collector: the replica's lag and state as this process's poller knows them (replica.py)."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self):
        replica = self.db.replica
        if replica is None:
            return
        status = replica.status()
        up = GaugeMetricFamily("tracetrack_replica_up", "1 while reads may go to the replica (it answers)")
        up.add_metric([], 1.0 if status["up"] else 0.0)
        seconds = GaugeMetricFamily(
            "tracetrack_replica_lag_seconds",
            "Seconds since the oldest primary WAL position the replica has not replayed (0: caught up)",
        )
        seconds.add_metric([], status["lag_seconds"])
        lag_bytes = GaugeMetricFamily(
            "tracetrack_replica_lag_bytes", "Bytes of WAL the primary has flushed and the replica not yet replayed"
        )
        lag_bytes.add_metric([], status["lag_bytes"])
        yield from (up, seconds, lag_bytes)


class _ThisProcess:
    def collect(self):
        from prometheus_client import REGISTRY

        flush_all()  # this process's requests so far, not those of INTERVAL ago
        yield from REGISTRY.collect()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # a scrape every few seconds is not news
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsListener:
    """GET /metrics (every worker's metrics, from the multiprocess directory, plus
    the views' ages) and GET /health (database and cache checks with latencies
    and error text) on their own port, for monitoring, not for the public."""

    def __init__(self, db: Database, cache):
        from prometheus_client import multiprocess

        self.db = db
        self.cache = cache
        self.registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(self.registry)
        else:  # one process (tests, an embedding program): its own metrics
            self.registry.register(_ThisProcess())
        self.registry.register(ViewAges(db))
        self.registry.register(ReplicaLag(db))
        self._server: _ThreadingServer | None = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, status, ctype = generate_latest(self.registry), "200 OK", CONTENT_TYPE_LATEST
        elif path == "/health":
            details = self.health()
            body, ctype = dumps(details), "application/json"
            status = "200 OK" if details["database"]["ok"] else "503 Service Unavailable"
        else:
            body, status, ctype = (
                b'{"error": {"code": "not_found", "message": "/metrics or /health"}}',
                "404 Not Found",
                "application/json",
            )
        start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def health(self) -> dict:
        start = time.perf_counter()
        try:
            database: dict[str, Any] = {"ok": True, "latency_ms": round(maintenance.ping(self.db), 2), "error": None}
        except errors.DatabaseUnavailable as exc:
            database = {"ok": False, "latency_ms": round((time.perf_counter() - start) * 1000, 2), "error": exc.message}
        latency = self.cache.ping()
        replica = {"replica": self.db.replica.status()} if self.db.replica is not None else {}
        return {
            "database": database,
            **replica,
            "cache": {
                "kind": self.cache.kind,
                "ok": latency is not None,
                "latency_ms": None if latency is None else round(latency, 2),
            },
        }

    def start(self, host: str, port: int) -> MetricsListener:
        self._server = server = make_server(host, port, self, server_class=_ThreadingServer, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, name="tracetrack-metrics", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics listener is not started")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
