"""The service through a real PgBouncer (Debian's 1.18) in transaction pooling,
with the documented setting (TRACETRACK_PREPARE_THRESHOLD=none): every route
answers as documented, parallel scans keep every invariant, and the real
server (`tracetrack serve`) works with its DATABASE_URL through PgBouncer.
What needs a session bypasses it: migrations refuse a pooler, and the
user-change listener (LISTEN) says it cannot listen through one and
connects to PostgreSQL itself when TRACETRACK_LISTEN_URL says so.

PgBouncer here keeps 4 server connections per database and role, fewer than
the clients, so transactions of different clients really share them."""

from __future__ import annotations

import getpass
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tracetrack_api.auth import UserChangeListener, UserDirectory
from tracetrack_db import Database, migrations, users
from tracetrack_db.rawsql import behind_pooler

from .api_helpers import Api, walk_every_route
from .conftest import SERVICE_PASSWORD, SERVICE_ROLE, as_service, service_missing
from .factories import check_counters
from .pgbouncer import PgBouncer, pgbouncer_binary

pytestmark = pytest.mark.pgbouncer
SERVER_POOL = 4  # PgBouncer's server connections per database and role


@pytest.fixture(scope="session")
def pgbouncer(pg_server_url: str) -> Iterator[PgBouncer]:
    """One PgBouncer for the session, in front of the test server: every test
    database is reachable through it as the owner and as the service role."""
    if pgbouncer_binary() is None:
        service_missing("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    server = conninfo_to_dict(pg_server_url)
    owner = str(server.get("user") or getpass.getuser())
    bouncer = PgBouncer(
        pg_server_url, {owner: str(server.get("password") or ""), SERVICE_ROLE: SERVICE_PASSWORD}, pool_size=SERVER_POOL
    )
    with bouncer:
        yield bouncer


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, db_url: str) -> str:
    """This test's database as the service role, through PgBouncer."""
    return pgbouncer.route(as_service(db_url))


@pytest.fixture
def pooled_db(pooled_url: str) -> Iterator[Database]:
    """The library as the service runs it through PgBouncer: more pooled
    connections than PgBouncer has server connections, nothing prepared."""
    with Database(pooled_url, min_size=1, max_size=16, timeout=10, prepare_threshold=None) as database:
        with database.connection() as conn:
            assert behind_pooler(conn)  # the test really goes through PgBouncer
        yield database


def test_every_route_answers_as_documented_through_pgbouncer(pooled_db: Database):
    walk_every_route(Api(pooled_db))


def test_parallel_scans_through_pgbouncer_keep_every_invariant(pooled_db: Database, sql_conn):
    """16 scanners at once over 16 pooled connections sharing 4 server
    connections: children into 4 parents of 30 (more children than room),
    batches among them, unlinks; no 5xx, no deadlock, and afterwards every
    counter equals the real count and no child is in two parents."""
    api = Api(pooled_db)
    admin = api.admin()
    scanners = [api.dispatcher("lucknow") for _ in range(16)]
    parents = [f"SB0{i:04d}" for i in range(4)]
    for p in parents:
        api.open_parent(admin, p, "lucknow")
    children = [f"PB-{i:03d}" for i in range(150)]
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def scan(i: int) -> None:
        rnd = random.Random(i)
        for _ in range(25):
            op = rnd.random()
            if op < 0.7:
                result = api.post(
                    "/api/scans/child",
                    scanners[i],
                    json={"parent_qr": rnd.choice(parents), "child_qr": rnd.choice(children)},
                )
            elif op < 0.85:
                result = api.post(
                    "/api/scans/batch",
                    scanners[i],
                    json={"parent_qr": rnd.choice(parents), "child_qrs": rnd.sample(children, 4)},
                )
            else:
                result = api.post("/api/scans/unlink", scanners[i], json={"child_qr": rnd.choice(children)})
            with lock:
                statuses[result.status_code] += 1
            assert result.status_code < 500, result.text
            if result.status_code == 409:
                assert result.json["error"]["code"] != "conflict", result.text  # a deadlock would be 409 conflict

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(scan, i) for i in range(16)]:
            future.result()
    assert statuses[200] > 0, statuses
    check_counters(sql_conn)
    assert sql_conn.execute("SELECT count(*) FROM bag WHERE parent_id IS NOT NULL").fetchone()[0] == sum(
        api.get(f"/api/bags/{p}", admin).json["bag"]["child_count"] for p in parents
    )
    links = sql_conn.execute(
        "SELECT count(*) FILTER (WHERE kind = 'link') - count(*) FILTER (WHERE kind = 'unlink') FROM event"
    ).fetchone()[0]
    assert links == sql_conn.execute("SELECT count(*) FROM bag WHERE parent_id IS NOT NULL").fetchone()[0]


def test_migrations_refuse_to_run_through_pgbouncer(pgbouncer: PgBouncer, db_url: str):
    """Their advisory lock is a session's, held across transactions: through
    transaction pooling its unlock could reach another server connection and
    leave it held for good. They say to connect directly instead."""
    with pytest.raises(migrations.MigrationError, match="TRACETRACK_OWNER_URL"):
        migrations.migrate(pgbouncer.route(db_url))
    migrations.migrate(db_url)  # directly: fine (nothing to apply)


def test_the_user_change_listener_says_it_cannot_listen_through_pgbouncer(pooled_db, pooled_url, caplog):
    """LISTEN through transaction pooling hears nothing: rather than claim to
    listen, the listener says so once and stops; the cache's refresh time
    bounds the delay."""
    directory = UserDirectory(pooled_db, 15)
    with caplog.at_level(logging.WARNING, logger="tracetrack_api.auth"):
        listener = UserChangeListener(pooled_url, directory, retry_seconds=0.1).start()
        listener._thread.join(timeout=10)
    assert not listener._thread.is_alive() and not listener.listening.is_set()
    assert "TRACETRACK_LISTEN_URL" in caplog.text


def test_serve_through_pgbouncer(pgbouncer: PgBouncer, db_url: str):
    """`tracetrack serve` (granian) with DATABASE_URL through PgBouncer and
    TRACETRACK_PREPARE_THRESHOLD=none, migrating as the owner directly and
    listening directly (TRACETRACK_LISTEN_URL): its demo data, scans and
    lookups, each statement many times over (past psycopg's default of 5,
    when it would have prepared), /health on the metrics listener likewise;
    and a change to a user reaches the worker through LISTEN at once."""
    from .test_server import http, login, running_server

    env = {
        "DATABASE_URL": pgbouncer.route(as_service(db_url)),
        "TRACETRACK_PREPARE_THRESHOLD": "none",
        "TRACETRACK_LISTEN_URL": as_service(db_url),
        "TRACETRACK_USER_REFRESH": "3600",  # only LISTEN can end a token quickly here
    }
    with running_server(db_url, env_extra=env) as (base, proc):
        token = login(base, "dispatcher", "tracetrack-demo")
        for i in range(12):
            status, body, _ = http("POST", base + "/api/scans/parent", {"qr_id": f"SB9{i:04d}"}, token)
            assert status == 201, body
            status, body, _ = http(
                "POST", base + "/api/scans/child", {"parent_qr": f"SB9{i:04d}", "child_qr": f"PGB-{i}"}, token
            )
            assert status == 200 and body["result"] == "linked", body
            status, body, _ = http("GET", base + f"/api/bags/SB9{i:04d}", token=token)
            assert status == 200 and body["bag"]["child_count"] == 1, body
            assert http("GET", proc.metrics + "/health")[0] == 200
        with psycopg.connect(as_service(db_url), autocommit=True) as conn:
            assert (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tracetrack-listener'"
                ).fetchone()[0]
                >= 1
            )  # the listener reached PostgreSQL itself
        with Database(db_url, min_size=1, max_size=1) as owner:
            user = users.find_user(owner, "dispatcher")
            assert user is not None
            users.update_user(owner, user.id, users.UserChanges(is_active=False))
        deadline = time.monotonic() + 5
        while http("GET", base + "/api/me", token=token)[0] != 401:
            assert time.monotonic() < deadline, "the deactivation did not reach the worker"
            time.sleep(0.1)
        assert "cannot listen" not in proc.log() and "pooler" not in proc.log(), proc.log()


def test_a_pooled_connection_never_prepares_whatever_the_setting(pooled_url):
    """PgBouncer 1.18 keeps no prepared statements: two clients that each prepared a
    different statement under psycopg's first name (_pg3_0) on different server
    connections had each other's run, silently. Behind a pooler the library turns
    preparing off, even with TRACETRACK_PREPARE_THRESHOLD left at its default."""
    first, second = (Database(pooled_url, min_size=2, max_size=2, prepare_threshold=0) for _ in range(2))
    with first, second:
        for db in (first, second):
            with db.connection() as conn:
                assert conn.prepare_threshold is None

        def ask(db: Database, tag: str) -> list[str]:
            out = []
            for i in range(40):
                with db.connection() as conn:
                    out.append(conn.execute(f"SELECT '{tag} ran: ' || %s::text", (i,)).fetchone()[0])
            return out

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(ask, (first, second), ("A", "B")))
    assert answers == [[f"{tag} ran: {i}" for i in range(40)] for tag in ("A", "B")]
