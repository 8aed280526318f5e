"""Several API nodes behind one nginx (issue 13, item 4): `tracetrack serve`
processes sharing the database, a Redis (a private redis-server: the shared
one's keys, the login counters among them, are not per test database) and
TRACETRACK_SECRET_KEY, behind deploy/nginx/tracetrack.conf with one upstream
server line per node.

- a token from a login on one node is good on every node, called directly;
  a logout on one ends it on all;
- the login limits are counted once for all nodes;
- a node killed (SIGKILL, its whole process group) during a load run through
  nginx costs no GET (nginx passes it to another node) and no doubled write
  (clients retry POSTs with their Idempotency-Key until acknowledged): the
  acknowledged links are exactly the database's, with one event each;
- an answer lost after the commit: nginx answers the POST 502 and does not run
  it again on another node (it does so for a GET); the client's retry with
  the same key gets the first answer back; a node that lost its database
  answers 503, and nginx passes the GETs it refused to another node.

Marked `nodes` (pyproject.toml): `pytest -m nodes` runs them as one step, about
100 s on the shared 2-core machine (most of it starting servers).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracetrack_api.login_guard import FREE_TRIES
from tracetrack_api.tokens import TokenSigner

from .proxy import Proxy
from .test_cache import own_redis  # noqa: F401 - a fixture
from .test_nginx import nginx_for
from .test_server import SECRET, login, running_server
from .test_server import http as direct  # one call straight to a node

pytestmark = [pytest.mark.server, pytest.mark.nodes]

PASSWORD = "tracetrack-demo"
RETRIED = (502, 503, 504)  # what a client retries (with the same Idempotency-Key), besides a lost connection


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@contextmanager
def api_nodes(db_url: str, n: int, redis_url: str, env_extra: dict | None = None) -> Iterator[list]:
    """`n` servers (running_server) on one database, sharing `redis_url` and the
    secret key; the first creates the demo data. Yields [(base URL, process), ...]."""
    env = {"REDIS_URL": redis_url, "TRACETRACK_REFRESH_INTERVAL": "0", **(env_extra or {})}
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_server(db_url, *(("--no-demo",) if i else ()), env_extra=env)) for i in range(n)
        ]


@contextmanager
def running_nodes(db_url: str, tmp_path: Path, redis_url: str, n: int = 3):
    """`api_nodes` behind one real nginx (the shipped site, one upstream server
    line per node, its access log on): yields (nginx's port, the nodes)."""
    with api_nodes(db_url, n, redis_url) as nodes, nginx_for([port_of(b) for b, _ in nodes], tmp_path, True) as port:
        yield port, nodes


def connect(port: int, source: str = "127.0.0.1") -> http.client.HTTPConnection:
    """A connection from `source` (any 127.0.0.0/8 address reaches lo): nginx's
    per-client zone (50 r/s) counts each client thread apart."""
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))


def call(conn, method: str, path: str, body: dict | None, token: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if key is not None:
        headers["Idempotency-Key"] = key
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


LOGIN_ADDRESS_RATE = FREE_TRIES + 1  # per address and minute: room for the lockout's tries below


def test_tokens_and_login_limits_hold_on_every_node(db_url, own_redis):  # noqa: F811
    """Three nodes, each called directly, not through nginx (one node set for both
    checks: starting three servers is most of the time here)."""
    env = {"TRACETRACK_LOGIN_ADDRESS_RATE": str(LOGIN_ADDRESS_RATE), "TRACETRACK_USER_REFRESH": "600"}
    with api_nodes(db_url, 3, own_redis.url, env) as nodes:
        bases = [base for base, _ in nodes]
        login_limits_are_counted_once(bases, db_url)
        a_token_is_good_on_every_node(bases)


def failed_login(base: str, address: str, username: str, password: str = "wrong-password-1") -> tuple[int, str]:
    """A login with a wrong password from `address` (X-Real-IP: the test's peer,
    127.0.0.1, is a trusted proxy, as nginx is): (status, error code)."""
    req = urllib.request.Request(
        base + "/api/auth/login",
        json.dumps({"username": username, "password": password}).encode(),
        {"Content-Type": "application/json", "X-Real-IP": address},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]["code"]


def login_limits_are_counted_once(bases: list[str], db_url: str) -> None:
    """Per address: with TRACETRACK_LOGIN_ADDRESS_RATE=6, failed logins from one
    address to one node are refused (429) from the 7th; spread over the three nodes,
    also from the 7th (counted per node it would be the 19th). Per username and
    address: the free tries (5) used up over the three nodes earn exactly one
    lockout in the security log (per node, none would)."""

    def first_refused(address: str, spread: list[str]) -> int:
        for n in range(1, 3 * LOGIN_ADDRESS_RATE + 2):
            status, code = failed_login(spread[(n - 1) % len(spread)], address, f"nobody-{n}")
            if status == 429:
                assert code == "rate_limited"
                return n
            assert (status, code) == (401, "invalid_credentials")
        return 0

    assert first_refused("198.51.100.1", bases[:1]) == LOGIN_ADDRESS_RATE + 1
    assert first_refused("198.51.100.2", bases) == LOGIN_ADDRESS_RATE + 1

    for n in range(FREE_TRIES + 1):  # the free tries, then one more: the lockout
        assert failed_login(bases[n % 3], "198.51.100.3", "biller") == (401, "invalid_credentials")
    with psycopg.connect(db_url) as conn:
        lockouts = conn.execute(
            "SELECT count(*) FROM security_log WHERE kind = 'lockout' AND username = 'biller'"
        ).fetchone()
    assert lockouts == (1,)


def a_token_is_good_on_every_node(bases: list[str]) -> None:
    """A token from a login on the first node works on all three. A token signed
    with another secret is refused by all; a logout on the third ends the token on
    all, by the database's NOTIFY (the user cache's own refresh is 10 minutes here)."""
    token = login(bases[0], "dispatcher", PASSWORD)
    for base in bases:
        status, bag, _ = direct("GET", base + "/api/bags/SB00001", None, token)
        assert status == 200 and bag["bag"]["qr_id"] == "SB00001", base
    claims = TokenSigner(SECRET, 3600).verify(token)
    assert claims is not None
    forged, _ = TokenSigner("another-secret-0123456789", 3600).issue(claims.user_id, claims.version)
    for base in bases:
        assert direct("GET", base + "/api/me", None, forged)[0] == 401, base
    status, _, _ = direct("POST", bases[2] + "/api/auth/logout", None, token)
    assert status == 200
    deadline = time.monotonic() + 30
    refused: set[str] = set()
    while refused != set(bases) and time.monotonic() < deadline:
        refused |= {base for base in bases if direct("GET", base + "/api/me", None, token)[0] == 401}
        time.sleep(0.1)
    assert refused == set(bases)


# the load run through nginx: threads paced under nginx's per-client zone, each from its own address
WRITERS, READERS = 4, 4
PACE = 0.05  # seconds between one thread's requests (20 a second)
RUN_SECONDS, KILL_AFTER = 10.0, 3.0
READ_QRS = tuple(f"SB{p:05d}" for p in range(1, 6)) + ("DEMO-01-00", "DEMO-04-11")


@dataclass
class Tally:
    """What one client thread saw."""

    answers: list = field(default_factory=list)  # reads: (time, status); writes: (parent, child, answer, replayed)
    retries: Counter = field(default_factory=Counter)  # writes retried, by cause (502, ConnectionResetError ...)
    failures: list = field(default_factory=list)  # reads that were not a 200


def paced(stop_at: float) -> Iterator[int]:
    start, n = time.monotonic(), 0
    while time.monotonic() < stop_at:
        yield n
        n += 1
        time.sleep(max(0.0, start + n * PACE - time.monotonic()))


def writer(port: int, token: str, i: int, stop_at: float) -> Tally:
    """Links children NODES-i-n into parents SB8i000, SB8i001 ... (opened as they
    fill), every POST with an Idempotency-Key of its own, retried with that key on a
    lost connection or a 502/503/504 until acknowledged."""
    tally, source = Tally(), f"127.0.0.{20 + i}"
    conn = connect(port, source)

    def post(path: str, body: dict) -> tuple[int, dict, dict]:
        nonlocal conn
        key, deadline = uuid.uuid4().hex, time.monotonic() + 60
        while True:
            try:
                status, headers, raw = call(conn, "POST", path, body, token, key)
                if status not in RETRIED:
                    return status, headers, json.loads(raw)
                tally.retries[status] += 1
            except (OSError, http.client.HTTPException) as exc:
                tally.retries[type(exc).__name__] += 1
                conn.close()
                conn = connect(port, source)
            assert time.monotonic() < deadline, f"{path} {body} never acknowledged: {tally.retries}"
            time.sleep(0.05)

    parent, children = "", 30
    for n in paced(stop_at):
        if children == 30:
            parent, children = f"SB8{i}{n:03d}", 0
            status, _, answer = post("/api/scans/parent", {"qr_id": parent})
            assert status == 201 and answer["created"], answer
        child = f"NODES-{i}-{n:05d}"
        status, headers, answer = post("/api/scans/child", {"parent_qr": parent, "child_qr": child})
        assert status == 200, answer
        tally.answers.append((parent, child, answer, headers.get("idempotent-replayed") == "true"))
        children += 1
    conn.close()
    return tally


def reader(port: int, token: str, i: int, stop_at: float) -> Tally:
    """GETs bags; anything but a 200 (a lost connection included) is a failure."""
    tally, source = Tally(), f"127.0.0.{40 + i}"
    conn = connect(port, source)
    for n in paced(stop_at):
        qr = READ_QRS[(n + i) % len(READ_QRS)]
        try:
            status, _, raw = call(conn, "GET", f"/api/bags/{qr}", None, token)
            tally.answers.append((time.time(), status))
            if status != 200:
                tally.failures.append((qr, status, raw[:200]))
        except (OSError, http.client.HTTPException) as exc:
            tally.failures.append((qr, type(exc).__name__, str(exc)))
            conn.close()
            conn = connect(port, source)
    conn.close()
    return tally


def access_log(path: Path) -> list[tuple[float, str, str, int, list[str], list[str]]]:
    """nginx_for's access log: (time, method, uri, status, nodes tried, their answers)."""
    rows = []
    for line in path.read_text().splitlines():
        msec, method, uri, status, addrs, statuses = line.split("|")
        rows.append((float(msec), method, uri, int(status), addrs.split(", "), statuses.split(", ")))
    return rows


def test_a_node_killed_under_load_costs_no_get_and_no_doubled_write(db_url, tmp_path, own_redis):  # noqa: F811
    """4 writers (POST /api/scans/child, keyed, retried until acknowledged) and 4
    readers (GET /api/bags/{qr}) through nginx for 10 s; after 3 s one node's whole
    process group is SIGKILLed. Every GET is answered 200; the links the writers had
    acknowledged are exactly the database's, each acknowledged once as `linked` and
    with one link event; and the killed node had answered GETs and POSTs before."""
    with running_nodes(db_url, tmp_path, own_redis.url) as (port, nodes):
        conn = connect(port, "127.0.0.10")
        status, _, raw = call(conn, "POST", "/api/auth/login", {"username": "dispatcher", "password": PASSWORD}, "")
        assert status == 200, raw
        token = json.loads(raw)["token"]
        base, victim = nodes[1]
        victim_addr = f"127.0.0.1:{port_of(base)}"
        start = time.monotonic()
        stop_at = start + RUN_SECONDS
        with ThreadPoolExecutor(WRITERS + READERS) as pool:
            writes = [pool.submit(writer, port, token, i, stop_at) for i in range(WRITERS)]
            reads = [pool.submit(reader, port, token, i, stop_at) for i in range(READERS)]
            time.sleep(KILL_AFTER)
            os.killpg(victim.pid, signal.SIGKILL)
            killed_at = time.time()
            victim.wait(10)
            wrote = [f.result() for f in writes]
            read = [f.result() for f in reads]
        served_before_kill = victim.log()
        time.sleep(1)  # nginx logs a request just after answering it: let the last lines land
        log = access_log(tmp_path / "access.log")

    assert [f for t in read for f in t.failures] == []
    answered = [a for t in wrote for a in t.answers]
    acknowledged = {(parent, child) for parent, child, _, _ in answered}
    assert len(acknowledged) == len(answered)  # each write acknowledged once (a retry is not a new write)
    assert {answer["result"] for _, _, answer, _ in answered} == {"linked"}  # a retry got the first answer
    with psycopg.connect(db_url) as db:
        links = set(
            db.execute(
                "SELECT p.qr_id, c.qr_id FROM bag c JOIN bag p ON p.id = c.parent_id WHERE c.qr_id LIKE 'NODES-%'"
            ).fetchall()
        )
        events = Counter(
            db.execute("SELECT parent_qr, qr_id FROM event WHERE kind = 'link' AND qr_id LIKE 'NODES-%'").fetchall()
        )
    assert links == acknowledged
    assert events == Counter(acknowledged)  # one event per link: none lost, none doubled
    # the killed node did serve, so the run could have failed
    before = [row for row in log if row[0] < killed_at and row[4] == [victim_addr] and row[3] in (200, 201)]
    assert {row[1] for row in before} == {"GET", "POST"}
    assert "GET /api/bags/{qr} 200" in served_before_kill and "POST /api/scans/child 200" in served_before_kill

    # information for bench/RESULTS.md, not asserted
    after = [row for row in log if row[0] >= killed_at and victim_addr in row[4]]
    gets = sum(len(t.answers) for t in read)
    retries = sum((t.retries for t in wrote), Counter())
    print(
        f"\nnodes drill: {gets} GETs (all 200), {len(answered)} links acknowledged, "
        f"{sum(1 for *_, replayed in answered if replayed)} of them replays of a retried key; "
        f"client write retries {dict(retries)}; "
        f"nginx passed {sum(1 for row in log if len(row[4]) > 1)} requests on to another node "
        f"({Counter(row[1] for row in log if len(row[4]) > 1)}); "
        f"answers per node: {dict(Counter(row[4][-1] for row in log))} (killed: {victim_addr}); "
        f"requests that tried the dead node and ended after the kill (ms after it, method, nodes' answers): "
        f"{[(round((row[0] - killed_at) * 1000), row[1], row[5]) for row in after]}"
    )


def test_nginx_retries_a_get_never_a_post_and_the_key_returns_a_lost_answer(db_url, tmp_path, own_redis):  # noqa: F811
    """Two nodes; the first behind a proxy that loses every answer (the node did
    the work, as when it dies between its commit and its answer), and reaching the
    database through another proxy. A GET that met the lost answer is answered 200
    by nginx from the other node. A POST that met it is answered 502: nginx did not
    run it again elsewhere (no `non_idempotent`). The client's retry with the same
    key gets the first answer (`linked`, Idempotent-Replayed) and the link has one
    event; without the key the retry is told `already_linked`, which is not what
    the first attempt did. Then the first node loses its database: its 503 reaches
    the client as the API wrote it (JSON, Retry-After), nginx does not take the
    node out for it (503 is not in proxy_next_upstream, so not a failure for
    max_fails), and once the database is back that node answers again at once."""
    params = conninfo_to_dict(db_url)
    database = Proxy(params.get("host") or "127.0.0.1", int(params.get("port") or 5432))
    database.up()
    via_proxy = make_conninfo(**{**params, "host": "127.0.0.1", "port": str(database.port), "connect_timeout": "2"})
    env = {"REDIS_URL": own_redis.url, "TRACETRACK_REFRESH_INTERVAL": "0", "TRACETRACK_POOL_TIMEOUT": "2"}
    with ExitStack() as stack:
        second, _ = stack.enter_context(running_server(db_url, env_extra=env))  # creates the demo data
        first, _ = stack.enter_context(running_server(via_proxy, "--no-demo", env_extra=env))
        answers = Proxy("127.0.0.1", port_of(first))
        answers.up()
        stack.callback(answers.down)
        stack.callback(database.down)
        port = stack.enter_context(nginx_for([answers.port, port_of(second)], tmp_path, True))
        token = login(second, "dispatcher", PASSWORD)
        conn = connect(port)
        assert call(conn, "POST", "/api/scans/parent", {"qr_id": "SB09001"}, token, "open-1")[0] == 201
        answers.drop_answers = True
        for _ in range(4):  # round robin: one of the first two meets the proxy
            status, _, raw = call(conn, "GET", "/api/bags/SB00001", None, token)
            assert status == 200, raw
            if answers.dropped:
                break
        assert answers.dropped == 1

        lost = None
        for n in range(4):
            key, body = f"link-{n}", {"parent_qr": "SB09001", "child_qr": f"LOST-{n}"}
            conn = connect(port)
            status, _, raw = call(conn, "POST", "/api/scans/child", body, token, key)
            if status == 502:
                lost = key, body
                break
            assert status == 200 and json.loads(raw)["result"] == "linked", raw
        assert lost is not None and answers.dropped == 2  # the POST met the proxy once, and only once
        answers.drop_answers = False
        conn = connect(port)
        status, headers, raw = call(conn, "POST", "/api/scans/child", lost[1], token, lost[0])
        assert status == 200 and json.loads(raw)["result"] == "linked", raw
        assert headers.get("idempotent-replayed") == "true"
        status, _, raw = call(conn, "POST", "/api/scans/child", lost[1], token)  # no key
        assert status == 200 and json.loads(raw)["result"] == "already_linked"
        with psycopg.connect(db_url) as db:
            events = db.execute(
                "SELECT count(*) FROM event WHERE kind = 'link' AND qr_id = %s", (lost[1]["child_qr"],)
            ).fetchone()
        assert events == (1,)

        database.down()
        statuses = []
        for _ in range(8):  # more than max_fails (3): were 503 a failure, the node would be taken out
            status, headers, raw = call(conn, "GET", "/api/bags/SB00002", None, token)
            statuses.append(status)
            if status == 503:
                assert headers.get("retry-after") and json.loads(raw)["error"]["code"] == "database_unavailable"
            else:
                assert status == 200, raw
        assert statuses.count(503) >= 3, statuses  # round robin: the first node's share
        database.up()
        deadline = time.monotonic() + 30
        while direct("GET", f"{first}/readyz")[0] != 200:  # its pool reconnects in the background
            assert time.monotonic() < deadline, "the first node did not recover"
            time.sleep(0.2)
        served = []
        for _ in range(6):
            status, _, raw = call(conn, "GET", "/api/bags/SB00003", None, token)
            served.append(status)
        assert set(served) == {200}, served
        time.sleep(1)  # nginx logs a request just after answering it: let the last lines land
        after = [row for row in access_log(tmp_path / "access.log") if row[2] == "/api/bags/SB00003"]
        assert any(f":{answers.port}" in row[4][0] for row in after), after  # the first node is still in the rotation
