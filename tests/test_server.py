"""The real server process (`tracetrack serve`, granian) over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .conftest import as_service
from .proxy import Proxy

pytestmark = pytest.mark.server
SECRET = "server-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str,
    url: str,
    body: dict | None = None,
    token: str | None = None,
    timeout: float = 10,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
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
    """`tracetrack serve` on free ports, with the demo data unless --no-demo is
    in `extra`; proc.metrics is the base URL of its metrics listener, proc.log()
    what it has written so far (to a file: a pipe nobody reads would fill up
    and stall the server's logging). The test run's REDIS_URL is not passed on; one
    in `env_extra` is (servers sharing a Redis of their own). Every server gets
    the same TRACETRACK_SECRET_KEY, so a token from one is good on all."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": as_service(database_url),
        "TRACETRACK_OWNER_URL": database_url,
        "TRACETRACK_SECRET_KEY": SECRET,
    }
    env.pop("REDIS_URL", None)
    env.update(env_extra or {})
    demo = [] if "--no-demo" in extra or "--demo" in extra else ["--demo"]
    log = tempfile.NamedTemporaryFile("w+", prefix="tracetrack-serve-", suffix=".log")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tracetrack_ops.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--workers",
            "1",
            "--threads",
            "4",
            *demo,
            *extra,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    proc.metrics = f"http://127.0.0.1:{metrics_port}"  # type: ignore[attr-defined]
    proc.log = lambda: Path(log.name).read_text(errors="replace")  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.log()}")  # type: ignore[attr-defined]
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
        with suppress(ProcessLookupError):  # a test may have killed it already
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def login(base: str, username: str, password: str) -> str:
    status, body, _ = http("POST", base + "/api/auth/login", {"username": username, "password": password})
    assert status == 200, body
    return body["token"]


def test_serve_creates_demo_data_and_answers_the_contract(db_url):
    with running_server(db_url) as (base, proc):
        status, health, _ = http("GET", base + "/health")
        assert status == 200 and health["checks"]["database"] is True
        token = login(base, "dispatcher", "tracetrack-demo")
        status, opened, _ = http("POST", base + "/api/scans/parent", {"qr_id": "sb09999"}, token)
        assert status == 201 and opened["bag"]["qr_id"] == "SB09999" and opened["created"] is True
        status, linked, _ = http(
            "POST", base + "/api/scans/child", {"parent_qr": "SB09999", "child_qr": "live-child-1"}, token
        )
        assert status == 200 and linked["result"] == "linked" and linked["child_count"] == 1
        status, bag, _ = http("GET", base + "/api/bags/SB00001", None, token)
        assert status == 200 and len(bag["children"]) == 30 and bag["bill"]["bill_no"] == "DEMO-BILL-1"
        status, err, _ = http("GET", base + "/api/bills", None, token)
        assert status == 403 and err["error"]["code"] == "forbidden"
        status, doc, _ = http("GET", base + "/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.1")


def test_serving_beyond_localhost_says_to_put_nginx_in_front(db_url):
    """Slow clients: a socket that sends Content-Length and never the body holds one
    of granian's threads (WSGI reads the body in the thread; granian has no body
    timeout). The documented deployment puts nginx in front, which buffers bodies
    under client_body_timeout (test_nginx.py shows /health unaffected by such
    sockets); `serve` says so when it listens beyond this machine, and that it
    connects as a least-privilege role when it does not."""
    with running_server(db_url, "--host", "0.0.0.0") as (_base, proc):
        started = proc.log()
    assert "serve behind nginx (deploy/nginx/tracetrack.conf)" in started
    assert "owns the tables" not in started  # the tests' server connects as the service role
    with running_server(db_url) as (_base, proc):
        assert "serve behind nginx" not in proc.log()


def test_serving_as_the_owner_is_pointed_out(db_url):
    with running_server(db_url, env_extra={"DATABASE_URL": db_url}) as (_base, proc):
        assert "DATABASE_URL's role owns the tables" in proc.log()


def test_no_demo_data_on_a_database_url_unless_asked(db_url):
    """Before, `tracetrack serve` on a DATABASE_URL database created admin/tracetrack."""
    import psycopg

    with running_server(db_url, "--no-demo"):  # the flag only documents the default here ...
        pass
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM app_user").fetchone() == (0,)
    port = free_port()
    proc = subprocess.Popen(  # ... which is no demo at all, without any flag
        [
            sys.executable,
            "-c",
            "from tracetrack_ops.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--metrics-port",
            str(free_port()),
            "--workers",
            "1",
        ],
        env={**os.environ, "DATABASE_URL": db_url, "TRACETRACK_SECRET_KEY": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            try:
                if http("GET", f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        status, _, _ = http(
            "POST", f"http://127.0.0.1:{port}/api/auth/login", {"username": "admin", "password": "tracetrack-demo"}
        )
        assert status == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM app_user").fetchone() == (0,)


def test_no_demo_flag_and_admin_bootstrap(db_url):
    env = {"TRACETRACK_ADMIN_USERNAME": "root-admin", "TRACETRACK_ADMIN_PASSWORD": "root-password"}
    with running_server(db_url, "--no-demo", env_extra=env) as (base, proc):
        token = login(base, "root-admin", "root-password")
        status, page, _ = http("GET", base + "/api/users", None, token)
        assert status == 200 and [u["username"] for u in page["items"]] == ["root-admin"]
        status, _, _ = http("POST", base + "/api/auth/login", {"username": "admin", "password": "tracetrack-demo"})
        assert status == 401


def test_database_outage_gives_503_within_the_pool_timeout_and_recovers(db_url):
    params = conninfo_to_dict(db_url)
    proxy = Proxy(params.get("host") or "127.0.0.1", int(params.get("port") or 5432))
    proxy.up()
    via_proxy = make_conninfo(**{**params, "host": "127.0.0.1", "port": str(proxy.port), "connect_timeout": "2"})
    try:
        with running_server(via_proxy, env_extra={"TRACETRACK_POOL_TIMEOUT": "2"}) as (base, proc):
            token = login(base, "admin", "tracetrack-demo")
            assert http("GET", base + "/api/bags/SB00001", None, token)[0] == 200

            proxy.down()
            for _ in range(3):  # an answer, never a hang (the client's timeout would fail the test)
                status, body, headers = http("GET", base + "/api/bags/SB00001", None, token, timeout=30)
                assert status == 503, body
                assert body["error"]["code"] == "database_unavailable"
                assert headers.get("Retry-After")
            status, health, _ = http("GET", base + "/health", timeout=15)
            assert status == 503 and health["checks"]["database"] is False
            assert "error" not in str(health)  # the reason is for the metrics listener, not the public
            try:
                urllib.request.urlopen(proc.metrics + "/health", timeout=30)
                raise AssertionError("the metrics listener's /health answered 200 with the database down")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                details = json.loads(exc.read())
            assert details["database"]["ok"] is False and details["database"]["error"]

            proxy.up()
            deadline = time.monotonic() + 30
            while http("GET", base + "/api/bags/SB00001", None, token, timeout=15)[0] != 200:
                assert time.monotonic() < deadline, "the service did not recover within 30 s"
                time.sleep(0.5)
            assert http("GET", base + "/health")[0] == 200
            assert proc.poll() is None  # same process: no restart
    finally:
        proxy.down()


def test_a_chunked_body_is_read_not_taken_for_empty(db_url):
    """Before, a body sent with Transfer-Encoding: chunked (no Content-Length) was read
    as {}: PATCH answered 200 and changed nothing. granian says where such a body ends
    (wsgi.input_terminated): the body is read, within the size limit."""
    from http.client import HTTPConnection

    with running_server(db_url) as (base, _proc):
        token = login(base, "admin", "tracetrack-demo")
        host, port = base.rsplit("/", 1)[1].split(":")
        created = http("POST", base + "/api/bills", {"bill_no": "CHUNK-1", "capacity": 2}, token)
        assert created[0] == 201

        def chunked(method: str, path: str, parts: list[bytes]) -> tuple[int, dict]:
            conn = HTTPConnection(host, int(port), timeout=10)
            conn.request(
                method,
                path,
                body=iter(parts),
                encode_chunked=True,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Transfer-Encoding": "chunked",
                },
            )
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())

        status, bill = chunked("PATCH", "/api/bills/CHUNK-1", [b'{"capacity"', b": 3}"])
        assert status == 200 and bill["capacity"] == 3
        status, body = chunked("PATCH", "/api/bills/CHUNK-1", [b"{" + b" " * 40_000, b" " * 40_000 + b"}"])
        assert status == 413 and body["error"]["code"] == "payload_too_large"
        assert http("GET", base + "/api/bills/CHUNK-1", None, token)[1]["bill"]["capacity"] == 3
