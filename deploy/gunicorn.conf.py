"""gunicorn configuration for sites that standardise on gunicorn.

    gunicorn -c deploy/gunicorn.conf.py

granian (`tracetrack serve`) measured faster here; see bench/RESULTS.md.
With TRACETRACK_WORKER_CLASS=gevent (pip install "tracetrack[gunicorn]"),
never preload: psycopg must be imported after gevent has monkey-patched.

Metrics: every worker writes its figures into PROMETHEUS_MULTIPROC_DIR (a
fresh directory made when the master starts: the operator's, emptied, or a
temporary one); a metrics listener started by the master
(TRACETRACK_METRICS_BIND, default 127.0.0.1:9464) answers GET /metrics with
the sum over all workers, and GET /health with details. A worker that exits
is marked dead (child_exit), so its gauges leave the sums and its counters
stay in them.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_cpus = os.cpu_count() or 1

wsgi_app = "tracetrack_api.wsgi:create()"
bind = os.environ.get("TRACETRACK_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_CONCURRENCY", _cpus))
worker_class = os.environ.get("TRACETRACK_WORKER_CLASS", "gthread")
threads = int(os.environ.get("TRACETRACK_THREADS", "6"))
worker_connections = int(os.environ.get("TRACETRACK_WORKER_CONNECTIONS", "100"))
preload_app = False
keepalive = 5
timeout = 30
graceful_timeout = 20
max_requests = 50_000
max_requests_jitter = 5_000
accesslog = None
errorlog = "-"

# One pool per worker, as large as the concurrency a worker can use, so
# workers x pool stays well below PostgreSQL's max_connections (100 default).
os.environ.setdefault("TRACETRACK_POOL_MAX_SIZE", str(threads if worker_class == "gthread" else 8))


def on_starting(server):
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("gunicorn needs DATABASE_URL (the embedded server is for `tracetrack serve`)")
    if not os.environ.get("TRACETRACK_SECRET_KEY"):
        raise SystemExit("set TRACETRACK_SECRET_KEY: every worker must sign tokens with the same key")
    _check_database()
    _fresh_metrics_dir()
    _start_metrics_listener()


def _check_database():
    """Connect once before any worker starts: a wrong DATABASE_URL (no such database,
    role or password, no server there) stops gunicorn now, with PostgreSQL's reason.
    A worker itself starts even when the database is unreachable (a worker respawned
    during a database restart must not die again, or gunicorn halts), so without
    this a typo would be a server answering 503 for ever. In a subprocess: the
    master must not import psycopg (gevent workers patch it after the fork)."""
    probe = "import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=10).close()"
    out = subprocess.run(
        [sys.executable, "-c", probe, os.environ["DATABASE_URL"]], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise SystemExit(f"cannot connect to DATABASE_URL: {reason}")


_metrics = {"dir": None, "listener": None}
_METRICS_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")  # prometheus-client's names


def _fresh_metrics_dir():
    """PROMETHEUS_MULTIPROC_DIR for the workers, empty: a previous run's files would add to the sums.
    Set in the master before any worker is forked (and before prometheus-client is imported)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        files = [name for name in os.listdir(path) if name.endswith(".db")]
        others = [name for name in files if not _METRICS_FILE.fullmatch(name)]
        if others:  # a mistyped path: delete nothing of someone else's (and they would break the sums)
            raise SystemExit(
                f"PROMETHEUS_MULTIPROC_DIR={path} holds {others[0]}, not a metrics file: "
                "give the metrics a directory of their own"
            )
        for name in files:
            os.remove(os.path.join(path, name))
    else:
        path = _metrics["dir"] = tempfile.mkdtemp(prefix="tracetrack-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def _start_metrics_listener():
    """Its own process: the master stays free of psycopg (gevent patches it in the workers)."""
    bind = os.environ.get("TRACETRACK_METRICS_BIND", "127.0.0.1:9464")
    proc = _metrics["listener"] = subprocess.Popen(
        [sys.executable, "-m", "tracetrack_ops.gunicorn_metrics", "--bind", bind, "--parent", str(os.getpid())]
    )
    host, _, port = bind.rpartition(":")
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the metrics listener did not start on {bind} (TRACETRACK_METRICS_BIND)")


def child_exit(server, worker):
    """A worker is gone (ended, crashed or recycled by max_requests): its live gauges leave the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    proc = _metrics["listener"]
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if _metrics["dir"]:
        shutil.rmtree(_metrics["dir"], ignore_errors=True)
