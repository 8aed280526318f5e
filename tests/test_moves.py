"""Moving a child to another parent (issue 12, item 3): one transaction, one
event pair, the same area, capacity and bill rules as links; and moves racing
links into a nearly full parent keep every invariant."""

from __future__ import annotations

import contextlib

import pytest

from tracetrack_db import errors, scans

from .api_helpers import *  # noqa: F403
from .factories import check_counters, fill, run_together


def test_a_move_takes_the_child_out_of_one_parent_into_the_other(db, sql_conn):
    fill(db, "SB00001", 30, "FULL")  # completed
    fill(db, "SB00002", 3, "TWO")
    events = count_events(sql_conn)
    moved = scans.move_child(db, "full-05", "sb00002", user_id=None)
    assert (moved.result, moved.from_parent_qr, moved.to_parent_qr) == ("moved", "SB00001", "SB00002")
    assert (moved.child_count, moved.parent_status, moved.from_child_count) == (4, "in_progress", 29)
    states = dict(sql_conn.execute("SELECT qr_id, status FROM bag WHERE qr_id IN ('SB00001', 'SB00002')").fetchall())
    assert states == {"SB00001": "in_progress", "SB00002": "in_progress"}  # the full one reopened
    kinds = sql_conn.execute(
        "SELECT kind, parent_qr, details->>'move' FROM event WHERE qr_id = 'FULL-05' ORDER BY id DESC LIMIT 2"
    ).fetchall()
    assert kinds == [("link", "SB00002", "true"), ("unlink", "SB00001", "true")]
    assert count_events(sql_conn) == events + 2
    again = scans.move_child(db, "FULL-05", "SB00002")
    assert again.result == "already_linked" and count_events(sql_conn) == events + 2
    check_counters(sql_conn)


def test_refusals_change_nothing(db, sql_conn):
    fill(db, "SB00001", 30, "FULL")
    fill(db, "SB00002", 2, "TWO")
    fill(db, "SB00003", 1, "FAR", area="indore")
    before = (count_events(sql_conn), sql_conn.execute("SELECT sum(child_count) FROM bag").fetchone())
    cases = [
        (("TWO-00", "SB00001"), errors.ParentFull),  # never in none: the target is full
        (("TWO-00", "SB00003"), errors.WrongArea),  # another area's parent
        (("TWO-00", "SB09999"), errors.BagNotFound),
        (("TWO-00", "FULL-01"), errors.NotAParent),
        (("SB00002", "SB00001"), errors.NotAChild),
        (("NOPE-01", "SB00002"), errors.BagNotFound),
    ]
    for (child, target), error in cases:
        with pytest.raises(error):
            scans.move_child(db, child, target)
    assert (count_events(sql_conn), sql_conn.execute("SELECT sum(child_count) FROM bag").fetchone()) == before
    check_counters(sql_conn)


def test_over_http_with_confinement_bills_and_idempotency(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.open_parent(admin, "SB00002", area="lucknow")
    api.parent_with_children(admin, "SB00003", 1, area="indore")
    child = api.get("/api/bags/SB00001", admin).json["children"][0]["qr_id"]
    moved = api.post("/api/scans/move", dispatcher, json={"child_qr": child, "to_parent_qr": "SB00002"}, key="m1")
    assert moved.status_code == 200 and moved.json["result"] == "moved", moved.text
    assert_schema(moved, "POST", "/api/scans/move")
    replay = api.post("/api/scans/move", dispatcher, json={"child_qr": child, "to_parent_qr": "SB00002"}, key="m1")
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json == moved.json
    # another area's parent is, to a dispatcher, an unknown one
    assert_error(
        api.post("/api/scans/move", dispatcher, json={"child_qr": child, "to_parent_qr": "SB00003"}),
        404,
        "bag_not_found",
    )
    api.bill(admin, "MV-1", capacity=1)
    assert api.add_parent(admin, "MV-1", "SB00002").status_code == 200
    assert_error(
        api.post("/api/scans/move", admin, json={"child_qr": child, "to_parent_qr": "SB00001"}), 409, "parent_on_bill"
    )
    assert_error(
        api.post("/api/scans/move", api.biller(), json={"child_qr": child, "to_parent_qr": "SB00001"}), 403, "forbidden"
    )
    check_counters(sql_conn)


def test_moves_racing_links_into_a_nearly_full_parent_keep_the_invariants(db, sql_conn):
    """Two places left in SB00009; threads move children into it from four parents
    while others link new children into it and move some back out."""
    fill(db, "SB00009", 28, "TARGET")
    sources = [f"SB0001{i}" for i in range(4)]
    movers = [fill(db, p, 5, f"SRC{i}") for i, p in enumerate(sources)]

    def move_in(children: list[str]) -> None:
        for c in children:
            with contextlib.suppress(errors.ParentFull, errors.Conflict):
                scans.move_child(db, c, "SB00009")

    def link_in(n: int) -> None:
        for i in range(5):
            with contextlib.suppress(errors.Conflict):
                scans.link_child(db, "SB00009", f"NEW{n}-{i}")

    def move_out() -> None:
        for i in range(6):
            with contextlib.suppress(errors.Conflict):
                scans.move_child(db, f"TARGET-{i:02d}", sources[i % 4])

    work = [lambda c=c: move_in(c) for c in movers] + [lambda n=n: link_in(n) for n in range(2)] + [move_out]
    assert run_together(*work) == []
    check_counters(sql_conn)  # no parent over capacity, counters equal the real counts
    # every child that was linked is in exactly one parent (parent_id is one column: never two),
    # and every move left one unlink and one link
    assert sql_value(sql_conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL") == 0
    moves = sql_conn.execute(
        "SELECT count(*) FILTER (WHERE kind = 'unlink'), count(*) FILTER (WHERE kind = 'link') "
        "FROM event WHERE details->>'move' = 'true'"
    ).fetchone()
    assert moves[0] == moves[1] and moves[0] > 0
