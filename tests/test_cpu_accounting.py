"""bench/cpu_per_request.py's accounting: what it reads from /proc and which
PostgreSQL backends it counts as the server's (the figures in docs/SCALING.md
rest on both)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from cpu_per_request import Meter, backends, cpu_ticks, process_tree


def _wait(conn) -> None:
    conn.recv()


def test_cpu_ticks_count_this_process_work_and_a_child_is_in_its_tree():
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=_wait, args=(theirs,))
    child.start()
    try:
        assert child.pid in process_tree(os.getpid())
        meter = Meter(lambda: [os.getpid()], lambda: [])
        meter.start()
        started = time.process_time()
        while time.process_time() - started < 0.2:  # CPU, not waiting: 20 ticks at 100 Hz
            pass
        used, pg = meter.stop()
        assert used > 0 and pg == 0
    finally:
        ours.send("done")
        child.join(10)
    assert cpu_ticks(child.pid) == 0  # gone: counts nothing


def test_the_server_backends_are_counted_and_the_tools_own_sessions_are_not(db_url: str):
    with (
        psycopg.connect(db_url, autocommit=True, application_name="tracetrack") as server,
        psycopg.connect(db_url, autocommit=True, application_name="cpu-bare") as bare,
        psycopg.connect(db_url, autocommit=True, application_name="cpu-bench") as admin,
    ):
        counted = backends(admin)
        assert server.info.backend_pid in counted
        assert bare.info.backend_pid not in counted and admin.info.backend_pid not in counted
        meter = Meter(lambda: [], lambda: backends(admin))
        meter.start()
        server.execute("SELECT count(*) FROM generate_series(1, 5000000)")  # ~0.3 s of a backend's CPU
        _, pg = meter.stop()
        assert pg > 0
