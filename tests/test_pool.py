"""The pool hands out the connection returned last (tracetrack_db.database.HotFirstPool)."""

from __future__ import annotations

import threading

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
        barrier = threading.Barrier(4)

        def hold() -> None:
            with db.connection() as conn:
                barrier.wait(10)  # all four checked out at once: the pool grows to four
                conn.execute("SELECT 1")

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert db.pool.get_stats()["pool_size"] == 4
        assert len({backend_pid(db) for _ in range(12)}) == 1
