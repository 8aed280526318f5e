"""The metrics listener of a gunicorn deployment.

deploy/gunicorn.conf.py starts it from gunicorn's master, as a process of its
own (the master must not import psycopg: gevent workers patch it after the
fork), with PROMETHEUS_MULTIPROC_DIR already set:

    python -m tracetrack_ops.gunicorn_metrics --bind 127.0.0.1:9464 --parent PID

It answers GET /metrics (every worker's metrics, summed from the
multiprocess directory) and GET /health (details), like the listener of
`tracetrack serve`, and ends with SIGTERM or when its parent is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading


def split_bind(bind: str) -> tuple[str, int]:
    """'127.0.0.1:9464' or '[::1]:9464' -> (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"TRACETRACK_METRICS_BIND: expected HOST:PORT, not {bind!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracetrack_ops.gunicorn_metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bind", default="127.0.0.1:9464", help="HOST:PORT to listen on (default %(default)s)")
    parser.add_argument("--parent", type=int, default=os.getppid(), help="end when this process is gone")
    args = parser.parse_args(argv)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SystemExit("PROMETHEUS_MULTIPROC_DIR is not set: this listener sums the workers' metrics files")
    from tracetrack_api.config import ApiSettings

    from .cli import start_metrics_listener

    settings = ApiSettings.from_env()
    if not settings.db.database_url:
        raise SystemExit("DATABASE_URL is not set")
    host, port = split_bind(args.bind)
    listener = start_metrics_listener(settings.db, settings.redis_url, host, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"tracetrack metrics listener on http://{args.bind} (/metrics, /health)", flush=True)
    while not stop.wait(1.0):
        if os.getppid() != args.parent:  # gunicorn's master is gone (even by SIGKILL): so is its listener
            break
    listener.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
