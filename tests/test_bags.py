"""Bags: register, look up (the JSON detail of the hot read), delete, list with
keyset pagination and filters; dispatch areas; area confinement."""

from __future__ import annotations

from decimal import Decimal

import orjson
import psycopg
import pytest

from tests.factories import full_parent, make_user
from tracetrack_db import areas, bags, bills, errors, jsontext, scans


def bag_row(sql_conn, qr: str):
    return sql_conn.execute(
        "SELECT b.type, b.status, p.qr_id, b.child_count, b.weight_kg FROM bag b "
        "LEFT JOIN bag p ON p.id = b.parent_id WHERE b.qr_id = %s",
        (qr,),
    ).fetchone()


def counts(sql_conn) -> tuple[int, int]:
    return sql_conn.execute("SELECT (SELECT count(*) FROM bag), (SELECT count(*) FROM event)").fetchone()


# --- register_bag -----------------------------------------------------------


def test_register_child_and_parent(db, sql_conn):
    user = make_user(db, "admin")
    child = bags.register_bag(db, " loose-0001 ", "child", "lucknow", user_id=user.id, idempotency_key="key-1")
    assert (child.qr_id, child.type, child.status, child.parent_id, child.dispatch_area) == (
        "LOOSE-0001",
        "child",
        "pending",
        None,
        "lucknow",
    )
    assert (child.weight_kg, child.capacity, child.child_count, child.created_by) == (Decimal(1), None, 0, user.id)
    assert bags.get_bag(db, "LOOSE-0001") == child
    parent = bags.register_bag(db, "m444-00001", "parent", "lucknow")
    assert (parent.qr_id, parent.type, parent.status, parent.capacity, parent.child_count, parent.weight_kg) == (
        "M444-00001",
        "parent",
        "pending",
        30,
        0,
        Decimal(0),
    )
    event = sql_conn.execute(
        "SELECT kind, user_id, bag_id, qr_id, dispatch_area, idempotency_key FROM event ORDER BY id LIMIT 1"
    ).fetchone()
    assert event == ("bag_created", user.id, child.id, "LOOSE-0001", "lucknow", "key-1")
    # a registered child links like a scanned one, a registered parent opens like a scanned one
    assert scans.open_parent(db, "M444-00001").created is False
    assert scans.link_child(db, "M444-00001", "LOOSE-0001").result == "linked"
    assert bags.get_bag(db, "M444-00001").weight_kg == Decimal(1)


def test_register_bag_rules(db, sql_conn):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_child(db, "SB00001", "KNOWN-CHILD")
    before = counts(sql_conn)
    cases = [
        (("SB00001", "parent", "lucknow"), errors.QrTaken, "qr_taken", 409),
        (("known-child", "child", "indore"), errors.QrTaken, "qr_taken", 409),
        (("CHILD-0001", "parent", "lucknow"), errors.NotAParent, "not_a_parent", 422),
        (("SB00002", "child", "lucknow"), errors.NotAChild, "not_a_child", 422),
        (("CHILD-0001", "child", "atlantis"), errors.UnknownArea, "unknown_area", 400),
        (("CHILD-0001", "child", None), errors.DispatchAreaRequired, "dispatch_area_required", 400),
        (("CHILD-0001", "box", "lucknow"), errors.ValidationError, "validation_error", 400),
        (("C!", "child", "lucknow"), errors.InvalidQr, "invalid_qr", 400),
    ]
    for args, cls, code, status in cases:
        with pytest.raises(cls) as info:
            bags.register_bag(db, *args)
        assert (info.value.code, info.value.status) == (code, status), args
    assert counts(sql_conn) == before


def test_a_bags_type_never_changes_even_behind_the_library(db, sql_conn):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_child(db, "SB00001", "CHILD-0001")
    scans.unlink_child(db, "CHILD-0001")
    for qr, new_type in [("CHILD-0001", "parent"), ("SB00001", "child")]:
        with pytest.raises(psycopg.Error) as info:
            sql_conn.execute("UPDATE bag SET type = %s WHERE qr_id = %s", (new_type, qr))
        assert (info.value.sqlstate, info.value.diag.message_hint) == ("TT422", "type_immutable")
    assert [r[0] for r in sql_conn.execute("SELECT type FROM bag ORDER BY qr_id")] == ["child", "parent"]


# --- get_bag / get_bag_detail_json ------------------------------------------


def detail(db, qr, **kw) -> dict:
    return orjson.loads(bags.get_bag_detail_json(db, qr, **kw))


def test_get_bag_and_detail(db):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_children(db, "SB00001", ["CHILD-C", "CHILD-A", "CHILD-B"])
    bills.create_bill(db, "BILL-1", 1)
    bills.add_parent(db, "BILL-1", "SB00001")

    parent = bags.get_bag(db, "sb00001")
    assert (parent.bill_no, parent.child_count, parent.weight_kg) == ("BILL-1", 3, Decimal(3))
    family = detail(db, "SB00001")
    assert set(family) == {"bag", "parent", "children", "bill"}
    assert family["bag"]["id"] == parent.id and family["parent"] is None
    assert [c["qr_id"] for c in family["children"]] == ["CHILD-A", "CHILD-B", "CHILD-C"]
    assert all(c["parent_id"] == parent.id and c["parent_qr"] == "SB00001" for c in family["children"])
    assert family["bill"]["bill_no"] == "BILL-1" and family["bill"]["linked_parent_count"] == 1

    child = detail(db, "child-b")
    assert child["bag"]["qr_id"] == "CHILD-B" and child["bag"]["parent_qr"] == "SB00001"
    assert child["parent"]["id"] == parent.id and child["parent"]["bill_no"] == "BILL-1"
    assert child["children"] == []
    assert child["bill"]["bill_no"] == "BILL-1"  # the parent's bill

    for lookup in (bags.get_bag, bags.get_bag_detail_json):
        with pytest.raises(errors.BagNotFound) as info:
            lookup(db, "NOPE-0001")
        assert (info.value.code, info.value.status) == ("bag_not_found", 404)

    # an unlinked child and an empty parent
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    scans.link_child(db, "SB00002", "CHILD-X")
    scans.unlink_child(db, "CHILD-X")
    loose = detail(db, "CHILD-X")
    assert (loose["parent"], loose["children"], loose["bill"], loose["bag"]["parent_qr"]) == (None, [], None, None)
    empty = detail(db, "SB00002")
    assert (empty["children"], empty["bill"], empty["bag"]["child_count"]) == ([], None, 0)


def test_another_areas_bag_is_not_found_like_an_unknown_one(db):
    full_parent(db, 1, area="indore", children=2)
    for qr in ("SB00001", "C00001-00"):
        assert bags.get_bag(db, qr, restrict_area="indore").qr_id == qr
        assert detail(db, qr, restrict_area="indore")["bag"]["qr_id"] == qr
        for lookup in (bags.get_bag, bags.get_bag_detail_json, bags.visible_bag_id):
            with pytest.raises(errors.BagNotFound) as other:
                lookup(db, qr, restrict_area="lucknow")
            with pytest.raises(errors.BagNotFound) as unknown:
                lookup(db, "NOPE-0001", restrict_area="lucknow")
            assert (other.value.code, other.value.status) == (unknown.value.code, unknown.value.status)
            assert other.value.message == unknown.value.message.replace("NOPE-0001", qr)


def test_the_hot_reads_json_has_exactly_the_rows_of_the_typed_reads(db):
    """GET /api/bags/{qr} answers with JSON PostgreSQL renders from bag_row and
    bill_row: each object must equal the typed Bag / Bill of the same row."""

    def typed(row) -> dict:
        return orjson.loads(jsontext.dumps(row))

    parent = full_parent(db, 1, children=3)
    bills.create_bill(db, "JSON-1", 1)
    bills.add_parent(db, "JSON-1", parent)
    scans.open_parent(db, "SB00002", dispatch_area="indore")
    bags.register_bag(db, "LONE-CHILD", "child", "jaipur")
    for qr in (parent, "C00001-01", "SB00002", "LONE-CHILD"):
        got = detail(db, qr)
        bag = bags.get_bag(db, qr)
        assert normal(got["bag"]) == normal(typed(bag)), qr
        assert normal(got["parent"]) == (normal(typed(bags.get_bag(db, bag.parent_qr))) if bag.parent_qr else None)
        children = bags.list_bags(db, q="C00001-", limit=200).items if bag.qr_id == parent else []
        assert normal(got["children"]) == normal(sorted((typed(c) for c in children), key=lambda c: c["qr_id"]))
        bill_no = bag.bill_no or (bags.get_bag(db, bag.parent_qr).bill_no if bag.parent_qr else None)
        assert normal(got["bill"]) == (normal(typed(bills.get_bill(db, bill_no))) if bill_no else None), qr


def normal(value):
    """JSON from PostgreSQL and from orjson, compared as values (numbers as floats, times as datetimes)."""
    from datetime import datetime

    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str) and len(value) > 20 and value[10:11] == "T":
        return datetime.fromisoformat(value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    return value


# --- delete_bag -------------------------------------------------------------


def test_delete_parent_with_children_is_refused_until_they_are_unlinked(db, sql_conn):
    qr = full_parent(db, 1, children=2)
    with pytest.raises(errors.BagHasChildren) as info:
        bags.delete_bag(db, qr)
    assert (info.value.code, info.value.status) == ("bag_has_children", 409)
    assert bag_row(sql_conn, qr) is not None
    scans.unlink_child(db, "C00001-00")
    scans.unlink_child(db, "C00001-01")
    bags.delete_bag(db, qr)
    assert bag_row(sql_conn, qr) is None
    # the children stay, unlinked
    assert bag_row(sql_conn, "C00001-00") == ("child", "pending", None, 0, Decimal(1))


def test_delete_bag_on_bill_is_refused(db, sql_conn):
    qr = full_parent(db, 1, children=2)
    bills.create_bill(db, "BILL-1", 1)
    bills.add_parent(db, "BILL-1", qr)
    before = counts(sql_conn)
    with pytest.raises(errors.BagOnBill) as info:
        bags.delete_bag(db, qr)
    assert (info.value.code, info.value.status) == ("bag_on_bill", 409)
    with pytest.raises(errors.BagOnBill):
        bags.delete_bag(db, "C00001-00")  # a child of a parent on a bill
    assert counts(sql_conn) == before
    assert bills.get_bill(db, "BILL-1").total_child_count == 2


def test_deleting_a_linked_child_decrements_its_parent(db, sql_conn):
    user = make_user(db, "biller")
    qr = full_parent(db, 1)
    assert bag_row(sql_conn, qr)[1] == "completed"
    bags.delete_bag(db, "c00001-07", user_id=user.id, idempotency_key="del-1")
    assert bag_row(sql_conn, "C00001-07") is None
    assert bag_row(sql_conn, qr) == ("parent", "in_progress", None, 29, Decimal(29))
    events = sql_conn.execute(
        "SELECT kind, user_id, qr_id, parent_qr, idempotency_key, details FROM event "
        "WHERE qr_id = 'C00001-07' AND kind IN ('unlink', 'bag_deleted') ORDER BY id"
    ).fetchall()
    assert events == [
        ("unlink", user.id, "C00001-07", qr, "del-1", None),
        ("bag_deleted", user.id, "C00001-07", qr, "del-1", {"type": "child", "status": "completed"}),
    ]
    # the QR may come back as a new child
    assert scans.link_child(db, qr, "C00001-07").child_count == 30


def test_deleting_the_last_child_makes_the_parent_pending(db, sql_conn):
    qr = full_parent(db, 1, children=1)
    bags.delete_bag(db, "C00001-00")
    assert bag_row(sql_conn, qr) == ("parent", "pending", None, 0, Decimal(0))
    bags.delete_bag(db, qr)  # an empty parent may go
    assert counts(sql_conn)[0] == 0
    kinds = [r[0] for r in sql_conn.execute("SELECT kind FROM event ORDER BY id")]
    assert kinds[-3:] == ["unlink", "bag_deleted", "bag_deleted"]


def test_delete_bag_not_found_and_another_area(db, sql_conn):
    with pytest.raises(errors.BagNotFound) as info:
        bags.delete_bag(db, "NOPE-0001")
    assert info.value.status == 404
    assert counts(sql_conn) == (0, 0)
    qr = full_parent(db, 1, area="indore", children=1)
    with pytest.raises(errors.BagNotFound):
        bags.delete_bag(db, "C00001-00", restrict_area="lucknow")
    with pytest.raises(errors.BagNotFound):
        bags.delete_bag(db, qr, restrict_area="lucknow")
    assert bag_row(sql_conn, "C00001-00") is not None
    bags.delete_bag(db, "C00001-00", restrict_area="indore")
    assert bag_row(sql_conn, qr)[3] == 0


# --- list_bags --------------------------------------------------------------


@pytest.fixture
def bag_set(db, owner_db):
    """A mix of bags: {qr: id}."""
    areas.create_parent_format(owner_db, "tiny", "^TINY[0-9]{3}$", capacity=2, expected_weight_kg=2)
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_children(db, "SB00001", ["AB_C1-01", "AB_C1-02", "LOOSE-1"])
    scans.unlink_child(db, "LOOSE-1")
    scans.open_parent(db, "SB00002", dispatch_area="indore")
    scans.link_children(db, "SB00002", ["ABXC1-03", "ABC1-04"])
    scans.open_parent(db, "TINY001", dispatch_area="lucknow")
    scans.link_children(db, "TINY001", ["TINY-KID-1", "TINY-KID-2"])
    scans.open_parent(db, "M444-00001", dispatch_area="jaipur")
    bills.create_bill(db, "BILL-1", 2)
    bills.add_parent(db, "BILL-1", "SB00002")
    page = bags.list_bags(db, limit=200)
    return {b.qr_id: b.id for b in page.items}


def test_list_bags_keyset_pages_cover_everything_once(db, bag_set):
    assert len(bag_set) == 11
    seen = []
    cursor = None
    for _ in range(10):
        page = bags.list_bags(db, limit=5, cursor=cursor)
        assert len(page.items) <= 5
        seen.extend(b.id for b in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(bag_set.values(), reverse=True)  # newest first, no repeats, no gaps
    first = bags.list_bags(db, limit=11)
    assert len(first.items) == 11 and first.next_cursor is None


def test_list_bags_filters(db, sql_conn, bag_set):
    def qrs(**filters):
        out, cursor = [], None
        while True:
            page = bags.list_bags(db, limit=2, cursor=cursor, **filters)
            out.extend(b.qr_id for b in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return sorted(out)

    assert qrs(type="parent") == ["M444-00001", "SB00001", "SB00002", "TINY001"]
    assert qrs(type="child") == sorted(set(bag_set) - {"M444-00001", "SB00001", "SB00002", "TINY001"})
    assert qrs(status="completed") == [
        "ABC1-04",
        "ABXC1-03",
        "AB_C1-01",
        "AB_C1-02",
        "TINY-KID-1",
        "TINY-KID-2",
        "TINY001",
    ]
    assert qrs(status="pending") == ["LOOSE-1", "M444-00001"]
    assert qrs(status="in_progress") == ["SB00001", "SB00002"]
    assert qrs(dispatch_area="indore") == ["ABC1-04", "ABXC1-03", "SB00002"]
    assert qrs(dispatch_area="jaipur", type="child") == []
    assert qrs(q="ab_") == ["AB_C1-01", "AB_C1-02"]  # '_' is literal, not a wildcard
    assert qrs(q="AB") == ["ABC1-04", "ABXC1-03", "AB_C1-01", "AB_C1-02"]
    assert qrs(q=" sb0000") == ["SB00001", "SB00002"]
    assert qrs(q="tiny-") == ["TINY-KID-1", "TINY-KID-2"]
    assert qrs(q="nothing") == []
    assert qrs(linked=True) == ["ABC1-04", "ABXC1-03", "AB_C1-01", "AB_C1-02", "TINY-KID-1", "TINY-KID-2"]
    assert qrs(linked=False) == ["LOOSE-1"]
    assert qrs(billed=True) == ["SB00002"]
    assert qrs(billed=False) == ["M444-00001", "SB00001", "TINY001"]
    assert qrs(linked=True, dispatch_area="lucknow", q="AB") == ["AB_C1-01", "AB_C1-02"]
    billed = bags.list_bags(db, billed=True).items[0]
    assert billed.bill_no == "BILL-1" and billed.bill_id is not None
    linked = bags.list_bags(db, q="ABC1-04").items[0]
    assert linked.parent_qr == "SB00002"
    (tomorrow,) = sql_conn.execute("SELECT now() + interval '1 day'").fetchone()
    assert bags.list_bags(db, created_after=tomorrow).items == []
    assert len(bags.list_bags(db, created_before=tomorrow, limit=200).items) == len(bag_set)


def test_list_bags_invalid_input(db):
    for cursor in ["garbage!", "djI6MTA", "djE6LTU", "", "G", "-1", "0x1f", "a" * 17, "ab\n", "AB"]:
        with pytest.raises(errors.InvalidCursor) as info:
            bags.list_bags(db, cursor=cursor)
        assert (info.value.code, info.value.status, info.value.field) == ("invalid_cursor", 400, "cursor")
    with pytest.raises(errors.ValidationError) as info:
        bags.list_bags(db, type="box")
    assert info.value.field == "type"
    with pytest.raises(errors.ValidationError) as info:
        bags.list_bags(db, status="lost")
    assert info.value.field == "status"


def test_list_bags_refuses_a_limit_out_of_range(db, bag_set):
    for limit in (0, -1, 1001, True, "5"):
        with pytest.raises(errors.ValidationError) as info:
            bags.list_bags(db, limit=limit)
        assert info.value.field == "limit"
    assert len(bags.list_bags(db, limit=1000).items) == len(bag_set)


# --- dispatch areas ---------------------------------------------------------


def test_default_areas_and_adding_one(db):
    names = [a.name for a in areas.list_areas(db)]
    assert names == sorted(
        ["lucknow", "indore", "jaipur", "hisar", "sri_ganganagar", "sangaria", "bathinda", "raipur", "ranchi", "akola"]
    )
    assert {a.name: a.label for a in areas.list_areas(db)}["sri_ganganagar"] == "Sri Ganganagar"
    area = areas.create_area(db, "new_delhi")
    assert (area.name, area.label) == ("new_delhi", "New Delhi")
    assert areas.create_area(db, "pune", "Pune West").label == "Pune West"
    with pytest.raises(errors.AreaExists) as info:
        areas.create_area(db, "lucknow")
    assert (info.value.code, info.value.status) == ("area_exists", 409)
    for bad in ["X", "Lucknow", "has space", "9abc", "a" * 51, ""]:
        with pytest.raises(errors.ValidationError):
            areas.create_area(db, bad)
    assert len(areas.list_areas(db)) == 12
    # a new area is usable at once
    assert scans.open_parent(db, "SB00001", dispatch_area="new_delhi").bag.dispatch_area == "new_delhi"
    assert make_user(db, "dispatcher", "pune").dispatch_area == "pune"
