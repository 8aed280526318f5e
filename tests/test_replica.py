"""A real hot standby (tests/pgcluster.py: pg_basebackup -R of a primary of
the test's own): where reads go, that a caller reads its own writes, and that
a standby lagging, paused or stopped mid-run fails no read."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from tracetrack_db import Database, bags, migrations, privileges, scans

from .conftest import SERVICE_ROLE, as_service, make_service_role, service_missing, with_dbname
from .pgcluster import Cluster, postgres_bindir

pytestmark = pytest.mark.replica
DBNAME = "tracetrack"


class Pair:
    def __init__(self, primary: Cluster, standby: Cluster):
        self.primary, self.standby = primary, standby
        self.owner_url = primary.url(DBNAME)
        self.service_url = as_service(self.owner_url)
        self.read_url = as_service(standby.url(DBNAME))

    def on_standby(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.standby.url(DBNAME), autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def database(self, **options) -> Database:
        options = {"replica_wait": 0.2, "replica_max_lag": 30.0, "replica_retry": 0.5, **options}
        return Database(self.service_url, read_conninfo=self.read_url, min_size=1, max_size=4, timeout=5, **options)

    def ensure_standby_running(self) -> None:
        if not (self.standby.data / "postmaster.pid").exists():
            self.standby.start()
        if self.on_standby("SELECT pg_is_wal_replay_paused()")[0][0]:
            self.on_standby("SELECT pg_wal_replay_resume()")
        self.standby.wait_replayed(self.primary)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A migrated primary (the service role granted as in production) and its hot standby."""
    if postgres_bindir() is None:
        service_missing("no PostgreSQL binaries (initdb, pg_basebackup) on this machine")
    with Cluster("primary") as primary:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DBNAME}")
        migrations.migrate(primary.url(DBNAME))
        make_service_role(primary.url())
        privileges.grant_service(primary.url(DBNAME), SERVICE_ROLE)
        with primary.standby("standby") as standby:
            standby.wait_replayed(primary)
            yield Pair(primary, standby)


@pytest.fixture
def replica_pair(pair: Pair) -> Iterator[Pair]:
    pair.ensure_standby_running()
    yield pair
    pair.ensure_standby_running()  # whatever the test did to it


def bag_json(db: Database, qr: str) -> dict:
    import orjson

    return orjson.loads(bags.get_bag_detail_json(db, qr))


def test_reads_go_to_the_standby_and_a_writer_reads_its_own_writes(replica_pair: Pair):
    """Replay paused: a write behind the library's back is missing on the
    standby, so a plain read that misses it was answered there; the caller's
    own write is read after it (the primary, after the bounded wait); once
    replay resumes, the same read is the standby's again and sees it."""
    pair = replica_pair
    with pair.database() as db:
        scans.open_parent(db, "SB10001", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        assert bag_json(db, "SB10001")["bag"]["child_count"] == 0
        assert db.replica is not None and db.replica.routed[("replica", "current")] >= 1

        pair.on_standby("SELECT pg_wal_replay_pause()")
        linked = scans.link_child(db, "SB10001", "RCHILD-1")
        assert linked.child_count == 1
        assert bag_json(db, "SB10001")["bag"]["child_count"] == 0  # the standby's, without the link
        started = time.monotonic()
        with db.reads_after(db.write_position()):
            assert bag_json(db, "SB10001")["bag"]["child_count"] == 1  # the writer's read: the primary's
        assert time.monotonic() - started >= 0.2  # after waiting TRACETRACK_REPLICA_WAIT for the standby
        assert db.replica.routed[("primary", "own_write")] == 1

        pair.on_standby("SELECT pg_wal_replay_resume()")
        position = db.write_position()
        with db.reads_after(position):
            assert bag_json(db, "SB10001")["bag"]["child_count"] == 1
        routed = db.replica.routed
        assert routed.get(("replica", "waited"), 0) + routed.get(("replica", "current"), 0) >= 3
        assert db.replica.replayed >= position  # answered by the standby, which had replayed the write


def test_a_standby_lagging_past_the_bound_gets_no_reads(replica_pair: Pair):
    pair = replica_pair
    with pair.database(replica_max_lag=0.3) as db, psycopg.connect(pair.owner_url, autocommit=True) as owner:
        scans.open_parent(db, "SB10002", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        pair.on_standby("SELECT pg_wal_replay_pause()")
        owner.execute("SELECT pg_switch_wal()")  # WAL the standby has not replayed ...
        scans.link_child(db, "SB10002", "RCHILD-2")  # ... nor this, someone else's write
        assert db.replica is not None
        deadline = time.monotonic() + 10
        while db.replica.lag_seconds() <= 0.3:  # the poller sees the lag grow
            assert time.monotonic() < deadline, db.replica.status()
            time.sleep(0.05)
        assert bag_json(db, "SB10002")["bag"]["child_count"] == 1  # not the standby's stale answer
        assert db.replica.routed[("primary", "lag")] >= 1
        pair.on_standby("SELECT pg_wal_replay_resume()")
        deadline = time.monotonic() + 10
        while db.replica.lag_seconds() > 0.3:
            assert time.monotonic() < deadline, db.replica.status()
            time.sleep(0.05)
        before = db.replica.routed.get(("replica", "current"), 0)
        assert bag_json(db, "SB10002")["bag"]["child_count"] == 1
        assert db.replica.routed[("replica", "current")] == before + 1


def test_a_stopped_standby_fails_no_read_and_is_used_again_when_back(replica_pair: Pair):
    """Stopped as a crash with connections open in the read pool: the read
    that finds its connection dead runs again on the primary; the breaker
    keeps the next ones off the standby; once it answers again, reads go to
    it (its pooled connections, broken by the restart, checked first)."""
    pair = replica_pair
    with pair.database() as db:
        scans.open_parent(db, "SB10003", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        assert bag_json(db, "SB10003")["bag"]["qr_id"] == "SB10003"
        assert db.replica is not None and db.replica.up()
        pair.standby.stop("immediate")
        for i in range(20):  # the first finds a dead connection, the others an open breaker
            scans.link_child(db, "SB10003", f"RCHILD-3-{i}")
            assert bag_json(db, "SB10003")["bag"]["child_count"] == i + 1
        assert not db.replica.up()
        routed = db.replica.routed
        assert routed.get(("primary", "failed"), 0) + routed.get(("primary", "down"), 0) >= 20
        pair.standby.start()
        deadline = time.monotonic() + 20
        while not db.replica.up():
            assert time.monotonic() < deadline, db.replica.status()
            time.sleep(0.05)
        before = routed.get(("replica", "current"), 0) + routed.get(("replica", "waited"), 0)
        with db.reads_after(db.write_position()):
            for _ in range(db.read_pool.max_size + 1):  # each pooled connection, none broken
                assert bag_json(db, "SB10003")["bag"]["child_count"] == 20
        after = routed.get(("replica", "current"), 0) + routed.get(("replica", "waited"), 0)
        assert after == before + db.read_pool.max_size + 1, (db.replica.status(), db.read_pool.get_stats())


def test_without_a_read_url_nothing_routes(pair: Pair):
    with Database(pair.service_url, min_size=1, max_size=2) as db:
        assert db.replica is None and db.read_pool is db.pool
        assert db.write_position() is None
        with db.reads_after(123):  # nothing to wait for: every read is the primary's
            assert bags.list_bags(db, limit=1).items is not None
