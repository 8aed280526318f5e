"""`tracetrack_build_info{version="..."} 1`: which version every worker runs (the
Prometheus convention for build information), from tracetrack_db.__version__."""

from __future__ import annotations

from prometheus_client import Gauge

from tracetrack_db import __version__

BUILD_INFO = Gauge(
    "tracetrack_build_info", "The running TraceTrack version (always 1)", ["version"], multiprocess_mode="max"
)


def publish() -> None:
    BUILD_INFO.labels(__version__).set(1)
