"""Offline scanners that sync (issue 12, items 6-7): a list of operations, a
verdict each with the single calls' results and codes, kept per (device,
client op id) so a resend changes nothing; device times on events and in
history; clock bounds; and two scanners offline at once over the same parents."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tracetrack_db import errors, events, migrations, scans, sync

from .api_helpers import *  # noqa: F403
from .conftest import with_dbname
from .factories import check_counters, fill, run_together

_ids = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


def op(kind: str, at: datetime | None = None, op_id: str | None = None, **args) -> dict:
    """One operation as a scanner sends it (device time: a minute ago unless given)."""
    return {
        "client_op_id": op_id or f"op-{next(_ids)}",
        "op": kind,
        "device_time": (at or now() - timedelta(minutes=1)).isoformat(),
        **args,
    }


def codes(answer: sync.SyncAnswer | dict) -> list[str | None]:
    """ok, or the error code, per operation."""
    results = answer.results if isinstance(answer, sync.SyncAnswer) else answer["results"]
    out: list[str | None] = []
    for r in results:
        verdict, code = (r.verdict, r.code) if isinstance(r, sync.SyncVerdict) else (r["verdict"], r["code"])
        out.append("ok" if verdict == "ok" else code)
    return out


# the library ----------------------------------------------------------------------------
def test_every_operation_gets_the_single_calls_result(db, sql_conn):
    fill(db, "SB00002", 1, "OLD")
    answer = sync.sync(
        db,
        "scanner-1",
        [
            op("open_parent", qr_id="sb00001", dispatch_area="lucknow"),
            op("open_parent", qr_id="SB00001"),
            op("link_child", parent_qr="SB00001", child_qr="kid-1"),
            op("link_child", parent_qr="SB00001", child_qr="KID-1"),
            op("link_child", parent_qr="SB00001", child_qr="KID-2"),
            op("unlink_child", child_qr="KID-2"),
            op("move_child", child_qr="KID-1", to_parent_qr="SB00002"),
        ],
    )
    assert answer.device_id == "scanner-1" and codes(answer) == ["ok"] * 7
    r = answer.results
    assert [v.op for v in r] == ["open_parent"] * 2 + ["link_child"] * 3 + ["unlink_child", "move_child"]
    assert (r[0].status, r[0].result["created"], r[0].result["bag"]["qr_id"]) == (201, True, "SB00001")
    assert (r[1].status, r[1].result["created"]) == (200, False)
    assert [x.result["result"] for x in r[2:5]] == ["linked", "already_linked", "linked"]
    assert r[4].result["child_count"] == 2
    assert r[5].result == {
        "child_qr": "KID-2",
        "parent_qr": "SB00001",
        "child_count": 1,
        "capacity": 30,
        "parent_status": "in_progress",
    }
    assert (r[6].result["result"], r[6].result["from_parent_qr"], r[6].result["child_count"]) == (
        "moved",
        "SB00001",
        2,
    )
    assert all(v.replayed is False and v.code is None and v.message is None for v in r)
    check_counters(sql_conn)


def test_errors_are_the_single_calls_codes_and_change_nothing(db, sql_conn):
    fill(db, "SB00001", 30, "FULL")
    fill(db, "SB00002", 1, "ONE")
    fill(db, "SB00003", 1, "FAR", area="indore")
    before = (count_events(sql_conn), sql_value(sql_conn, "SELECT sum(child_count) FROM bag"))
    answer = sync.sync(
        db,
        "scanner-1",
        [
            op("open_parent", qr_id="CHILD-9", dispatch_area="lucknow"),  # not_a_parent
            op("open_parent", qr_id="SB00009"),  # dispatch_area_required
            op("open_parent", qr_id="SB00009", dispatch_area="mars"),  # unknown_area
            op("link_child", parent_qr="SB00001", child_qr="NEW-1"),  # parent_full
            op("link_child", parent_qr="SB00002", child_qr="FULL-01"),  # child_in_other_parent
            op("link_child", parent_qr="SB00404", child_qr="NEW-1"),  # bag_not_found
            op("link_child", parent_qr="SB00002", child_qr="SB00001"),  # not_a_child
            op("link_child", parent_qr="SB00003", child_qr="ONE-00"),  # wrong_area (indore's parent)
            op("unlink_child", child_qr="NOPE-1"),  # bag_not_found
            op("move_child", child_qr="ONE-00", to_parent_qr="SB00001"),  # parent_full
            op("move_child", child_qr="ONE-00", to_parent_qr="SB00003"),  # wrong_area
        ],
    )
    assert codes(answer) == [
        "not_a_parent",
        "dispatch_area_required",
        "unknown_area",
        "parent_full",
        "child_in_other_parent",
        "bag_not_found",
        "not_a_child",
        "wrong_area",
        "bag_not_found",
        "parent_full",
        "wrong_area",
    ]
    assert [v.status for v in answer.results] == [422, 400, 400, 409, 409, 404, 422, 403, 404, 409, 403]
    assert all(v.verdict == "error" and v.result is None and v.message for v in answer.results)
    assert (count_events(sql_conn), sql_value(sql_conn, "SELECT sum(child_count) FROM bag")) == before
    # every verdict is kept, errors too
    assert count_rows(sql_conn, "sync_op", "code IS NOT NULL") == 11
    # unlink and the bill rule
    scans.unlink_child(db, "ONE-00")
    assert codes(sync.sync(db, "scanner-1", [op("unlink_child", child_qr="ONE-00")])) == ["child_not_linked"]


def test_error_codes_pass_through_generically(db, monkeypatch):
    """A code the library gains later (say parent_closed) reaches the verdict unchanged."""

    class ParentClosed(errors.Conflict):
        code = "parent_closed"

    def closed(*args, **kwargs):
        raise ParentClosed("SB00001 was closed short")

    monkeypatch.setattr(scans, "link_child", closed)
    answer = sync.sync(db, "scanner-1", [op("link_child", parent_qr="SB00001", child_qr="KID-1")])
    v = answer.results[0]
    assert (v.verdict, v.code, v.status, v.message) == ("error", "parent_closed", 409, "SB00001 was closed short")


def test_a_resend_changes_nothing_and_answers_the_same_verdicts(db, sql_conn):
    fill(db, "SB00001", 29, "NEAR")
    ops = [
        op("link_child", parent_qr="SB00001", child_qr="LAST-1"),  # fills it
        op("link_child", parent_qr="SB00001", child_qr="LAST-2"),  # parent_full
        op("unlink_child", child_qr="NEAR-00"),
        op("open_parent", qr_id="SB00002", dispatch_area="lucknow"),
    ]
    first = sync.sync(db, "scanner-1", ops)
    assert codes(first) == ["ok", "parent_full", "ok", "ok"]
    state = (
        count_events(sql_conn),
        sql_conn.execute("SELECT qr_id, parent_id, child_count, status FROM bag ORDER BY id").fetchall(),
    )
    # the state changed meanwhile: a replay does not look at it
    again = sync.sync(db, "scanner-1", ops)
    assert (
        count_events(sql_conn),
        sql_conn.execute("SELECT qr_id, parent_id, child_count, status FROM bag ORDER BY id").fetchall(),
    ) == state
    assert [(v.verdict, v.status, v.result, v.code, v.message) for v in again.results] == [
        (v.verdict, v.status, v.result, v.code, v.message) for v in first.results
    ]
    assert all(v.replayed for v in again.results)
    # a longer list: the known ones replay, the new one runs
    more = sync.sync(db, "scanner-1", [*ops, op("link_child", parent_qr="SB00001", child_qr="LAST-2")])
    assert [v.replayed for v in more.results] == [True] * 4 + [False]
    assert codes(more) == ["ok", "parent_full", "ok", "ok", "ok"]
    # the same op id on another device is another operation
    other = sync.sync(db, "scanner-2", ops[3:])
    assert other.results[0].replayed is False and other.results[0].status == 200


def test_an_op_id_reused_for_another_operation_is_refused(db, sql_conn):
    at = now() - timedelta(minutes=3)
    original = op("open_parent", at=at, op_id="a1", qr_id="SB00001", dispatch_area="lucknow")
    assert codes(sync.sync(db, "scanner-1", [original], user_id=None)) == ["ok"]
    events_before = count_events(sql_conn)
    variants = [
        (op("link_child", at=at, op_id="a1", parent_qr="SB00001", child_qr="KID-1"), None),  # another kind
        (op("open_parent", at=at, op_id="a1", qr_id="SB00002", dispatch_area="lucknow"), None),  # other arguments
        (op("open_parent", at=at - timedelta(seconds=5), op_id="a1", qr_id="SB00001", dispatch_area="lucknow"), None),
    ]
    for variant, user_id in variants:
        answer = sync.sync(db, "scanner-1", [variant], user_id=user_id)
        assert codes(answer) == ["client_op_id_reused"] and answer.results[0].status == 409
        assert answer.results[0].replayed is False
    assert count_events(sql_conn) == events_before
    assert count_rows(sql_conn, "sync_op") == 1  # a refusal of reuse is not kept (the id is the first op's)
    # the original itself still replays
    assert sync.sync(db, "scanner-1", [original]).results[0].replayed is True


def test_device_clock_bounds_refuse_per_operation(db, sql_conn):
    server = sql_value(sql_conn, "SELECT now()")
    answer = sync.sync(
        db,
        "scanner-1",
        [
            op("open_parent", at=server + timedelta(hours=1), qr_id="SB00001", dispatch_area="lucknow"),
            op("open_parent", at=server - timedelta(days=8), qr_id="SB00002", dispatch_area="lucknow"),
            op("open_parent", at=server - timedelta(days=6), qr_id="SB00003", dispatch_area="lucknow"),
            op("open_parent", at=server + timedelta(minutes=2), qr_id="SB00004", dispatch_area="lucknow"),
        ],
    )
    assert codes(answer) == ["device_time_out_of_range", "device_time_out_of_range", "ok", "ok"]
    assert "ahead" in answer.results[0].message and "behind" in answer.results[1].message
    assert answer.results[0].status == 400
    assert sql_value(sql_conn, "SELECT count(*) FROM bag") == 2
    # the bounds are the caller's (the API's settings)
    kept_ops = [op("open_parent", at=server - timedelta(hours=2), qr_id="SB00005", dispatch_area="lucknow")]
    tight = sync.sync(db, "scanner-2", kept_ops, max_behind_seconds=3600)
    assert codes(tight) == ["device_time_out_of_range"]
    # the refusal is kept: a resend answers it again, even under bounds that would take it now
    resent = sync.sync(db, "scanner-2", kept_ops, max_behind_seconds=30 * 86400)
    assert codes(resent) == ["device_time_out_of_range"] and resent.results[0].replayed


def test_events_keep_the_device_time_and_history_orders_by_it(db, sql_conn):
    fill(db, "SB00001", 0, "X")
    online_at = sql_value(sql_conn, "SELECT now()")
    scans.link_child(db, "SB00001", "ONLINE-1")  # scanned now, online
    earlier = online_at - timedelta(hours=2)
    answer = sync.sync(
        db,
        "scanner-1",
        [
            op("link_child", at=earlier, parent_qr="SB00001", child_qr="OFFLINE-1"),
            op("link_child", at=earlier + timedelta(minutes=1), parent_qr="SB00001", child_qr="OFFLINE-2"),
        ],
    )
    assert codes(answer) == ["ok", "ok"]
    rows = sql_conn.execute(
        "SELECT qr_id, device_time, occurred_at, idempotency_key FROM event WHERE kind = 'link' ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == ["ONLINE-1", "OFFLINE-1", "OFFLINE-2"]
    assert rows[0][1] is None  # a scan that was no sync has no device time
    assert rows[1][1] == earlier and rows[1][2] >= online_at  # both times kept
    assert rows[1][3].startswith("sync:scanner-1:")
    history = events.bag_history(db, "SB00001").items
    links = [e.qr_id for e in history if e.kind == "link"]
    assert links == ["OFFLINE-1", "OFFLINE-2", "ONLINE-1"]  # as they were scanned, not as they arrived
    assert [e.device_time for e in history if e.kind == "link"][:2] == [earlier, earlier + timedelta(minutes=1)]
    # the setting ends with its transaction: the next scan on a pooled connection has none
    scans.link_child(db, "SB00001", "ONLINE-2")
    assert sql_value(sql_conn, "SELECT device_time FROM event WHERE qr_id = 'ONLINE-2'") is None


def test_the_device_time_column_did_not_rewrite_the_event_table(pg_server_url):
    """0018 adds event.device_time with a STABLE default: PostgreSQL evaluates it once
    (NULL: the setting is unset), keeps the rows already there as they are and the
    table keeps its file."""
    name = f"tt_sync_rewrite_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(pg_server_url, name)
    try:
        shipped = migrations.discover()
        version = next(m.version for m in shipped if m.name == "offline_sync")
        # without the views files: today's read event.device_time, which 0018 adds
        migrations.migrate(url, shipped[: version - 1], views=[])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO event (kind, qr_id) SELECT 'bag_created', 'OLD-' || g FROM generate_series(1, 1000) g"
            )
            before = conn.execute("SELECT pg_relation_filenode('event')").fetchone()
            migrations.migrate(url, shipped[:version])
            after = conn.execute("SELECT pg_relation_filenode('event')").fetchone()
            old = conn.execute("SELECT count(*), count(device_time) FROM event WHERE qr_id LIKE 'OLD-%'").fetchone()
        assert before == after  # no rewrite (a volatile default, say clock_timestamp(), gives a new file)
        assert old == (1000, 0)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_list_is_checked_whole_before_anything_runs(db, sql_conn):
    good = op("open_parent", qr_id="SB00001", dispatch_area="lucknow")
    cases = [
        ([], "validation_error", "operations"),
        ("nope", "validation_error", "operations"),
        ([good, "x"], "validation_error", "operations[1]"),
        ([good, {**good, "client_op_id": "other", "op": "fly"}], "validation_error", "operations[1].op"),
        ([good, {**good, "client_op_id": "other", "extra": 1}], "validation_error", "operations[1].extra"),
        (
            [good, {k: v for k, v in good.items() if k != "device_time"} | {"client_op_id": "b"}],
            "validation_error",
            "operations[1].device_time",
        ),
        (
            [good, {**good, "client_op_id": "b", "device_time": "2024-01-01T10:00:00"}],
            "validation_error",
            "operations[1].device_time",
        ),
        ([good, {**good, "client_op_id": "b", "qr_id": "S"}], "invalid_qr", "operations[1].qr_id"),
        (
            [good, {**good, "client_op_id": "b", "dispatch_area": "Not An Area"}],
            "unknown_area",
            "operations[1].dispatch_area",
        ),
        ([good, op("link_child", parent_qr="SB00001")], "validation_error", "operations[1].child_qr"),
        ([good, {**good, "client_op_id": "has space"}], "validation_error", "operations[1].client_op_id"),
        ([good, dict(good)], "duplicate_client_op_id", "operations[1].client_op_id"),
        ([good] + [op("open_parent", qr_id="SB00001") for _ in range(1000)], "validation_error", "operations"),
    ]
    for ops, code, field in cases:
        with pytest.raises(errors.ValidationError) as caught:
            sync.sync(db, "scanner-1", ops)
        assert (caught.value.code, caught.value.field) == (code, field), ops[:3] if isinstance(ops, list) else ops
    with pytest.raises(errors.ValidationError) as caught:
        sync.sync(db, "bad device!", [good])
    assert caught.value.field == "device_id"
    assert count_rows(sql_conn, "bag") == count_rows(sql_conn, "sync_op") == count_events(sql_conn) == 0


# over HTTP ------------------------------------------------------------------------------
def test_over_http_with_roles_area_confinement_and_replay(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.parent_with_children(admin, "SB00003", 1, area="indore")
    body = {
        "device_id": "hh-01",
        "operations": [
            op("open_parent", qr_id="SB00001"),  # the dispatcher's area
            op("link_child", parent_qr="SB00001", child_qr="KID-1"),
            op("open_parent", qr_id="SB00002", dispatch_area="indore"),  # wrong_area
            op("link_child", parent_qr="SB00003", child_qr="KID-2"),  # another area's: unknown
            op("move_child", child_qr="KID-1", to_parent_qr="SB00003"),  # unknown too
            op("unlink_child", child_qr="KID-1"),
        ],
    }
    first = api.post("/api/scans/sync", dispatcher, json=body)
    assert first.status_code == 200, first.text
    assert_schema(first, "POST", "/api/scans/sync")
    assert first.json["device_id"] == "hh-01"
    assert codes(first.json) == ["ok", "ok", "wrong_area", "bag_not_found", "bag_not_found", "ok"]
    r = first.json["results"]
    assert set(r[0]) == {"client_op_id", "op", "verdict", "status", "result", "code", "message", "replayed"}
    assert r[0]["status"] == 201 and r[0]["result"]["bag"]["dispatch_area"] == "lucknow"
    assert r[0]["result"]["bag"]["created_by"] == dispatcher.id
    assert r[1]["result"] == {
        "result": "linked",
        "child_count": 1,
        "capacity": 30,
        "parent_status": "in_progress",
        "weight_kg": 1.0,
    }
    assert [x["client_op_id"] for x in r] == [o["client_op_id"] for o in body["operations"]]
    events_before = count_events(sql_conn)
    again = api.post("/api/scans/sync", dispatcher, json=body)
    assert again.status_code == 200 and count_events(sql_conn) == events_before
    assert [{**x, "replayed": False} for x in again.json["results"]] == r
    assert all(x["replayed"] for x in again.json["results"])
    # who did it: the caller; the single calls agree
    assert sql_value(sql_conn, "SELECT user_id FROM event WHERE qr_id = 'KID-1' AND kind = 'link'") == dispatcher.id
    single = api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00003", "child_qr": "KID-2"})
    assert_error(single, 404, "bag_not_found")
    # another user naming the same device and op ids has their own: none of the dispatcher's
    # verdicts is answered to them
    theirs = api.post("/api/scans/sync", admin, json=body)
    assert theirs.status_code == 200 and not any(x["replayed"] for x in theirs.json["results"])
    # roles: billers do not scan
    assert_error(api.post("/api/scans/sync", api.biller(), json=body), 403, "forbidden")
    assert_error(api.post("/api/scans/sync", None, json=body), 401, "unauthenticated")


def test_bad_bodies_are_400_and_change_nothing(api, sql_conn):
    """The field is the body's (operations); the message names the operation and its argument."""
    dispatcher = api.dispatcher("lucknow")
    good = op("open_parent", qr_id="SB00001")
    cases = [
        ({"operations": [good]}, "validation_error", "device_id", "device_id"),
        ({"device_id": "hh-01"}, "validation_error", "operations", "operations"),
        ({"device_id": "", "operations": [good]}, "validation_error", "device_id", "device_id"),
        ({"device_id": "hh-01", "operations": [good, good]}, "duplicate_client_op_id", "operations", "operations[1]"),
        (
            {"device_id": "hh-01", "operations": [good, {**good, "client_op_id": "z", "op": "nope"}]},
            "validation_error",
            "operations",
            "operations[1].op",
        ),
        (
            {"device_id": "hh-01", "operations": [good, {**good, "client_op_id": "z", "qr_id": "S"}]},
            "invalid_qr",
            "operations",
            "operations[1].qr_id: invalid QR code",
        ),
        ({"device_id": "hh-01", "operations": [good], "extra": 1}, "validation_error", "extra", "extra"),
    ]
    for body, code, field, said in cases:
        error = assert_error(api.post("/api/scans/sync", dispatcher, json=body), 400, code, field)
        assert said in error["message"], error
    assert count_rows(sql_conn, "bag") == count_rows(sql_conn, "sync_op") == 0


def test_a_list_of_a_thousand_operations(api, sql_conn):
    """33 parents: 32 of 30 children, the last of 7 in one body, past TRACETRACK_MAX_BODY (64 KiB) but
    within the route's own limit; then a resend replays all of them."""
    dispatcher = api.dispatcher("lucknow")
    ops = []
    for p in range(33):
        parent = f"SB{p + 1:05d}"
        ops.append(op("open_parent", qr_id=parent))
        ops.extend(op("link_child", parent_qr=parent, child_qr=f"T{p:02d}-{c:02d}") for c in range(30))
        if len(ops) >= 1000:
            break
    ops = ops[:1000]
    body = {"device_id": "hh-big", "operations": ops}
    first = api.post("/api/scans/sync", dispatcher, json=body)
    assert first.status_code == 200, first.text[:300]
    assert len(first.json["results"]) == 1000 and set(codes(first.json)) == {"ok"}
    links = sum(1 for o in ops if o["op"] == "link_child")
    assert count_events(sql_conn, "link") == links and count_rows(sql_conn, "sync_op") == 1000
    again = api.post("/api/scans/sync", dispatcher, json=body)
    assert all(x["replayed"] for x in again.json["results"]) and count_events(sql_conn, "link") == links
    check_counters(sql_conn)
    too_many = {"device_id": "hh-big", "operations": ops + [op("unlink_child", child_qr="T00-00")]}
    assert_error(api.post("/api/scans/sync", dispatcher, json=too_many), 400, "validation_error", "operations")


# item 7: two scanners offline at once ----------------------------------------------------
def test_two_offline_scanners_over_the_same_parents(api, db, sql_conn):
    """Both scanners were offline with the same parents: both link into SB00001 with two
    places left, one takes out (unlink, move) what the other put in, both put one child
    into different parents. They sync at the same moment on their own threads and
    connections through the API; every operation gets one verdict, the conflicts are
    error verdicts with their codes, the invariants hold, and a resend answers the same."""
    admin = api.admin()
    north, south = api.dispatcher("lucknow"), api.dispatcher("lucknow")
    api.parent_with_children(admin, "SB00001", 28, area="lucknow")  # two places left
    for p in ("SB00002", "SB00003", "SB00004"):
        api.open_parent(admin, p, area="lucknow")
    base = now() - timedelta(minutes=30)
    t = itertools.count()

    def at() -> datetime:
        return base + timedelta(seconds=next(t))

    north_ops = [op("link_child", at=at(), parent_qr="SB00001", child_qr=f"NRT-{i}") for i in range(3)]
    north_ops += [
        op("link_child", at=at(), parent_qr="SB00002", child_qr="BOTH-1"),  # south puts it in SB00003
        op("unlink_child", at=at(), child_qr="STH-0"),  # south's child, maybe not linked yet
        op("move_child", at=at(), child_qr="STH-1", to_parent_qr="SB00004"),
        op("link_child", at=at(), parent_qr="SB00004", child_qr="NRT-9"),
    ]
    south_ops = [op("link_child", at=at(), parent_qr="SB00001", child_qr=f"STH-{i}") for i in range(3)]
    south_ops += [
        op("link_child", at=at(), parent_qr="SB00003", child_qr="BOTH-1"),
        op("unlink_child", at=at(), child_qr="NRT-0"),
        op("move_child", at=at(), child_qr="NRT-1", to_parent_qr="SB00003"),
        op("move_child", at=at(), child_qr="SB00001-C000", to_parent_qr="SB00002"),  # frees a place
    ]
    bodies = {"north": (north, {"device_id": "hh-north", "operations": north_ops})}
    bodies["south"] = (south, {"device_id": "hh-south", "operations": south_ops})
    answers: dict[str, dict] = {}

    def run(name: str) -> None:
        caller, body = bodies[name]
        result = api.post("/api/scans/sync", caller, json=body)
        assert result.status_code == 200, result.text
        answers[name] = result.json

    senders = [lambda name=name: run(name) for name in bodies]
    assert run_together(*senders) == []

    # one verdict per operation, in order, each ok or an error with a code
    for name, (_caller, body) in bodies.items():
        results = answers[name]["results"]
        assert [r["client_op_id"] for r in results] == [o["client_op_id"] for o in body["operations"]]
        for r in results:
            assert (r["verdict"], r["result"] is None, r["code"] is None) in (
                ("ok", False, True),
                ("error", True, False),
            )
    verdicts = {
        o["client_op_id"]: r
        for name in bodies
        for o, r in zip(bodies[name][1]["operations"], answers[name]["results"], strict=True)
    }

    # the invariants
    check_counters(sql_conn)  # no parent over capacity, counters equal the real counts
    # a child is in one parent (parent_id is one column): BOTH-1 is where its ok verdict put it
    both = [
        r
        for r in verdicts.values()
        if r["op"] == "link_child" and r["client_op_id"] in {north_ops[3]["client_op_id"], south_ops[3]["client_op_id"]}
    ]
    assert sorted(r["verdict"] for r in both) == ["error", "ok"]
    assert [r["code"] for r in both if r["verdict"] == "error"] == ["child_in_other_parent"]
    # SB00001 took at most the places it had (two, a third if SB00001-C000 left first)
    into_first = [verdicts[o["client_op_id"]] for o in north_ops[:3] + south_ops[:3]]
    linked = [r for r in into_first if r["verdict"] == "ok"]
    assert 2 <= len(linked) <= 3
    assert {r["code"] for r in into_first if r["verdict"] == "error"} == {"parent_full"}
    # every child whose link was ok is in some parent unless a later ok unlink or move says otherwise
    state = dict(
        sql_conn.execute(
            "SELECT c.qr_id, p.qr_id FROM bag c LEFT JOIN bag p ON p.id = c.parent_id WHERE c.type = 'child'"
        ).fetchall()
    )
    for name, (_caller, body) in bodies.items():
        for o, r in zip(body["operations"], answers[name]["results"], strict=True):
            if o["op"] == "unlink_child" and r["verdict"] == "ok":
                assert r["result"]["child_qr"] == o["child_qr"]
            if o["op"] == "unlink_child" and r["verdict"] == "error":
                assert r["code"] in ("child_not_linked", "bag_not_found")
            if o["op"] == "move_child" and r["verdict"] == "error":
                assert r["code"] in ("child_not_linked", "bag_not_found", "parent_full")
    # nothing silently dropped: the events match the ok verdicts
    ok_links = sum(
        1
        for r in verdicts.values()
        if r["op"] == "link_child" and r["verdict"] == "ok" and r["result"]["result"] == "linked"
    )
    ok_unlinks = sum(1 for r in verdicts.values() if r["op"] == "unlink_child" and r["verdict"] == "ok")
    ok_moves = sum(
        1
        for r in verdicts.values()
        if r["op"] == "move_child" and r["verdict"] == "ok" and r["result"]["result"] == "moved"
    )
    synced = sql_conn.execute(
        "SELECT count(*) FILTER (WHERE kind = 'link' AND details IS NULL), count(*) FILTER (WHERE kind = 'unlink' "
        "AND details IS NULL), count(*) FILTER (WHERE kind = 'link' AND details->>'move' = 'true') "
        "FROM event WHERE device_time IS NOT NULL"
    ).fetchone()
    assert synced == (ok_links, ok_unlinks, ok_moves)
    assert count_rows(sql_conn, "sync_op") == len(north_ops) + len(south_ops)
    assert state["NRT-9"] == "SB00004"

    # both resend at once: the same verdicts, nothing changes
    events_before = count_events(sql_conn)
    first = dict(answers)
    answers.clear()
    assert run_together(*senders) == [] and count_events(sql_conn) == events_before
    for name in bodies:
        assert [{**r, "replayed": False} for r in answers[name]["results"]] == first[name]["results"]
        assert all(r["replayed"] for r in answers[name]["results"])
    check_counters(sql_conn)


def test_the_same_list_sent_twice_at_once_answers_one_verdict_per_operation(db, sql_conn):
    """A scanner that retried while its first request was still running: each operation
    runs once, and both answers carry the same verdicts (one of them replayed)."""
    fill(db, "SB00001", 0, "X")
    ops = [op("link_child", parent_qr="SB00001", child_qr=f"TWICE-{i}") for i in range(20)]
    ops += [op("unlink_child", child_qr=f"TWICE-{i}") for i in range(0, 20, 2)]
    answers: list[sync.SyncAnswer] = []

    def send() -> None:
        answers.append(sync.sync(db, "scanner-1", ops))

    assert run_together(send, send) == []
    assert len(answers) == 2
    first, second = answers
    assert codes(first) == codes(second) == ["ok"] * 30
    for a, b in zip(first.results, second.results, strict=True):
        assert (a.status, a.result) == (b.status, b.result) and a.replayed != b.replayed
    assert count_events(sql_conn, "link") == 20 and count_events(sql_conn, "unlink") == 10
    check_counters(sql_conn)


def test_reports_and_the_dashboard_count_synced_events_when_they_were_scanned(db, sql_conn):
    """Events synced days late land in the day and hour they were scanned: from the
    event log before the next roll-up, from the rollup after it, once each; and a
    device clock ahead of the server counts at the server's time."""
    from zoneinfo import ZoneInfo

    from tracetrack_db import reports, views

    reports.roll_up(db, zone="Asia/Kolkata")
    # the last roll-up 45 minutes ago; a sync applied 30 minutes ago brought 3 links scanned
    # 3 days ago and one from a device 2 minutes ahead (rows as sync writes them)
    last_roll = datetime.fromtimestamp((now() - timedelta(minutes=45)).timestamp() // 900 * 900, UTC)
    sql_conn.execute("UPDATE event_rollup_state SET rolled_to = %s WHERE time_zone = ''", (last_roll,))
    applied = now() - timedelta(minutes=30)
    scanned = (now() - timedelta(days=3)).replace(minute=20, second=0, microsecond=0)
    for device_time in [scanned + timedelta(minutes=i) for i in range(3)] + [applied + timedelta(minutes=2)]:
        sql_conn.execute(
            "INSERT INTO event (occurred_at, device_time, kind, user_id, dispatch_area) "
            "VALUES (%s, %s, 'link', NULL, 'lucknow')",
            (applied, device_time),
        )
    first = scanned.date() - timedelta(days=1)

    def links_per_bucket(zone: str, bucket: str) -> dict:
        last = now().astimezone(ZoneInfo(zone)).date()  # the zone's own today: Kolkata's is tomorrow from 18:30 UTC
        report = reports.activity_report(db, first, last, zone=zone, bucket=bucket)
        assert report.totals.links == 4
        return {b.start: b.counts.links for b in report.buckets if b.counts.links}

    def expected(zone: str, bucket: str) -> dict:
        cut = {"minute": 0, "second": 0, "microsecond": 0} | ({"hour": 0} if bucket == "day" else {})
        late = scanned.astimezone(ZoneInfo(zone)).replace(**cut)
        ahead = applied.astimezone(ZoneInfo(zone)).replace(**cut)  # the server's time, not the device's
        return {late: 3, ahead: 1}

    cases = [(zone, bucket) for zone in ("UTC", "Asia/Kolkata") for bucket in ("day", "hour")]
    for case in cases:
        assert links_per_bucket(*case) == expected(*case), case
    reports.roll_up(db)  # adds the late ones to their old quarters and days (not the last hour's recount)
    reports.roll_up(db)  # again: nothing counted twice
    for case in cases:
        assert links_per_bucket(*case) == expected(*case), case
    quarters = sql_value(
        sql_conn,
        "SELECT sum(events) FROM event_rollup WHERE time_zone = '' AND kind = 'link' AND period_start < %s",
        (now() - timedelta(days=1),),
    )
    assert quarters == 3
    # the dashboard's hourly chart: a sync now of a link scanned 3 hours ago, in that hour
    fill(db, "SB00001", 0, "X")
    three_hours_ago = now() - timedelta(hours=3)
    assert codes(
        sync.sync(db, "hh-2", [op("link_child", at=three_hours_ago, parent_qr="SB00001", child_qr="HOUR-1")])
    ) == ["ok"]
    views.refresh_views(db)
    hourly = {h.hour: h.scans for h in views.analytics(db).scans.hourly}
    assert hourly[three_hours_ago.replace(minute=0, second=0, microsecond=0)] == 1


def test_another_user_cannot_squat_on_a_scanners_device_and_op_ids(api, sql_conn):
    """A dispatcher of another area syncing junk under a scanner's (guessable) device
    id and op ids first must not refuse or answer that scanner's real operations."""
    victim, squatter = api.dispatcher("lucknow"), api.dispatcher("indore")
    junk = [op("unlink_child", op_id=str(i), child_qr=f"NOPE-{i}") for i in range(1, 4)]
    assert api.post("/api/scans/sync", squatter, json={"device_id": "scanner-7", "operations": junk}).status_code == 200
    api.open_parent(victim, "SB00001")
    real = [op("link_child", op_id="1", parent_qr="SB00001", child_qr="REAL-1")]
    answer = api.post("/api/scans/sync", victim, json={"device_id": "scanner-7", "operations": real})
    assert codes(answer.json) == ["ok"] and not answer.json["results"][0]["replayed"], answer.text
    assert sql_value(sql_conn, "SELECT child_count FROM bag WHERE qr_id = 'SB00001'") == 1


def test_a_device_time_beyond_the_storable_years_refuses_the_list(api, sql_conn):
    """A time that PostgreSQL would keep but psycopg could not read back (past the
    year 9999 in UTC) would make every resend fail: the list is refused whole."""
    dispatcher = api.dispatcher("lucknow")
    for at in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        body = {"device_id": "hh-1", "operations": [{**op("open_parent", qr_id="SB00002"), "device_time": at}]}
        assert_error(api.post("/api/scans/sync", dispatcher, json=body), 400, "validation_error", "operations")
    assert count_rows(sql_conn, "sync_op") == 0
    # a reset clock (1970) is a verdict of its own, and its resend answers it again
    body = {
        "device_id": "hh-1",
        "operations": [{**op("open_parent", qr_id="SB00002"), "device_time": "1970-01-01T00:00Z"}],
    }
    first = api.post("/api/scans/sync", dispatcher, json=body)
    again = api.post("/api/scans/sync", dispatcher, json=body)
    assert (
        codes(first.json) == codes(again.json) == ["device_time_out_of_range"] and again.json["results"][0]["replayed"]
    )


def test_verdicts_no_resend_can_reach_are_purged(db, sql_conn):
    """The refresher forgets verdicts a day older than the device clock bound: a resend
    of their operations is refused by that bound before any verdict is looked up."""
    fill(db, "SB00001", 0, "X")
    sync.sync(
        db, "hh-1", [op("link_child", op_id=f"k{i}", parent_qr="SB00001", child_qr=f"KEEP-{i}") for i in range(3)]
    )
    sql_conn.execute("UPDATE sync_op SET synced_at = now() - interval '9 days' WHERE client_op_id IN ('k0', 'k1')")
    assert db.scalar("purge_sync_ops", {"max_behind_seconds": 7 * 86400}) == 2
    assert db.scalar("purge_sync_ops", {"max_behind_seconds": 7 * 86400}) == 0
    assert sql_value(sql_conn, "SELECT array_agg(client_op_id) FROM sync_op") == ["k2"]
    # the service role itself may not delete a verdict
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.connection() as conn:
        conn.execute("DELETE FROM sync_op")
