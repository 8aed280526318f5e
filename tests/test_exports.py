"""CSV exports: every row, filters, streaming in constant memory."""

from __future__ import annotations

import csv
import dataclasses
import io
import tracemalloc
from typing import Any

import pytest

from tracetrack_db import Bag, Bill, Database, exports, scans

from .factories import full_parent


def bulk_children(sql_conn, prefix: str, n: int, area: str = "lucknow") -> None:
    sql_conn.execute(
        """INSERT INTO bag (qr_id, type, dispatch_area, weight_kg)
                        SELECT %s || lpad(g::text, 7, '0'), 'child', %s, 1 FROM generate_series(1, %s) g""",
        (prefix, area, n),
    )


def consume(chunks) -> tuple[int, int]:
    """Lines and bytes of a stream, keeping nothing."""
    lines = size = 0
    for chunk in chunks:
        lines += chunk.count(b"\n")
        size += len(chunk)
    return lines, size


def test_bag_export_has_every_row_and_the_filters_of_the_list(db: Database, sql_conn):
    full_parent(db, 1, children=3)
    scans.open_parent(db, "SB00002", dispatch_area="indore")
    text = b"".join(exports.bags_csv(db)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5
    assert {r["qr_id"] for r in rows} == {"SB00001", "SB00002", "C00001-00", "C00001-01", "C00001-02"}
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Bag)]  # the columns of Bag, in order
    child = next(r for r in rows if r["qr_id"] == "C00001-00")
    assert child["parent_qr"] == "SB00001" and child["type"] == "child"
    only = list(csv.DictReader(io.StringIO(b"".join(exports.bags_csv(db, dispatch_area="indore")).decode())))
    assert [r["qr_id"] for r in only] == ["SB00002"]
    linked = list(csv.DictReader(io.StringIO(b"".join(exports.bags_csv(db, linked=True)).decode())))
    assert len(linked) == 3


def test_bill_export(db: Database):
    from tracetrack_db import bills

    bills.create_bill(db, "EXP-1", 2, destination='Delhi, "north"')
    bills.create_bill(db, "EXP-2", 3)
    rows = list(csv.DictReader(io.StringIO(b"".join(exports.bills_csv(db, q="exp-")).decode())))
    assert [r["bill_no"] for r in rows] == ["EXP-1", "EXP-2"]
    assert rows[0]["destination"] == 'Delhi, "north"'  # CSV quoting survives
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Bill)]


def test_large_export_streams_every_row_in_constant_memory(db: Database, sql_conn):
    bulk_children(sql_conn, "EXA", 20_000)
    bulk_children(sql_conn, "EXB", 180_000)
    sql_conn.execute("ANALYZE bag")

    def peak(**filters) -> tuple[int, int]:
        tracemalloc.start()
        lines, _ = consume(exports.bags_csv(db, **filters))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return lines, top

    small_lines, small_peak = peak(q="EXA")
    large_lines, large_peak = peak(q="EX")
    assert small_lines == 20_000 + 1 and large_lines == 200_000 + 1  # header + every row, no cap
    # ten times the rows, about the same peak: nothing grows with the row count
    assert large_peak < small_peak * 2 + 256 * 1024, (small_peak, large_peak)
    assert large_peak < 8 * 1024 * 1024


@pytest.mark.parametrize("status", ["nope"])
def test_bad_filter_is_refused_before_streaming(db: Database, status):
    from tracetrack_db import errors

    with pytest.raises(errors.ValidationError):
        exports.bills_csv(db, status=status)


def test_http_exports_give_their_slot_back_and_are_limited(db: Database):
    """Each export holds a connection while streaming: at most EXPORTS_AT_ONCE per
    process and one per user (429 beyond), and a finished or abandoned export
    frees its slot."""
    import falcon.testing

    from tracetrack_api.app import create_app
    from tracetrack_api.config import ApiSettings
    from tracetrack_api.handlers import reports
    from tracetrack_db import Settings, users

    app: Any = create_app(db, ApiSettings(db=Settings(), secret_key="export-secret-0123456789"))  # called as WSGI
    client = falcon.testing.TestClient(app)
    headers = []
    for n in range(reports.EXPORTS_AT_ONCE + 1):
        users.create_user(db, f"exporter{n}", "exporter-password", "admin")
        token = client.simulate_post(
            "/api/auth/login", json={"username": f"exporter{n}", "password": "exporter-password"}
        ).json["token"]
        headers.append({"Authorization": f"Bearer {token}"})
    full_parent(db, 1, children=2)
    for _ in range(reports.EXPORTS_AT_ONCE + 3):  # more than the slots, one after the other
        result = client.simulate_get("/api/exports/bags.csv", headers=headers[0])
        assert result.status_code == 200 and result.text.count("\n") == 4
    assert client.simulate_get("/api/exports/bills.csv?status=nope", headers=headers[0]).status_code == 400
    statuses = []
    held = [
        app(
            falcon.testing.create_environ("/api/exports/bills.csv", headers=headers[n]),  # started, not read
            lambda status, _headers, exc_info=None: statuses.append(status),
        )
        for n in range(reports.EXPORTS_AT_ONCE)
    ]
    assert statuses == ["200 OK"] * reports.EXPORTS_AT_ONCE
    mine = client.simulate_get("/api/exports/bags.csv", headers=headers[0])  # one at a time per user
    assert mine.status_code == 429 and mine.json["error"]["code"] == "too_many_exports"
    assert "you have an export running" in mine.json["error"]["message"] and mine.headers["retry-after"]
    busy = client.simulate_get("/api/exports/bags.csv", headers=headers[-1])  # the process's slots are taken
    assert busy.status_code == 429 and busy.json["error"]["code"] == "too_many_exports"
    for body in held:
        body.close()  # the client went away: the WSGI server closes the response
    for h in headers:
        assert client.simulate_get("/api/exports/bags.csv", headers=h).status_code == 200


def test_cells_a_spreadsheet_would_run_are_neutralised(db: Database):
    """Before, a biller's destination '=HYPERLINK(…)' reached the admin's spreadsheet
    as a live formula. Every text cell starting with = + - @, a tab or a CR gets a
    leading apostrophe; others are untouched; the stream is still COPY."""
    from tracetrack_db import bags, bills

    bills.create_bill(
        db, "CSV-1", 1, destination='=HYPERLINK("http://evil","x")', description="+1+1", vehicle_number="@SUM(A1)"
    )
    bills.create_bill(db, "CSV-2", 1, destination="\tcmd", description="\r=1", vehicle_number="UP32 AB 1")
    bags.register_bag(db, "-CMD-1", "child", "lucknow")
    rows = list(csv.DictReader(io.StringIO(b"".join(exports.bills_csv(db)).decode())))
    assert [(r["destination"], r["description"], r["vehicle_number"]) for r in rows] == [
        ('\'=HYPERLINK("http://evil","x")', "'+1+1", "'@SUM(A1)"),
        ("'\tcmd", "'\r=1", "UP32 AB 1"),
    ]
    assert [r["bill_no"] for r in rows] == ["CSV-1", "CSV-2"] and rows[0]["capacity"] == "1"
    bag = next(csv.DictReader(io.StringIO(b"".join(exports.bags_csv(db)).decode())))
    assert (bag["qr_id"], bag["type"], bag["weight_kg"]) == ("'-CMD-1", "child", "1.000")


def test_a_reader_that_stops_reading_has_its_export_aborted(db_url, sql_conn):
    """Before: a client that never read bags.csv held the COPY, its connection and
    its snapshot (vacuum's horizon) for as long as it kept the socket open. Now the
    watchdog aborts an export whose reader takes no data for TRACETRACK_EXPORT_STALL
    seconds: the COPY's session ends, the snapshot goes, and the user may export
    again. The process's slot stays taken until the socket closes (the server
    thread is still blocked on that client), so stalled clients hold at most
    EXPORTS_AT_ONCE threads; nginx's send_timeout closes them in a deployment."""
    import socket
    import time
    import urllib.error
    import urllib.request

    from .test_server import http, login, running_server

    bulk_children(sql_conn, "STALL-", 150_000)  # ~20 MB of CSV: more than every buffer on the way

    def copies() -> list[tuple]:
        return sql_conn.execute(
            "SELECT pid, backend_xmin FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'COPY (SELECT%%' AND pid <> pg_backend_pid()"
        ).fetchall()

    def wait_for(condition, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    def export(token: str) -> int:
        request = urllib.request.Request(base + "/api/exports/bills.csv", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.read().startswith(b"id,bill_no")
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with running_server(db_url, env_extra={"TRACETRACK_EXPORT_STALL": "2"}) as (base, proc):
        admin = login(base, "admin", "tracetrack-demo")
        assert (
            http(
                "POST",
                base + "/api/users",
                {"username": "biller2", "password": "tractor-monsoon-41", "role": "biller"},
                admin,
            )[0]
            == 201
        )
        billers = [login(base, "biller", "tracetrack-demo"), login(base, "biller2", "tractor-monsoon-41")]
        host, port = base.removeprefix("http://").split(":")
        stalled = []

        def stall(token: str) -> None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(
                f"GET /api/exports/bags.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # then read nothing more
            stalled.append(sock)

        try:
            stall(admin)
            wait_for(copies, "the export's COPY never showed up", 10)
            assert copies()[0][1] is not None  # it holds a snapshot
            wait_for(lambda: not copies(), f"the stalled export still holds its COPY: {copies()} {proc.log()}")
            assert "export aborted" in proc.log()
            assert export(admin) == 200  # the same user may export again: one slot of two is free
            stall(billers[0])
            wait_for(lambda: proc.log().count("export aborted") == 2, "the second stalled export was not aborted")
            # the line is logged as the abort starts; the backend ends a moment later
            wait_for(lambda: not copies(), f"the second stalled export still holds its COPY: {copies()}", 10)
            assert export(billers[1]) == 429  # both slots held by stalled threads: none for more
        finally:
            for sock in stalled:
                sock.close()
        wait_for(lambda: export(billers[1]) == 200, "closing the stalled sockets did not give the slots back")


def test_an_export_runs_under_a_statement_timeout(db: Database, sql_conn, monkeypatch):
    """An export's COPY cannot run (and hold its snapshot) longer than
    TRACETRACK_EXPORT_TIMEOUT; the timeout is the export's own (SET LOCAL): the
    pooled connection goes back without it."""
    import psycopg

    bulk_children(sql_conn, "SLOW-", 100_000)
    monkeypatch.setenv("TRACETRACK_EXPORT_TIMEOUT", "0.001")
    with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        consume(exports.bags_csv(db))
    monkeypatch.delenv("TRACETRACK_EXPORT_TIMEOUT")
    assert consume(exports.bags_csv(db))[0] == 100_001
    with db.connection(read=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_one_export_per_user_across_processes_without_redis(db: Database):
    """Two workers (their own in-process caches, no Redis): the user's export mark is
    in PostgreSQL, so a second export by the same user on the other worker is 429."""
    import falcon.testing

    from tracetrack_api.app import create_app
    from tracetrack_api.config import ApiSettings
    from tracetrack_db import Settings, users

    settings = ApiSettings(db=Settings(), secret_key="export-secret-0123456789")
    one: Any = create_app(db, settings)  # called as WSGI below
    two = create_app(db, settings)
    users.create_user(db, "exporter", "exporter-password", "admin")
    token = (
        falcon.testing.TestClient(one)
        .simulate_post("/api/auth/login", json={"username": "exporter", "password": "exporter-password"})
        .json["token"]
    )
    headers = {"Authorization": f"Bearer {token}"}
    held = one(falcon.testing.create_environ("/api/exports/bills.csv", headers=headers), lambda *a, **k: None)
    try:
        second = falcon.testing.TestClient(two).simulate_get("/api/exports/bags.csv", headers=headers)
        assert second.status_code == 429 and "you have an export running" in second.json["error"]["message"]
    finally:
        held.close()
    assert falcon.testing.TestClient(two).simulate_get("/api/exports/bags.csv", headers=headers).status_code == 200
