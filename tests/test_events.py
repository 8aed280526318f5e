"""The event log: every write appends events (who, which bag/parent/bill, the
idempotency key); history of a bag; recent events; the log is append-only."""

from __future__ import annotations

import psycopg
import pytest

from tests.factories import full_parent, make_user
from tracetrack_db import bags, bills, errors, events, scans
from tracetrack_db.bills import BillChanges


class Log:
    """Reads the events appended since the last call."""

    def __init__(self, sql_conn):
        self.conn = sql_conn
        self.last = 0

    def new(self) -> list[tuple]:
        rows = self.conn.execute(
            "SELECT id, kind, user_id, qr_id, parent_qr, bill_no, dispatch_area, idempotency_key, "
            "bag_id, parent_id, bill_id FROM event WHERE id > %s ORDER BY id",
            (self.last,),
        ).fetchall()
        if rows:
            self.last = rows[-1][0]
        return [r[1:8] for r in rows]

    def new_with_ids(self) -> list[tuple]:
        rows = self.conn.execute(
            "SELECT id, kind, bag_id, parent_id, bill_id FROM event WHERE id > %s ORDER BY id", (self.last,)
        ).fetchall()
        if rows:
            self.last = rows[-1][0]
        return [r[1:] for r in rows]


def test_every_write_appends_events_with_user_bag_parent_bill_and_key(db, sql_conn):
    u = make_user(db, "admin").id
    log = Log(sql_conn)

    opened = scans.open_parent(db, "SB00001", user_id=u, dispatch_area="indore", idempotency_key="k1")
    assert log.new_with_ids() == [("parent_scan", opened.bag.id, None, None)]

    scans.link_child(db, "SB00001", "CHILD-1", user_id=u, idempotency_key="k2")
    child = bags.get_bag(db, "CHILD-1")
    assert log.new_with_ids() == [("link", child.id, opened.bag.id, None)]

    scans.link_children(db, "SB00001", ["CHILD-3", "CHILD-2", "CHILD-1", "SB00001"], user_id=u, idempotency_key="k3")
    assert log.new() == [  # one event per child actually linked, none for repeats and errors
        ("link", u, "CHILD-2", "SB00001", None, "indore", "k3"),
        ("link", u, "CHILD-3", "SB00001", None, "indore", "k3"),
    ]

    scans.unlink_child(db, "CHILD-3", user_id=u, idempotency_key="k4")
    assert log.new() == [("unlink", u, "CHILD-3", "SB00001", None, "indore", "k4")]

    bill = bills.create_bill(db, "BILL-1", 1, user_id=u, idempotency_key="k5")
    assert log.new_with_ids() == [("bill_created", None, None, bill.id)]

    bills.update_bill(db, "BILL-1", BillChanges(destination="Agra"), user_id=u, idempotency_key="k6")
    assert log.new() == [("bill_updated", u, None, None, "BILL-1", None, "k6")]

    bills.add_parent(db, "BILL-1", "SB00001", user_id=u, idempotency_key="k7")
    assert log.new_with_ids() == [("bill_add", None, opened.bag.id, bill.id)]

    bills.complete_bill(db, "BILL-1", user_id=u, idempotency_key="k8")
    assert log.new() == [("bill_complete", u, None, None, "BILL-1", None, "k8")]

    bills.reopen_bill(db, "BILL-1", user_id=u, idempotency_key="k9")
    assert log.new() == [("bill_reopen", u, None, None, "BILL-1", None, "k9")]

    bills.remove_parent(db, "BILL-1", "SB00001", user_id=u, idempotency_key="k10")
    assert log.new() == [("bill_remove", u, None, "SB00001", "BILL-1", "indore", "k10")]

    bags.delete_bag(db, "CHILD-2", user_id=u, idempotency_key="k11")
    assert log.new() == [
        ("unlink", u, "CHILD-2", "SB00001", None, "indore", "k11"),
        ("bag_deleted", u, "CHILD-2", "SB00001", None, "indore", "k11"),
    ]

    bills.delete_bill(db, "BILL-1", user_id=u, idempotency_key="k12")
    assert log.new() == [("bill_deleted", u, None, None, "BILL-1", None, "k12")]

    bags.register_bag(db, "LOOSE-1", "child", "hisar", user_id=u, idempotency_key="k13")
    assert log.new() == [("bag_created", u, "LOOSE-1", None, None, "hisar", "k13")]

    # every write above carried the user and its key
    assert (
        sql_conn.execute(
            "SELECT count(*) FROM event WHERE user_id IS DISTINCT FROM %s OR idempotency_key IS NULL", (u,)
        ).fetchone()[0]
        == 0
    )


def test_failed_writes_append_nothing(db, sql_conn):
    qr = full_parent(db, 1)
    bills.create_bill(db, "BILL-1", 2)
    before = sql_conn.execute("SELECT count(*) FROM event").fetchone()[0]
    failing = [
        (lambda: scans.link_child(db, qr, "EXTRA"), "parent_full"),
        (lambda: scans.link_children(db, "SB00099", ["EXTRA"]), "bag_not_found"),
        (lambda: scans.unlink_child(db, "NOPE-1"), "bag_not_found"),
        (lambda: scans.open_parent(db, "C00001-00"), "not_a_parent"),
        (lambda: bills.complete_bill(db, "BILL-1"), "bill_not_full"),
        (lambda: bills.reopen_bill(db, "BILL-1"), "bill_not_completed"),
        (lambda: bills.remove_parent(db, "BILL-1", qr), "parent_not_on_bill"),
        (lambda: bags.delete_bag(db, qr), "bag_has_children"),
        (lambda: bills.create_bill(db, "bill-1", 2), "bill_exists"),
    ]
    for call, code in failing[:-1]:
        with pytest.raises(errors.TraceTrackError) as info:
            call()
        assert info.value.code == code
    assert sql_conn.execute("SELECT count(*) FROM event").fetchone()[0] == before


def test_history_of_a_parent_has_its_children_and_its_bill(db):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    scans.link_child(db, "SB00002", "MOVER")  # MOVER starts in the other parent ...
    scans.link_child(db, "SB00002", "STAYS-IN-2")
    scans.unlink_child(db, "MOVER")
    scans.link_children(db, "SB00001", ["KID-1", "KID-2", "MOVER"])  # ... and ends in SB00001
    scans.link_child(db, "SB00001", "GONE")
    scans.unlink_child(db, "GONE")  # a child that left SB00001
    bills.create_bill(db, "BILL-1", 2)
    bills.add_parent(db, "BILL-1", "SB00001")
    bills.add_parent(db, "BILL-1", "SB00002")
    bills.complete_bill(db, "BILL-1")

    history = events.bag_history(db, "sb00001").items
    got = [(e.kind, e.qr_id, e.parent_qr, e.bill_no) for e in history]
    assert got == [
        ("parent_scan", "SB00001", None, None),
        ("link", "MOVER", "SB00002", None),  # the current child's own earlier history
        ("unlink", "MOVER", "SB00002", None),
        ("link", "KID-1", "SB00001", None),
        ("link", "KID-2", "SB00001", None),
        ("link", "MOVER", "SB00001", None),
        ("link", "GONE", "SB00001", None),  # a former child's link and unlink stay
        ("unlink", "GONE", "SB00001", None),
        ("bill_created", None, None, "BILL-1"),
        ("bill_add", None, "SB00001", "BILL-1"),
        ("bill_add", None, "SB00002", "BILL-1"),  # the bill's events, all of them
        ("bill_complete", None, None, "BILL-1"),
    ]
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert all(e.occurred_at is not None for e in history)
    # the other parent's own scan and its other child are not in it
    assert not any(e.qr_id == "STAYS-IN-2" or (e.kind == "parent_scan" and e.qr_id == "SB00002") for e in history)
    assert [e.kind for e in events.bag_history(db, "SB00001", limit=3).items] == ["parent_scan", "link", "unlink"]


def test_history_of_a_child_has_its_links_and_its_parents_bill(db):
    user = make_user(db, "dispatcher", "lucknow", username="scanner1")
    scans.open_parent(db, "SB00001", dispatch_area="lucknow", user_id=user.id)
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    scans.link_child(db, "SB00002", "KID-1", user_id=user.id)
    scans.unlink_child(db, "KID-1")
    scans.link_child(db, "SB00001", "KID-1", user_id=user.id)
    scans.link_child(db, "SB00001", "SIBLING")
    bills.create_bill(db, "BILL-1", 1)
    bills.add_parent(db, "BILL-1", "SB00001")

    history = events.bag_history(db, "kid-1").items
    assert [(e.kind, e.qr_id, e.parent_qr, e.bill_no) for e in history] == [
        ("link", "KID-1", "SB00002", None),
        ("unlink", "KID-1", "SB00002", None),
        ("link", "KID-1", "SB00001", None),
        ("bill_created", None, None, "BILL-1"),
        ("bill_add", None, "SB00001", "BILL-1"),
    ]
    assert [e.username for e in history[:3]] == ["scanner1", None, "scanner1"]


def test_history_after_deletions(db, sql_conn):
    qr = full_parent(db, 1, children=2)
    bags.delete_bag(db, "C00001-00")
    history = events.bag_history(db, qr).items
    assert [(e.kind, e.qr_id) for e in history][-2:] == [("unlink", "C00001-00"), ("bag_deleted", "C00001-00")]
    gone = events.bag_history(db, "C00001-00").items  # the bag is gone, its history is not
    assert [e.kind for e in gone] == ["link", "unlink", "bag_deleted"]
    assert sql_conn.execute("SELECT count(*) FROM event WHERE qr_id = 'C00001-00'").fetchone()[0] == 3
    with pytest.raises(errors.BagNotFound) as info:  # ... and one that never was
        events.bag_history(db, "NEVER-1")
    assert info.value.status == 404


def test_recent_events(db, sql_conn):
    a = make_user(db, "dispatcher", "lucknow").id
    b = make_user(db, "dispatcher", "indore").id
    scans.open_parent(db, "SB00001", dispatch_area="lucknow", user_id=a)
    scans.link_children(db, "SB00001", ["KID-1", "KID-2", "KID-3"], user_id=a)
    scans.open_parent(db, "SB00002", dispatch_area="indore", user_id=b)
    scans.link_child(db, "SB00002", "KID-9", user_id=b)
    scans.unlink_child(db, "KID-2", user_id=a)

    everything = events.recent_events(db, limit=100)
    assert everything.next_cursor is None
    assert [e.id for e in everything.items] == sorted((e.id for e in everything.items), reverse=True)
    assert len(everything.items) == 7

    paged, cursor = [], None
    while True:
        page = events.recent_events(db, limit=3, cursor=cursor)
        paged.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert paged == [e.id for e in everything.items]

    assert {e.user_id for e in events.recent_events(db, user_id=b).items} == {b}
    assert len(events.recent_events(db, user_id=b).items) == 2
    assert [e.kind for e in events.recent_events(db, dispatch_area="indore").items] == ["link", "parent_scan"]
    assert [(e.kind, e.qr_id) for e in events.recent_events(db, qr_id="kid-2").items] == [
        ("unlink", "KID-2"),
        ("link", "KID-2"),
    ]
    assert [e.qr_id for e in events.recent_events(db, kinds=("unlink",)).items] == ["KID-2"]
    assert len(events.recent_events(db, kinds=("link", "unlink"), user_id=a).items) == 4
    (tomorrow,) = sql_conn.execute("SELECT now() + interval '1 day'").fetchone()
    assert events.recent_events(db, since=tomorrow).items == []
    with pytest.raises(errors.InvalidCursor):
        events.recent_events(db, cursor="!!")
    with pytest.raises(errors.InvalidQr):
        events.recent_events(db, qr_id="x")


def test_recent_events_of_a_parent_include_its_links(db):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_child(db, "SB00001", "KID-1")
    kinds = [e.kind for e in events.recent_events(db, qr_id="SB00001").items]
    assert kinds == ["link", "parent_scan"]


def test_the_event_log_is_append_only(db, sql_conn):
    full_parent(db, 1, children=2)
    before = sql_conn.execute("SELECT * FROM event ORDER BY id").fetchall()
    assert len(before) == 3
    statements = [
        "UPDATE event SET kind = 'unlink' WHERE kind = 'link'",
        "UPDATE event SET user_id = 1 WHERE false",
        "DELETE FROM event",
        "DELETE FROM event WHERE id = -1",
        "TRUNCATE event",
    ]
    for statement in statements:
        with pytest.raises(psycopg.Error) as info:
            sql_conn.execute(statement)
        assert info.value.sqlstate == "TT409", statement
        assert info.value.diag.message_hint == "append_only"
        domain = errors.translate(info.value)
        assert isinstance(domain, errors.Conflict) and domain.status == 409
    assert sql_conn.execute("SELECT * FROM event ORDER BY id").fetchall() == before
    # appending still works
    scans.link_child(db, "SB00001", "ONE-MORE")
    assert len(sql_conn.execute("SELECT id FROM event").fetchall()) == 4


def test_a_dispatchers_history_leaves_out_other_areas_parents_on_the_same_bill(db, sql_conn):
    mine = full_parent(db, 1, area="lucknow", children=1)
    theirs = full_parent(db, 2, area="jaipur", children=1)
    bills.create_bill(db, "MIXED-1", 2)
    bills.add_parent(db, "MIXED-1", mine)
    bills.add_parent(db, "MIXED-1", theirs)
    everything = [(e.kind, e.parent_qr) for e in events.bag_history(db, mine).items]
    assert ("bill_add", theirs) in everything
    confined = [(e.kind, e.parent_qr) for e in events.bag_history(db, mine, restrict_area="lucknow").items]
    assert ("bill_add", theirs) not in confined
    assert ("bill_add", mine) in confined and ("bill_created", None) in confined


def test_a_dispatchers_history_and_scans_of_another_areas_bag_are_not_found(db, sql_conn):
    theirs = full_parent(db, 2, area="jaipur", children=1)
    for qr in (theirs, "C00002-00"):
        assert events.bag_history(db, qr, restrict_area="jaipur").items
        for read in (
            lambda q: events.bag_history(db, q, restrict_area="lucknow"),
            lambda q: events.recent_events(db, qr_id=q, dispatch_area="lucknow"),
        ):
            with pytest.raises(errors.BagNotFound) as other:
                read(qr)
            with pytest.raises(errors.BagNotFound) as unknown:
                read("NEVER-1")
            assert other.value.message == unknown.value.message.replace("NEVER-1", qr)
    assert events.recent_events(db, qr_id=theirs, dispatch_area="jaipur").items


def test_a_deleted_bags_history_is_readable_by_a_dispatcher_of_its_area(db):
    qr = full_parent(db, 1, area="lucknow", children=1)
    bags.delete_bag(db, "C00001-00")
    for area in (None, "lucknow"):
        history = events.bag_history(db, "C00001-00", restrict_area=area)
        assert [e.kind for e in history.items] == ["link", "unlink", "bag_deleted"], area
        assert [e.kind for e in events.recent_events(db, qr_id="C00001-00", dispatch_area=area).items] == [
            "bag_deleted",
            "unlink",
            "link",
        ]
    with pytest.raises(errors.BagNotFound):
        events.bag_history(db, "C00001-00", restrict_area="jaipur")
    assert qr == "SB00001"


def test_a_bag_without_events_has_an_empty_history_not_a_404(db, sql_conn):
    sql_conn.execute("INSERT INTO bag (qr_id, type, dispatch_area) VALUES ('SILENT-1', 'child', 'lucknow')")
    assert events.bag_history(db, "SILENT-1").items == []
    assert events.bag_history(db, "SILENT-1", restrict_area="lucknow").items == []
    with pytest.raises(errors.BagNotFound):
        events.bag_history(db, "SILENT-1", restrict_area="indore")
