"""The metrics listener: Prometheus text aggregated over every worker process,
and the detailed health, on their own port; the API port serves neither."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from tracetrack_db import __version__

from .test_server import http, login, running_server

pytestmark = pytest.mark.server


def scrape(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def settled(base: str, pattern: str, want: float, seconds: float = 10) -> str:
    """A scrape once the metric matching `pattern` sums to `want`, or the last one
    after `seconds`: a worker records its requests in batches (deferred.py), up
    to deferred.INTERVAL after answering them."""
    deadline = time.monotonic() + seconds
    while True:
        text = scrape(base)
        if value(text, pattern) == want or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def value(text: str, pattern: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(pattern, line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_of_every_worker(db_url):
    # two worker processes: each answers part of the requests; the listener reports all of them
    env = {"TRACETRACK_REFRESH_INTERVAL": "0"}
    with running_server(db_url, "--workers", "2", env_extra=env) as (base, proc):
        token = login(base, "admin", "tracetrack-demo")
        for _ in range(40):
            assert http("GET", base + "/api/bags/SB00001", None, token)[0] == 200
        for _ in range(3):
            assert http("GET", base + "/api/dashboard/analytics", None, token)[0] == 200
        bag_200 = r'tracetrack_http_requests_total\{method="GET",route="/api/bags/\{qr\}",status="200"\}'
        settled(proc.metrics, bag_200, 40)
        scrapes = [scrape(proc.metrics) for _ in range(3)]
        for text in scrapes:
            assert (
                value(
                    text,
                    r'tracetrack_http_requests_total\{method="GET",route="/api/bags/\{qr\}",'
                    r'status="200"\}',
                )
                == 40
            )
        text = scrapes[-1]
        assert (
            value(
                text,
                r"tracetrack_http_request_duration_seconds_count"
                r'\{method="GET",route="/api/bags/\{qr\}"',
            )
            == 40
        )
        assert value(text, r'tracetrack_dashboard_cache_requests_total\{result="miss"\}') >= 1
        assert value(text, r'tracetrack_dashboard_cache_requests_total\{result="(hit|miss)"\}') == 3
        assert value(text, r'tracetrack_pool_connections\{pool="write",state="size"\}') >= 1
        assert re.search(r'tracetrack_pool_requests_waiting\{pool="write"\} \d', text)  # requests, not connections
        assert 'state="waiting"' not in text
        assert re.search(r'tracetrack_view_age_seconds\{view="mv_bag_totals"\} \d', text)


def test_metrics_and_health_details_are_not_on_the_public_port(db_url):
    """Before, /metrics (and /metrics/, /metrics%2F) answered anyone on the API port,
    and /health showed raw database errors to anyone."""
    import json

    with running_server(db_url, env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"}) as (base, proc):
        for path in ("/metrics", "/metrics/", "/metrics%2F", "/metrics?x=1"):
            status, body, _ = http("GET", base + path)
            assert status == 404 and body["error"]["code"] == "not_found", path
        status, body, _ = http("GET", base + "/health")
        assert status == 200 and body == {
            "status": "ok",
            "version": __version__,
            "checks": {"database": True, "cache": True},
        }
        with urllib.request.urlopen(proc.metrics + "/health", timeout=10) as resp:
            details = json.loads(resp.read())
        assert details["database"]["ok"] is True and details["database"]["latency_ms"] >= 0
        assert details["cache"]["kind"] == "local"
        import psutil

        port = int(proc.metrics.rsplit(":", 1)[1])
        bound = {
            c.laddr.ip
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        }
        assert bound == {"127.0.0.1"}  # the loopback only, by default
