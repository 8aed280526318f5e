"""Abuse test: a login flood and a lockout attempt against the real server
(`tracetrack serve --demo`, as `running_server` starts it: 1 worker, 4
threads) behind the real nginx (deploy/nginx/tracetrack.conf), bounded
(about 30 s, 50 s when a disturbed measurement is repeated) and local only.

Every client binds its socket to its own loopback address (Linux routes all of
127.0.0.0/8 to lo), so nginx's $remote_addr, and through X-Real-IP the API's
client address, tell the parties apart:

- 127.0.0.10-15, the scanners: GET /api/bags/SB00001 with a dispatcher's
  token over keep-alive connections, on a schedule of 25 r/s from each
  address (below nginx's per-client zone of 50 r/s, so nginx never throttles
  the stream itself: it must answer 200, always). Its p99 is measured idle
  (over two windows, one before and one after the flood, so that the idle
  value sees the same drifting background as the flood window between them)
  and during the flood; the flood may raise it to at most 5 times the idle
  p99 (taken as at least 2 ms, so that a sub-millisecond idle p99 would not
  make the bound a coin toss). Latency counts from when a request fell due,
  not from when a stalled client got round to sending it (see `stream`).
- 127.0.0.3, the attacker. First a lockout attempt: wrong passwords for
  `admin`, one after the other, until the API's throttle (5 free tries per
  username and address, then doubling waits) has the address waiting at
  least 8 s for `admin`. Then the admin logs in from its own address,
  127.0.0.2: 200, and the token works; the attacker, now with the right
  password, gets the API's 429: the throttle holds the guesser's address
  back, it does not lock the account. Then the flood: from a separate
  process (so that its loop does not compete for the test process's GIL with
  the stream it is measured against), 16 connections post logins with made-up
  usernames and passwords, one in four for `admin` again, 1000 r/s in all
  (500 times the login zone's 2 r/s). nginx's login zone must refuse all
  but its burst of 5 and 2 a second, before any argon2 check; since the
  attacker's address has been quiet for a while, the flood opens with that
  whole burst at once, as a fresh attacker's would. During the flood the
  admin logs in again from 127.0.0.2.

Why the flood is paced rather than unbounded: the load generator runs on the
same 2 cores as nginx, the API and PostgreSQL. Unbounded (about 10,000 r/s
from one Python process) it takes most of a core by itself, and on this
machine any process that does so, even a plain busy loop sending nothing,
raises the stream's p99 7 to 8 times: that measures the test machine, not
the service. (nginx itself used about 1 CPU-second in 8 s to refuse 10,000
r/s.) At 1000 r/s the flood still outnumbers what nginx lets through 500 to
one.

Which 429s are nginx's: nginx answers with the literal JSON body of the site
file's @rate_limited location (read from the file here), which the API never
sends (its rate_limited messages differ). The answers classified as the
API's are checked against the API's own count of login requests
(tracetrack_http_requests_total for POST /api/auth/login on the server's
metrics listener): every login request that was not answered by nginx
reached the API, and no other did.

A shared machine: the CPU time other people's processes take during each
window is measured (`CpuMeter`) and reported. When the bound fails while they
took more than a quarter of the CPUs, the measurement is repeated once (the
flood from a second attacker address, 127.0.0.5); when that one fails as
well, disturbed too, the test skips as inconclusive rather than pass or fail
on other people's load. The functional checks (nginx's refusals, the API's
count, the logins, no error, no 5xx, the server alive) hold in every case.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from psycopg.conninfo import conninfo_to_dict

from tracetrack_api import deferred

from .conftest import REQUIRE_SERVICES
from .test_nginx import CONF, nginx_and_server

pytestmark = pytest.mark.server

PASSWORD = "tracetrack-demo"
LOGIN = "/api/auth/login"
ATTACKERS = ("127.0.0.3", "127.0.0.5")  # the second only for a second measurement (see the test)
ADMIN_ADDRESS = "127.0.0.2"
SETUP_ADDRESS = "127.0.0.4"
STREAM_ADDRESSES = tuple(f"127.0.0.{10 + i}" for i in range(6))
STREAM_RATE = 25.0  # GETs a second from each stream address (nginx's per-client zone: 50 r/s)
IDLE_SECONDS = 5.0  # each of the stream's two idle windows, before and after the flood
FLOOD_SECONDS = 10.0  # the flood; the stream is measured during FLOOD_SECONDS - 2 of it
FLOOD_THREADS = 16  # connections, one post at a time each: nginx queues up to its burst (5) of them
FLOOD_RATE = 1000.0  # login posts a second, all threads together
ADMIN_EVERY = 4  # one flood post in this many is a wrong password for admin
LOCKOUT_SECONDS = 8  # the wait the lockout attempt must have earned before the admin logs in
LOGIN_ZONE = (5, 2.0)  # deploy/nginx/tracetrack.conf: zone tracetrack_login burst=5, rate=2r/s
P99_FLOOR = 0.002  # seconds
P99_FACTOR = 5.0
FOREIGN_LIMIT = 0.25  # other processes' share of the CPUs above which a measurement may be repeated

# the body of nginx's own 429 (location @rate_limited), read from the site file itself
NGINX_429 = re.search(r"return 429 '([^']*)'", CONF.read_text()).group(1).encode()


def connect(port: int, source: str, timeout: float = 30) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def once(port: int, source: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    conn = connect(port, source)
    try:
        return call(conn, method, path, body, token)
    finally:
        conn.close()


def by_nginx(status: int, body: bytes) -> bool:
    return status == 429 and body == NGINX_429


def api_requests(server) -> Counter:
    """The API's own count of the requests it answered, by (method, route, status),
    once it holds still: a worker records its requests in batches, up to
    deferred.INTERVAL after answering them (two reads that far apart agree)."""
    counts, deadline = _api_requests(server), time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(2 * deferred.INTERVAL)
        again = _api_requests(server)
        if again == counts:
            break
        counts = again
    return counts


def _api_requests(server) -> Counter:
    text = urllib.request.urlopen(server.metrics + "/metrics", timeout=10).read().decode()
    counts: Counter = Counter()
    for line in text.splitlines():
        sample = re.fullmatch(r"tracetrack_http_requests_total\{(.*)\} (\S+)", line)
        if sample:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', sample[1]))
            counts[labels["method"], labels["route"], labels["status"]] += int(float(sample[2]))
    return counts


class CpuMeter:
    """How busy other people's processes kept the machine: the CPU time the
    machine spent (/proc/stat, steal included) less the CPU time of this test's
    own processes (this process, the flood, the server's process group, this
    nginx, the PostgreSQL backends of this test's database), as a share of all
    the CPUs over a window. The 5x bound is about the service, not about
    whatever else shares the machine."""

    def __init__(self, server_pid: int, nginx_marker: str, dbname: str):
        self.server_pid, self.nginx_marker, self.dbname = server_pid, nginx_marker, dbname
        self.pids = {os.getpid()}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.cpus = os.cpu_count() or 1

    def _ours(self) -> dict[int, float]:
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            procs[int(entry)] = (int(fields[1]), int(fields[2]), cmd, (int(fields[11]) + int(fields[12])) / self.tick)
        masters = {pid for pid, (_, _, cmd, _) in procs.items() if "nginx" in cmd and self.nginx_marker in cmd}
        return {
            pid: cpu
            for pid, (ppid, pgrp, cmd, cpu) in procs.items()
            if pid in self.pids
            or pgrp == self.server_pid
            or pid in masters
            or ppid in masters
            or (cmd.startswith("postgres: ") and f" {self.dbname} " in cmd)
        }

    def _machine(self) -> float:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        return (user + nice + system + irq + softirq + steal) / self.tick

    def mark(self) -> tuple[float, float, dict[int, float]]:
        return time.monotonic(), self._machine(), self._ours()

    def foreign_since(self, mark: tuple[float, float, dict[int, float]]) -> float:
        then, machine, ours = mark
        now, machine_now, ours_now = self.mark()
        mine = sum(cpu - ours.get(pid, 0.0) for pid, cpu in ours_now.items())
        return max(0.0, (machine_now - machine - mine) / ((now - then) * self.cpus))


def p99(samples: list[tuple[float, float]]) -> float:
    """The p99 latency of (latency, due at) samples."""
    ordered = sorted(latency for latency, _ in samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def stream(port: int, token: str, seconds: float) -> tuple[list[tuple[float, float]], Counter]:
    """GET /api/bags/SB00001 from every STREAM_ADDRESS at STREAM_RATE for
    `seconds`, on a schedule (the addresses take turns): the samples
    (latency, due at), one for every slot of the schedule, and the statuses.

    A request still unanswered when the next ones fall due does not make them
    up in a burst afterwards (which nginx's per-client zone could refuse), but
    they count: each as if sent when due and answered no sooner than the late
    one (the usual correction for coordinated omission; scanners are many
    independent clients that do not wait for each other, and without it a
    stall of half a second would be one slow sample per address)."""
    interval = 1.0 / STREAM_RATE

    def one_address(i: int, source: str) -> tuple[list[tuple[float, float]], Counter]:
        conn = connect(port, source)
        latencies: list[tuple[float, float]] = []
        statuses: Counter[int] = Counter()
        try:
            start = time.monotonic()
            due = start + i * interval / len(STREAM_ADDRESSES)  # staggered, not all at once
            end = start + seconds
            while due < end:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sent = time.monotonic()
                status, _, body = call(conn, "GET", "/api/bags/SB00001", token=token)
                done = time.monotonic()
                latencies.append((done - sent, sent))
                statuses[status if status == 200 else f"{status} {body[:100]!r}"] += 1
                due += interval
                while due < done and due < end:  # the slots that fell due meanwhile
                    latencies.append((done - due, due))
                    due += interval
        finally:
            conn.close()
        return latencies, statuses

    with ThreadPoolExecutor(len(STREAM_ADDRESSES)) as pool:
        results = list(pool.map(one_address, range(len(STREAM_ADDRESSES)), STREAM_ADDRESSES))
    return [x for latencies, _ in results for x in latencies], sum((s for _, s in results), Counter())


# The attacker's flood, run as its own process: argv[1] is a JSON of its
# settings. It prints "ready" once its threads run and, at the end, one JSON
# line: its answers, counted by kind ("names"/"admin", then "nginx 429",
# "api <status> <code>" or "error <exception>").
FLOOD = r"""
import http.client, json, secrets, sys, threading, time
from collections import Counter

cfg = json.loads(sys.argv[1])
nginx_429 = cfg["nginx_429"].encode()
interval = cfg["threads"] / cfg["rate"]
started = threading.Barrier(cfg["threads"] + 1)
lock = threading.Lock()
total = Counter()

def connect():
    return http.client.HTTPConnection("127.0.0.1", cfg["port"], timeout=30, source_address=(cfg["source"], 0))

def flood():
    mine = Counter()
    conn = connect()
    started.wait()
    due = time.monotonic()
    stop = due + cfg["seconds"]
    n = 0
    while due < stop:
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        due = max(due + interval, time.monotonic() - 0.05)
        n += 1
        who = "admin" if n % cfg["admin_every"] == 0 else "names"
        name = "admin" if who == "admin" else "u" + secrets.token_hex(6)
        body = json.dumps({"username": name, "password": secrets.token_urlsafe(12)})
        try:
            conn.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            mine[f"{who} error {type(exc).__name__}"] += 1
            conn.close()
            conn = connect()
            continue
        if resp.status == 429 and data == nginx_429:
            mine[f"{who} nginx 429"] += 1
            continue
        try:
            code = json.loads(data)["error"]["code"]
        except Exception:
            code = repr(data[:80])
        mine[f"{who} api {resp.status} {code}"] += 1
    conn.close()
    with lock:
        total.update(mine)

threads = [threading.Thread(target=flood) for _ in range(cfg["threads"])]
for t in threads:
    t.start()
started.wait()
print("ready", flush=True)
for t in threads:
    t.join()
print(json.dumps(total), flush=True)
"""


def lock_out_admin(port: int, source: str, wait_seconds: float, deadline_seconds: float = 30) -> tuple[Counter, float]:
    """Wrong passwords for admin from `source`, one after the other, until the API
    has let one through to the password check (401) that was the n-th it
    counted, with 2^(n-6) >= `wait_seconds`: that attempt began a wait of that
    long, during which every attempt for admin from `source` is refused
    whatever its password. The answers, and the earliest end of that wait."""
    answers: Counter = Counter()
    counted = 0  # attempts that reached the API: its count for (admin, source)
    conn = connect(port, source)
    end = time.monotonic() + deadline_seconds
    try:
        while time.monotonic() < end:
            sent = time.monotonic()
            status, _, body = call(conn, "POST", LOGIN, {"username": "admin", "password": "not-the-password-1"})
            if by_nginx(status, body):
                answers["nginx 429"] += 1
                time.sleep(0.1)
                continue
            counted += 1
            answers[f"api {status}"] += 1
            assert status in (401, 429), (status, body)
            if status == 401 and 2 ** (counted - 6) >= wait_seconds:
                return answers, sent + min(2 ** (counted - 6), 300)
    finally:
        conn.close()
    raise AssertionError(
        f"admin from {source} not kept waiting {wait_seconds} s within {deadline_seconds} s: {answers}"
    )


def admin_logs_in(port: int) -> tuple[int, bytes, tuple | None]:
    """The admin, from its own address: the login's status and body, and GET /api/me with its token."""
    status, _, body = once(port, ADMIN_ADDRESS, "POST", LOGIN, {"username": "admin", "password": PASSWORD})
    me = once(port, ADMIN_ADDRESS, "GET", "/api/me", token=json.loads(body)["token"]) if status == 200 else None
    return status, body, me


@dataclass(repr=False)
class Round:
    """One measurement: the stream idle, then with the flood from `attacker`
    (and the admin logging in from its own address meanwhile), then idle again."""

    attacker: str
    idle_before: list = field(default_factory=list)  # (latency, due at) of the stream's GETs
    idle_after: list = field(default_factory=list)
    busy: list = field(default_factory=list)
    flood_began: float = 0.0
    statuses: Counter = field(default_factory=Counter)  # the stream's, in all three windows
    answers: Counter = field(default_factory=Counter)  # the flood's
    api: Counter = field(default_factory=Counter)  # the API's own count during the flood
    admin: tuple = ()
    foreign: dict = field(default_factory=dict)  # window: share of the CPUs others used

    @property
    def p99_idle(self) -> float:
        return p99(self.idle_before + self.idle_after)

    @property
    def ratio(self) -> float:
        return p99(self.busy) / max(self.p99_idle, P99_FLOOR)

    @property
    def disturbed(self) -> bool:
        """Whether other processes kept the machine busy in some window of this round."""
        return max(self.foreign.values()) > FOREIGN_LIMIT

    @property
    def holds(self) -> bool:
        """Whether this round shows the bound: a flood at half its rate at least, and the p99 within it."""
        return self.sent >= 0.5 * FLOOD_RATE * FLOOD_SECONDS and self.ratio <= P99_FACTOR

    @property
    def sent(self) -> int:
        return sum(self.answers.values())

    @property
    def from_nginx(self) -> int:
        return sum(n for kind, n in self.answers.items() if kind.endswith(" nginx 429"))

    def __repr__(self) -> str:
        return f"Round(attacker={self.attacker!r})"

    def __str__(self) -> str:
        logins = {s: n for (m, r, s), n in self.api.items() if (m, r) == ("POST", LOGIN)}
        return (
            f"flood from {self.attacker}: GET p99 idle {self.p99_idle * 1000:.2f} ms "
            f"({len(self.idle_before) + len(self.idle_after)} GETs; before "
            f"{p99(self.idle_before) * 1000:.2f}, after {p99(self.idle_after) * 1000:.2f}), under the flood "
            f"{p99(self.busy) * 1000:.2f} ms ({len(self.busy)} GETs): {self.ratio:.2f}x (floor "
            f"{P99_FLOOR * 1000:.0f} ms); the slowest under the flood (ms at s into it): "
            f"{', '.join(f'{lat * 1000:.0f} at {at - self.flood_began:.2f}' for lat, at in sorted(self.busy)[-6:])}; "
            f"p99 after its first second {p99([x for x in self.busy if x[1] > self.flood_began + 1]) * 1000:.2f} ms; "
            f"other processes' share of the CPUs "
            f"{ {k: f'{v:.0%}' for k, v in self.foreign.items()} }; flood {self.sent} posts, "
            f"{self.from_nginx} refused by nginx, {self.sent - self.from_nginx} answered by the API: "
            f"{dict(self.answers)}; the API's login count {logins}"
        )


def flood_round(port: int, token: str, server, cpu: CpuMeter, attacker: str) -> Round:
    r = Round(attacker)
    mark = cpu.mark()
    r.idle_before, statuses = stream(port, token, IDLE_SECONDS)
    r.statuses += statuses
    r.foreign["idle before"] = cpu.foreign_since(mark)
    before = api_requests(server)
    flood = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FLOOD,
            json.dumps(
                {
                    "port": port,
                    "source": attacker,
                    "seconds": FLOOD_SECONDS,
                    "threads": FLOOD_THREADS,
                    "rate": FLOOD_RATE,
                    "admin_every": ADMIN_EVERY,
                    "nginx_429": NGINX_429.decode(),
                }
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cpu.pids.add(flood.pid)
    try:
        assert flood.stdout.readline().strip() == "ready", flood.stderr.read()
        mark = cpu.mark()
        r.flood_began = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            measuring = pool.submit(stream, port, token, FLOOD_SECONDS - 2)
            time.sleep(3)
            r.admin = admin_logs_in(port)
            r.busy, statuses = measuring.result()
        r.statuses += statuses
        r.foreign["flood"] = cpu.foreign_since(mark)
        out, err = flood.communicate(timeout=FLOOD_SECONDS + 30)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    assert flood.returncode == 0, err
    r.answers = Counter(json.loads(out.strip().splitlines()[-1]))
    r.api = api_requests(server) - before
    mark = cpu.mark()
    r.idle_after, statuses = stream(port, token, IDLE_SECONDS)
    r.statuses += statuses
    r.foreign["idle after"] = cpu.foreign_since(mark)
    return r


def test_login_flood_is_cut_by_nginx_and_admin_logs_in_from_elsewhere(db_url, tmp_path):
    with nginx_and_server(db_url, tmp_path) as (port, server):
        cpu = CpuMeter(server.pid, str(tmp_path), conninfo_to_dict(db_url)["dbname"])
        status, _, body = once(port, SETUP_ADDRESS, "POST", LOGIN, {"username": "dispatcher", "password": PASSWORD})
        assert status == 200, body
        token = json.loads(body)["token"]
        stream(port, token, 1.0)  # warm up: connections, pools, caches

        # 1. the lockout attempt; the admin logs in from elsewhere; the attacker, with the right password, waits
        before = api_requests(server)
        lockout, wait_ends = lock_out_admin(port, ATTACKERS[0], LOCKOUT_SECONDS)
        admin_status, admin_body, me = admin_logs_in(port)
        assert admin_status == 200, (admin_status, admin_body)
        assert me is not None and me[0] == 200 and json.loads(me[2])["username"] == "admin", me
        for _ in range(20):  # through nginx's login zone first: the guesser has used up its burst
            right_status, right_headers, right_body = once(
                port, ATTACKERS[0], "POST", LOGIN, {"username": "admin", "password": PASSWORD}
            )
            if not by_nginx(right_status, right_body):
                break
            time.sleep(0.25)
        assert time.monotonic() < wait_ends, "too slow to show the wait: raise LOCKOUT_SECONDS"
        assert right_status == 429 and not by_nginx(right_status, right_body), (right_status, right_body)
        assert "too many failed logins for this user" in json.loads(right_body)["error"]["message"], right_body
        assert int(right_headers["retry-after"]) > 1
        # every answer that was not nginx's came from the API: its own count agrees
        logins = sum(n for (m, r, _), n in (api_requests(server) - before).items() if (m, r) == ("POST", LOGIN))
        assert logins == sum(lockout.values()) - lockout["nginx 429"] + 1 + 1, (lockout, logins)

        # 2. the stream idle, under the flood (the attacker again), idle; once more, from the attacker's
        # second address, only if the bound failed while other processes kept the machine busy
        rounds = [flood_round(port, token, server, cpu, ATTACKERS[0])]
        if not rounds[0].holds and rounds[0].disturbed:
            rounds.append(flood_round(port, token, server, cpu, ATTACKERS[1]))
        report = "\n".join(str(r) for r in rounds) + f"\nlockout attempt {dict(lockout)}"
        print(report)

        burst, rate = LOGIN_ZONE
        for r in rounds:
            # the flood: answered, almost all by nginx, the rest by the API's own rules
            assert not [kind for kind in r.answers if " error " in kind], report
            assert {kind.split(" ", 1)[1] for kind in r.answers} <= {
                "nginx 429",
                "api 401 invalid_credentials",
                "api 429 rate_limited",
            }, report
            # at the zone's rate over the flood, plus its burst, which nginx queues (no nodelay) and
            # passes on at that rate once the flood stops: up to burst / rate seconds more
            assert r.sent - r.from_nginx <= burst + rate * (FLOOD_SECONDS + 1 + burst / rate), report
            # ... and every answer that was not nginx's came from the API (and the admin's login)
            logins = sum(n for (m, route, _), n in r.api.items() if (m, route) == ("POST", LOGIN))
            assert logins == r.sent - r.from_nginx + 1, report
            assert not [key for key in r.api if key[2].startswith("5")], (r.api, report)
            # the admin, from its own address, logged in during the flood
            admin_status, admin_body, me = r.admin
            assert admin_status == 200 and me is not None and me[0] == 200, (r.admin, report)
            # the stream: never throttled by nginx, never failed
            assert set(r.statuses) == {200}, (r.statuses, report)

        assert server.poll() is None, server.log()[-3000:]
        assert once(port, SETUP_ADDRESS, "GET", "/health")[0] == 200
        assert "Traceback" not in server.log(), server.log()[-3000:]

        last = rounds[-1]
        if not last.holds and last.disturbed:  # no verdict on a machine busy with other people's work,
            message = f"inconclusive: other processes kept the CPUs busy over {FOREIGN_LIMIT:.0%}:\n{report}"
            if REQUIRE_SERVICES:  # except in CI, which must not pass on a skip
                pytest.fail(message)
            pytest.skip(message)
        assert last.sent >= 0.5 * FLOOD_RATE * FLOOD_SECONDS, f"the flood did not get going:\n{report}"
        assert last.ratio <= P99_FACTOR, (
            f"the p99 of GET /api/bags/{{qr}} rose {last.ratio:.2f}x under the login flood (at most "
            f"{P99_FACTOR}x):\n{report}"
        )
