"""Durability drills (issue 13 item 5): the real server (`tracetrack serve`,
granian, two workers) over a PostgreSQL cluster of the test's own, under a
load of writers and readers, while that PostgreSQL restarts (fast, and as a
crash recovered from the WAL) and while one worker is killed with SIGKILL.

Writers link fresh children to parents they opened, each write with an
Idempotency-Key of its own, and retry it with the same key after a 503 (once
its Retry-After has passed), a connection error or a timeout, until it is
acknowledged. Afterwards the database holds exactly the acknowledged links,
each with one link event. Readers poll a bag without pausing: they time the
recovery. Every answer is recorded; how each test classifies them is said in
its docstring. `pytest -m drill -rP` prints the figures (docs: README,
"What a restart costs").
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import make_database, service_missing
from .factories import check_counters
from .pgcluster import Cluster, postgres_bindir
from .test_server import http, login, running_server

pytestmark = [pytest.mark.drill, pytest.mark.server]

WRITERS, READERS = 4, 2
CLIENT_TIMEOUT = 10.0  # a request's own; the pool answers 503 after TRACETRACK_POOL_TIMEOUT (2 s) before it
RECOVERY_DEADLINE = 60.0  # "it recovers at all"; how fast is reported, not asserted


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic()
    ended: float
    kind: str  # "write" or "read"
    status: int | None  # None: no HTTP answer (see failure)
    failure: str | None = None  # reset (the connection closed or reset), refused, timeout
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def label(self) -> str:
        if self.failure:
            return self.failure
        return f"{self.status}" + (" with Retry-After" if self.status == 503 and self.retry_after else "")


def classify(exc: BaseException) -> str:
    """What a client saw instead of an HTTP answer."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionError | HTTPException):  # RemoteDisconnected, reset, broken pipe
        return "reset"
    return f"error {type(exc).__name__}"


@dataclass
class Site:
    pg: Cluster
    owner_url: str
    base: str
    proc: Any  # the Popen of running_server, with .metrics
    token: str
    metrics_dir: Path

    def workers(self) -> set[int]:
        """The granian worker processes: the server process's children running Python
        (granian spawns them with multiprocessing)."""
        pid = self.proc.pid
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"resource_tracker" not in cmdline:
                found.add(int(entry.name))
        return found


@dataclass
class Load:
    """WRITERS writer threads and READERS reader threads against the site, until stop()."""

    site: Site
    prefix: str  # one digit: parents SB<prefix><writer><3 digits>, children D<prefix>-...
    answers: list[Answer] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # child -> parent, acknowledged
    acked_keys: set[str] = field(default_factory=set)
    replays: list[str] = field(default_factory=list)  # keys acknowledged by a replay (list.append: thread-safe)
    unexpected: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._writer, args=(n,)) for n in range(WRITERS)] + [
            threading.Thread(target=self._reader) for _ in range(READERS)
        ]
        self._give_up_at = float("inf")

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self, grace: float = 30.0) -> None:
        """No new writes; a write in flight is retried until acknowledged, for `grace` seconds at most."""
        self._give_up_at = time.monotonic() + grace
        self._stop.set()
        for t in self._threads:
            t.join(grace + CLIENT_TIMEOUT + 5)

    def call(self, kind: str, method: str, path: str, body: dict | None = None, key: str | None = None):
        started = time.monotonic()
        try:
            status, answer, headers = http(
                method,
                self.site.base + path,
                body,
                self.site.token,
                timeout=CLIENT_TIMEOUT,
                headers={"Idempotency-Key": key} if key else None,
            )
        except (OSError, HTTPException) as exc:
            self.answers.append(Answer(started, time.monotonic(), kind, None, classify(exc)))
            return None, None, None
        self.answers.append(Answer(started, time.monotonic(), kind, status, None, headers.get("Retry-After")))
        return status, answer, headers

    def write(self, path: str, body: dict) -> dict | None:
        """One write under its own key, retried with that key until acknowledged."""
        key = str(uuid.uuid4())
        while time.monotonic() < self._give_up_at:
            status, answer, headers = self.call("write", "POST", path, body, key)
            if status is not None and 200 <= status < 300:
                self.acked_keys.add(key)
                if headers.get("Idempotent-Replayed") == "true":
                    self.replays.append(key)
                return answer
            if status == 503:  # what a client is told to do: wait, then the same request again
                time.sleep(float(headers.get("Retry-After") or 1))
            elif status is None:  # no answer: it may or may not have happened; the key makes a retry safe
                time.sleep(0.2)
            else:
                self.unexpected.append(f"{path} {body}: {status} {answer}")
                return None
        self.unexpected.append(f"{path} {body}: not acknowledged when the drill ended")
        return None

    def _writer(self, n: int) -> None:
        for p in range(1000):
            parent = f"SB{self.prefix}{n}{p:03d}"
            if self._stop.is_set() or self.write("/api/scans/parent", {"qr_id": parent}) is None:
                return
            self.parents.append(parent)
            for c in range(30):
                child = f"D{self.prefix}-{n}-{p:03d}-{c:02d}"
                if self._stop.is_set():
                    return
                answer = self.write("/api/scans/child", {"parent_qr": parent, "child_qr": child})
                if answer is None:
                    return
                if answer["result"] == "linked":
                    self.acked[child] = parent
                else:
                    self.unexpected.append(f"{child}: {answer}")

    def _reader(self) -> None:
        while not self._stop.is_set():
            if self.parents:
                self.call("read", "GET", f"/api/bags/{self.parents[-1]}")
            time.sleep(0.02)

    # figures -------------------------------------------------------------------
    def first_ok_after(self, moment: float) -> float | None:
        ends = [a.ended for a in self.answers if a.ok and a.ended >= moment]
        return min(ends) if ends else None

    def figures(self, back: float) -> dict:
        """Counts by answer, the recovery time (from `back` to the first 2xx), and
        until when failures went on (the last one to end after `back`: a request
        waiting for a connection of a worker whose pool still reconnects counts)."""
        first_ok = self.first_ok_after(back)
        failed_after = [a.ended for a in self.answers if not a.ok and a.ended >= back]
        return {
            "requests": len(self.answers),
            "answers": dict(Counter(a.label for a in self.answers)),
            "writes acknowledged": len(self.acked_keys),
            "acknowledged as replays": len(self.replays),
            "first 2xx after s": None if first_ok is None else round(first_ok - back, 2),
            "last failure after s": round(max(failed_after) - back, 2) if failed_after else None,
        }


@pytest.fixture(scope="module")
def site():
    if postgres_bindir() is None:
        service_missing("no PostgreSQL binaries for a cluster of the drills' own (tests/pgcluster.py)")
    with tempfile.TemporaryDirectory(prefix="tracetrack-drill-") as data_dir, Cluster("drill") as pg:
        owner_url = make_database(pg.url(), "tracetrack")
        env = {"TRACETRACK_DATA_DIR": data_dir, "TRACETRACK_REFRESH_INTERVAL": "1"}
        # the last --workers wins: 2, so that a worker killed leaves one answering
        with running_server(owner_url, "--workers", "2", "--threads", "4", env_extra=env) as (base, proc):
            token = login(base, "dispatcher", "tracetrack-demo")
            port = base.rsplit(":", 1)[1]
            yield Site(pg, owner_url, base, proc, token, Path(data_dir) / "metrics" / port)


def check_writes(site: Site, load: Load) -> None:
    """Every acknowledged link is in the database, and nothing else of this load:
    no link lost, none doubled, each with exactly one link event and its key stored."""
    assert load.unexpected == []
    with psycopg.connect(site.owner_url, autocommit=True) as conn:
        linked: dict[str, str] = dict(
            conn.execute(
                "SELECT c.qr_id, p.qr_id FROM bag c JOIN bag p ON p.id = c.parent_id WHERE c.qr_id LIKE %s",
                (f"D{load.prefix}-%",),
            ).fetchall()
        )
        assert linked == load.acked
        bags = {qr for (qr,) in conn.execute("SELECT qr_id FROM bag WHERE qr_id LIKE %s", (f"D{load.prefix}-%",))}
        assert bags == set(load.acked)  # no child made by a write nobody acknowledged
        opened = {qr for (qr,) in conn.execute("SELECT qr_id FROM bag WHERE qr_id LIKE %s", (f"SB{load.prefix}%",))}
        assert opened == set(load.parents)
        events: dict[str, int] = dict(
            conn.execute(
                "SELECT qr_id, count(*) FROM event WHERE kind = 'link' AND qr_id LIKE %s GROUP BY qr_id",
                (f"D{load.prefix}-%",),
            ).fetchall()
        )
        assert events == dict.fromkeys(load.acked, 1)
        stored = conn.execute(
            "SELECT count(*) FROM idempotency_key WHERE key = ANY(%s) AND status IS NOT NULL", (list(load.acked_keys),)
        ).fetchone()[0]
        assert stored == len(load.acked_keys)
        check_counters(conn)


def wait_recovered(site: Site, load: Load, back: float) -> None:
    """Until a request answers 2xx after `back`, then a little more load; fails after RECOVERY_DEADLINE."""
    while load.first_ok_after(back) is None:
        assert time.monotonic() - back < RECOVERY_DEADLINE, "the service did not recover"
        time.sleep(0.05)
    time.sleep(2)


def report(name: str, figures: dict) -> None:
    print(f"\nDRILL {name}: " + ", ".join(f"{k}: {v}" for k, v in figures.items()))


@pytest.mark.parametrize(("prefix", "mode"), [("5", "fast"), ("6", "immediate")])
def test_postgresql_restart_mid_load(site, prefix, mode):
    """PostgreSQL stopped (`fast`: clients cut with AdminShutdown; `immediate`: a
    crash, recovered from the WAL at the start), three seconds down, started.
    Every answer is a 2xx or a 503 with Retry-After: never a 500 nor another
    5xx, and never a connection reset, refused or timed out (each counts as a
    failure: the server stays up, only its database went away). The service
    answers 2xx again without a restart (the same worker processes), and the
    refresher, the user-change listeners and the metrics listener recover too. The log has warnings, no
    traceback (before, the refresher logged one every second of the outage)."""
    workers = site.workers()
    assert len(workers) == 2
    log_before = len(site.proc.log())
    load = Load(site, prefix).start()
    try:
        time.sleep(2)
        down = time.monotonic()
        site.pg.stop(mode)
        time.sleep(3)
        site.pg.start()
        back = time.monotonic()
        wait_recovered(site, load, back)
    finally:
        load.stop()
    figures = load.figures(back)
    report(f"PostgreSQL {mode} restart (down {back - down:.1f} s)", figures)
    bad = Counter(a.label for a in load.answers if not a.ok and not (a.status == 503 and a.retry_after))
    assert bad == Counter()
    assert Counter(a.label for a in load.answers if a.started < back and a.ended > down)["503 with Retry-After"] > 0
    check_writes(site, load)
    assert site.proc.poll() is None and site.workers() == workers
    # warnings for the operator, no traceback: before, the refresher logged one per attempt
    assert "Traceback" not in site.proc.log()[log_before:]
    refreshed_since = time.time() - (time.monotonic() - back)
    deadline = time.monotonic() + 30
    with psycopg.connect(site.owner_url, autocommit=True) as conn:
        while (
            conn.execute("SELECT min(extract(epoch FROM refreshed_at)) FROM view_refresh").fetchone()[0]
            < refreshed_since
        ):
            assert time.monotonic() < deadline, "the refresher did not recover"
            time.sleep(0.2)
        listeners = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tracetrack-listener'"
        while conn.execute(listeners).fetchone()[0] != len(workers):  # each worker's LISTEN is back
            assert time.monotonic() < deadline, "the user-change listeners did not reconnect"
            time.sleep(0.2)
    status, _, _ = http("GET", site.proc.metrics + "/health", timeout=10)
    assert status == 200


def test_a_worker_killed_mid_load(site):
    """One of the two granian workers killed with SIGKILL. Requests in flight on
    it get no answer (counted as `reset`: the connection closed with no
    response; there is no proxy in front to turn it into a 502); the other
    worker answers meanwhile and granian starts a new one. Every HTTP answer is
    a 2xx (the database never went away), none timed out or was refused; every
    write is acknowledged, after retries with its key, exactly once."""
    workers = site.workers()
    assert len(workers) == 2
    victim = min(workers)
    load = Load(site, "7").start()
    try:
        time.sleep(2)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while len(site.workers() - workers) < 1:
            assert time.monotonic() - killed < RECOVERY_DEADLINE, "the killed worker was not respawned"
            time.sleep(0.05)
        respawned = time.monotonic()
        (new,) = site.workers() - workers
        # the new worker's first answer: its first metric written (PROMETHEUS_MULTIPROC_DIR)
        while not list(site.metrics_dir.glob(f"*_{new}.db")):
            assert time.monotonic() - killed < RECOVERY_DEADLINE, "the new worker answered nothing"
            time.sleep(0.05)
        serving = time.monotonic()
        time.sleep(2)
    finally:
        load.stop()
    figures = load.figures(killed)
    figures["respawned after s"] = round(respawned - killed, 2)
    figures["new worker answering after s"] = round(serving - killed, 2)
    report("worker SIGKILL", figures)
    assert site.workers() == (workers - {victim}) | {new}
    bad = Counter(a.label for a in load.answers if not a.ok and a.label != "reset")
    assert bad == Counter()  # no HTTP answer but 2xx, no timeout, nothing refused
    check_writes(site, load)


def test_postgresql_restarted_while_idle(site):
    """A restart nobody saw: every pool still holds connections to the server that
    went away. Before, each of them failed the first request that took it (503),
    and /health (public and on the metrics listener) and /readyz said the
    database was down when it was back. Now the first broken connection makes its
    pool check the others (tracetrack_db.Database.connection), and the health
    ping asks again once: every /health and /readyz answers 200, and at most one
    request per worker pays."""
    for _ in range(20):  # both workers' pools hold connections (min_size 2 each)
        assert http("GET", site.base + "/api/bags/SB00001", None, site.token)[0] == 200
    site.pg.restart("fast")
    healths = [http("GET", site.base + path)[0] for path in ("/readyz", "/health") * 3]
    healths.append(http("GET", site.proc.metrics + "/health")[0])
    reads = Counter(http("GET", site.base + "/api/bags/SB00001", None, site.token)[0] for _ in range(20))
    report("PostgreSQL restarted while idle", {"/health": dict(Counter(healths)), "reads": dict(reads)})
    assert healths == [200] * 7
    assert reads[200] >= 18 and set(reads) <= {200, 503}


def test_a_worker_killed_while_postgresql_is_down(site):
    """A worker dying while the database is down (a crash during a restart or a
    failover). Before, the new worker's start failed (its pool's first
    connection was refused), and granian, seeing a respawned worker die within
    5.5 s, took it for a crash loop and stopped the whole server: the service
    needed a restart from outside. Now a worker starts with its pool connecting
    in the background and answers 503 with Retry-After until the database is back."""
    workers = site.workers()
    site.pg.stop("fast")
    try:
        os.kill(min(workers), signal.SIGKILL)
        deadline = time.monotonic() + RECOVERY_DEADLINE
        while not site.workers() - workers:
            assert site.proc.poll() is None, site.proc.log()[-3000:]
            assert time.monotonic() < deadline, "the killed worker was not respawned"
            time.sleep(0.05)
        (new,) = site.workers() - workers
        while not list(site.metrics_dir.glob(f"*_{new}.db")):  # its first answer
            assert time.monotonic() < deadline, "the new worker answered nothing"
            try:
                status, body, headers = http("GET", site.base + "/api/bags/SB00001", None, site.token)
            except OSError:
                raise AssertionError("the server stopped: " + site.proc.log()[-1500:]) from None
            assert status == 503 and headers.get("Retry-After"), body
        time.sleep(6)  # past granian's 5.5 s crash-loop window
        assert site.proc.poll() is None and new in site.workers()
    finally:
        site.pg.start()
    back = time.monotonic()
    while http("GET", site.base + "/api/bags/SB00001", None, site.token, timeout=CLIENT_TIMEOUT)[0] != 200:
        assert time.monotonic() - back < RECOVERY_DEADLINE, "the service did not recover"
        time.sleep(0.1)
    assert site.workers() == (workers - {min(workers)}) | {new}
