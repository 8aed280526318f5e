"""`tracetrack loadtest`: locust, headless, against a running server, with a
report and a PASS/FAIL verdict.

Only HTTP is needed: an admin account creates the load-test accounts through
the API, every account logs in once, and the locust users share the tokens.
Beside the client's latencies the report gives the server's own, from its
request-duration histogram read before and after the run (its metrics
listener), and the CPU the load generator used: a generator near a whole core
queues its own requests, and its latencies then say more about it than about
the server.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tracetrack_api import deferred

AREAS = ("lucknow", "indore", "jaipur", "hisar", "sri_ganganagar", "sangaria", "bathinda", "raipur", "ranchi", "akola")


def locustfile() -> Path:
    packaged = Path(__file__).resolve().parent / "locustfile.py"
    if packaged.exists():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "bench" / "locustfile.py"
    if checkout.exists():
        return checkout
    raise FileNotFoundError("bench/locustfile.py is missing from this installation")


def call(host: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    req = urllib.request.Request(
        host.rstrip("/") + path, method=method, data=json.dumps(body).encode() if body is not None else None
    )
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login(host: str, username: str, password: str, patience: float = 300) -> tuple[int, dict]:
    """POST /api/auth/login, waiting out the server's per-address login limit
    (429 Retry-After) for up to `patience` seconds: a large run logs in more
    accounts from this one address than the limit lets through in a minute."""
    deadline = time.monotonic() + patience
    while True:
        status, body = call(host, "POST", "/api/auth/login", {"username": username, "password": password})
        if status != 429 or time.monotonic() > deadline:
            return status, body
        time.sleep(2)


def prepare_accounts(host: str, admin: str, password: str, users: int) -> dict[str, list[dict]]:
    """Create (or reset) the load-test accounts and log each in once."""
    status, body = login(host, admin, password)
    if status != 200:
        raise SystemExit(f"cannot log in as {admin!r} on {host}: {body}")
    admin_token = body["token"]
    secret = "lt-" + hashlib.sha256(password.encode()).hexdigest()[:20]
    per_role = max(1, math.ceil(users / 25))
    # an account for each simulated admin (a tenth of the users): one export at a time per
    # user, and admins sharing an account are refused their parallel exports (429), which no
    # real admin meets; with the --admin-user account, one more than there are admins
    wanted = (
        [(f"lt-dispatcher-{a}-{i}", "dispatcher", a) for i in range(per_role) for a in AREAS[:4]]
        + [(f"lt-biller-{i}", "biller", None) for i in range(per_role)]
        + [(f"lt-admin-{i}", "admin", None) for i in range(math.ceil(users / 10))]
    )
    existing: dict[str, int] = {}
    cursor = None
    while True:
        query = "/api/users?limit=200" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, page = call(host, "GET", query, token=admin_token)
        if status != 200:
            raise SystemExit(f"cannot list users as {admin!r}: {page}")
        existing.update({u["username"]: u["id"] for u in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            break
    tokens: dict[str, list[dict]] = {
        "admin": [{"username": admin, "token": admin_token}],
        "dispatcher": [],
        "biller": [],
    }
    for username, role, area in wanted:
        if username in existing:
            call(
                host,
                "PATCH",
                f"/api/users/{existing[username]}",
                {"is_active": True, "role": role, "dispatch_area": area},
                admin_token,
            )
        else:
            status, body = call(
                host,
                "POST",
                "/api/users",
                {"username": username, "password": secret, "role": role, "dispatch_area": area},
                admin_token,
            )
            if status != 201:
                raise SystemExit(f"cannot create {username}: {body}")
        status, body = login(host, username, secret)
        if status != 200 and username in existing:  # made by a run with another admin password
            status, body = _reset(host, existing[username], username, secret, admin_token)
        if status != 200:
            raise SystemExit(f"cannot log in as {username}: {body}")
        tokens[role].append({"username": username, "token": body["token"]})
    return tokens


def _reset(host: str, user_id: int, username: str, secret: str, admin_token: str) -> tuple[int, dict]:
    """Give an account the run's password: an admin's reset makes its user choose a new
    one (must_change_password), so the account itself then changes it to `secret`."""
    interim = "lt-interim-" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    call(host, "PATCH", f"/api/users/{user_id}", {"password": interim}, admin_token)
    status, body = login(host, username, interim)
    if status != 200:
        return status, body
    change = {"current_password": interim, "new_password": secret}
    status, body = call(host, "POST", "/api/me/password", change, body["token"])
    if status != 200:
        return status, body
    return login(host, username, secret)


def server_memory(host: str) -> int | None:
    """RSS in bytes of the processes listening on the host's port (local hosts only)."""
    import psutil

    parsed = urllib.parse.urlparse(host)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = parsed.port or 80
    try:
        pids = {
            c.pid
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
        }
    except psutil.AccessDenied:
        return None
    procs = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs |= {proc, *proc.children(recursive=True)}
        except psutil.NoSuchProcess:
            continue
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total or None


HISTOGRAM = "tracetrack_http_request_duration_seconds_bucket"
_BUCKET = re.compile(rf"^{HISTOGRAM}\{{(?P<labels>.*)\}} (?P<value>\S+)$")  # a route may hold braces
_LE = re.compile(r'(?:^|,)le="(?P<le>[^"]+)"')  # the label le, not one whose name ends in le


def server_histogram(metrics: str | None) -> dict[float, float] | None:
    """The server's request-duration histogram, summed over routes: cumulative
    count per bucket bound in seconds (None: no metrics listener there)."""
    if not metrics:
        return None
    try:
        with urllib.request.urlopen(f"{metrics.rstrip('/')}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if m is None or 'route="/metrics"' in m["labels"]:
            continue
        le = _LE.search(m["labels"])
        if le is None:
            continue
        bound = math.inf if le["le"] == "+Inf" else float(le["le"])
        buckets[bound] = buckets.get(bound, 0.0) + float(m["value"])
    return buckets or None


def histogram_quantiles(
    before: dict[float, float] | None, after: dict[float, float] | None, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> dict[str, float] | None:
    """Requests and quantiles (ms) of the requests between two readings, linear within a
    bucket as Prometheus' histogram_quantile reads them (a quantile in the last, open
    bucket is given as its lower bound)."""
    if not after:
        return None
    bounds = sorted(after)
    counts = [after[b] - (before or {}).get(b, 0.0) for b in bounds]
    if any(c < 0 for c in counts):  # the server restarted between the readings: its counts began again
        return {"reset": True}
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    out: dict[str, float] = {"requests": total}
    for q in qs:
        rank, lower, below = q * total, 0.0, 0.0
        for bound, cumulative in zip(bounds, counts, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    value = lower
                else:
                    inside = cumulative - below
                    value = lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
                out[f"p{round(q * 100)}_ms"] = value * 1000
                break
            lower, below = bound, cumulative
    return out


@dataclass
class Report:
    host: str
    users: int
    duration: str
    rows: list[dict] = field(default_factory=list)
    total: dict = field(default_factory=dict)
    memory_before: int | None = None
    memory_after: int | None = None
    p95_target_ms: float = 300
    success_target: float = 0.99
    profile: str = "stress"
    steady: bool = False  # figures from the moment every user had started, the ramp left out
    server: dict | None = None  # requests and p50/p95/p99 (ms) from the server's own histogram
    generator_cpu: float | None = None  # the load generator's CPU time / wall time (1.0: one whole core)

    @property
    def success_rate(self) -> float:
        n = self.total.get("requests", 0)
        return 1.0 if n == 0 else 1 - self.total.get("failures", 0) / n

    @property
    def passed(self) -> bool:
        return (
            self.total.get("requests", 0) > 0
            and self.total.get("p95_ms", 1e9) < self.p95_target_ms
            and self.success_rate >= self.success_target
        )

    def text(self) -> str:
        lines = [
            f"load test ({self.profile} profile): {self.users} users for {self.duration} against {self.host}",
            *(
                ["steady state: client, server and generator figures from the moment every user had started"]
                if self.steady
                else []
            ),
            "",
            f"{'endpoint':<48} {'requests':>9} {'fail':>6} {'p50':>7} {'p95':>7} {'p99':>7}  (ms)",
        ]
        for r in self.rows + [dict(self.total, name="ALL")]:
            lines.append(
                f"{r['name'][:48]:<48} {r['requests']:>9} {r['failures']:>6} {r['p50_ms']:>7.0f} "
                f"{r['p95_ms']:>7.0f} {r['p99_ms']:>7.0f}"
            )
        lines.append("")
        lines.append(f"throughput {self.total.get('rps', 0):.0f} req/s, success {self.success_rate:.2%}")
        if self.server and self.server.get("reset"):
            lines.append("server side: its counters were reset during the run (a restart): no figures")
        elif self.server:
            lines.append(
                f"server side (its histogram, from the app's start of a request to its answer; a wait for a "
                f"worker thread is not in it): {self.server['requests']:.0f} requests, p50 "
                f"{self.server['p50_ms']:.1f}, p95 {self.server['p95_ms']:.1f}, p99 {self.server['p99_ms']:.1f} ms"
            )
        else:
            lines.append("server side: no metrics listener read (--metrics URL)")
        if self.generator_cpu is not None:
            starved = (
                "  SATURATED: client latencies include the generator's own queueing"
                if self.generator_cpu >= 0.9
                else ""
            )
            lines.append(f"load generator CPU {self.generator_cpu:.0%} of one core{starved}")
        if self.memory_before is not None and self.memory_after is not None:
            lines.append(f"server memory {self.memory_before / 2**20:.0f} MiB -> {self.memory_after / 2**20:.0f} MiB")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: p95 {self.total.get('p95_ms', 0):.0f} ms (target < {self.p95_target_ms:.0f}), "
            f"success {self.success_rate:.2%} (target >= {self.success_target:.0%})"
        )
        return "\n".join(lines)


def _row(r: dict) -> dict:
    def num(key: str) -> float:
        value = r.get(key) or "0"
        return float(value) if value != "N/A" else 0.0

    return {
        "name": f"{r['Type']} {r['Name']}".strip(),
        "requests": int(num("Request Count")),
        "failures": int(num("Failure Count")),
        "p50_ms": num("50%"),
        "p95_ms": num("95%"),
        "p99_ms": num("99%"),
        "rps": num("Requests/s"),
    }


def run(
    host: str,
    users: int,
    duration: str,
    admin: str,
    password: str,
    out_dir: Path,
    p95_ms: float = 300,
    success: float = 0.99,
    profile: str = "stress",
    metrics: str | None = None,
    spawn_rate: float | None = None,
    steady: bool = False,
) -> Report:
    tokens = prepare_accounts(host, admin, password, users)
    out_dir.mkdir(parents=True, exist_ok=True)
    token_file = Path(tempfile.mkstemp(suffix=".json")[1])
    token_file.write_text(json.dumps(tokens))
    report = Report(
        host=host,
        users=users,
        duration=duration,
        p95_target_ms=p95_ms,
        success_target=success,
        profile=profile,
        steady=steady,
    )
    report.memory_before = server_memory(host)
    histogram_before = server_histogram(metrics)
    prefix = out_dir / f"locust-{time.strftime('%Y%m%d-%H%M%S')}"
    spawn = spawn_rate or max(10, users // 5)
    spawned = prefix.with_name(prefix.name + "_spawned.json")
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile()),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(spawn),
        "-t",
        duration,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
        *(["--reset-stats"] if steady else []),
    ]
    env = {**os.environ, "TT_TOKENS": str(token_file), "TT_PROFILE": profile, "TT_METRICS": metrics or ""}
    if steady:
        env["TT_SPAWNED"] = str(spawned)
    cpu_before, wall_before = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL)
    cpu_after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - wall_before
    time.sleep(3 * deferred.INTERVAL)  # the workers count a request up to INTERVAL after answering it
    histogram_after = server_histogram(metrics)
    used = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if steady:  # from the moment every user had started, as locust's --reset-stats counts
        mark = json.loads(spawned.read_text()) if spawned.exists() else None
        if mark is None:
            raise RuntimeError("locust never had every user started (spawning_complete): lengthen --duration")
        used -= mark["cpu"]
        wall = time.monotonic() - mark["monotonic"]
        histogram_before = {float(b): c for b, c in mark["histogram"]} or None
    report.generator_cpu = used / wall if wall > 0 else None
    token_file.unlink(missing_ok=True)
    report.memory_after = server_memory(host)
    report.server = histogram_quantiles(histogram_before, histogram_after)
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["Name"] == "Aggregated":
                report.total = _row(r)
            else:
                report.rows.append(_row(r))
    Path(f"{prefix}_report.json").write_text(
        json.dumps(
            {
                "host": host,
                "users": users,
                "duration": duration,
                "rows": report.rows,
                "total": report.total,
                "memory_before": report.memory_before,
                "memory_after": report.memory_after,
                "profile": report.profile,
                "steady": report.steady,
                "server": report.server,
                "generator_cpu": report.generator_cpu,
                "success_rate": report.success_rate,
                "passed": report.passed,
            },
            indent=2,
        )
    )
    return report
