"""deploy/nginx/tracetrack.conf in a real nginx in front of the real server."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tracetrack_api import console

from .conftest import service_missing
from .test_server import free_port, running_server

pytestmark = pytest.mark.server
CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "tracetrack.conf"


# the shipped upstream's one server line (address, then its parameters)
UPSTREAM_SERVER = re.compile(r"^( *)server 127\.0\.0\.1:5000\b([^;]*);$", re.MULTILINE)


@contextmanager
def nginx_for(api_ports: list[int], tmp_path: Path, access_log: bool = False):
    """deploy/nginx/tracetrack.conf in a real nginx on a free 127.0.0.1 port, its
    upstream one server line per port of `api_ports` (each with the parameters of
    the shipped line, as an operator adds nodes): yields nginx's port once it
    answers GET /health. `access_log`: one line a request in tmp_path/access.log,
    `$msec|$request_method|$uri|$status|$upstream_addr|$upstream_status`, the
    upstream fields listing every node nginx tried and its answer (", " between)."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        service_missing("nginx is not installed (apt-get install nginx)")
    port = free_port()
    shipped = CONF.read_text()
    line = UPSTREAM_SERVER.search(shipped)
    assert line is not None, "deploy/nginx/tracetrack.conf lost its `server 127.0.0.1:5000 ...;` line"
    servers = "\n".join(f"{line[1]}server 127.0.0.1:{api_port}{line[2]};" for api_port in api_ports)
    site = shipped[: line.start()] + servers + shipped[line.end() :]
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    assert f"127.0.0.1:{port}" in site
    (tmp_path / "site.conf").write_text(site)
    tmp_path.chmod(0o777)
    user = "user root;" if os.geteuid() == 0 else ""
    log = (
        f"log_format nodes '$msec|$request_method|$uri|$status|$upstream_addr|$upstream_status';\n"
        f"    access_log {tmp_path}/access.log nodes;"
        if access_log
        else "access_log off;"
    )
    (tmp_path / "nginx.conf").write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 512; }}
http {{
    {log}
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    check = subprocess.run(
        [binary, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def nginx_and_server(db_url: str, tmp_path: Path):
    """deploy/nginx/tracetrack.conf as shipped (one node) in a real nginx in front
    of `running_server`: yields (nginx's port, the server process)."""
    with ExitStack() as stack:
        base, server = stack.enter_context(running_server(db_url, env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"}))
        yield stack.enter_context(nginx_for([int(base.rsplit(":", 1)[1])], tmp_path)), server


@pytest.fixture
def nginx_in_front(db_url, tmp_path):
    with nginx_and_server(db_url, tmp_path) as (port, _server):
        yield port


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()


def test_proxies_the_api(nginx_in_front):
    port = nginx_in_front
    status, _, body = request(
        port,
        "POST",
        "/api/auth/login",
        {"Content-Type": "application/json"},
        json.dumps({"username": "admin", "password": "tracetrack-demo"}).encode(),
    )
    assert status == 200
    token = json.loads(body)["token"]
    status, _, body = request(port, "GET", "/api/bags/SB00001", {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["bag"]["qr_id"] == "SB00001"
    status, _, body = request(port, "GET", "/api/bags/SB00001")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated"


def test_gzip_for_json(nginx_in_front):
    status, headers, body = request(nginx_in_front, "GET", "/openapi.json", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(body))["openapi"].startswith("3.1")
    status, headers, body = request(nginx_in_front, "GET", "/openapi.json")
    assert "content-encoding" not in headers and json.loads(body)["openapi"].startswith("3.1")


def test_the_console_through_nginx_is_compressed_and_keeps_its_policy(nginx_in_front):
    """What a phone on the warehouse wifi downloads: every file of the console, gzipped by nginx."""
    status, headers, page = request(nginx_in_front, "GET", "/console", {"Accept-Encoding": "gzip"})
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    wire = len(page)
    plain = len(gzip.decompress(page)) if headers.get("content-encoding") == "gzip" else len(page)
    for name in console.ASSETS:
        status, headers, body = request(nginx_in_front, "GET", f"/console/assets/{name}", {"Accept-Encoding": "gzip"})
        # gzip makes the ETag weak (W/"..."): the app still answers 304 to it (endpoint._matches)
        assert status == 200 and headers["etag"].removeprefix("W/") == console.FILES[name].headers["ETag"], name
        if len(console.FILES[name].data) >= 1024:  # gzip_min_length
            assert headers.get("content-encoding") == "gzip", name
            assert gzip.decompress(body) == console.FILES[name].data
            plain += len(console.FILES[name].data)
        else:
            plain += len(body)
        wire += len(body)
        again = request(
            nginx_in_front,
            "GET",
            f"/console/assets/{name}",
            {"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]},
        )
        assert again[0] == 304, name  # a reload costs headers only
    print(f"\nthe console through nginx: {plain:,} bytes, {wire:,} gzipped ({len(console.ASSETS) + 1} files)")
    assert wire < plain / 2


def test_body_size_limit(nginx_in_front):
    status, _, _ = request(
        nginx_in_front, "POST", "/api/auth/login", {"Content-Type": "application/json"}, b"x" * (70 * 1024)
    )
    assert status == 413


def test_an_import_file_passes_nginx_and_a_larger_one_is_413(nginx_in_front):
    """POST /api/imports has its own body limit (16m, the API's default) and a
    longer read timeout; every other path keeps 64k."""
    port = nginx_in_front
    login = json.dumps({"username": "admin", "password": "tracetrack-demo"}).encode()
    token = json.loads(request(port, "POST", "/api/auth/login", {"Content-Type": "application/json"}, login)[2])[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    rows = "".join(f"SB00900,NGINX-{i:06d}\n" for i in range(30))
    padding = "".join(f"SB00901,PAD-{i:06d},{'x' * 900}\n" for i in range(1200))  # ~1 MB: > 64k
    body = ("parent_qr,child_qr,note\n" + rows + padding).encode()
    assert len(body) > 1 << 20
    status, _, answer = request(
        port, "POST", "/api/imports?layout=links&dispatch_area=lucknow&dry_run=true", auth, body
    )
    assert status == 201, answer
    assert json.loads(answer)["rows"] == 1230
    status, _, _ = request(port, "POST", "/api/imports?layout=links", auth, b"x" * (17 << 20))
    assert status == 413


def test_per_client_rate_limit_answers_429(nginx_in_front):
    """200 requests from one address arrive together (connections opened first,
    then released by a barrier): twice the burst of 100, however slow the
    machine, since they arrive within far less than the 2 s it would take the
    50 r/s rate to make room for them. Some must be 429, with the JSON body."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    n = 200
    conns = [http.client.HTTPConnection("127.0.0.1", nginx_in_front, timeout=30) for _ in range(n)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(n)

    def one(conn):
        barrier.wait()
        conn.request("GET", "/openapi.json")
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Retry-After")

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, conns))
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0 and statuses.count(200) >= 100
    for status, body, retry in answers:
        if status == 429:
            assert json.loads(body)["error"]["code"] == "rate_limited" and retry == "1"


def test_no_version_and_no_metrics_through_nginx(nginx_in_front):
    """Before, /metrics/ and /metrics%2F fell through nginx's `location = /metrics` to the
    API, which answered them to anyone; and nginx named its version."""
    status, headers, _ = request(nginx_in_front, "GET", "/openapi.json")
    assert status == 200 and headers.get("server") == "nginx"
    for path in ("/metrics", "/metrics/", "/metrics%2F", "/metrics/../metrics"):
        status, _, body = request(nginx_in_front, "GET", path)
        assert status == 404 and b"tracetrack_http" not in body, path


def test_nginx_sets_the_request_id_and_passes_the_probes(db_url, tmp_path):
    """nginx's $request_id replaces whatever the client sent; the API answers it and
    logs it; /livez and /readyz answer through nginx."""
    import re

    with nginx_and_server(db_url, tmp_path) as (port, server):
        status, headers, _ = request(port, "GET", "/openapi.json", {"X-Request-Id": "chosen-by-the-client"})
        rid = headers.get("x-request-id", "")
        assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", rid), headers
        for path in ("/livez", "/readyz"):
            status, headers, body = request(port, "GET", path)
            assert status == 200 and json.loads(body)["status"] in ("ok", "ready"), (path, body)
            assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-request-id", "")), headers
        deadline = time.monotonic() + 5
        while f"[{rid}] GET /openapi.json 200" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"[{rid}] GET /openapi.json 200" in server.log()
        assert "chosen-by-the-client" not in server.log()


def test_logins_have_their_own_tighter_limit(nginx_in_front):
    """20 logins from one address at once: a burst of 5 passes the login zone,
    the rest are refused by nginx before any password is checked."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    n = 20
    conns = [http.client.HTTPConnection("127.0.0.1", nginx_in_front, timeout=30) for _ in range(n)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(n)

    def one(i_conn):
        i, conn = i_conn
        barrier.wait()
        conn.request(
            "POST",
            "/api/auth/login",
            json.dumps({"username": f"nobody{i}", "password": "x" * 12}),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())["error"]["code"]

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, enumerate(conns)))
    assert {a for a in answers} <= {(401, "invalid_credentials"), (429, "rate_limited")}
    assert 1 <= sum(1 for s, _ in answers if s == 401) <= 6  # the burst (and maybe one refill)


def test_bodies_that_never_come_hold_no_server_thread(db_url, tmp_path):
    """Slow clients: sockets that send a Content-Length and never the body. Straight
    to the server, each holds one of its threads (granian hands the WSGI app a body
    to read, with no timeout): with every thread held, /health does not answer.
    Behind nginx, which buffers bodies under client_body_timeout, the server never
    sees them and /health answers at once. This is why the deployment puts nginx in
    front (README, Security) and `serve` says so when it listens beyond localhost."""
    import socket

    def promise_bodies(port: int, n: int) -> list[socket.socket]:
        socks = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            socks.append(sock)
        return socks

    with nginx_and_server(db_url, tmp_path) as (port, server):
        api_port = int(server.args[server.args.index("--port") + 1])
        held = promise_bodies(port, 12)  # three times the server's 4 threads
        try:
            time.sleep(0.5)
            assert request(port, "GET", "/health")[0] == 200  # through nginx: unaffected
            direct = promise_bodies(api_port, 12)
            try:
                time.sleep(0.5)
                with pytest.raises(OSError):  # TimeoutError: every server thread waits for a body
                    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=3)
                    conn.request("GET", "/health")
                    conn.getresponse()
            finally:
                for sock in direct:
                    sock.close()
            assert request(port, "GET", "/health")[0] == 200
        finally:
            for sock in held:
                sock.close()


def test_a_shared_database_outage_reaches_clients_as_the_apis_503(tmp_path):
    """Two nodes sharing one database that is down both answer the API's 503. nginx
    must hand that 503 on as it is (JSON, Retry-After) and keep both nodes in the
    rotation: were 503 in proxy_next_upstream, it would count towards max_fails,
    nginx would take every node out and answer its own 502 (HTML, no Retry-After),
    still for up to fail_timeout after the database is back (found in review).
    The nodes here are stand-ins answering as the API does: what is under test is
    the shipped nginx configuration."""
    import http.server
    import threading

    state = {"status": 200}

    class Node(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = state["status"]
            body = b'{"error":{"code":"database_unavailable","message":"x"}}' if code == 503 else b"{}"
            self.send_response(code)
            if code == 503:
                self.send_header("Retry-After", "2")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    nodes = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node) for _ in range(2)]
    for node in nodes:
        threading.Thread(target=node.serve_forever, daemon=True).start()

    def get(port: int) -> tuple[int, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/bags/SB00001")
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheader("Retry-After")

    try:
        with nginx_for([n.server_address[1] for n in nodes], tmp_path) as port:
            state["status"] = 503  # the database is down: every node says so
            during = [get(port) for _ in range(8)]  # more than max_fails (3) per node
            state["status"] = 200  # ... and it is back
            after = [get(port)[0] for _ in range(4)]
    finally:
        for node in nodes:
            node.shutdown()
    assert during == [(503, "2")] * 8 and after == [200] * 4, (during, after)
