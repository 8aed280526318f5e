"""Bills: create, add/remove parents with their weights, complete, reopen,
update, delete, list; counters equal the real sums."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.factories import full_parent, make_user
from tracetrack_db import areas, bags, bills, errors, scans
from tracetrack_db.bills import BillChanges


def event_count(sql_conn) -> int:
    return sql_conn.execute("SELECT count(*) FROM event").fetchone()[0]


def totals(bill) -> tuple:
    return (bill.linked_parent_count, bill.total_child_count, bill.total_weight_kg, bill.expected_weight_kg)


def check_bill_consistent(db, bill_no: str):
    """The bill's counters equal the sums over the parents that are on it."""
    bill = bills.get_bill(db, bill_no)
    real = db.run_sql(
        "SELECT count(*)::int AS linked_parent_count, coalesce(sum(child_count), 0)::int AS total_child_count, "
        "coalesce(sum(weight_kg), 0) AS total_weight_kg FROM bag WHERE bill_id = %(id)s",
        {"id": bill.id},
        row=dict,
    )[0]
    assert (bill.linked_parent_count, bill.total_child_count, bill.total_weight_kg) == (
        real["linked_parent_count"],
        real["total_child_count"],
        real["total_weight_kg"],
    )
    assert 0 <= bill.linked_parent_count <= bill.capacity
    return bill


# --- create / get -----------------------------------------------------------


def test_create_bill(db, sql_conn):
    user = make_user(db, "biller")
    bill = bills.create_bill(
        db,
        "  Bill-2024/001 ",
        3,
        description="rice",
        destination="Delhi",
        vehicle_number="UP32 AB 1234",
        user_id=user.id,
        idempotency_key="k-1",
    )
    assert (bill.bill_no, bill.capacity, bill.status) == ("Bill-2024/001", 3, "new")
    assert (bill.description, bill.destination, bill.vehicle_number) == ("rice", "Delhi", "UP32 AB 1234")
    assert totals(bill) == (0, 0, Decimal(0), Decimal(0))
    assert (bill.created_by, bill.completed_at) == (user.id, None)
    assert bills.get_bill(db, "bill-2024/001") == bill
    assert bills.get_bill(db, " BILL-2024/001") == bill
    event = sql_conn.execute("SELECT kind, user_id, bill_id, bill_no, idempotency_key FROM event").fetchall()
    assert event == [("bill_created", user.id, bill.id, "Bill-2024/001", "k-1")]


def test_bill_exists_case_insensitively(db, sql_conn):
    bills.create_bill(db, "Bill-1", 2)
    for other in ["Bill-1", "BILL-1", "bill-1", " bIlL-1 "]:
        with pytest.raises(errors.BillExists) as info:
            bills.create_bill(db, other, 5)
        assert (info.value.code, info.value.status, info.value.field) == ("bill_exists", 409, "bill_no")
    assert sql_conn.execute("SELECT count(*) FROM bill").fetchone()[0] == 1
    assert event_count(sql_conn) == 1


def test_create_bill_validation(db, sql_conn):
    for capacity in [0, 501, -1, True, 1.5, "10", None]:
        with pytest.raises(errors.ValidationError) as info:
            bills.create_bill(db, "B-1", capacity)
        assert (info.value.code, info.value.field) == ("validation_error", "capacity")
    for bill_no in ["", "   ", None, 42, "B 1", "-B1", "B#1", "x" * 65]:
        with pytest.raises(errors.ValidationError) as info:
            bills.create_bill(db, bill_no, 1)
        assert info.value.field == "bill_no"
    for field, limit in [("description", 1000), ("destination", 200), ("vehicle_number", 50)]:
        with pytest.raises(errors.ValidationError) as info:
            bills.create_bill(db, "B-1", 1, **{field: "x" * (limit + 1)})
        assert info.value.field == field
    assert sql_conn.execute("SELECT count(*) FROM bill").fetchone()[0] == 0
    assert bills.create_bill(db, "B-1", 1, description="x" * 1000).capacity == 1
    assert bills.create_bill(db, "B-500", 500).capacity == 500


def test_get_bill_errors(db):
    with pytest.raises(errors.BillNotFound) as info:
        bills.get_bill(db, "NOPE")
    assert (info.value.code, info.value.status) == ("bill_not_found", 404)
    with pytest.raises(errors.BillNotFound):
        bills.get_bill_detail(db, "NOPE")
    with pytest.raises(errors.ValidationError):
        bills.get_bill(db, "  ")


# --- add / remove parents ---------------------------------------------------


def test_add_and_remove_parents_keep_weights_and_counts(owner_db, db, sql_conn):
    p1 = full_parent(db, 1)  # 30 children, completed
    p2 = full_parent(db, 2, children=10)  # in progress
    areas.create_parent_format(owner_db, "tiny", "^TINY[0-9]{3}$", capacity=2, expected_weight_kg=Decimal("2.5"))
    scans.open_parent(db, "TINY001", dispatch_area="lucknow")
    scans.link_child(db, "TINY001", "TINY-KID-1")
    bills.create_bill(db, "BILL-1", 3)

    first = bills.add_parent(db, "bill-1", " sb00001 ")
    assert first.result == "added"
    assert first.bill.status == "processing"  # new -> processing on the first parent
    assert totals(first.bill) == (1, 30, Decimal(30), Decimal(30))
    assert bags.get_bag(db, p1).bill_no == "BILL-1"

    second = bills.add_parent(db, "BILL-1", p2)
    assert totals(second.bill) == (2, 40, Decimal(40), Decimal(60))
    third = bills.add_parent(db, "BILL-1", "TINY001")
    assert totals(third.bill) == (3, 41, Decimal(41), Decimal("62.5"))
    check_bill_consistent(db, "BILL-1")

    events_before = event_count(sql_conn)
    again = bills.add_parent(db, "BILL-1", p1)
    assert again.result == "already_added"
    assert totals(again.bill) == (3, 41, Decimal(41), Decimal("62.5"))
    assert event_count(sql_conn) == events_before

    after_remove = bills.remove_parent(db, "BILL-1", p2)
    assert totals(after_remove) == (2, 31, Decimal(31), Decimal("32.5"))
    assert after_remove.status == "processing"
    assert bags.get_bag(db, p2).bill_id is None
    check_bill_consistent(db, "BILL-1")

    detail = bills.get_bill_detail(db, "bill-1")
    assert detail.bill == bills.get_bill(db, "BILL-1")
    assert [(p.qr_id, p.child_count, p.weight_kg, p.bill_no) for p in detail.parents] == [
        ("SB00001", 30, Decimal(30), "BILL-1"),
        ("TINY001", 1, Decimal(1), "BILL-1"),
    ]


def test_add_parent_errors(db, sql_conn):
    p1 = full_parent(db, 1, children=3)
    p2 = full_parent(db, 2, children=3)
    p3 = full_parent(db, 3, children=3)
    scans.open_parent(db, "SB00009", dispatch_area="lucknow")  # empty
    bills.create_bill(db, "ONE", 1)
    bills.create_bill(db, "OTHER", 5)
    bills.create_bill(db, "DONE", 1)
    bills.add_parent(db, "ONE", p1)
    bills.add_parent(db, "OTHER", p2)
    bills.add_parent(db, "DONE", p3)
    bills.complete_bill(db, "DONE")
    before = (
        sql_conn.execute("SELECT * FROM bill ORDER BY id").fetchall(),
        sql_conn.execute("SELECT id, bill_id FROM bag ORDER BY id").fetchall(),
        event_count(sql_conn),
    )
    cases = [
        ("ONE", "SB00009", errors.BillFull, "bill_full", 409),
        ("ONE", p2, errors.ParentOnOtherBill, "parent_on_other_bill", 409),
        ("DONE", "SB00009", errors.BillCompleted, "bill_completed", 409),
        ("OTHER", "SB00009", errors.ParentEmpty, "parent_empty", 409),
        ("OTHER", "C00001-00", errors.NotAParent, "not_a_parent", 422),
        ("OTHER", "SB00077", errors.BagNotFound, "bag_not_found", 404),
        ("NOPE", p1, errors.BillNotFound, "bill_not_found", 404),
    ]
    for bill_no, parent, cls, code, status in cases:
        with pytest.raises(cls) as info:
            bills.add_parent(db, bill_no, parent)
        assert (info.value.code, info.value.status) == (code, status), (bill_no, parent)
    with pytest.raises(errors.InvalidQr):
        bills.add_parent(db, "OTHER", "x!")
    after = (
        sql_conn.execute("SELECT * FROM bill ORDER BY id").fetchall(),
        sql_conn.execute("SELECT id, bill_id FROM bag ORDER BY id").fetchall(),
        event_count(sql_conn),
    )
    assert after == before
    # already on this completed bill is still just "already_added"
    assert bills.add_parent(db, "DONE", p3).result == "already_added"


def test_remove_parent_errors(db, sql_conn):
    p1 = full_parent(db, 1, children=2)
    p2 = full_parent(db, 2, children=2)
    p3 = full_parent(db, 3, children=2)
    bills.create_bill(db, "A", 2)
    bills.create_bill(db, "B", 2)
    bills.add_parent(db, "A", p1)
    bills.add_parent(db, "B", p2)
    for parent in [p2, p3, "C00001-00"]:
        with pytest.raises(errors.ParentNotOnBill) as info:
            bills.remove_parent(db, "A", parent)
        assert (info.value.code, info.value.status) == ("parent_not_on_bill", 409)
    with pytest.raises(errors.BagNotFound):
        bills.remove_parent(db, "A", "SB00077")
    with pytest.raises(errors.BillNotFound):
        bills.remove_parent(db, "NOPE", p1)
    assert totals(bills.get_bill(db, "A")) == (1, 2, Decimal(2), Decimal(30))
    assert bags.get_bag(db, p2).bill_no == "B"


# --- complete / reopen ------------------------------------------------------


def test_complete_needs_a_full_bill_and_reopen_goes_back_to_processing(db, sql_conn):
    p1 = full_parent(db, 1, children=5)
    p2 = full_parent(db, 2, children=5)
    p3 = full_parent(db, 3, children=5)
    bills.create_bill(db, "BILL-1", 2)
    with pytest.raises(errors.BillNotFull) as info:
        bills.complete_bill(db, "BILL-1")  # empty
    assert (info.value.code, info.value.status) == ("bill_not_full", 409)
    bills.add_parent(db, "BILL-1", p1)
    with pytest.raises(errors.BillNotFull):
        bills.complete_bill(db, "BILL-1")
    assert bills.get_bill(db, "BILL-1").status == "processing"
    bills.add_parent(db, "BILL-1", p2)
    done = bills.complete_bill(db, "bill-1")
    assert (done.status, done.linked_parent_count) == ("completed", 2)
    assert done.completed_at is not None

    # completing again changes nothing
    events_before = event_count(sql_conn)
    assert bills.complete_bill(db, "BILL-1") == done
    assert event_count(sql_conn) == events_before

    # a completed bill is frozen
    with pytest.raises(errors.BillCompleted):
        bills.remove_parent(db, "BILL-1", p1)
    with pytest.raises(errors.BillCompleted):
        bills.add_parent(db, "BILL-1", p3)
    with pytest.raises(errors.BillCompleted) as info:
        bills.update_bill(db, "BILL-1", BillChanges(capacity=3))
    assert (info.value.code, info.value.status) == ("bill_completed", 409)
    assert bills.get_bill(db, "BILL-1") == done

    reopened = bills.reopen_bill(db, "BILL-1")
    assert (reopened.status, reopened.completed_at) == ("processing", None)
    assert totals(reopened) == totals(done)
    with pytest.raises(errors.BillNotCompleted) as info:
        bills.reopen_bill(db, "BILL-1")
    assert (info.value.code, info.value.status) == ("bill_not_completed", 409)
    bills.create_bill(db, "FRESH", 1)
    with pytest.raises(errors.BillNotCompleted):
        bills.reopen_bill(db, "FRESH")
    # after reopening, parents can move again
    assert bills.remove_parent(db, "BILL-1", p1).linked_parent_count == 1
    for call in (bills.complete_bill, bills.reopen_bill):
        with pytest.raises(errors.BillNotFound):
            call(db, "NOPE")
    kinds = [r[0] for r in sql_conn.execute("SELECT kind FROM event WHERE bill_no = 'BILL-1' ORDER BY id")]
    assert kinds == ["bill_created", "bill_add", "bill_add", "bill_complete", "bill_reopen", "bill_remove"]


# --- update -----------------------------------------------------------------


def test_update_bill(db, sql_conn):
    user = make_user(db, "biller")
    p1 = full_parent(db, 1, children=2)
    p2 = full_parent(db, 2, children=2)
    bills.create_bill(db, "BILL-1", 5, description="old", destination="Agra", vehicle_number="V1")
    bills.add_parent(db, "BILL-1", p1)
    bills.add_parent(db, "BILL-1", p2)

    changed = bills.update_bill(
        db, "bill-1", BillChanges(description="new", vehicle_number="V2"), user_id=user.id, idempotency_key="u-1"
    )
    assert (changed.description, changed.destination, changed.vehicle_number, changed.capacity) == (
        "new",
        "Agra",
        "V2",
        5,
    )
    event = sql_conn.execute(
        "SELECT kind, user_id, bill_no, idempotency_key, details FROM event ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert event == ("bill_updated", user.id, "BILL-1", "u-1", {"description": "new", "vehicle_number": "V2"})

    with pytest.raises(errors.BillCapacityTooSmall) as info:
        bills.update_bill(db, "BILL-1", BillChanges(capacity=1))
    assert (info.value.code, info.value.status) == ("bill_capacity_too_small", 409)
    for capacity in [0, 501, True]:
        with pytest.raises(errors.ValidationError) as info:
            bills.update_bill(db, "BILL-1", BillChanges(capacity=capacity))
        assert info.value.field == "capacity"
    with pytest.raises(errors.ValidationError) as info:
        bills.update_bill(db, "BILL-1", BillChanges(destination="x" * 201))
    assert info.value.field == "destination"
    assert bills.get_bill(db, "BILL-1").capacity == 5

    exact = bills.update_bill(db, "BILL-1", BillChanges(capacity=2))
    assert (exact.capacity, exact.linked_parent_count) == (2, 2)
    assert bills.complete_bill(db, "BILL-1").status == "completed"
    with pytest.raises(errors.BillNotFound):
        bills.update_bill(db, "NOPE", BillChanges(description="x"))


# --- delete -----------------------------------------------------------------


def test_delete_bill_releases_parents_and_keeps_history(db, sql_conn):
    user = make_user(db, "admin")
    p1 = full_parent(db, 1)
    p2 = full_parent(db, 2)
    bill = bills.create_bill(db, "BILL-1", 2)
    bills.add_parent(db, "BILL-1", p1)
    bills.add_parent(db, "BILL-1", p2)
    bills.complete_bill(db, "BILL-1")
    events_before = event_count(sql_conn)

    bills.delete_bill(db, "bill-1", user_id=user.id, idempotency_key="d-1")
    with pytest.raises(errors.BillNotFound):
        bills.get_bill(db, "BILL-1")
    for qr in (p1, p2):
        parent = bags.get_bag(db, qr)
        assert (parent.bill_id, parent.bill_no, parent.child_count, parent.status) == (None, None, 30, "completed")
    last = sql_conn.execute(
        "SELECT kind, user_id, bill_id, bill_no, idempotency_key, details FROM event ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert last == ("bill_deleted", user.id, bill.id, "BILL-1", "d-1", {"parents_released": 2, "status": "completed"})
    # a bill_remove per released parent (its own history says how it left), then bill_deleted
    assert event_count(sql_conn) == events_before + 3
    removed = sql_conn.execute("SELECT parent_qr, details FROM event WHERE kind = 'bill_remove' ORDER BY id").fetchall()
    assert removed == [(p1, {"bill_deleted": True}), (p2, {"bill_deleted": True})]
    kinds = [r[0] for r in sql_conn.execute("SELECT kind FROM event WHERE bill_id = %s ORDER BY id", (bill.id,))]
    assert kinds == [
        "bill_created",
        "bill_add",
        "bill_add",
        "bill_complete",
        "bill_remove",
        "bill_remove",
        "bill_deleted",
    ]

    # the parents are free: they can be unlinked from or go on a new bill
    assert scans.unlink_child(db, "C00001-00").child_count == 29
    bills.create_bill(db, "BILL-1", 1)  # the number is free again
    assert bills.add_parent(db, "BILL-1", p2).bill.total_child_count == 30
    with pytest.raises(errors.BillNotFound):
        bills.delete_bill(db, "NOPE")


# --- list -------------------------------------------------------------------


def test_list_bills(db):
    p1 = full_parent(db, 1, children=1)
    for no in ["A_1", "AB1", "a_2", "B-1", "C-9"]:
        bills.create_bill(db, no, 1)
    bills.add_parent(db, "B-1", p1)
    bills.complete_bill(db, "B-1")
    all_ids = []
    cursor = None
    while True:
        page = bills.list_bills(db, limit=2, cursor=cursor)
        all_ids.extend(b.id for b in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(all_ids) == 5 and all_ids == sorted(all_ids, reverse=True)

    def nos(**kw):
        return sorted(b.bill_no for b in bills.list_bills(db, **kw).items)

    assert nos(q="a_") == ["A_1", "a_2"]  # case-insensitive, '_' literal
    assert nos(q="A") == ["AB1", "A_1", "a_2"]
    assert nos(q="%") == []
    assert nos(status="completed") == ["B-1"]
    assert nos(status="new") == ["AB1", "A_1", "C-9", "a_2"]
    assert nos(status="processing") == []
    with pytest.raises(errors.ValidationError) as info:
        bills.list_bills(db, status="open")
    assert info.value.field == "status"
    with pytest.raises(errors.InvalidCursor):
        bills.list_bills(db, cursor="nope!")


# --- counters ---------------------------------------------------------------


def test_bill_counters_equal_real_totals_after_a_sequence(db):
    rng = random.Random(7)
    parents = [full_parent(db, i, children=rng.randint(1, 30)) for i in range(1, 9)]
    bill_nos = ["X-1", "X-2", "X-3"]
    for no in bill_nos:
        bills.create_bill(db, no, 3)
    seen = set()
    for _ in range(80):
        no, qr = rng.choice(bill_nos), rng.choice(parents)
        try:
            if rng.random() < 0.6:
                seen.add(bills.add_parent(db, no, qr).result)
            else:
                bills.remove_parent(db, no, qr)
                seen.add("removed")
        except (errors.BillFull, errors.ParentOnOtherBill, errors.ParentNotOnBill) as exc:
            seen.add(exc.code)
    assert {"added", "removed", "parent_on_other_bill", "parent_not_on_bill"} <= seen
    on_bills = 0
    for no in bill_nos:
        bill = check_bill_consistent(db, no)
        assert bill.expected_weight_kg == 30 * bill.linked_parent_count
        assert bill.total_weight_kg == bill.total_child_count  # 1 kg per child
        on_bills += bill.linked_parent_count
    assert on_bills == sum(1 for qr in parents if bags.get_bag(db, qr).bill_id is not None)


@pytest.mark.parametrize("bill_no", ["INV/complete", "parents", "A/Parents/B", "x/reopen"])
def test_bill_numbers_cannot_hold_a_route_segment(db, bill_no):
    with pytest.raises(errors.ValidationError) as info:
        bills.create_bill(db, bill_no, 2)
    assert info.value.field == "bill_no"


def test_bill_numbers_with_slashes_are_fine(db):
    assert bills.create_bill(db, "INV/24-25/001", 2).bill_no == "INV/24-25/001"
