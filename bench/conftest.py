"""Benchmark fixtures: a seeded database, built once per size and reused.

    pytest bench                               # 600,000 bags
    pytest bench --bags 6000000                # the large run
    pytest bench --benchmark-autosave          # save JSON; compare with --benchmark-compare

TRACETRACK_BENCH_SERVER_URL (default: TRACETRACK_TEST_DATABASE_URL, else
the local PostgreSQL) is the server the database `tt_bench_<bags>` lives on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracetrack_db import Database, maintenance, migrations, views
from tracetrack_ops.seed import seed


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bags", type=int, default=600_000, help="size of the seeded benchmark database")


@pytest.fixture(scope="session")
def bench_url(request: pytest.FixtureRequest) -> str:
    bags = request.config.getoption("--bags")
    server = (os.environ.get("TRACETRACK_BENCH_SERVER_URL") or os.environ.get("TRACETRACK_TEST_DATABASE_URL")
              or "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"tt_bench_{bags}"
    url = make_conninfo(**{**conninfo_to_dict(server), "dbname": name})
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrations.migrate(url)
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM bag").fetchone()[0]
    if have == 0:
        seed(url, bags, seed=42)
        with Database(url, min_size=1, max_size=1) as db:
            maintenance.vacuum_analyze(db)
            views.refresh_views(db)
    elif have < bags * 0.99:
        pytest.exit(f"{name} holds {have} bags, not {bags}: drop it to reseed", returncode=2)
    return url


@pytest.fixture(scope="session")
def bench_db(bench_url: str) -> Iterator[Database]:
    with Database(bench_url, min_size=1, max_size=4, timeout=30) as db:
        yield db


@pytest.fixture(scope="session")
def sample(bench_db: Database) -> dict:
    """Real keys from the data set: QRs of each kind, bills, users."""
    with bench_db.connection() as conn:
        one = lambda q: conn.execute(q).fetchone()  # noqa: E731
        return {
            "full_parent": one("SELECT qr_id, id FROM bag WHERE type = 'parent' AND status = 'completed' "
                               "AND bill_id IS NULL ORDER BY id DESC LIMIT 1"),
            "open_parent": one("SELECT qr_id, id FROM bag WHERE type = 'parent' AND status <> 'completed' "
                               "AND bill_id IS NULL ORDER BY id DESC LIMIT 1"),
            "billed_parent": one("SELECT b.qr_id, b.id, b.bill_id, bl.bill_no FROM bag b JOIN bill bl ON bl.id = b.bill_id "
                                 "WHERE bl.status = 'processing' ORDER BY b.id LIMIT 1"),
            "linked_child": one("SELECT c.qr_id, c.id FROM bag c JOIN bag p ON p.id = c.parent_id "
                                "WHERE p.bill_id IS NULL ORDER BY c.id DESC LIMIT 1"),
            "loose_child": one("SELECT qr_id, id FROM bag WHERE type = 'child' AND parent_id IS NULL "
                               "ORDER BY id DESC LIMIT 1"),
            "open_bill": one("SELECT bill_no, id FROM bill WHERE status <> 'completed' "
                             "AND linked_parent_count < capacity ORDER BY id DESC LIMIT 1"),
            "completed_bill": one("SELECT bill_no, id FROM bill WHERE status = 'completed' ORDER BY id LIMIT 1"),
            "user": one("SELECT id, username FROM app_user ORDER BY id LIMIT 1"),
            "bags": conn.execute("SELECT count(*) FROM bag").fetchone()[0],
        }
