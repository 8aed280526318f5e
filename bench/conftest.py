"""Benchmark fixtures: a seeded database, built once per size and reused.

    pytest bench/ --benchmark-storage=file://bench/baselines --benchmark-save=600k     # see README, Benchmarks

The server: TRACETRACK_BENCH_SERVER_URL, else TRACETRACK_TEST_DATABASE_URL, else the
embedded PostgreSQL (pgserver, as the tests use); on it the database `tt_bench_600k`
(`tt_bench_6m` with --bags 6000000), seeded on first use. See bench/benchdb.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchdb import BenchServer, label

from tracetrack_db import Database, maintenance


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bags", type=int, default=600_000, help="size of the seeded benchmark database")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Every saved file says its data size (the baseline's name says it too)."""
    output_json["bags"] = config.getoption("--bags")
    output_json["data"] = label(config.getoption("--bags"))


@pytest.fixture(scope="session")
def bench_server() -> Iterator[BenchServer]:
    server = BenchServer()
    try:
        server.start()
    except SystemExit as exc:
        pytest.exit(str(exc), returncode=2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bench_url(request: pytest.FixtureRequest, bench_server: BenchServer) -> str:
    try:
        return bench_server.seeded(request.config.getoption("--bags"))
    except SystemExit as exc:
        pytest.exit(str(exc), returncode=2)


@pytest.fixture(scope="session")
def bench_db(bench_url: str) -> Iterator[Database]:
    """The rolled-back writes of every run leave dead row versions (thousands of
    the same app_user, bill and parent rows): vacuumed first, so that each run
    starts from the same state (unvacuumed, count_active_admins got 3.5x
    slower over three runs of the same code)."""
    with Database(bench_url, min_size=1, max_size=4, timeout=30) as db:
        maintenance.vacuum_analyze(db)
        yield db


@pytest.fixture(scope="session")
def sample(bench_db: Database) -> dict:
    """Real keys from the data set: QRs of each kind, bills, users."""
    with bench_db.connection() as conn:
        one = lambda q: conn.execute(q).fetchone()  # noqa: E731
        return {
            "full_parent": one(
                "SELECT qr_id, id FROM bag WHERE type = 'parent' AND status = 'completed' "
                "AND bill_id IS NULL ORDER BY id DESC LIMIT 1"
            ),
            "open_parent": one(
                "SELECT qr_id, id FROM bag WHERE type = 'parent' AND status <> 'completed' "
                "AND bill_id IS NULL ORDER BY id DESC LIMIT 1"
            ),
            "billed_parent": one(
                "SELECT b.qr_id, b.id, b.bill_id, bl.bill_no FROM bag b "
                "JOIN bill bl ON bl.id = b.bill_id "
                "WHERE bl.status = 'processing' ORDER BY b.id LIMIT 1"
            ),
            "linked_child": one(
                "SELECT c.qr_id, c.id FROM bag c JOIN bag p ON p.id = c.parent_id "
                "WHERE p.bill_id IS NULL ORDER BY c.id DESC LIMIT 1"
            ),
            "short_parent": one(
                "SELECT qr_id, id FROM bag WHERE type = 'parent' AND status = 'in_progress' "
                "AND bill_id IS NULL ORDER BY id DESC LIMIT 1"
            ),
            # a user whose last link or unlink is a scanned link still in place: undo finds work
            "last_linker": one(
                "SELECT e.user_id FROM event e JOIN bag c ON c.id = e.bag_id AND c.parent_id = e.parent_id "
                "JOIN bag p ON p.id = c.parent_id AND p.bill_id IS NULL "
                "WHERE e.kind = 'link' AND e.details IS NULL AND e.user_id IS NOT NULL AND e.id = "
                "(SELECT max(x.id) FROM event x WHERE x.user_id = e.user_id AND x.kind IN ('link', 'unlink')) "
                "ORDER BY e.id DESC LIMIT 1"
            ),
            "loose_child": one(
                "SELECT qr_id, id FROM bag WHERE type = 'child' AND parent_id IS NULL ORDER BY id DESC LIMIT 1"
            ),
            "open_bill": one(
                "SELECT bill_no, id FROM bill WHERE status <> 'completed' "
                "AND linked_parent_count < capacity ORDER BY id DESC LIMIT 1"
            ),
            "completed_bill": one("SELECT bill_no, id FROM bill WHERE status = 'completed' ORDER BY id LIMIT 1"),
            "full_bill": one(
                "SELECT bill_no, id FROM bill WHERE linked_parent_count > 0 "
                "ORDER BY linked_parent_count DESC, id LIMIT 1"
            ),
            "user": one("SELECT id, username FROM app_user ORDER BY id LIMIT 1"),
            # the seed opens no return ticket: one is opened here the first time (one event)
            "open_return": one(
                "SELECT coalesce((SELECT id FROM return_ticket WHERE status = 'open' ORDER BY id LIMIT 1), "
                "tt_return_open('Bench depot', '', NULL, NULL))"
            ),
            "bags": conn.execute("SELECT count(*) FROM bag").fetchone()[0],
            "server_version": conn.info.server_version,
        }
