"""deploy/gunicorn.conf.py in a real gunicorn: every worker's metrics reach
the metrics listener, summed, and a worker that exits leaves the live sums."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import as_service, require_module
from .test_metrics import settled, value
from .test_server import SECRET, free_port, http

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parent.parent
HEALTH = r'tracetrack_http_requests_total\{method="GET",route="/health",status="200"\}'


def worker_pids(master: int) -> set[int]:
    psutil = require_module("psutil")
    return {c.pid for c in psutil.Process(master).children() if "gunicorn_metrics" not in " ".join(c.cmdline())}


def files_of(directory: Path, kind: str) -> set[int]:
    """The pids that wrote metrics files of a kind (counter, histogram, gauge_livesum ...)."""
    return {int(m[1]) for f in directory.iterdir() if (m := re.fullmatch(rf"{kind}_(\d+)\.db", f.name))}


def test_gunicorn_workers_metrics_are_summed_by_the_listener(db_url, tmp_path):
    require_module("gunicorn")
    port, metrics_port = free_port(), free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier run")  # a fresh start removes it
    env = {
        **os.environ,
        "DATABASE_URL": as_service(db_url),
        "TRACETRACK_SECRET_KEY": SECRET,
        "TRACETRACK_BIND": f"127.0.0.1:{port}",
        "TRACETRACK_METRICS_BIND": f"127.0.0.1:{metrics_port}",
        "WEB_CONCURRENCY": "2",
        "TRACETRACK_THREADS": "2",
        "TRACETRACK_REFRESH_INTERVAL": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    env.pop("REDIS_URL", None)
    log = tempfile.NamedTemporaryFile("w+", prefix="tracetrack-gunicorn-", suffix=".log")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"

    def logged() -> str:
        return Path(log.name).read_text(errors="replace")

    try:
        deadline = time.monotonic() + 60
        while len(worker_pids(proc.pid)) < 2 or not _answers(base):
            assert proc.poll() is None, logged()
            assert time.monotonic() < deadline, "gunicorn did not start in 60 s:\n" + logged()
            time.sleep(0.2)
        assert not (metrics_dir / "counter_999999.db").exists()
        workers = worker_pids(proc.pid)
        sent = 1  # _answers' request
        # separate connections, so the kernel hands them to both workers; a worker's
        # metrics file appears when it records its first request, up to
        # deferred.INTERVAL after answering it (CI: 400 requests were not always enough)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (sent < 40 or not workers <= files_of(metrics_dir, "counter")):
            assert http("GET", base + "/health")[0] == 200
            sent += 1
        assert workers <= files_of(metrics_dir, "counter"), "one worker served every request"
        text = settled(metrics, HEALTH, sent)
        assert value(text, HEALTH) == sent  # the sum over both workers, not one worker's share
        assert value(text, r'tracetrack_http_request_duration_seconds_count\{method="GET",route="/health"\}') == sent
        assert value(text, r'tracetrack_pool_connections\{pool="write",state="size"\}') >= 2  # both live
        # a worker that exits: child_exit marks it dead; its counts stay, its live gauges go
        gone = sorted(workers)[0]
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while gone in files_of(metrics_dir, "gauge_livesum") or len(worker_pids(proc.pid) - {gone}) < 2:
            assert time.monotonic() < deadline, "the exited worker was not marked dead:\n" + logged()
            time.sleep(0.2)
        for _ in range(10):
            assert http("GET", base + "/health")[0] == 200
            sent += 1
        text = settled(metrics, HEALTH, sent)
        assert value(text, HEALTH) == sent
        with urllib.request.urlopen(metrics + "/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    # the master stopped its listener on the way out
    with pytest.raises(OSError):
        urllib.request.urlopen(metrics + "/metrics", timeout=2)


def _answers(base: str) -> bool:
    try:
        return http("GET", base + "/health", timeout=2)[0] == 200
    except OSError:
        return False


def test_the_metrics_directory_is_emptied_of_metrics_files_only(tmp_path, monkeypatch):
    """Before: every *.db in PROMETHEUS_MULTIPROC_DIR was deleted, a mistyped path's too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "deploy" / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_12.db").write_bytes(b"old")
    (tmp_path / "gauge_livesum_12.db").write_bytes(b"old")
    conf._fresh_metrics_dir()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "counter_13.db").write_bytes(b"old")
    (tmp_path / "inventory.db").write_bytes(b"someone's data")
    with pytest.raises(SystemExit, match="inventory.db, not a metrics file"):
        conf._fresh_metrics_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_13.db", "inventory.db"]


def test_a_wrong_database_url_stops_gunicorn_at_start(db_url):
    """A worker starts even while the database is unreachable (a respawn during a
    restart must not crash-loop), so the master checks DATABASE_URL once before
    any worker: a database that does not exist stops gunicorn with PostgreSQL's
    reason, instead of a server answering 503 for ever (found in review)."""
    require_module("gunicorn")
    from psycopg.conninfo import make_conninfo

    env = {
        **os.environ,
        "DATABASE_URL": make_conninfo(as_service(db_url), dbname="tt_no_such_database"),
        "TRACETRACK_SECRET_KEY": SECRET,
        "TRACETRACK_BIND": f"127.0.0.1:{free_port()}",
        "TRACETRACK_METRICS_BIND": f"127.0.0.1:{free_port()}",
        "WEB_CONCURRENCY": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "cannot connect to DATABASE_URL" in out.stderr and "tt_no_such_database" in out.stderr, out.stderr
