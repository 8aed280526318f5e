"""The pool hands out the connection returned last (tracetrack_db.database.HotFirstPool)."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tracetrack_db import Database


def backend_pid(db: Database) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return row[0]


def test_the_connection_returned_last_is_handed_out_first(service_url: str):
    with Database(service_url, min_size=3, max_size=3) as db:
        held = [db.pool.getconn() for _ in range(3)]
        for conn in held:  # returned oldest first: FIFO would hand out held[0] next
            db.pool.putconn(conn)
        again = db.pool.getconn()
        try:
            assert again is held[-1]
        finally:
            db.pool.putconn(again)


def test_one_caller_at_a_time_stays_on_one_backend_after_a_burst(service_url: str):
    """A burst opened every connection; afterwards one request at a time keeps to one
    backend (warm caches) instead of going round all of them, and the others stay idle
    (for the pool's max_idle to close, or a pooler's timeout)."""
    with Database(service_url, min_size=1, max_size=4) as db:
        burst(db, 4)
        assert len({backend_pid(db) for _ in range(12)}) == 1


def burst(db: Database, n: int) -> None:
    """n requests at once: the pool opens n connections."""
    barrier = threading.Barrier(n)

    def hold() -> None:
        with db.connection() as conn:
            barrier.wait(10)
            conn.execute("SELECT 1")

    threads = [threading.Thread(target=hold) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert db.pool.get_stats()["pool_size"] == n


@pytest.mark.parametrize("idle_check", [0.5, float("inf")])
def test_a_connection_left_idle_past_the_bound_is_checked_before_it_is_handed_out(service_url: str, idle_check):
    """LIFO leaves a burst's extra connection idle while one caller at a time keeps the
    other busy; here the server ends idle sessions after 1 s (idle_session_timeout, as a
    proxy's or a NAT's timeout would). Pinged when next taken, the ended one is replaced
    and the next burst fails nothing; without the check (inf), it fails a request."""
    conninfo = make_conninfo(service_url, options="-c idle_session_timeout=1000")
    with Database(conninfo, min_size=1, max_size=2, idle_check=idle_check) as db:
        burst(db, 2)
        for _ in range(10):  # 3 s of one caller at a time: only the newest connection is used
            backend_pid(db)
            time.sleep(0.3)
        held = [db.pool.getconn() for _ in range(2)]
        try:
            answers: list[object] = []
            for conn in held:
                try:
                    answers.append(conn.execute("SELECT 1").fetchone())
                except psycopg.OperationalError as exc:
                    answers.append(type(exc).__name__)
        finally:
            for conn in held:
                db.pool.putconn(conn)
    if idle_check == 0.5:
        assert answers == [(1,), (1,)]
    else:  # the scenario does end a connection: the check above is what saves the request
        assert answers.count((1,)) == 1, answers


def test_one_ended_idle_connection_found_has_the_others_checked_at_once(service_url: str, caplog):
    """Three connections after a burst, two of them idle past the server's idle timeout:
    the request that takes an ended one has the pool check the other idle one then, so
    it does not take that one next (after the pool's backoff of a second)."""
    conninfo = make_conninfo(service_url, options="-c idle_session_timeout=1000")
    with Database(conninfo, min_size=1, max_size=3, idle_check=0.5) as db:
        burst(db, 3)
        for _ in range(10):
            backend_pid(db)
            time.sleep(0.3)
        hot = db.pool.getconn()
        with caplog.at_level(logging.INFO, logger="psycopg.pool"):
            taken = db.pool.getconn()  # an ended one first, then a working one
        try:
            assert taken.execute("SELECT 1").fetchone() == (1,)
            assert db.pool.get_stats().get("connections_lost", 0) == 2  # both ended ones are gone
            failed = [r for r in caplog.records if "failed check" in r.getMessage()]
            assert len(failed) == 1, [r.getMessage() for r in caplog.records]  # the second by check()
        finally:
            db.pool.putconn(hot)
            db.pool.putconn(taken)
