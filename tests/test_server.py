"""The real server process (`tracetrack serve`, granian) over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .proxy import Proxy

pytestmark = pytest.mark.server
SECRET = "server-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 10) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null"), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers


@contextmanager
def running_server(database_url: str, *extra: str, env_extra: dict | None = None):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TRACETRACK_SECRET_KEY": SECRET, **(env_extra or {})}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tracetrack_ops.cli import main; main()", "serve", "--port", str(port),
         "--workers", "1", "--threads", "4", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read()}")
            try:
                if http("GET", base + "/health", timeout=2)[0] in (200, 503):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start in 60 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def login(base: str, username: str, password: str) -> str:
    status, body, _ = http("POST", base + "/api/auth/login", {"username": username, "password": password})
    assert status == 200, body
    return body["token"]


def test_serve_creates_demo_data_and_answers_the_contract(db_url):
    with running_server(db_url) as (base, proc):
        status, health, _ = http("GET", base + "/health")
        assert status == 200 and health["checks"]["database"]["ok"] is True
        token = login(base, "dispatcher", "tracetrack")
        status, opened, _ = http("POST", base + "/api/scans/parent", {"qr_id": "sb09999"}, token)
        assert status == 201 and opened["bag"]["qr_id"] == "SB09999" and opened["created"] is True
        status, linked, _ = http("POST", base + "/api/scans/child",
                                 {"parent_qr": "SB09999", "child_qr": "live-child-1"}, token)
        assert status == 200 and linked["result"] == "linked" and linked["child_count"] == 1
        status, bag, _ = http("GET", base + "/api/bags/SB00001", None, token)
        assert status == 200 and len(bag["children"]) == 30 and bag["bill"]["bill_no"] == "DEMO-BILL-1"
        status, err, _ = http("GET", base + "/api/bills", None, token)
        assert status == 403 and err["error"]["code"] == "forbidden"
        status, doc, _ = http("GET", base + "/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.1")


def test_no_demo_flag_and_admin_bootstrap(db_url):
    env = {"TRACETRACK_ADMIN_USERNAME": "root-admin", "TRACETRACK_ADMIN_PASSWORD": "root-password"}
    with running_server(db_url, "--no-demo", env_extra=env) as (base, proc):
        token = login(base, "root-admin", "root-password")
        status, page, _ = http("GET", base + "/api/users", None, token)
        assert status == 200 and [u["username"] for u in page["items"]] == ["root-admin"]
        status, _, _ = http("POST", base + "/api/auth/login", {"username": "admin", "password": "tracetrack"})
        assert status == 401


def test_database_outage_gives_503_within_the_pool_timeout_and_recovers(db_url):
    params = conninfo_to_dict(db_url)
    proxy = Proxy(params.get("host") or "127.0.0.1", int(params.get("port") or 5432))
    proxy.up()
    via_proxy = make_conninfo(**{**params, "host": "127.0.0.1", "port": str(proxy.port), "connect_timeout": "2"})
    try:
        with running_server(via_proxy, env_extra={"TRACETRACK_POOL_TIMEOUT": "2"}) as (base, proc):
            token = login(base, "admin", "tracetrack")
            assert http("GET", base + "/api/bags/SB00001", None, token)[0] == 200

            proxy.down()
            for _ in range(3):  # an answer, never a hang (the client's timeout would fail the test)
                status, body, headers = http("GET", base + "/api/bags/SB00001", None, token, timeout=30)
                assert status == 503, body
                assert body["error"]["code"] == "database_unavailable"
                assert headers.get("Retry-After")
            status, health, _ = http("GET", base + "/health", timeout=15)
            assert status == 503 and health["checks"]["database"]["ok"] is False
            assert health["checks"]["database"]["error"]

            proxy.up()
            deadline = time.monotonic() + 30
            while http("GET", base + "/api/bags/SB00001", None, token, timeout=15)[0] != 200:
                assert time.monotonic() < deadline, "the service did not recover within 30 s"
                time.sleep(0.5)
            assert http("GET", base + "/health")[0] == 200
            assert proc.poll() is None  # same process: no restart
    finally:
        proxy.down()
