"""Parent formats as data, managed by admins (issue 12, item 9): the routes and
their roles, the checks of a pattern, "in use", what a new format means for
fresh QRs and for children already known, the locks, and the CLI."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
import pytest

from tracetrack_db import errors, formats

from .api_helpers import *  # noqa: F403
from .test_cli import run

TINY = {"name": "TINY", "pattern": "^TINY[0-9]{3}$", "capacity": 2, "expected_weight_kg": 2.5}


def names(api, caller) -> list[str]:
    result = api.get("/api/parent-formats", caller)
    assert result.status_code == 200, result.text
    return [f["name"] for f in result.json]


def test_every_role_reads_and_only_admins_write(api, sql_conn):
    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher()
    listed = api.get("/api/parent-formats", dispatcher).json
    assert listed == [
        {"name": "SB", "pattern": "^SB[0-9]{5}$", "capacity": 30, "expected_weight_kg": 30},
        {"name": "M444", "pattern": "^M444-[0-9]{5}$", "capacity": 30, "expected_weight_kg": 30},
    ]
    assert names(api, biller) == ["SB", "M444"]
    for caller in (biller, dispatcher):
        assert_error(api.post("/api/parent-formats", caller, json=TINY), 403, "forbidden")
        assert_error(api.patch("/api/parent-formats/SB", caller, json={"capacity": 5}), 403, "forbidden")
        assert_error(api.delete("/api/parent-formats/M444", caller), 403, "forbidden")
    created = api.post("/api/parent-formats", admin, json=TINY, key="f1")
    assert created.status_code == 201, created.text
    assert created.json == TINY
    assert_schema(created, "POST", "/api/parent-formats")
    again = api.post("/api/parent-formats", admin, json=TINY, key="f1")  # the same key: the first answer
    assert (again.status_code, again.json) == (201, TINY)
    assert_error(api.post("/api/parent-formats", admin, json=TINY), 409, "format_exists")
    assert_error(api.post("/api/parent-formats", admin, json={**TINY, "name": "TINY2"}), 409, "format_exists")
    assert names(api, admin) == ["SB", "M444", "TINY"]
    changed = api.patch("/api/parent-formats/TINY", admin, json={"capacity": 3, "expected_weight_kg": 3})
    assert changed.status_code == 200, changed.text
    assert (changed.json["capacity"], changed.json["expected_weight_kg"], changed.json["pattern"]) == (
        3,
        3,
        "^TINY[0-9]{3}$",
    )
    moved = api.patch("/api/parent-formats/TINY", admin, json={"pattern": "^TINY-[0-9]{3}$"})
    assert moved.status_code == 200 and moved.json["pattern"] == "^TINY-[0-9]{3}$"
    assert_error(api.patch("/api/parent-formats/NOPE", admin, json={"capacity": 3}), 404, "format_not_found")
    assert_error(api.patch("/api/parent-formats/TINY", admin, json={}), 400, "validation_error")
    removed = api.delete("/api/parent-formats/TINY", admin)
    assert (removed.status_code, removed.json) == (200, {"deleted": "TINY"})
    assert_error(api.delete("/api/parent-formats/TINY", admin), 404, "format_not_found")
    assert names(api, dispatcher) == ["SB", "M444"]
    assert count_events(sql_conn) == 0  # no event kind for formats (the security log is later work)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pattern": "TQ[0-9]{5}"}, "pattern"),  # not anchored
        ({"pattern": "^TQ[0-9]{5}"}, "pattern"),
        ({"pattern": "TQ[0-9]{5}$"}, "pattern"),
        ({"pattern": "^TQ|[0-9]{5}$"}, "pattern"),  # a | outside a group: unanchored halves
        ({"pattern": "^TQ[0-9$"}, "pattern"),  # PostgreSQL cannot run it
        ({"pattern": "^TQ(0-9]{5}$"}, "pattern"),
        ({"pattern": "^TQ[0-9]{5,2}$"}, "pattern"),
        ({"pattern": "^[A-Z]*$"}, "pattern"),  # matches an empty text
        ({"pattern": "^" + "A" * 300 + "$"}, "pattern"),
        ({"name": "no spaces"}, "name"),
        ({"name": ""}, "name"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 1001}, "capacity"),
        ({"expected_weight_kg": -1}, "expected_weight_kg"),
        ({"expected_weight_kg": 1e12}, "expected_weight_kg"),
        ({"expected_weight_kg": "30"}, "expected_weight_kg"),
    ],
)
def test_bad_values_are_400_naming_the_field(api, sql_conn, body, field):
    admin = api.admin()
    error = assert_error(
        api.post("/api/parent-formats", admin, json={"name": "TQ", "pattern": "^TQ[0-9]{5}$", **body}),
        400,
        "validation_error",
        field,
    )
    assert error["message"]
    if "name" not in body and "pattern" in body:
        assert_error(api.patch("/api/parent-formats/SB", admin, json=body), 400, "validation_error", "pattern")
    assert sql_value(sql_conn, "SELECT count(*) FROM parent_format") == 2


def test_postgresql_decides_what_a_valid_pattern_is(db):
    """The library's shape checks pass it; PostgreSQL's regex parser refuses it: still field pattern."""
    with pytest.raises(errors.ValidationError) as refused:
        formats.add_format(db, "BR", "^BR[0-9$")
    assert refused.value.field == "pattern" and "invalid" in refused.value.message
    # a PostgreSQL-only construct is fine: [[:digit:]] classes, {n} bounds
    added = formats.add_format(db, "PX", "^PX[[:digit:]]{4}$", capacity=4, expected_weight_kg=Decimal("1.250"))
    assert (added.capacity, added.expected_weight_kg) == (4, Decimal("1.250"))


def test_a_new_format_decides_what_a_fresh_qr_opens_as(api, sql_conn):
    admin = api.admin()
    assert_error(
        api.post("/api/scans/parent", admin, json={"qr_id": "TINY001", "dispatch_area": "lucknow"}),
        422,
        "not_a_parent",
    )
    assert api.post("/api/parent-formats", admin, json=TINY).status_code == 201
    opened = api.open_parent(admin, "TINY001", area="lucknow", expect=201)
    assert opened["capacity"] == 2
    assert sql_value(sql_conn, "SELECT expected_weight_kg FROM bag WHERE qr_id = 'TINY001'") == Decimal("2.5")
    filled = api.fill(admin, "TINY001", ["T-KID-1", "T-KID-2"])
    assert (filled["child_count"], filled["parent_status"]) == (2, "completed")
    # and a fresh TINY QR is no child any more
    assert_error(
        api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "TINY002"}), 404, "bag_not_found"
    )
    api.open_parent(admin, "SB00001", area="lucknow")
    assert_error(
        api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "TINY002"}), 422, "not_a_child"
    )


def test_in_use_a_format_keeps_its_pattern_and_stays(api, sql_conn):
    admin = api.admin()
    assert api.delete("/api/parent-formats/M444", admin).status_code == 200  # no M444 parent: not in use
    api.open_parent(admin, "SB00001", area="lucknow")
    error = assert_error(api.delete("/api/parent-formats/SB", admin), 409, "format_in_use")
    assert "SB00001" in error["message"]
    assert_error(api.patch("/api/parent-formats/SB", admin, json={"pattern": "^SB[0-9]{6}$"}), 409, "format_in_use")
    # the same pattern again is no change
    assert api.patch("/api/parent-formats/SB", admin, json={"pattern": "^SB[0-9]{5}$"}).status_code == 200
    # capacity and expected weight change for parents created from now on
    changed = api.patch("/api/parent-formats/SB", admin, json={"capacity": 40, "expected_weight_kg": 41.5})
    assert changed.status_code == 200, changed.text
    assert sql_value(sql_conn, "SELECT capacity FROM bag WHERE qr_id = 'SB00001'") == 30  # kept
    assert api.open_parent(admin, "SB00002", area="lucknow", expect=201)["capacity"] == 40
    assert sql_value(sql_conn, "SELECT expected_weight_kg FROM bag WHERE qr_id = 'SB00002'") == Decimal("41.5")
    assert sql_value(sql_conn, "SELECT count(*) FROM parent_format WHERE name = 'SB'") == 1


def test_formats_must_not_share_qrs(api):
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    error = assert_error(
        api.post("/api/parent-formats", admin, json={"name": "SB2", "pattern": "^SB0[0-9]{4}$"}), 409, "format_exists"
    )
    assert "SB00001" in error["message"] and "SB" in error["message"]
    assert_error(
        api.post("/api/parent-formats", admin, json={"name": "SB3", "pattern": "^SB[0-9]{5}$"}), 409, "format_exists"
    )
    assert api.post("/api/parent-formats", admin, json={"name": "SB7", "pattern": "^SB7[0-9]{6}$"}).status_code == 201
    # nor by a pattern change
    assert_error(api.patch("/api/parent-formats/SB7", admin, json={"pattern": "^SB[0-9]{5,6}$"}), 409, "format_exists")


def test_a_known_child_never_becomes_a_parent(api, sql_conn):
    """A bag's type never changes: children whose QRs match a format added after
    them stay children (they link and unlink as children), and cannot be
    opened as parents; they do not make the format "in use"."""
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    api.open_parent(admin, "SB00002", area="lucknow")
    api.fill(admin, "SB00001", ["KID001", "KID002"])
    assert api.post("/api/scans/unlink", admin, json={"child_qr": "KID002"}).status_code == 200
    added = api.post("/api/parent-formats", admin, json={"name": "KIDS", "pattern": "^KID[0-9]{3}$", "capacity": 3})
    assert added.status_code == 201, added.text
    for known in ("KID001", "KID002"):
        assert_error(api.post("/api/scans/parent", admin, json={"qr_id": known}), 422, "not_a_parent")
    linked = api.post("/api/scans/child", admin, json={"parent_qr": "SB00002", "child_qr": "KID002"})
    assert linked.status_code == 200 and linked.json["result"] == "linked", linked.text
    again = api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "KID001"})
    assert again.json["result"] == "already_linked"
    batch = api.post("/api/scans/batch", admin, json={"parent_qr": "SB00002", "child_qrs": ["KID002", "KID003"]})
    assert [(i["result"], i["error_code"]) for i in batch.json["items"]] == [
        ("already_linked", None),
        ("error", "not_a_child"),  # a fresh KID QR is a parent QR now
    ]
    assert sql_value(sql_conn, "SELECT string_agg(type, ',' ORDER BY qr_id) FROM bag WHERE qr_id LIKE 'KID%%'") == (
        "child,child"
    )
    # children do not count as use: the format goes
    assert api.delete("/api/parent-formats/KIDS", admin).status_code == 200
    # while a fresh QR of it opens as a parent, it is in use
    assert api.post("/api/parent-formats", admin, json={"name": "KIDS", "pattern": "^KID[0-9]{3}$"}).status_code == 201
    opened = api.open_parent(admin, "KID009", area="lucknow", expect=201)
    assert opened["capacity"] == 30
    assert_error(api.delete("/api/parent-formats/KIDS", admin), 409, "format_in_use")


def test_the_service_role_writes_formats_only_through_the_functions(db, sql_conn):
    with db.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE parent_format SET capacity = 1")
    added = formats.add_format(db, "SVC", "^SVC[0-9]{3}$", capacity=5)
    assert formats.change_format(db, "SVC", capacity=6).capacity == 6
    assert formats.get_format(db, "SVC").capacity == 6
    assert formats.remove_format(db, "SVC") == formats.ParentFormat("SVC", "^SVC[0-9]{3}$", 6, added.expected_weight_kg)
    with pytest.raises(errors.FormatNotFound):
        formats.get_format(db, "SVC")
    definer = sql_value(
        sql_conn,
        "SELECT bool_and(prosecdef) FROM pg_proc WHERE proname IN "
        "('tt_parent_format_add', 'tt_parent_format_change', 'tt_parent_format_remove')",
    )
    assert definer is True


# locks ----------------------------------------------------------------------------------
def _parent_insert(conn: psycopg.Connection, qr: str) -> None:
    conn.execute(
        "INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg) "
        "VALUES (%s, 'parent', 'lucknow', 5, 5)",
        (qr,),
    )


def _in_thread(target) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go():
        try:
            out["value"] = target()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def test_a_removal_waits_for_a_parent_being_created_with_the_format(db_url, db):
    formats.add_format(db, "LK", "^LK[0-9]{3}$", capacity=5)
    with psycopg.connect(db_url) as scanner, psycopg.connect(db_url, autocommit=True) as admin:
        _parent_insert(scanner, "LK001")  # open: holds the format FOR KEY SHARE
        thread, out = _in_thread(lambda: admin.execute("SELECT tt_parent_format_remove('LK')").fetchone())
        time.sleep(0.5)
        assert thread.is_alive()  # the removal waits for the scan
        scanner.commit()
        thread.join(10)
    assert isinstance(out.get("error"), psycopg.Error) and out["error"].diag.message_hint == "format_in_use"
    assert [f.name for f in formats.list_formats(db)] == ["SB", "M444", "LK"]


def test_a_parent_created_after_a_removal_it_waited_for_is_refused(db_url, db):
    formats.add_format(db, "LK", "^LK[0-9]{3}$", capacity=5)
    with psycopg.connect(db_url) as admin, psycopg.connect(db_url, autocommit=True) as scanner:
        admin.execute("SELECT tt_parent_format_remove('LK')")  # not committed yet
        thread, out = _in_thread(lambda: _parent_insert(scanner, "LK002"))
        time.sleep(0.5)
        assert thread.is_alive()  # the scan waits for the removal
        admin.commit()
        thread.join(10)
    error = out.get("error")
    assert isinstance(error, psycopg.Error) and error.diag.message_hint == "conflict", out
    with pytest.raises(errors.NotAParent):  # scanned again: the QR is no parent QR any more
        from tracetrack_db import scans, users

        admin_user = users.create_user(db, "lockadmin", PASSWORD, "admin", None)
        scans.open_parent(db, "LK002", user_id=admin_user.id, dispatch_area="lucknow")


def test_a_capacity_change_does_not_wait_for_scans(db_url, db):
    formats.add_format(db, "LK", "^LK[0-9]{3}$", capacity=5)
    with psycopg.connect(db_url) as scanner:
        _parent_insert(scanner, "LK003")  # holds the format FOR KEY SHARE
        changed = formats.change_format(db, "LK", capacity=7)  # a plain update: no wait
        assert changed.capacity == 7
        scanner.commit()


def test_a_parent_without_a_format_cannot_be_inserted(sql_conn):
    with pytest.raises(psycopg.Error) as refused:
        _parent_insert(sql_conn, "NOFORMAT1")
    assert refused.value.diag.message_hint == "conflict"


# the command line -----------------------------------------------------------------------
def test_formats_commands(db_url):
    env = {"DATABASE_URL": db_url, "CI": "true"}
    added = run(["formats", "add", "CLI", "^CLI[0-9]{4}$", "--capacity", "12", "--expected-weight", "12.5"], env)
    assert added.returncode == 0, added.stderr
    bad = run(["formats", "add", "LOOSE", "CLI[0-9]+"], env)
    assert bad.returncode == 1 and "validation_error" in bad.stderr
    dup = run(["formats", "add", "CLI", "^CLX[0-9]{4}$"], env)
    assert dup.returncode == 1 and "format_exists" in dup.stderr
    changed = run(["formats", "change", "CLI", "--capacity", "20"], env)
    assert changed.returncode == 0, changed.stderr
    listed = run(["formats", "list"], env)
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        ["SB", "^SB[0-9]{5}$", "capacity 30"],
        ["M444", "^M444-[0-9]{5}$", "capacity 30"],
        ["CLI", "^CLI[0-9]{4}$", "capacity 20"],
    ]
    removed = run(["formats", "remove", "CLI"], env)
    assert removed.returncode == 0, removed.stderr
    missing = run(["formats", "remove", "CLI"], env)
    assert missing.returncode == 1 and "format_not_found" in missing.stderr
