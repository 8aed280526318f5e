"""A real hot standby (tests/pgcluster.py: pg_basebackup -R of a primary of
the test's own): where reads go, that a caller reads its own writes, and that
a standby lagging, paused or stopped mid-run fails no read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tracetrack_db import Database, bags, migrations, privileges, scans, users

from .conftest import SERVICE_ROLE, as_service, make_service_role, service_missing
from .pgcluster import Cluster, postgres_bindir
from .test_metrics import scrape, value
from .test_server import http, login, running_server

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
        assert position is not None
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
        idle = [db.read_pool.getconn() for _ in range(db.read_pool.get_stats()["pool_available"])]
        try:
            for conn in idle:  # each pooled connection at once (the pool hands out its newest first): none broken
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            for conn in idle:
                db.read_pool.putconn(conn)
        with db.reads_after(db.write_position()):
            for _ in range(db.read_pool.max_size + 1):
                assert bag_json(db, "SB10003")["bag"]["child_count"] == 20
        after = routed.get(("replica", "current"), 0) + routed.get(("replica", "waited"), 0)
        assert after == before + db.read_pool.max_size + 1, (db.replica.status(), db.read_pool.get_stats())


def end_read_sessions(pair: Pair) -> None:
    """What an administrator (or a standby shutting down) does to the read pool's sessions."""
    ended = pair.on_standby(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = 'tracetrack'"
    )
    assert ended[0][0] >= 1


def test_a_read_the_standby_fails_runs_again_on_the_primary(replica_pair: Pair):
    """A single query (the verbs) runs again on the primary by itself; a block
    of several on one connection raises ReplicaUnavailable, which the HTTP
    layer answers by running the handler again on the primary."""
    import falcon.testing

    from tracetrack_api.app import create_app
    from tracetrack_api.config import ApiSettings
    from tracetrack_db import Settings, bills, errors

    pair = replica_pair
    with pair.database() as db:
        scans.open_parent(db, "SB10004", dispatch_area="lucknow")
        bills.create_bill(db, "R-BILL-1", 5)
        users.create_user(db, "replica-biller", "replica-biller-pass-1", "biller")
        pair.standby.wait_replayed(pair.primary)
        assert db.replica is not None
        end_read_sessions(pair)
        assert bag_json(db, "SB10004")["bag"]["qr_id"] == "SB10004"
        assert db.replica.routed[("primary", "failed")] == 1 and not db.replica.up()
        deadline = time.monotonic() + 10
        while not db.replica.up():
            assert time.monotonic() < deadline, db.replica.status()
            time.sleep(0.05)
        end_read_sessions(pair)
        with pytest.raises(errors.ReplicaUnavailable):
            bills.get_bill_detail(db, "R-BILL-1")

        while not db.replica.up():
            assert time.monotonic() < deadline + 10, db.replica.status()
            time.sleep(0.05)
        client = falcon.testing.TestClient(create_app(db, ApiSettings(db=Settings(), secret_key="r" * 32)))
        token = client.simulate_post(
            "/api/auth/login", json={"username": "replica-biller", "password": "replica-biller-pass-1"}
        ).json["token"]
        end_read_sessions(pair)
        failed = db.replica.routed[("primary", "failed")]
        answer = client.simulate_get("/api/bills/R-BILL-1", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json["bill"]["bill_no"] == "R-BILL-1"
        assert db.replica.routed[("primary", "failed")] == failed + 1


def test_without_a_read_url_nothing_routes_and_nothing_is_remembered(pair: Pair):
    """The hot paths without a replica: no write position asked for or kept."""
    import falcon.testing

    from tracetrack_api.app import create_app
    from tracetrack_api.cache import LocalCache
    from tracetrack_api.config import ApiSettings
    from tracetrack_db import Settings

    with Database(pair.service_url, min_size=1, max_size=2) as db, pair.database() as replicated:
        assert db.replica is None and db.read_pool is db.pool
        assert db.write_position() is None
        with db.reads_after(123):  # nothing to wait for: every read is the primary's
            assert bags.list_bags(db, limit=1).items is not None
        user = users.create_user(db, "plain-scanner", "plain-scanner-pass-1", "dispatcher", "lucknow")
        scans.open_parent(db, "SB10005", dispatch_area="lucknow")
        for database, expected in ((db, False), (replicated, True)):
            cache = LocalCache()
            client = falcon.testing.TestClient(
                create_app(database, ApiSettings(db=Settings(), secret_key="p" * 32), cache=cache)
            )
            token = client.simulate_post(
                "/api/auth/login", json={"username": "plain-scanner", "password": "plain-scanner-pass-1"}
            ).json["token"]
            auth = {"Authorization": f"Bearer {token}"}
            child = f"PLAIN-{expected}"
            link = {"parent_qr": "SB10005", "child_qr": child}
            linked = client.simulate_post("/api/scans/child", json=link, headers=auth)
            assert linked.status_code == 200
            with psycopg.connect(pair.owner_url) as owner:  # without Redis, positions live in PostgreSQL
                kept = owner.execute("SELECT count(*) FROM throttle WHERE key = %s", (f"wrote:{user.id}",)).fetchone()
            assert (kept == (1,)) is expected
            assert client.simulate_get(f"/api/bags/{child}", headers=auth).json["parent"]["qr_id"] == "SB10005"


def routed(metrics: str, server: str) -> float:
    return value(scrape(metrics), rf'tracetrack_read_routing_total{{.*server="{server}"')


@pytest.mark.server
def test_the_server_reads_its_writes_through_a_standby_stopped_mid_run(replica_pair: Pair, redis_url: str):
    """`tracetrack serve` (two workers, Redis shared) with DATABASE_READ_URL at
    the standby: four scanners, each a user of its own, link a child and at
    once read the child (its parent), the parent (its count) and the child's
    history. Mid-run the standby is stopped as a crash, then started again.
    No request fails, every read sees the write before it, reads went to the
    standby before the stop and go to it again after the restart."""
    pair = replica_pair
    password = "replica-scanner-pass-1"
    with pair.database() as db:
        for t in range(4):
            users.create_user(db, f"scanner{t}", password, "dispatcher", "lucknow")
    env = {
        "DATABASE_READ_URL": pair.read_url,
        "REDIS_URL": redis_url,
        "TRACETRACK_REPLICA_RETRY": "1",
        "TRACETRACK_REFRESH_INTERVAL": "0",
    }
    with running_server(pair.owner_url, "--no-demo", "--workers", "2", env_extra=env) as (base, proc):
        stop = threading.Event()
        problems: list[str] = []
        done = [0] * 4
        tokens = [login(base, f"scanner{t}", password) for t in range(4)]  # one by one: logins are throttled

        def scanner(t: int) -> None:
            token, n = tokens[t], 0
            while not stop.is_set():
                parent, count = f"SB2{t}{n // 30:03d}", n % 30 + 1
                child = f"RS-{t}-{n}"
                if count == 1:
                    status, body, _ = http("POST", base + "/api/scans/parent", {"qr_id": parent}, token)
                    if status != 201:
                        problems.append(f"open {parent}: {status} {body}")
                link = {"parent_qr": parent, "child_qr": child}
                status, body, _ = http("POST", base + "/api/scans/child", link, token)
                if status != 200 or body["child_count"] != count:
                    problems.append(f"link {child}: {status} {body}")
                status, body, _ = http("GET", f"{base}/api/bags/{child}", None, token)
                if status != 200 or (body.get("parent") or {}).get("qr_id") != parent:
                    problems.append(f"read {child} after linking it: {status} {body}")
                status, body, _ = http("GET", f"{base}/api/bags/{parent}", None, token)
                if status != 200 or body["bag"]["child_count"] != count:
                    problems.append(f"read {parent} after linking {child}: {status} {body}")
                status, body, _ = http("GET", f"{base}/api/bags/{child}/history", None, token)
                if status != 200 or not any(e["parent_qr"] == parent for e in body["items"]):
                    problems.append(f"history of {child} after linking it: {status} {body}")
                n += 1
                done[t] = n

        threads = [threading.Thread(target=scanner, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(3)
            before_stop = routed(proc.metrics, "replica")
            on_standby = pair.on_standby(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tracetrack' AND query LIKE %s",
                ("%FROM bag%",),
            )[0][0]
            pair.standby.stop("immediate")
            time.sleep(3)
            primary_during = routed(proc.metrics, "primary")
            up_during = value(scrape(proc.metrics), r"tracetrack_replica_up ")
            at_restart = routed(proc.metrics, "replica")
            pair.standby.start()
            deadline = time.monotonic() + 30
            while routed(proc.metrics, "replica") < at_restart + 20:
                assert time.monotonic() < deadline, scrape(proc.metrics)
                time.sleep(0.2)
            while value(scrape(proc.metrics), r"tracetrack_replica_up ") != 1:  # the gauge: the listener's view
                assert time.monotonic() < deadline, scrape(proc.metrics)
                time.sleep(0.2)
            assert "tracetrack_replica_lag_seconds " in scrape(proc.metrics)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert problems == []
    assert min(done) > 5, done
    assert before_stop > 0 and on_standby > 0  # the standby answered reads: counted, and seen on it
    assert primary_during > 0 and up_during == 0  # and while it was down, the primary


def test_with_redis_unanswering_a_writers_reads_go_to_the_primary(replica_pair: Pair):
    """The write positions live in Redis; a process that cannot ask it cannot
    know whether the caller wrote on another process: the primary answers."""
    from tracetrack_api.cache import RedisCache
    from tracetrack_api.positions import WritePositions
    from tracetrack_db.replica import PRIMARY

    from .pgcluster import free_port

    with replica_pair.database() as db:
        positions = WritePositions(db, RedisCache(f"redis://127.0.0.1:{free_port()}/0"), 5.0)
        positions.wrote(1)  # kept in-process only: Redis refuses the connection
        assert positions.of(1) == PRIMARY["unknown"]
        assert db.replica is not None
        with db.reads_after(positions.of(1)):
            assert bags.list_bags(db, limit=1).items is not None
        assert db.replica.routed == {("primary", "unknown"): 1}


# The review of issue 13 (item 2): each of these failed before its fix ----------------------------
def _client(db: Database, cache):
    import falcon.testing

    from tracetrack_api.app import create_app
    from tracetrack_api.config import ApiSettings
    from tracetrack_db import Settings

    return falcon.testing.TestClient(create_app(db, ApiSettings(db=Settings(), secret_key="k" * 32), cache=cache))


def _token(client, username: str, password: str) -> dict:
    token = client.simulate_post("/api/auth/login", json={"username": username, "password": password}).json["token"]
    return {"Authorization": f"Bearer {token}"}


def test_two_workers_without_redis_read_their_own_write(replica_pair: Pair):
    """Without REDIS_URL each worker has its own LocalCache: the write
    positions live in PostgreSQL (the `throttle` table), so the worker that
    takes the GET knows what the worker that took the POST wrote."""
    from tracetrack_api.cache import LocalCache

    pair = replica_pair
    with pair.database() as db1, pair.database() as db2:
        users.create_user(db1, "rv-noredis", "rv-noredis-pass-1", "dispatcher", "lucknow")
        scans.open_parent(db1, "SB30001", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        worker1, worker2 = _client(db1, LocalCache()), _client(db2, LocalCache())
        auth = _token(worker1, "rv-noredis", "rv-noredis-pass-1")
        pair.on_standby("SELECT pg_wal_replay_pause()")
        try:
            linked = worker1.simulate_post(
                "/api/scans/child", json={"parent_qr": "SB30001", "child_qr": "RV-NR-1"}, headers=auth
            )
            assert linked.status_code == 200 and linked.json["child_count"] == 1
            seen = worker2.simulate_get("/api/bags/SB30001", headers=auth).json["bag"]["child_count"]
            assert seen == 1, "the caller's own link is missing on the other worker (read from the standby)"
            assert db2.replica is not None and db2.replica.routed[("primary", "own_write")] == 1
        finally:
            pair.on_standby("SELECT pg_wal_replay_resume()")


def test_a_redis_outage_during_the_write_sends_the_users_reads_to_the_primary(replica_pair: Pair, tmp_path):
    """Redis (a server of the test's own) stopped when the position is
    recorded, started again before the read: the process that took the write
    remembers the user as unrecorded, so their reads go to the primary."""
    from tracetrack_api.cache import RedisCache
    from tracetrack_api.positions import WritePositions
    from tracetrack_db.replica import PRIMARY

    from .test_cache import OwnRedis

    pair = replica_pair
    own = OwnRedis(tmp_path)
    own.start()
    try:
        with pair.database() as db:
            scans.open_parent(db, "SB30002", dispatch_area="lucknow")
            pair.standby.wait_replayed(pair.primary)
            positions = WritePositions(db, RedisCache(own.url), 5.0)
            pair.on_standby("SELECT pg_wal_replay_pause()")
            try:
                scans.link_child(db, "SB30002", "RV-BLIP-1")
                own.stop()
                positions.wrote(7)  # Redis down for this record only ...
                own.start()  # ... and back, without it
                assert positions.redis is not None and positions.redis.get_shared("wrote:7") is None
                assert positions.of(7) == PRIMARY["unknown"]
                with db.reads_after(positions.of(7)):
                    assert bag_json(db, "SB30002")["bag"]["child_count"] == 1, db.replica.routed
            finally:
                pair.on_standby("SELECT pg_wal_replay_resume()")
    finally:
        own.stop()


def test_a_position_recorded_late_does_not_replace_a_later_one(replica_pair: Pair, redis_url: str):
    """Two writes of one user: the first one's record reaching Redis after the
    second's (a slow request) keeps the later position (the maximum); without
    Redis, the position is taken and kept (greatest) in one statement."""
    import uuid

    from tracetrack_api.cache import LocalCache, RedisCache
    from tracetrack_api.positions import WritePositions

    pair = replica_pair
    with pair.database() as db:
        scans.open_parent(db, "SB30003", dispatch_area="lucknow")
        redis = WritePositions(db, RedisCache(redis_url, prefix=f"tt-test-{uuid.uuid4().hex[:8]}:"), 5.0)
        postgres = WritePositions(db, LocalCache(), 5.0)
        scans.link_child(db, "SB30003", "RV-LWW-1")
        earlier = db.write_position()
        assert earlier is not None
        pair.standby.wait_replayed(pair.primary)
        pair.on_standby("SELECT pg_wal_replay_pause()")
        try:
            scans.link_child(db, "SB30003", "RV-LWW-2")
            redis.wrote(9)
            postgres.wrote(9)
            later = redis.of(9)
            assert later > earlier and postgres.of(9) >= later
            redis.record("wrote:9", earlier)  # the first write's record, landing last
            assert redis.of(9) == later
            with db.reads_after(redis.of(9)):
                assert bag_json(db, "SB30003")["bag"]["child_count"] == 2, db.replica.routed
        finally:
            pair.on_standby("SELECT pg_wal_replay_resume()")


@pytest.fixture
def promoted(pair: Pair) -> Iterator[tuple[Pair, Cluster]]:
    with pair.primary.standby("promoted") as other:
        other.wait_replayed(pair.primary)
        yield pair, other


def test_a_promoted_standby_gets_no_reads(promoted):
    """A standby promoted behind the service's back stops replaying and is not
    in recovery: it is down (said once), and reads, the writer's own included,
    are the primary's."""
    pair, other = promoted
    read_url = as_service(other.url(DBNAME))
    with Database(pair.service_url, read_conninfo=read_url, min_size=1, max_size=2, timeout=5,
                  replica_wait=0.2, replica_max_lag=5.0, replica_retry=0.5) as db:  # fmt: skip
        assert db.replica is not None
        scans.open_parent(db, "SB30004", dispatch_area="lucknow")
        other.wait_replayed(pair.primary)
        with psycopg.connect(other.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_promote(true, 30)")
        deadline = time.monotonic() + 10
        while db.replica.up():
            assert time.monotonic() < deadline, db.replica.status()
            time.sleep(0.05)
        assert "not in recovery" in (db.replica.status()["error"] or "")
        scans.link_child(db, "SB30004", "RV-PROMO-1")
        with db.reads_after(db.write_position()):
            assert bag_json(db, "SB30004")["bag"]["child_count"] == 1, db.replica.status()
        assert bag_json(db, "SB30004")["bag"]["child_count"] == 1  # anyone's read: the primary's
        assert db.replica.routed.get(("replica", "current"), 0) == 0


def test_a_read_server_of_another_cluster_gets_no_reads(pair: Pair, db_url: str):
    """DATABASE_READ_URL at a server that is no standby of the primary (here the
    test's shared PostgreSQL): its system identifier differs, so it is down."""
    with Database(pair.service_url, read_conninfo=db_url, min_size=1, max_size=2, timeout=5) as db:
        assert db.replica is not None and not db.replica.up()
        assert "system identifier" in (db.replica.status()["error"] or "")
        assert bags.list_bags(db, limit=1).items is not None
        assert db.replica.routed == {("primary", "down"): 1}


def test_a_frozen_standby_is_seen_lagging_while_reads_wait(replica_pair: Pair):
    """While reads wait for the standby the poller still asks the primary every
    POLL: with replay frozen and someone always waiting, the lag grows past
    the bound, so other users' reads leave the frozen standby."""
    pair = replica_pair
    with pair.database(replica_max_lag=0.5, replica_wait=1.0) as db:
        assert db.replica is not None
        scans.open_parent(db, "SB30005", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        pair.on_standby("SELECT pg_wal_replay_pause()")
        stop = threading.Event()

        def waiter():  # a writer's read-after-write, over and over (many scanners)
            while not stop.is_set():
                with db.reads_after(1 << 62):
                    db.replica.choose()

        threads = [threading.Thread(target=waiter) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 10
            i = 0
            while db.replica.lag_seconds() <= 0.5:  # another user's writes, the lag seen growing
                assert time.monotonic() < deadline, db.replica.status()
                scans.link_child(db, "SB30005", f"RV-FROZEN-{i}")
                i += 1
                time.sleep(0.1)
            assert bag_json(db, "SB30005")["bag"]["child_count"] == i  # the primary's, not the frozen one's
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            pair.on_standby("SELECT pg_wal_replay_resume()")


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_a_committed_write_is_answered_when_its_position_cannot_be_read(replica_pair: Pair, store, redis_url):
    """The write commits, then the primary refuses what records its position
    (its function revoked: a real failure of that statement): the write is
    answered 200 all the same, and the user's next read is the primary's."""
    import uuid

    from tracetrack_api.cache import LocalCache, RedisCache
    from tracetrack_api.positions import UNKNOWN

    pair = replica_pair
    with pair.database() as db:
        name = f"rv-pos-{store}"
        users.create_user(db, name, "rv-pos-pass-123", "dispatcher", "lucknow")
        parent = "SB30006" if store == "postgres" else "SB30016"
        scans.open_parent(db, parent, dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        prefix = f"tt-test-{uuid.uuid4().hex[:8]}:"
        cache = LocalCache() if store == "postgres" else RedisCache(redis_url, prefix=prefix)
        client = _client(db, cache)
        auth = _token(client, name, "rv-pos-pass-123")
        pair.on_standby("SELECT pg_wal_replay_pause()")
        with psycopg.connect(pair.owner_url, autocommit=True) as owner:
            owner.execute("REVOKE EXECUTE ON FUNCTION pg_current_wal_insert_lsn() FROM PUBLIC")
            try:
                answer = client.simulate_post(
                    "/api/scans/child", json={"parent_qr": parent, "child_qr": f"RV-POS-{store}"}, headers=auth
                )
            finally:
                owner.execute("GRANT EXECUTE ON FUNCTION pg_current_wal_insert_lsn() TO PUBLIC")
            try:
                assert answer.status_code == 200, (answer.status_code, answer.text)
                seen = client.simulate_get(f"/api/bags/{parent}", headers=auth).json["bag"]["child_count"]
                assert seen == 1, db.replica.routed if db.replica else None
                assert db.replica is not None and db.replica.routed[("primary", "unknown")] == 1
                if isinstance(cache, RedisCache):  # the marker is in Redis: every process reads the primary
                    user_id = users.find_user(db, name).id
                    assert cache.get_shared(f"wrote:{user_id}") == b"%d" % UNKNOWN
            finally:
                pair.on_standby("SELECT pg_wal_replay_resume()")


def test_a_read_pool_that_does_not_fill_is_no_reason_not_to_start(replica_pair: Pair):
    """The standby answers the probe but the read pool cannot fill (a role
    allowed one connection: as a standby at max_connections): the worker
    starts, and reads go to the primary while the pool fills or not."""
    pair = replica_pair
    with psycopg.connect(pair.owner_url, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS tt_one_conn")
        owner.execute(f"CREATE ROLE tt_one_conn LOGIN CONNECTION LIMIT 1 IN ROLE {SERVICE_ROLE}")
    pair.standby.wait_replayed(pair.primary)
    read_url = privileges.with_user(pair.standby.url(DBNAME), "tt_one_conn", "")
    try:
        with Database(pair.service_url, read_conninfo=read_url, min_size=2, max_size=2, timeout=1) as db:
            assert not db.read_pool.closed
            assert bags.list_bags(db, limit=1).items is not None
    finally:
        with psycopg.connect(pair.owner_url, autocommit=True) as owner:
            owner.execute("DROP ROLE tt_one_conn")


def test_an_unreachable_replica_is_dialled_once_per_retry(db_url: str, monkeypatch):
    """A standby that is down (a port nobody listens on) is dialled by the
    poller once per TRACETRACK_REPLICA_RETRY, not every POLL. (The connect
    function is wrapped only to count the poller's attempts; they fail for real.)"""
    from tracetrack_db import replica as replica_module

    from .pgcluster import free_port

    calls = []
    real = replica_module.psycopg.connect

    def counting(dsn, *a, **k):
        if "tracetrack_service:pw@" in dsn:
            calls.append(time.monotonic())
        return real(dsn, *a, **k)

    monkeypatch.setattr(replica_module.psycopg, "connect", counting)
    dead = f"postgresql://tracetrack_service:pw@127.0.0.1:{free_port()}/x"
    with Database(db_url, read_conninfo=dead, min_size=1, max_size=2, timeout=1, replica_retry=5.0) as db:
        assert db.replica is not None and not db.replica.up()
        calls.clear()
        time.sleep(2.0)
    assert len(calls) <= 1, f"{len(calls)} connection attempts to the standby in 2 s"


def test_a_read_url_at_the_wrong_database_is_not_answered_500(replica_pair: Pair):
    """DATABASE_READ_URL naming the standby's `postgres` database: its schema
    has no migrations, so the poller finds it down, and reads go to the primary."""
    from tracetrack_api.cache import LocalCache

    pair = replica_pair
    wrong = as_service(pair.standby.url("postgres"))
    with Database(pair.service_url, read_conninfo=wrong, min_size=1, max_size=2, timeout=5) as db:
        assert db.replica is not None and "migration" in (db.replica.status()["error"] or "")
        users.create_user(db, "rv-wrongdb", "rv-wrongdb-pass-1", "dispatcher", "lucknow")
        scans.open_parent(db, "SB30010", dispatch_area="lucknow")
        client = _client(db, LocalCache())
        auth = _token(client, "rv-wrongdb", "rv-wrongdb-pass-1")
        answer = client.simulate_get("/api/bags/SB30010", headers=auth)
        assert answer.status_code == 200, answer.text


def test_a_table_the_standby_has_not_replayed_is_read_on_the_primary(replica_pair: Pair):
    """A migration the standby has not replayed yet (replay paused): the read
    fails there with UndefinedTable (class 42), runs again on the primary, and
    the breaker keeps the next reads off the standby."""
    pair = replica_pair
    with pair.database(replica_retry=5.0) as db, psycopg.connect(pair.owner_url, autocommit=True) as owner:
        assert db.replica is not None and db.replica.up()
        pair.on_standby("SELECT pg_wal_replay_pause()")
        try:
            owner.execute("CREATE TABLE rv_not_replayed (x int)")
            owner.execute(f"GRANT SELECT ON rv_not_replayed TO {SERVICE_ROLE}")
            assert db.run_sql("SELECT count(*) FROM rv_not_replayed") == [(0,)]
            assert db.replica.routed[("primary", "failed")] == 1
            assert not db.replica.up()
        finally:
            pair.on_standby("SELECT pg_wal_replay_resume()")
            owner.execute("DROP TABLE rv_not_replayed")


def test_a_busy_read_pool_does_not_open_the_breaker(replica_pair: Pair):
    """Every read connection busy (held, as a burst of long reads would), the
    standby fine: that read goes to the primary, the breaker stays closed."""
    pair = replica_pair
    with pair.database(replica_retry=5.0) as db:
        assert db.replica is not None
        scans.open_parent(db, "SB30011", dispatch_area="lucknow")
        pair.standby.wait_replayed(pair.primary)
        db.read_pool.timeout = 0.5
        held = [db.read_pool.getconn() for _ in range(db.read_pool.max_size)]
        try:
            assert bag_json(db, "SB30011")["bag"]["qr_id"] == "SB30011"
        finally:
            for conn in held:
                db.read_pool.putconn(conn)
        assert db.replica.up(), db.replica.status()
        assert db.replica.routed[("primary", "busy")] == 1


def test_a_write_that_fails_still_records_its_position(replica_pair: Pair):
    """The position is recorded in a `finally`: a write request that raises
    (a sync or an import may have committed some of its operations first)
    still sends its caller's next reads after it."""
    from tracetrack_api.cache import LocalCache

    pair = replica_pair
    with pair.database() as db:
        user = users.create_user(db, "rv-failed-write", "rv-failed-write-pass-1", "dispatcher", "lucknow")
        client = _client(db, LocalCache())
        auth = _token(client, "rv-failed-write", "rv-failed-write-pass-1")
        key = f"wrote:{user.id}"
        with psycopg.connect(pair.owner_url, autocommit=True) as owner:
            owner.execute("DELETE FROM throttle WHERE key = %s", (key,))
            answer = client.simulate_post(
                "/api/scans/child", json={"parent_qr": "SB39999", "child_qr": "RV-FAIL-1"}, headers=auth
            )
            assert answer.status_code == 404, answer.text
            kept = owner.execute("SELECT value FROM throttle WHERE key = %s", (key,)).fetchone()
        assert kept is not None and kept[0] > 0
