"""Corrections (issue 12, items 4 and 5): a parent closed short counts as
completed below its capacity and reopens when a child leaves it; a scanner
undoes their own last link. Each refusal changes nothing; races keep every
invariant (check_counters)."""

from __future__ import annotations

import contextlib

import psycopg
import pytest

from tracetrack_db import bills, errors, imports, scans, views
from tracetrack_db.settings import Settings

from .api_helpers import *  # noqa: F403
from .factories import check_counters, fill, make_user, run_together


def state(sql_conn, qr: str) -> tuple:
    return sql_conn.execute(
        "SELECT status, child_count, closed_short_reason FROM bag WHERE qr_id = %s", (qr,)
    ).fetchone()


# -- close short ---------------------------------------------------------------


def test_a_parent_closed_short_is_completed_and_goes_on_a_bill(db, sql_conn):
    fill(db, "SB00001", 3, "LOT")
    closed = scans.close_parent(db, "sb00001", "  end of lot 7 ")
    assert closed.result == "closed"
    assert (closed.bag.status, closed.bag.child_count, closed.bag.capacity) == ("completed", 3, 30)
    assert closed.bag.closed_short_reason == "end of lot 7"
    event = sql_conn.execute("SELECT details FROM event WHERE kind = 'close_short'").fetchone()[0]
    assert event == {"reason": "end of lot 7", "child_count": 3, "capacity": 30}
    events = count_events(sql_conn)
    assert scans.close_parent(db, "SB00001", "again").result == "already_closed"
    assert count_events(sql_conn) == events and state(sql_conn, "SB00001")[2] == "end of lot 7"
    # on a bill, with its real count and weight
    bills.create_bill(db, "SHORT-1", capacity=1)
    bills.add_parent(db, "SHORT-1", "SB00001")
    bills.complete_bill(db, "SHORT-1")
    bill = sql_conn.execute("SELECT status, total_child_count, total_weight_kg FROM bill").fetchone()
    assert bill[:2] == ("completed", 3) and bill[2] == 3
    check_counters(sql_conn)


def test_links_into_a_parent_closed_short_are_refused(db, sql_conn):
    fill(db, "SB00001", 2, "LOT")
    fill(db, "SB00002", 1, "OTHER")
    scans.close_parent(db, "SB00001", "short lot")
    before = (count_events(sql_conn), state(sql_conn, "SB00001"), state(sql_conn, "SB00002"))
    with pytest.raises(errors.ParentClosed):
        scans.link_child(db, "SB00001", "NEW-01")
    with pytest.raises(errors.ParentClosed):
        scans.link_children(db, "SB00001", ["NEW-01", "NEW-02"])
    with pytest.raises(errors.ParentClosed):
        scans.move_child(db, "OTHER-00", "SB00001")
    job = imports.run_import(db, b"parent_qr,child_qr\nSB00001,NEW-03\n", layout="links", dispatch_area="lucknow")
    assert (job.verdicts["error"], job.codes) == (1, {"parent_closed": 1})
    assert (count_events(sql_conn), state(sql_conn, "SB00001"), state(sql_conn, "SB00002")) == before
    assert sql_value(sql_conn, "SELECT count(*) FROM bag WHERE qr_id LIKE 'NEW-%%'") == 0
    check_counters(sql_conn)


@pytest.mark.parametrize("how", ["unlink", "move", "delete", "reopen"])
def test_a_parent_closed_short_reopens_when_a_child_leaves_or_on_request(db, sql_conn, how):
    children = fill(db, "SB00001", 3, "LOT")
    fill(db, "SB00002", 1, "OTHER")
    scans.close_parent(db, "SB00001", "short lot")
    if how == "unlink":
        assert scans.unlink_child(db, children[0]).parent_status == "in_progress"
    elif how == "move":
        assert scans.move_child(db, children[0], "SB00002").result == "moved"
    elif how == "delete":
        from tracetrack_db import bags

        bags.delete_bag(db, children[0])
    else:
        assert scans.reopen_parent(db, "SB00001").result == "reopened"
        assert scans.reopen_parent(db, "SB00001").result == "not_closed"
    expected = 3 if how == "reopen" else 2
    assert state(sql_conn, "SB00001") == ("in_progress", expected, None)
    kind, details = sql_conn.execute(
        "SELECT kind, details FROM event WHERE kind IN ('unlink', 'reopen_parent') ORDER BY id LIMIT 1"
    ).fetchone()
    assert details["reopened" if kind == "unlink" else "reason"] == "short lot"
    scans.link_child(db, "SB00001", "NEW-01")  # open again for scanning
    check_counters(sql_conn)


def test_close_refusals_change_nothing(db, sql_conn):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")  # empty
    fill(db, "SB00002", 30, "FULL")
    fill(db, "SB00003", 2, "BILLED")
    fill(db, "SB00004", 2, "FAR", area="indore")
    fill(db, "SB00005", 2, "SHORT")
    scans.close_parent(db, "SB00005", "short")
    bills.create_bill(db, "B-1", capacity=2)
    bills.add_parent(db, "B-1", "SB00003")
    bills.add_parent(db, "B-1", "SB00005")
    before = (count_events(sql_conn), sql_conn.execute("SELECT array_agg(status ORDER BY id) FROM bag").fetchone())
    cases = [
        (("SB00001", "why"), {}, errors.ParentEmpty),
        (("SB00002", "why"), {}, errors.ParentFull),
        (("SB00003", "why"), {}, errors.ParentOnBill),
        (("FULL-01", "why"), {}, errors.NotAParent),
        (("SB09999", "why"), {}, errors.BagNotFound),
        (("SB00004", "why"), {"restrict_area": "lucknow"}, errors.BagNotFound),
        (("SB00004", "   "), {}, errors.ValidationError),
        (("SB00004", "x" * 201), {}, errors.ValidationError),
    ]
    for args, kw, error in cases:
        with pytest.raises(error):
            scans.close_parent(db, *args, **kw)
    with pytest.raises(errors.ParentOnBill):
        scans.reopen_parent(db, "SB00005")
    after = (count_events(sql_conn), sql_conn.execute("SELECT array_agg(status ORDER BY id) FROM bag").fetchone())
    assert after == before


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE bag SET status = 'completed' WHERE qr_id = 'SB00001'",  # completed, neither full nor closed
        "UPDATE bag SET closed_short_reason = 'x' WHERE qr_id = 'SB00001'",  # closed, not completed
        "UPDATE bag SET closed_short_reason = 'x', status = 'completed' WHERE qr_id = 'SB00002'",  # full
        "UPDATE bag SET closed_short_reason = 'x' WHERE qr_id = 'LOT-00'",  # a child
        "UPDATE bag SET closed_short_reason = '', status = 'completed' WHERE qr_id = 'SB00001'",
    ],
)
def test_the_schema_holds_completed_iff_full_or_closed_short(db, sql_conn, change):
    fill(db, "SB00001", 2, "LOT")
    fill(db, "SB00002", 30, "FULL")
    with pytest.raises(psycopg.errors.CheckViolation):
        sql_conn.execute(change)


def test_the_dashboard_counts_a_parent_closed_short_as_completed(db):
    fill(db, "SB00001", 2, "LOT")
    fill(db, "SB00002", 2, "OPEN")
    scans.close_parent(db, "SB00001", "short lot")
    views.refresh_views(db)
    assert views.analytics(db).bags.by_status["parent"]["completed"] == 1


# -- undo ----------------------------------------------------------------------


def test_undo_takes_back_my_last_link_and_only_that(db, sql_conn):
    me, other = make_user(db), make_user(db)
    fill(db, "SB00001", 3, "MINE", user_id=me.id)
    scans.link_child(db, "SB00001", "THEIRS-01", user_id=other.id)  # someone else's later link stays
    link_id = sql_value(sql_conn, "SELECT max(id) FROM event WHERE kind = 'link' AND user_id = %s", (me.id,))
    undone = scans.undo_last_link(db, me.id)
    assert (undone.result, undone.child_qr, undone.parent_qr, undone.child_count) == ("undone", "MINE-02", "SB00001", 3)
    assert sql_value(sql_conn, "SELECT parent_id FROM bag WHERE qr_id = 'MINE-02'") is None
    details = sql_value(sql_conn, "SELECT details FROM event WHERE kind = 'unlink'")
    assert details == {"undo": link_id}
    # a second undo finds the undo itself last: nothing, never MINE-01
    with pytest.raises(errors.NothingToUndo):
        scans.undo_last_link(db, me.id)
    assert sql_value(sql_conn, "SELECT parent_id IS NOT NULL FROM bag WHERE qr_id = 'MINE-01'")
    check_counters(sql_conn)


def test_undo_refuses_what_it_cannot_take_back(db, sql_conn):
    me, other = make_user(db), make_user(db)
    with pytest.raises(errors.NothingToUndo):  # never scanned
        scans.undo_last_link(db, me.id)
    fill(db, "SB00001", 2, "MINE", user_id=me.id)
    fill(db, "SB00002", 1, "ELSE")
    with pytest.raises(errors.NothingToUndo):  # outside the window
        scans.undo_last_link(db, me.id, window_seconds=0)
    scans.move_child(db, "MINE-01", "SB00002", user_id=other.id)  # someone moved my child since
    with pytest.raises(errors.NothingToUndo):
        scans.undo_last_link(db, me.id)
    scans.link_child(db, "SB00001", "MINE-09", user_id=me.id)
    scans.move_child(db, "MINE-09", "SB00002", user_id=me.id)  # my last scan is a move
    with pytest.raises(errors.NothingToUndo):
        scans.undo_last_link(db, me.id)
    scans.link_child(db, "SB00001", "MINE-10", user_id=me.id)
    bills.create_bill(db, "B-1", capacity=1)
    bills.add_parent(db, "B-1", "SB00001")
    events = count_events(sql_conn)
    with pytest.raises(errors.ParentOnBill):
        scans.undo_last_link(db, me.id)
    with pytest.raises(errors.NothingToUndo):  # another area's scanner cannot reach it either
        scans.undo_last_link(db, other.id, restrict_area="indore")
    assert count_events(sql_conn) == events
    check_counters(sql_conn)


def test_undo_never_takes_back_a_link_someone_made_since(db, sql_conn):
    """My link of C into P, then another scanner unlinks C and links it into P again:
    C is in P, but by their link; my undo must not remove it."""
    me, other = make_user(db), make_user(db)
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_child(db, "SB00001", "MINE-01", user_id=me.id)
    scans.unlink_child(db, "MINE-01", user_id=other.id)
    scans.link_child(db, "SB00001", "MINE-01", user_id=other.id)
    events = count_events(sql_conn)
    with pytest.raises(errors.NothingToUndo):
        scans.undo_last_link(db, me.id)
    assert count_events(sql_conn) == events
    assert scans.undo_last_link(db, other.id).child_qr == "MINE-01"  # theirs to undo


def test_undo_of_an_imported_link_is_refused(db, sql_conn):
    me = make_user(db, "admin")
    imports.run_import(
        db, b"parent_qr,child_qr\nSB00001,IMP-1\n", layout="links", dispatch_area="lucknow", user_id=me.id
    )
    with pytest.raises(errors.NothingToUndo):
        scans.undo_last_link(db, me.id)


# -- over HTTP -----------------------------------------------------------------


def test_close_reopen_and_undo_over_http(api, sql_conn):
    admin, dispatcher, far = api.admin(), api.dispatcher("lucknow"), api.dispatcher("indore")
    api.parent_with_children(dispatcher, "SB00001", 2)
    body = {"parent_qr": "SB00001", "reason": "end of lot"}
    assert_error(api.post("/api/scans/close", far, json=body), 404, "bag_not_found")
    assert_error(api.post("/api/scans/close", api.biller(), json=body), 403, "forbidden")
    assert_error(
        api.post("/api/scans/close", dispatcher, json={"parent_qr": "SB00001"}), 400, "validation_error", "reason"
    )
    closed = api.post("/api/scans/close", dispatcher, json=body, key="c1")
    assert closed.status_code == 200 and closed.json["result"] == "closed", closed.text
    assert closed.json["bag"]["closed_short_reason"] == "end of lot"
    assert_schema(closed, "POST", "/api/scans/close")
    replay = api.post("/api/scans/close", dispatcher, json=body, key="c1")
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json == closed.json
    looked = api.get("/api/bags/SB00001", dispatcher).json["bag"]
    assert (looked["status"], looked["closed_short_reason"]) == ("completed", "end of lot")
    assert_error(
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "NEW-1"}),
        409,
        "parent_closed",
    )
    reopened = api.post("/api/scans/reopen", admin, json={"parent_qr": "SB00001"})
    assert reopened.status_code == 200 and reopened.json["result"] == "reopened", reopened.text
    assert_schema(reopened, "POST", "/api/scans/reopen")
    # undo: the dispatcher's own last link
    assert (
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "NEW-1"}).status_code == 200
    )
    undone = api.post("/api/scans/undo", dispatcher, key="u1")
    assert undone.status_code == 200 and undone.json["child_qr"] == "NEW-1", undone.text
    assert_schema(undone, "POST", "/api/scans/undo")
    assert api.post("/api/scans/undo", dispatcher, key="u1").json == undone.json  # the replay, not a second undo
    assert_error(api.post("/api/scans/undo", dispatcher), 409, "nothing_to_undo")
    assert_error(api.post("/api/scans/undo", api.biller()), 403, "forbidden")
    check_counters(sql_conn)


def test_the_undo_window_is_a_setting(db, sql_conn):
    api = Api(db, api_settings(db=Settings(undo_window=0)))
    dispatcher = api.dispatcher("lucknow")
    api.parent_with_children(dispatcher, "SB00001", 1)
    assert_error(api.post("/api/scans/undo", dispatcher), 409, "nothing_to_undo")
    assert sql_value(sql_conn, "SELECT child_count FROM bag WHERE qr_id = 'SB00001'") == 1


# -- races -----------------------------------------------------------------------


def test_undo_racing_a_move_does_one_or_the_other(db, sql_conn):
    me, mover = make_user(db), make_user(db)
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    for i in range(15):
        child = f"RACE-{i:02d}"
        scans.link_child(db, "SB00001", child, user_id=me.id)
        results: dict[str, str] = {}

        def undo(results=results) -> None:
            try:
                results["undo"] = scans.undo_last_link(db, me.id).result
            except errors.NothingToUndo:
                results["undo"] = "nothing"

        def move(child=child, results=results) -> None:
            try:
                results["move"] = scans.move_child(db, child, "SB00002", user_id=mover.id).result
            except errors.ChildNotLinked:
                results["move"] = "not_linked"

        assert run_together(undo, move) == []
        where = sql_value(
            sql_conn, "SELECT p.qr_id FROM bag c LEFT JOIN bag p ON p.id = c.parent_id WHERE c.qr_id = %s", (child,)
        )
        # exactly one of them happened: undone (in no parent), or moved (in SB00002)
        one_or_other = {("undone", "not_linked", None), ("nothing", "moved", "SB00002")}
        assert (results["undo"], results["move"], where) in one_or_other
        check_counters(sql_conn)


def test_closing_short_racing_links_keeps_the_invariant(db, sql_conn):
    for round_ in range(10):
        parent = f"SB{round_ + 100:05d}"
        fill(db, parent, 27, f"R{round_}")
        outcome: dict[str, object] = {}

        def close(parent=parent, outcome=outcome) -> None:
            with contextlib.suppress(errors.ParentFull):
                outcome["close"] = scans.close_parent(db, parent, "race").result

        def link(parent=parent, round_=round_) -> None:
            for i in range(3):
                with contextlib.suppress(errors.ParentClosed):
                    scans.link_child(db, parent, f"L{round_}-{i}")

        assert run_together(close, link) == []
        status, count, reason = state(sql_conn, parent)
        assert status == "completed" and (count == 30) == (reason is None)
        check_counters(sql_conn)
