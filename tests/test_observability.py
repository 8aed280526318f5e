"""What an operator meets: the request id on every answer and in every log line
of its request, one access line per request (never a token or a password), a
bug's traceback in the log and never in the answer, the probes (/livez,
/readyz, /health) and the version, from one place, everywhere it shows."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.request
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

import falcon
import pytest

from tracetrack_api import deferred, logs
from tracetrack_db import Database, __version__
from tracetrack_db.settings import ConfigError

from .api_helpers import *  # noqa: F403
from .api_helpers import PASSWORD, Api, api_settings

ROOT = Path(__file__).resolve().parent.parent
HEX32 = re.compile(r"[0-9a-f]{32}")


@contextmanager
def captured(fmt: str = "text", stream: io.StringIO | None = None):
    """The root logger at INFO into a string (`stream`, a new one by default), configured
    as `tracetrack serve` does (its handler, the request-id filter, the service's formatter)."""
    stream = io.StringIO() if stream is None else stream
    handler = logs.ConsoleHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    handler.setFormatter(logs.make_formatter(fmt))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        deferred.flush_all()  # the access lines of the requests made meanwhile (written in batches)
        root.removeHandler(handler)
        root.setLevel(old_level)


class Boom:
    """A route with a bug: it logs a line, then fails with a secret in its message."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        logging.getLogger("tracetrack_db.somewhere").warning("about to fail")
        raise RuntimeError("secret detail: password=hunter2-internal")


# the request id ----------------------------------------------------------------------
def test_every_answer_carries_a_request_id_taken_from_the_request_when_it_is_safe(api):
    for path in ("/health", "/livez", "/api/me", "/no/such/path", "/openapi.json"):
        result = api.get(path)
        assert HEX32.fullmatch(result.headers["X-Request-Id"]), (path, result.headers)
    assert api.get("/livez").headers["X-Request-Id"] != api.get("/livez").headers["X-Request-Id"]
    for given in ("0f1e2d3c4b5a69788796a5b4c3d2e1f0", "req-42", "Root=1-5759e988-bd862e3fe1be46a994272793", "a" * 128):
        assert api.get("/livez", headers={"X-Request-Id": given}).headers["X-Request-Id"] == given
    for bad in ("", "has space", "a" * 129, 'quote"d', "semi;colon", "new\\nline", "ünïcode", "<script>"):
        answered = api.get("/livez", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert HEX32.fullmatch(answered), (bad, answered)


def test_one_access_line_per_request_with_route_template_status_duration_user_and_request_id(api):
    dispatcher = api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB01234")
    with captured("json") as out:
        api.get("/api/bags/SB01234", dispatcher, headers={"X-Request-Id": "look-me-up-1"})
        api.post(
            "/api/scans/child",
            dispatcher,
            json={"parent_qr": "SB01234", "child_qr": "CHILD-77"},
            headers={"X-Request-Id": "look-me-up-2"},
        )
        api.get("/api/bags/NOPE9999", dispatcher)
        api.get("/api/bills", dispatcher)
        api.login(dispatcher.username, PASSWORD)
        api.login(dispatcher.username, "not-the-password-1")
        api.get("/nowhere")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "tracetrack.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/api/bags/{qr}", 200),
        ("POST", "/api/scans/child", 200),
        ("GET", "/api/bags/{qr}", 404),
        ("GET", "/api/bills", 403),
        ("POST", "/api/auth/login", 200),
        ("POST", "/api/auth/login", 401),
        ("GET", "unmatched", 404),
    ]
    assert access[0]["request_id"] == "look-me-up-1" and access[1]["request_id"] == "look-me-up-2"
    assert all(HEX32.fullmatch(a["request_id"]) for a in access[2:])
    assert [a["user_id"] for a in access] == [dispatcher.id] * 4 + [None] * 3
    assert all(a["level"] == "INFO" and 0 <= a["duration_ms"] < 10_000 for a in access)
    assert (
        access[0]["message"].startswith("GET /api/bags/{qr} 200 ") and f"user={dispatcher.id}" in access[0]["message"]
    )
    text = out.getvalue()
    for secret in (dispatcher.token, PASSWORD, "not-the-password-1", "SB01234", "NOPE9999", "Bearer"):
        assert secret not in text  # no token, no password, no raw path


def test_a_streamed_export_is_logged_and_timed_when_its_stream_ends(api):
    """An export's access line and duration cover the whole stream (they covered only the
    headers), and one the client cut is logged when the server closes it."""
    import time

    admin = api.admin()
    api.parent_with_children(api.dispatcher("lucknow"), "SB01234", 2)
    env = falcon.testing.create_environ("/api/exports/bags.csv", headers={**admin.headers, "X-Request-Id": "csv-1"})

    def access() -> list[dict]:
        deferred.flush_all()
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        return [line for line in lines if line["logger"] == "tracetrack.access"]

    for read_it in (True, False):
        with captured("json") as out:
            body = api.app(dict(env), lambda status, headers, exc_info=None: None)
            time.sleep(0.3)
            assert access() == []  # answered when its stream ends, not when its headers went
            if read_it:
                assert b"".join(body).count(b"\n") == 4
            body.close()  # as the server does after the last chunk, or when the client went away
            assert [(a["route"], a["status"], a["request_id"]) for a in access()] == [
                ("/api/exports/bags.csv", 200, "csv-1")
            ]
            assert access()[0]["duration_ms"] >= 300
            body.close()  # a second close writes nothing more
            assert len(access()) == 1
    assert api.get("/api/exports/bags.csv", admin).status_code == 200  # the export slot came back


def test_the_access_log_can_be_turned_off_and_costs_nothing_when_its_logger_is_quiet(db):
    quiet = Api(db)
    quiet.app = create_app_without_access_log(db)
    quiet.client = falcon.testing.TestClient(quiet.app)
    with captured() as out:
        result = quiet.get("/livez")
    assert result.status_code == 200 and HEX32.fullmatch(result.headers["X-Request-Id"])
    assert out.getvalue() == ""  # off: no line, the request id all the same
    with captured() as out:
        logging.getLogger(logs.ACCESS_LOGGER).setLevel(logging.WARNING)
        try:
            Api(db).get("/livez")
        finally:
            logging.getLogger(logs.ACCESS_LOGGER).setLevel(logging.NOTSET)
    assert out.getvalue() == ""


class Writes(io.StringIO):
    """A stream that keeps what each write() call brought (each is a write(2) on stderr)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def kept_access_records():
    """Another handler on the access logger: the records it was given."""
    kept = Kept()
    access = logging.getLogger(logs.ACCESS_LOGGER)
    access.addHandler(kept)
    try:
        yield kept.records
    finally:
        access.removeHandler(kept)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_batch_of_access_lines_is_one_write_and_each_line_keeps_its_own_fields(fmt):
    with captured(fmt, Writes()) as stream, kept_access_records() as records:
        at = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
        answered = [
            logs.Answered(at + i, "GET", "/api/bags/{qr}", 200 + i, 0.002 * (i + 1), i or None, f"rid-{i}", True)
            for i in range(3)
        ]
        answered.insert(1, logs.Answered(at, "GET", "/livez", 200, 0.001, None, "rid-quiet", False))
        logs.RequestLog(True, None).write(answered)
        assert len(stream.calls) == 1, stream.calls  # three lines, one write
        lines = stream.calls[0].splitlines()
        assert len(lines) == 3 and "rid-quiet" not in stream.calls[0]
        for i, line in enumerate(lines):
            user = "-" if i == 0 else str(i)
            if fmt == "text":
                expected = (
                    f"2023-11-14T22:13:2{i}.250Z INFO tracetrack.access [rid-{i}] "
                    f"GET /api/bags/{{qr}} {200 + i} {2.0 * (i + 1):.1f}ms user={user}"
                )
                assert line == expected
            else:
                fields = json.loads(line)
                assert fields["time"] == f"2023-11-14T22:13:2{i}.250Z" and fields["request_id"] == f"rid-{i}"
                expected_fields = (200 + i, 2.0 * (i + 1), i or None)
                assert (fields["status"], fields["duration_ms"], fields["user_id"]) == expected_fields
        # every handler gets a record of its own for each line, with the request's own fields
        assert [(r.request_id, r.status, r.created, r.user_id) for r in records] == [
            (f"rid-{i}", 200 + i, at + i, i or None) for i in range(3)
        ]
        assert len({id(r) for r in records}) == 3
        assert [r.relativeCreated - records[0].relativeCreated for r in records] == pytest.approx([0, 1000, 2000])
        logging.getLogger("tracetrack.test").warning("outside a batch")  # written at once, as ever
        assert len(stream.calls) == 2 and "outside a batch" in stream.calls[1]


def test_a_long_batch_goes_out_in_whole_lines_of_at_most_a_pipe_write_and_keeps_the_record_class():
    """Every worker writes to the same stderr: a write of up to PIPE_BUF bytes to a pipe is
    never interleaved with another's, so a batch is cut into such writes, at line ends."""

    class Mine(logging.LogRecord):
        pass

    old_factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Mine)
    try:
        with captured("text", Writes()) as stream, kept_access_records() as records:
            n = 200
            at = 1_700_000_000.0
            logs.RequestLog(True, None).write(
                [logs.Answered(at, "GET", "/api/bags/{qr}", 200, 0.001, 7, f"rid-{i:04d}", True) for i in range(n)]
            )
    finally:
        logging.setLogRecordFactory(old_factory)
    assert 1 < len(stream.calls) < n
    assert all(len(call.encode()) <= logs.WRITE_MAX and call.endswith("\n") for call in stream.calls)
    lines = "".join(stream.calls).splitlines()
    assert [line.split("[")[1].split("]")[0] for line in lines] == [f"rid-{i:04d}" for i in range(n)]
    assert all(type(r) is Mine for r in records) and len(records) == n


def test_a_batch_that_cannot_be_written_is_reported_not_raised(capsys):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    with captured("text", Broken()):
        logs.RequestLog(True, None).write([logs.Answered(0.0, "GET", "/livez", 200, 0.001, None, "rid-x", True)])
    assert "disk full" in capsys.readouterr().err  # logging's own report (handleError), the thread goes on


def create_app_without_access_log(db: Database) -> falcon.App:
    from tracetrack_api.app import create_app

    return create_app(db, api_settings(), access_log=False)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_bug_is_a_bare_500_for_the_client_and_a_traceback_in_the_log_with_the_request_id(api, fmt):
    api.app.add_route("/test/boom", Boom())
    with captured(fmt) as out:
        result = api.get("/test/boom", headers={"X-Request-Id": "bug-report-7"})
    assert result.status_code == 500
    assert result.json == {
        "error": {
            "code": "internal_error",
            "request_id": "bug-report-7",
            "message": "an unexpected error happened; it has been logged",
        }
    }
    assert result.headers["X-Request-Id"] == "bug-report-7"
    assert "Traceback" not in result.text and "secret detail" not in result.text and "hunter2" not in result.text
    log = out.getvalue()
    assert "Traceback (most recent call last)" in log and "RuntimeError: secret detail" in log
    if fmt == "text":
        lines = [line for line in log.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
        assert len(lines) == 3  # the handler's line, the error with its traceback, the access line
        assert all("[bug-report-7]" in line for line in lines), lines
        assert "WARNING tracetrack_db.somewhere [bug-report-7] about to fail" in lines[0]
        assert "ERROR tracetrack_api [bug-report-7] unhandled error" in lines[1]
        assert "INFO tracetrack.access [bug-report-7] GET /test/boom 500 " in lines[2]
    else:
        records = [json.loads(line) for line in log.splitlines()]  # one object a line, the traceback inside
        assert [r["level"] for r in records] == ["WARNING", "ERROR", "INFO"]
        assert all(r["request_id"] == "bug-report-7" for r in records)
        assert "Traceback" in records[1]["exc_info"] and "RuntimeError" in records[1]["exc_info"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])
    # a line outside any request says so
    with captured() as out:
        logs.REQUEST_ID.set("-")
        logging.getLogger("tracetrack_db").warning("between requests")
    assert "[-] between requests" in out.getvalue()


def test_log_settings_from_the_environment_are_checked():
    assert logs.settings_from_env({}) == ("info", "text", True)
    assert logs.settings_from_env(
        {"TRACETRACK_LOG_LEVEL": "DEBUG", "TRACETRACK_LOG_FORMAT": "json", "TRACETRACK_ACCESS_LOG": "0"}
    ) == ("debug", "json", False)
    for bad in ({"TRACETRACK_LOG_LEVEL": "loud"}, {"TRACETRACK_LOG_FORMAT": "xml"}, {"TRACETRACK_ACCESS_LOG": "maybe"}):
        with pytest.raises(ConfigError, match="TRACETRACK_(LOG|ACCESS)_"):
            logs.settings_from_env(bad)


# probes ----------------------------------------------------------------------------
def test_probes_answer_when_all_is_well(api):
    assert api.get("/livez").json == {"status": "ok", "version": __version__}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "reason": None, "message": None, "pending_migrations": []}
    assert api.get("/health").json["version"] == __version__


def test_readyz_is_503_while_a_migration_is_pending_or_changed(api, sql_conn):
    last, name = sql_conn.execute(
        "SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1"
    ).fetchone()
    saved = sql_conn.execute("SELECT * FROM schema_migrations WHERE version = %s", (last,)).fetchone()
    sql_conn.execute("DELETE FROM schema_migrations WHERE version = %s", (last,))
    result = api.get("/readyz")
    assert result.status_code == 503 and result.headers["Retry-After"]
    assert result.json["status"] == "not_ready" and result.json["reason"] == "migrations_pending"
    assert result.json["pending_migrations"] == [f"{last:04d}_{name} (pending)"]
    assert "tracetrack db migrate" in result.json["message"]
    assert api.get("/livez").status_code == 200  # the process is fine: no restart
    sql_conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (%s, %s, %s, %s)", saved
    )
    assert api.get("/readyz").status_code == 200
    sql_conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    changed = api.get("/readyz")
    assert changed.status_code == 503 and changed.json["pending_migrations"][0].endswith("(changed)")
    sql_conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", (_checksum(1),))
    # a newer version migrated the database (a rolling deploy): this one still serves
    sql_conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')")
    assert api.get("/readyz").status_code == 200


def _checksum(version: int) -> str:
    from tracetrack_db import migrations

    return next(m.checksum for m in migrations.discover() if m.version == version)


def test_livez_needs_no_database_and_readyz_says_the_database_is_unreachable():
    down = Database("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1", min_size=0, max_size=1, timeout=0.3)
    down.pool.open(wait=False)
    try:
        api = Api(down, api_settings())
        live = api.get("/livez")
        assert live.status_code == 200 and live.json["status"] == "ok"
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert ready.json == {
            "status": "not_ready",
            "reason": "database_unavailable",
            "message": "the database does not answer",
            "pending_migrations": [],
        }
        assert api.get("/health").status_code == 503
    finally:
        down.close()


def test_probes_are_public_rows_of_the_route_table_and_the_document(api):
    from tracetrack_api import routes

    rows = {op.id: op for op in routes.OPERATIONS}
    for op_id, path in (("livez", "/livez"), ("readyz", "/readyz"), ("health", "/health")):
        assert rows[op_id].path == path and rows[op_id].roles is None
    doc = api.get("/openapi.json").json
    assert set(doc["paths"]["/livez"]["get"]["responses"]) == {"200"}
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"
    }


# the version -----------------------------------------------------------------------
def test_the_version_comes_from_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "tracetrack_db/version.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)
    with contextlib.suppress(PackageNotFoundError):  # a checkout that was never installed
        assert installed_version("tracetrack") == __version__  # the installed metadata agrees


def test_the_version_is_in_the_command_health_openapi_and_metrics(api):
    result = subprocess.run(
        [sys.executable, "-c", "from tracetrack_ops.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == f"tracetrack, version {__version__}"
    assert api.get("/health").json["version"] == __version__
    assert api.get("/openapi.json").json["info"]["version"] == __version__
    from prometheus_client import REGISTRY, generate_latest

    assert f'tracetrack_build_info{{version="{__version__}"}} 1.0' in generate_latest(REGISTRY).decode()


# the real server ---------------------------------------------------------------------
@pytest.mark.server
def test_serve_logs_each_request_with_its_id_and_reports_its_version(db_url):
    from .test_server import http, login, running_server

    with running_server(db_url, env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"}) as (base, proc):
        token = login(base, "admin", "tracetrack-demo")
        req = urllib.request.Request(
            base + "/api/bags/SB00001", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "from-nginx-123"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"] == "from-nginx-123"
        status, live, headers = http("GET", base + "/livez")
        assert status == 200 and live["version"] == __version__ and HEX32.fullmatch(headers["X-Request-Id"])
        assert http("GET", base + "/readyz")[0] == 200
        with urllib.request.urlopen(proc.metrics + "/metrics", timeout=10) as resp:
            assert f'tracetrack_build_info{{version="{__version__}"}} 1.0' in resp.read().decode()
        log = wait_for(proc, "[from-nginx-123]", "/livez 200", "/readyz 200")
    line = next(line for line in log.splitlines() if "[from-nginx-123]" in line)
    assert re.search(r"INFO tracetrack\.access \[from-nginx-123\] GET /api/bags/\{qr\} 200 [\d.]+ms user=\d+$", line), (
        line
    )
    records = log[log.index(" INFO ") :]  # the log lines (the demo's passwords are printed before)
    assert token not in records and "tracetrack-demo" not in records
    assert "/livez 200" in log and "/readyz 200" in log


@pytest.mark.server
def test_a_graceful_stop_writes_the_last_access_lines(db_url):
    """granian's workers end with os._exit (no atexit): before deferred.py flushed at
    multiprocessing's exit too, the lines of the last 0.2 s before a stop were lost."""
    from .test_server import http, running_server

    with running_server(db_url, "--no-demo", env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"}) as (base, proc):
        for _ in range(10):
            assert http("GET", base + "/livez")[0] == 200
        os.killpg(proc.pid, signal.SIGTERM)  # what systemd's stop does, at once
        proc.wait(30)
        log = proc.log()
    assert len([line for line in log.splitlines() if "tracetrack.access" in line and "/livez" in line]) == 10, log


@pytest.mark.server
def test_serve_logs_json_at_the_chosen_level_and_without_access_lines_when_asked(db_url):
    from .test_server import http, running_server

    with running_server(
        db_url,
        "--log-format",
        "json",
        "--no-access-log",
        "--log-level",
        "info",
        env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"},
    ) as (base, proc):
        assert http("GET", base + "/livez")[0] == 200
        log = proc.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, log  # granian's own lines, through the same formatter
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    assert not [r for r in records if r["logger"] == logs.ACCESS_LOGGER]


def wait_for(proc, *texts: str, seconds: float = 5) -> str:
    """The server's log once it holds every one of `texts` (or `seconds` passed): the
    workers write their access lines in batches, each worker its own."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        log = proc.log()
        if all(text in log for text in texts) or time.monotonic() > deadline:
            return log
        time.sleep(0.1)
