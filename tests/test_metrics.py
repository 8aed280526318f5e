"""GET /metrics: Prometheus text, aggregated over every worker process."""

from __future__ import annotations

import re
import urllib.request

import pytest

from .test_server import http, login, running_server

pytestmark = pytest.mark.server


def scrape(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def value(text: str, pattern: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(pattern, line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_of_every_worker(db_url):
    # two worker processes: each answers part of the requests and of the scrapes
    env = {"TRACETRACK_REFRESH_INTERVAL": "0"}
    with running_server(db_url, "--workers", "2", env_extra=env) as (base, _proc):
        token = login(base, "admin", "tracetrack")
        for _ in range(40):
            assert http("GET", base + "/api/bags/SB00001", None, token)[0] == 200
        for _ in range(3):
            assert http("GET", base + "/api/dashboard/analytics", None, token)[0] == 200
        scrapes = [scrape(base) for _ in range(6)]
        for text in scrapes:  # whichever worker answers, it reports all of them
            assert value(text, r'tracetrack_http_requests_total\{method="GET",route="/api/bags/\{qr\}",'
                               r'status="200"\}') == 40
        text = scrapes[-1]
        assert value(text, r'tracetrack_http_request_seconds_count\{method="GET",route="/api/bags/\{qr\}"') == 40
        assert value(text, r'tracetrack_cache_total\{result="miss"\}') >= 1
        assert value(text, r'tracetrack_cache_total\{result="(hit|miss)"\}') == 3
        assert value(text, r'tracetrack_pool_connections\{pool="write",state="size"\}') >= 1
        assert re.search(r'tracetrack_view_age_seconds\{view="mv_bag_totals"\} \d', text)
