"""`tracetrack verify`: the deployment check.

Migrate, analyze, refresh the views, start the server, smoke-test every
endpoint of the contract (cleaning up what it creates), run a short load
test, print one report; any failure makes the exit status non-zero.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracetrack_db import Database, errors, maintenance, users, views
from tracetrack_db.audit import cli_origin
from tracetrack_db.runtime import database_urls, migrate_and_bootstrap
from tracetrack_db.settings import Settings
from tracetrack_db.users import UserChanges

from .server import serve_argv

VERIFY_ADMIN = "verify-admin"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    ms: float = 0.0


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    load: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "", ms: float = 0.0) -> None:
        self.checks.append(Check(name, ok, detail, ms))

    def text(self) -> str:
        width = max(len(c.name) for c in self.checks) if self.checks else 10
        lines = ["deployment check", ""]
        for c in self.checks:
            lines.append(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}} {c.ms:7.1f} ms  {c.detail}")
        if self.load:
            lines += ["", self.load]
        failed = [c.name for c in self.checks if not c.ok]
        lines += ["", "PASS: every check passed" if self.passed else f"FAIL: {', '.join(failed)}"]
        return "\n".join(lines)


class Client:
    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def __call__(
        self, method: str, path: str, body: dict | None = None, raw: bytes | None = None
    ) -> tuple[int, object, float]:
        """`body` as JSON, or `raw` bytes as they are (an import's file)."""
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Content-Type", "text/csv" if raw is not None else "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        ms = (time.perf_counter() - start) * 1000
        data = json.loads(raw) if raw and "json" in ctype else raw
        return status, data, ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smoke(client: Client, report: VerifyReport, password: str, metrics: Client) -> None:
    """Every endpoint once, expecting the contract's answer."""
    run = f"{int(time.time()) % 1_000_000:06d}"
    parent, child, bill = f"M444-{run[-5:]}", f"VERIFY-{run}-C1", f"VERIFY-{run}"

    def expect(
        name: str,
        method: str,
        path: str,
        status: int,
        body: dict | None = None,
        check: Callable[[Any], bool] = lambda _: True,
        raw: bytes | None = None,
    ) -> Any:
        try:
            got, data, ms = client(method, path, body, raw)
        except OSError as exc:
            report.add(f"{method} {name}", False, str(exc))
            return None
        ok = got == status and check(data)
        detail = "" if ok else f"expected {status}, got {got}: {str(data)[:160]}"
        report.add(f"{method} {name}", ok, detail, ms)
        return data

    expect("/health", "GET", "/health", 200, check=lambda d: d["checks"]["database"] is True)
    expect("/openapi.json", "GET", "/openapi.json", 200, check=lambda d: d["openapi"].startswith("3.1"))
    login = expect(
        "/api/auth/login",
        "POST",
        "/api/auth/login",
        200,
        {"username": VERIFY_ADMIN, "password": password},
        lambda d: bool(d["token"]),
    )
    if not login:
        return
    client.token = login["token"]
    me = expect("/api/me", "GET", "/api/me", 200, check=lambda d: d["username"] == VERIFY_ADMIN)
    expect("/api/users", "GET", "/api/users?limit=5", 200, check=lambda d: "items" in d)
    expect("/api/users (invalid)", "POST", "/api/users", 400, {"username": "x"})
    expect("/api/users/{id}", "PATCH", f"/api/users/{me['id']}", 200, {"is_active": True})
    expect("/api/areas", "GET", "/api/areas", 200, check=lambda d: len(d["items"]) >= 10)
    expect("/api/areas (invalid)", "POST", "/api/areas", 400, {"name": "Not Valid!"})
    expect("/api/scans/parent", "POST", "/api/scans/parent", 201, {"qr_id": parent, "dispatch_area": "lucknow"})
    expect(
        "/api/scans/child",
        "POST",
        "/api/scans/child",
        200,
        {"parent_qr": parent, "child_qr": child},
        lambda d: d["result"] == "linked",
    )
    expect(
        "/api/scans/batch",
        "POST",
        "/api/scans/batch",
        200,
        {"parent_qr": parent, "child_qrs": [child, f"{child}2"]},
        lambda d: len(d["items"]) == 2,
    )
    expect("/api/scans/unlink", "POST", "/api/scans/unlink", 200, {"child_qr": f"{child}2"})
    expect("/api/scans", "GET", "/api/scans?limit=5", 200, check=lambda d: len(d["items"]) >= 1)
    expect("/api/bags", "POST", "/api/bags", 201, {"qr_id": f"{child}3", "type": "child", "dispatch_area": "lucknow"})
    expect("/api/bags", "GET", f"/api/bags?q={urllib.parse.quote(child)}", 200, check=lambda d: len(d["items"]) == 3)
    expect("/api/bags/{qr}", "GET", f"/api/bags/{parent}", 200, check=lambda d: len(d["children"]) == 1)
    expect("/api/bags/{qr}/history", "GET", f"/api/bags/{parent}/history", 200, check=lambda d: len(d["items"]) >= 3)
    expect("/api/bills", "POST", "/api/bills", 201, {"bill_no": bill, "capacity": 1})
    expect("/api/bills", "GET", f"/api/bills?q={bill}", 200, check=lambda d: len(d["items"]) == 1)
    expect("/api/bills/{no}/parents", "POST", f"/api/bills/{bill}/parents", 200, {"parent_qr": parent})
    expect("/api/bills/{no}/complete", "POST", f"/api/bills/{bill}/complete", 200)
    manifest = f"/api/bills/{bill}/manifest"
    expect("/api/bills/{no}/manifest", "GET", manifest, 200, check=lambda d: len(d["parents"]) == 1)
    expect(
        "/api/bills/{no}/manifest.csv",
        "GET",
        f"{manifest}.csv",
        200,
        check=lambda d: d.startswith(b"line,") and parent.encode() in d,
    )
    expect(
        "/api/bills/{no}/manifest.pdf", "GET", f"/api/bills/{bill}/manifest.pdf", 200, check=lambda d: d[:5] == b"%PDF-"
    )
    expect("/api/bills/{no}/reopen", "POST", f"/api/bills/{bill}/reopen", 200)
    expect("/api/bills/{no}", "PATCH", f"/api/bills/{bill}", 200, {"description": "verify"})
    expect("/api/bills/{no}", "GET", f"/api/bills/{bill}", 200, check=lambda d: len(d["parents"]) == 1)
    expect("/api/bills/{no}/parents/{qr}", "DELETE", f"/api/bills/{bill}/parents/{parent}", 200)
    expect("/api/bills/{no}", "DELETE", f"/api/bills/{bill}", 200)
    expect("/api/dashboard/analytics", "GET", "/api/dashboard/analytics", 200, check=lambda d: "as_of" in d)
    expect("/api/exports/bills.csv", "GET", "/api/exports/bills.csv?status=new&q=none-", 200)
    expect(
        "/api/exports/bags.csv",
        "GET",
        f"/api/exports/bags.csv?q={urllib.parse.quote(child)}",
        200,
        check=lambda d: d.count(b"\n") == 4,
    )
    expect("/api/reports/bills", "GET", "/api/reports/bills", 200, check=lambda d: d["totals"]["bills"] >= 0)
    expect("/api/reports/bills.csv", "GET", "/api/reports/bills.csv", 200, check=lambda d: d.startswith(b"bill_no,"))
    expect("/api/reports/activity", "GET", "/api/reports/activity", 200, check=lambda d: d["totals"]["links"] >= 2)
    expect("/api/extraction-rules", "GET", "/api/extraction-rules", 200, check=lambda d: len(d) >= 1)
    logins = f"user={me['id']}&kind=login_succeeded"
    expect("/api/audit", "GET", f"/api/audit?{logins}&limit=5", 200, check=lambda d: len(d["items"]) >= 1)
    expect("/api/audit.csv", "GET", f"/api/audit.csv?{logins}", 200, check=lambda d: d.startswith(b"id,occurred_at,"))
    job = expect(  # a dry run: checked against the data, nothing changed (the job is recorded)
        "/api/imports (dry run)",
        "POST",
        "/api/imports?layout=links&dry_run=true&dispatch_area=lucknow&file_name=verify.csv",
        201,
        check=lambda d: d["verdicts"]["already_done"] == 1,
        raw=f"parent_qr,child_qr\n{parent},{child}\n".encode(),
    )
    if job:
        expect("/api/imports/{id}", "GET", f"/api/imports/{job['id']}", 200, check=lambda d: d["job"]["rows"] == 1)
        expect(
            "/api/imports/{id}/results.csv",
            "GET",
            f"/api/imports/{job['id']}/results.csv",
            200,
            check=lambda d: b"already_done" in d,
        )
    expect("/api/imports", "GET", "/api/imports?limit=1", 200, check=lambda d: len(d["items"]) == 1)
    for qr in (child, f"{child}2", f"{child}3", parent):  # clean up
        expect(f"/api/bags/{{qr}} ({qr})", "DELETE", f"/api/bags/{qr}", 200)
    expect("/metrics (public port)", "GET", "/metrics", 404)  # only on the metrics listener
    client.base, api_base = metrics.base, client.base
    try:
        expect(
            "/metrics (metrics listener)",
            "GET",
            "/metrics",
            200,
            check=lambda d: b"tracetrack_http_requests_total" in d,
        )
        expect("/health (metrics listener)", "GET", "/health", 200, check=lambda d: d["database"]["ok"])
    finally:
        client.base = api_base
    expect("/api/auth/logout", "POST", "/api/auth/logout", 200, check=lambda d: d["logged_out"] is True)
    # every worker forgets the user when the database announces the logout (LISTEN)
    deadline, got = time.monotonic() + 2, None
    while time.monotonic() < deadline and got != 401:
        got, _, ms = client("GET", "/api/me", None)
    report.add("GET /api/me (after logout, any worker)", got == 401, "" if got == 401 else f"got {got}", ms)


def verify(users_count: int = 20, duration: str = "15s", port: int | None = None, p95_ms: float = 300) -> VerifyReport:
    report = VerifyReport()
    settings = Settings.from_env()
    password = secrets.token_urlsafe(18)
    with database_urls(settings) as urls:
        url = urls.owner
        start = time.perf_counter()
        try:
            applied = migrate_and_bootstrap(settings, url).applied
            report.add("migrate", True, f"{len(applied)} applied", (time.perf_counter() - start) * 1000)
        except Exception as exc:  # noqa: BLE001 - the report names any failure
            report.add("migrate", False, str(exc))
            return report
        with Database(url, min_size=1, max_size=2, timeout=30) as db:
            for name, step in (("analyze", maintenance.analyze), ("refresh views", views.refresh_views)):
                start = time.perf_counter()
                try:
                    result = step(db)
                    report.add(
                        name,
                        result is not None,
                        "" if result is not None else "another refresher is running",
                        (time.perf_counter() - start) * 1000,
                    )
                except errors.TraceTrackError as exc:
                    report.add(name, False, exc.message)
            start = time.perf_counter()
            legacy = maintenance.unaddressable_identifiers(db)
            report.add(
                "identifiers a URL path can name",
                not legacy,
                "" if not legacy else "rename or retire: " + ", ".join(f"{k} {i!r}" for k, i in legacy[:5]),
                (time.perf_counter() - start) * 1000,
            )
            existing = users.find_user(db, VERIFY_ADMIN)
            if existing is None:
                users.create_user(db, VERIFY_ADMIN, password, "admin", origin=cli_origin())
            else:
                users.update_user(
                    db, existing.id, UserChanges(password=password, role="admin", is_active=True), origin=cli_origin()
                )
        port = port or _free_port()
        metrics_port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": urls.service,
            "TRACETRACK_OWNER_URL": urls.owner,
            "TRACETRACK_SECRET_KEY": os.environ.get("TRACETRACK_SECRET_KEY") or secrets.token_urlsafe(32),
        }
        server = subprocess.Popen(
            serve_argv(port, "--no-demo", "--metrics-port", str(metrics_port), "--no-access-log"),
            # its stderr is a pipe read only on failure
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/health", timeout=2)
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        report.add(
                            "start server", False, ((server.stderr and server.stderr.read()) or b"").decode()[-400:]
                        )
                        return report
                    time.sleep(0.3)
            report.add("start server", True, base)
            smoke(Client(base), report, password, Client(f"http://127.0.0.1:{metrics_port}"))
            try:
                from .loadtest import run

                load = run(
                    base,
                    users_count,
                    duration,
                    VERIFY_ADMIN,
                    password,
                    Path(os.environ.get("TRACETRACK_VERIFY_OUT", str(settings.data_dir / "verify"))),
                    p95_ms=p95_ms,
                    metrics=f"http://127.0.0.1:{metrics_port}",
                )
                report.load = load.text()
                report.add(
                    f"load test ({users_count} users, {duration})",
                    load.passed,
                    f"p95 {load.total.get('p95_ms', 0):.0f} ms, success {load.success_rate:.2%}",
                )
            except ImportError as exc:
                report.add("load test", False, f"install the bench extra: {exc}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        with Database(url, min_size=1, max_size=1) as db:
            me = users.find_user(db, VERIFY_ADMIN)
            assert me is not None  # made by this run
            with contextlib.suppress(errors.LastAdmin):  # leave no usable account (the last admin stays)
                users.update_user(db, me.id, UserChanges(is_active=False), origin=cli_origin())
    return report
