"""Return tickets (issue 12, items 1 and 2): parents back from a depot leave
their bills (counters down, a completed bill back to processing), the ticket
keeps where each came from, the parents can be billed again, and a bag's
history reads as a story. Every refusal changes nothing; replays record
nothing twice; two billers returning and re-billing the same parents at once
keep every invariant."""

from __future__ import annotations

import contextlib
import random
import threading
from decimal import Decimal

import pytest

from tracetrack_db import bills, errors, reports, returns, scans, views

from .api_helpers import *  # noqa: F403
from .factories import check_counters, full_parent, make_user, run_together
from .test_concurrency import _wait_for_lock_waiters


def billed(db, bill_no: str, parents: list[str], complete: bool = True) -> None:
    bills.create_bill(db, bill_no, len(parents))
    for p in parents:
        bills.add_parent(db, bill_no, p)
    if complete:
        bills.complete_bill(db, bill_no)


def check_tickets(sql_conn) -> None:
    """Each ticket's counters equal the sums over its items, and every item has its one return_add event."""
    bad = sql_conn.execute("""
        SELECT t.id FROM return_ticket t LEFT JOIN return_item i ON i.ticket_id = t.id
        GROUP BY t.id
        HAVING t.parent_count <> count(i.id) OR t.total_child_count <> coalesce(sum(i.child_count), 0)
            OR t.total_weight_kg <> coalesce(sum(i.weight_kg), 0)""").fetchall()
    assert bad == []
    unmatched = sql_conn.execute("""
        SELECT count(*) FROM return_item i
        WHERE (SELECT count(*) FROM event e WHERE e.kind = 'return_add' AND e.parent_id = i.parent_id
               AND (e.details->>'return_id')::bigint = i.ticket_id) <> 1""").fetchone()[0]
    assert unmatched == 0
    assert sql_value(sql_conn, "SELECT count(*) FROM event WHERE kind = 'return_add'") == sql_value(
        sql_conn, "SELECT count(*) FROM return_item"
    )


def check_bill_story(sql_conn) -> None:
    """Every parent's bill events add up to where it is: on a bill after its last add, else off."""
    bad = sql_conn.execute("""
        SELECT p.qr_id FROM bag p
        WHERE p.type = 'parent' AND (
            SELECT count(*) FILTER (WHERE e.kind = 'bill_add')
                   - count(*) FILTER (WHERE e.kind IN ('bill_remove', 'return_add'))
            FROM event e WHERE e.parent_id = p.id AND e.bag_id IS NULL) <> (p.bill_id IS NOT NULL)::int""").fetchall()
    assert bad == []


# the library ----------------------------------------------------------------------
def test_a_returned_parent_leaves_its_bill_and_the_ticket_keeps_where_it_came_from(db, sql_conn):
    user = make_user(db, "biller")
    p1, p2 = full_parent(db, 1), full_parent(db, 2, children=12)
    billed(db, "B1", [p1, p2])
    ticket = returns.open_return(db, "  Agra depot ", "wet bags", user_id=user.id, idempotency_key="k-open")
    assert (ticket.ticket_no, ticket.depot, ticket.reason, ticket.status) == (
        f"R{ticket.id}",
        "Agra depot",
        "wet bags",
        "open",
    )
    assert (ticket.parent_count, ticket.created_by, ticket.closed_at) == (0, user.id, None)
    events = count_events(sql_conn)

    back = returns.return_parent(db, ticket.id, " sb00002 ", user_id=user.id, idempotency_key="k-1")
    assert back.result == "returned"
    item = back.item
    assert (item.parent_qr, item.bill_no, item.child_count, item.weight_kg) == ("SB00002", "B1", 12, Decimal(12))
    assert (item.returned_by, item.returned_by_username, item.ticket_no) == (user.id, user.username, ticket.ticket_no)
    assert (back.ticket.parent_count, back.ticket.total_child_count, back.ticket.total_weight_kg) == (1, 12, 12)
    bill = bills.get_bill(db, "B1")  # the completed bill goes back to processing, its counters down
    assert (bill.status, bill.completed_at, bill.linked_parent_count, bill.total_child_count) == (
        "processing",
        None,
        1,
        30,
    )
    assert (bill.total_weight_kg, bill.expected_weight_kg) == (30, 30)
    assert sql_value(sql_conn, "SELECT bill_id FROM bag WHERE qr_id = 'SB00002'") is None
    assert sql_value(sql_conn, "SELECT child_count FROM bag WHERE qr_id = 'SB00002'") == 12  # keeps its children
    event = sql_conn.execute(
        "SELECT kind, user_id, bag_id, parent_qr, bill_no, dispatch_area, idempotency_key, details "
        "FROM event ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert event[:7] == ("return_add", user.id, None, "SB00002", "B1", "lucknow", "k-1")
    assert event[7] == {
        "return_id": ticket.id,
        "ticket_no": ticket.ticket_no,
        "depot": "Agra depot",
        "child_count": 12,
        "weight_kg": 12,
        "bill_status": "completed",
    }
    assert count_events(sql_conn) == events + 1

    # the last parent out sends the bill back to new, as taking it off by hand does
    returns.return_parent(db, ticket.id, p1)
    bill = bills.get_bill(db, "B1")
    assert (bill.status, bill.linked_parent_count, bill.total_child_count, bill.total_weight_kg) == ("new", 0, 0, 0)
    detail = returns.get_return(db, ticket.id)
    assert [i.parent_qr for i in detail.items] == ["SB00002", "SB00001"]  # in scan order
    assert (detail.ticket.parent_count, detail.ticket.total_child_count) == (2, 42)
    check_counters(sql_conn)
    check_tickets(sql_conn)
    check_bill_story(sql_conn)


def test_a_returned_parent_goes_on_another_bill_and_can_be_returned_again(db, sql_conn):
    p1 = full_parent(db, 1)
    billed(db, "B1", [p1])
    first = returns.open_return(db, "Agra")
    returns.return_parent(db, first.id, p1)
    bills.create_bill(db, "B2", 1)
    added = bills.add_parent(db, "B2", p1)
    assert (added.result, added.bill.linked_parent_count, added.bill.total_child_count) == ("added", 1, 30)
    bills.complete_bill(db, "B2")
    # back again from the second bill, on a new ticket
    second = returns.open_return(db, "Agra")
    again = returns.return_parent(db, second.id, p1)
    assert (again.result, again.item.bill_no) == ("returned", "B2")
    # ... and onto the first bill once more
    assert bills.add_parent(db, "B1", p1).result == "added"
    check_counters(sql_conn)
    check_tickets(sql_conn)
    check_bill_story(sql_conn)


def test_a_parent_already_on_the_ticket_is_already_returned_and_records_nothing(db, sql_conn):
    p1 = full_parent(db, 1)
    billed(db, "B1", [p1])
    ticket = returns.open_return(db, "Agra")
    first = returns.return_parent(db, ticket.id, p1)
    events = count_events(sql_conn)
    again = returns.return_parent(db, ticket.id, p1, idempotency_key="another")
    assert again.result == "already_returned" and again.item == first.item and again.ticket == first.ticket
    assert count_events(sql_conn) == events
    # billed again since: this ticket cannot take it twice (the answer says so, nothing changes)
    bills.create_bill(db, "B2", 1)
    bills.add_parent(db, "B2", p1)
    with pytest.raises(errors.ReturnedOnThisTicket):
        returns.return_parent(db, ticket.id, p1)
    assert bills.get_bill(db, "B2").linked_parent_count == 1
    check_counters(sql_conn)
    check_tickets(sql_conn)


def test_refusals_change_nothing(db, sql_conn):
    p1 = full_parent(db, 1)
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")  # on no bill
    billed(db, "B1", [p1])
    ticket = returns.open_return(db, "Agra")
    finalised = returns.open_return(db, "Agra")
    returns.return_parent(db, finalised.id, p1)
    bills.add_parent(db, "B1", p1)  # back on its bill
    returns.finalise_return(db, finalised.id)
    cancelled = returns.cancel_return(db, returns.open_return(db, "Agra").id)

    def state():
        return (
            count_events(sql_conn),
            sql_conn.execute("SELECT id, bill_id, child_count FROM bag ORDER BY id").fetchall(),
            sql_conn.execute("SELECT * FROM bill ORDER BY id").fetchall(),
            sql_conn.execute("SELECT * FROM return_ticket ORDER BY id").fetchall(),
            count_rows(sql_conn, "return_item"),
        )

    before = state()
    cases = [
        (lambda: returns.return_parent(db, 999_999, p1), errors.ReturnNotFound),
        (lambda: returns.return_parent(db, ticket.id, "SB09999"), errors.BagNotFound),
        (lambda: returns.return_parent(db, ticket.id, "C00001-03"), errors.NotAParent),
        (lambda: returns.return_parent(db, ticket.id, "SB00002"), errors.ParentNotOnBill),
        (lambda: returns.return_parent(db, finalised.id, p1), errors.ReturnNotOpen),
        (lambda: returns.return_parent(db, cancelled.id, p1), errors.ReturnNotOpen),
        (lambda: returns.return_parent(db, ticket.id, "not a qr!"), errors.InvalidQr),
        (lambda: returns.finalise_return(db, ticket.id), errors.ReturnEmpty),
        (lambda: returns.finalise_return(db, cancelled.id), errors.ReturnNotOpen),
        (lambda: returns.cancel_return(db, finalised.id), errors.ReturnNotOpen),
        (lambda: returns.cancel_return(db, 999_999), errors.ReturnNotFound),
        (lambda: returns.get_return(db, 999_999), errors.ReturnNotFound),
        (lambda: returns.open_return(db, " \t "), errors.ValidationError),
        (lambda: returns.open_return(db, "x" * 201), errors.ValidationError),
        (lambda: returns.open_return(db, "Agra", "r" * 1001), errors.ValidationError),
        (lambda: returns.list_returns(db, status="lost"), errors.ValidationError),
    ]
    for call, error in cases:
        with pytest.raises(error) as caught:
            call()
        assert type(caught.value) is error or error is errors.ValidationError, caught.value
    assert state() == before
    # the 1000-parent bound of a ticket (set by hand: scanning 1000 parents is slow, not the point)
    sql_conn.execute("UPDATE return_ticket SET parent_count = 1000 WHERE id = %s", (ticket.id,))
    with pytest.raises(errors.ReturnFull):
        returns.return_parent(db, ticket.id, p1)
    assert bills.get_bill(db, "B1").linked_parent_count == 1


def test_finalise_and_cancel_close_a_ticket_once(db, sql_conn):
    p1, p2 = full_parent(db, 1), full_parent(db, 2)
    billed(db, "B1", [p1, p2])
    user = make_user(db, "admin")
    done = returns.open_return(db, "Agra")
    returns.return_parent(db, done.id, p1)
    events = count_events(sql_conn)
    finalised = returns.finalise_return(db, done.id, user_id=user.id)
    assert (finalised.status, finalised.closed_by, finalised.closed_at is not None) == ("finalised", user.id, True)
    assert returns.finalise_return(db, done.id) == finalised  # again: as it is, nothing recorded
    assert count_events(sql_conn) == events + 1
    # cancel: recorded as abandoned, and nothing goes back (the parent stays off its bill)
    dropped = returns.open_return(db, "Jaipur")
    returns.return_parent(db, dropped.id, p2)
    cancelled = returns.cancel_return(db, dropped.id)
    assert cancelled.status == "cancelled" and returns.cancel_return(db, dropped.id) == cancelled
    assert sql_value(sql_conn, "SELECT bill_id FROM bag WHERE qr_id = %s", (p2,)) is None
    assert bills.get_bill(db, "B1").linked_parent_count == 0
    kinds = sql_conn.execute(
        "SELECT kind, details->>'return_id', details->>'parent_count' FROM event "
        "WHERE kind IN ('return_finalised', 'return_cancelled') ORDER BY id"
    ).fetchall()
    assert kinds == [("return_finalised", str(done.id), "1"), ("return_cancelled", str(dropped.id), "1")]
    check_counters(sql_conn)
    check_tickets(sql_conn)


def test_list_pages_newest_first_and_filters_by_status(db):
    made = [returns.open_return(db, f"Depot {i}") for i in range(5)]
    returns.cancel_return(db, made[1].id)
    returns.cancel_return(db, made[3].id)
    first = returns.list_returns(db, limit=2)
    assert [t.id for t in first.items] == [made[4].id, made[3].id] and first.next_cursor
    rest = returns.list_returns(db, limit=10, cursor=first.next_cursor)
    assert [t.id for t in rest.items] == [made[2].id, made[1].id, made[0].id] and rest.next_cursor is None
    assert [t.id for t in returns.list_returns(db, status="cancelled").items] == [made[3].id, made[1].id]
    assert returns.list_returns(db, status="finalised").items == []


def test_a_return_waiting_for_a_bill_whose_parent_moves_follows_it(db, sql_conn):
    """The parent's bill is read unlocked, then bill and parent are locked: a parent
    moved to another bill meanwhile undoes the attempt (and its locks) and is
    returned from the bill it is on now."""
    p1 = full_parent(db, 1)
    billed(db, "B1", [p1], complete=False)
    bills.create_bill(db, "B2", 1)
    ticket = returns.open_return(db, "Agra")
    result: dict[str, object] = {}
    with db.connection() as holder, holder.transaction():
        bills.remove_parent(db, "B1", p1, conn=holder)  # holds B1 and the parent
        bills.add_parent(db, "B2", p1, conn=holder)

        def back() -> None:
            try:
                result["r"] = returns.return_parent(db, ticket.id, p1)
            except BaseException as exc:  # noqa: BLE001 - asserted below
                result["r"] = exc

        thread = threading.Thread(target=back)
        thread.start()
        _wait_for_lock_waiters(sql_conn, 1)  # waits for B1, having read the parent on it
    thread.join(30)
    returned = result["r"]
    assert not isinstance(returned, BaseException), returned
    assert returned.item.bill_no == "B2"
    assert bills.get_bill(db, "B2").linked_parent_count == 0
    check_counters(sql_conn)
    check_tickets(sql_conn)


def test_two_billers_returning_and_rebilling_the_same_parents_at_once_keep_the_invariants(db, sql_conn):
    """Two billers, each with their own tickets and bill, return the same eight
    parents and put them on their own bill, round after round, while a
    dispatcher links children into whichever of them is off a bill."""
    parents = [full_parent(db, n, children=3) for n in range(1, 9)]
    billed(db, "START", parents)
    for name in ("BILL-A", "BILL-B"):
        bills.create_bill(db, name, len(parents))
    billers = [make_user(db, "biller") for _ in range(2)]
    expected = (errors.ParentNotOnBill, errors.ParentOnOtherBill, errors.ReturnedOnThisTicket, errors.Conflict)

    def biller(n: int) -> None:
        rnd = random.Random(n)
        bill_no = ("BILL-A", "BILL-B")[n]
        for _ in range(4):
            ticket = returns.open_return(db, f"Depot {n}", user_id=billers[n].id)
            for p in rnd.sample(parents, len(parents)):
                with contextlib.suppress(*expected):
                    returns.return_parent(db, ticket.id, p, user_id=billers[n].id)
            for p in rnd.sample(parents, len(parents)):
                with contextlib.suppress(*expected, errors.BillCompleted):
                    bills.add_parent(db, bill_no, p, user_id=billers[n].id)
            with contextlib.suppress(errors.ReturnEmpty):
                returns.finalise_return(db, ticket.id)

    def dispatcher() -> None:
        for i in range(40):
            with contextlib.suppress(errors.ParentOnBill, errors.ParentFull, errors.Conflict):
                scans.link_child(db, parents[i % len(parents)], f"LATE-{i:03d}")

    assert run_together(lambda: biller(0), lambda: biller(1), dispatcher) == []
    check_counters(sql_conn)  # no parent over capacity, bill and parent counters equal the real counts
    check_tickets(sql_conn)  # ticket counters equal their items, one event per item
    check_bill_story(sql_conn)  # each parent on at most one bill, and its events say which
    # no child in two parents (one parent_id each) and every child linked is still in one
    assert sql_value(sql_conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL") == 0
    assert sql_value(sql_conn, "SELECT count(*) FROM return_item") > 0
    on_bills = sql_value(sql_conn, "SELECT count(*) FROM bag WHERE type = 'parent' AND bill_id IS NOT NULL")
    assert on_bills == sql_value(sql_conn, "SELECT sum(linked_parent_count) FROM bill")


# over HTTP ------------------------------------------------------------------------
def test_every_route_with_roles_errors_and_idempotent_replays(api, sql_conn):
    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher("lucknow")
    for n in (1, 2):
        api.parent_with_children(admin, f"SB0000{n}", 2, area="lucknow")
    api.bill(biller, "B-1", capacity=2)
    for n in (1, 2):
        assert api.add_parent(biller, "B-1", f"SB0000{n}").status_code == 200
    assert api.post("/api/bills/B-1/complete", biller).status_code == 200

    opened = api.post("/api/returns", biller, json={"depot": "Agra", "reason": "torn"}, key="o1")
    assert opened.status_code == 201, opened.text
    assert_schema(opened, "POST", "/api/returns")
    ticket = opened.json
    assert (ticket["status"], ticket["depot"], ticket["ticket_no"]) == ("open", "Agra", f"R{ticket['id']}")
    events = count_events(sql_conn)
    replay = api.post("/api/returns", biller, json={"depot": "Agra", "reason": "torn"}, key="o1")
    assert replay.status_code == 201 and replay.headers.get("idempotent-replayed") == "true"
    assert replay.json == ticket and count_events(sql_conn) == events

    path = f"/api/returns/{ticket['id']}"
    back = api.post(f"{path}/parents", biller, json={"parent_qr": "sb00001"}, key="p1")
    assert back.status_code == 200 and back.json["result"] == "returned", back.text
    assert_schema(back, "POST", "/api/returns/{return_id}/parents")
    assert (back.json["item"]["bill_no"], back.json["item"]["child_count"]) == ("B-1", 2)
    assert back.json["ticket"]["parent_count"] == 1
    events = count_events(sql_conn)
    replay = api.post(f"{path}/parents", biller, json={"parent_qr": "sb00001"}, key="p1")
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json == back.json
    again = api.post(f"{path}/parents", admin, json={"parent_qr": "SB00001"})
    assert again.status_code == 200 and again.json["result"] == "already_returned"
    assert count_events(sql_conn) == events
    bill = api.get("/api/bills/B-1", biller).json["bill"]
    assert (bill["status"], bill["linked_parent_count"], bill["total_child_count"]) == ("processing", 1, 2)

    # errors, each with its code, changing nothing
    api.open_parent(admin, "SB00003", area="lucknow")
    empty = api.post("/api/returns", admin, json={"depot": "Hisar"}).json
    before = (count_events(sql_conn), count_rows(sql_conn, "return_item"))
    assert_error(
        api.post("/api/returns/999999/parents", biller, json={"parent_qr": "SB00002"}), 404, "return_not_found"
    )
    assert_error(api.post(f"{path}/parents", biller, json={"parent_qr": "SB09999"}), 404, "bag_not_found")
    child = api.get("/api/bags/SB00002", admin).json["children"][0]["qr_id"]
    assert_error(api.post(f"{path}/parents", biller, json={"parent_qr": child}), 422, "not_a_parent")
    assert_error(api.post(f"{path}/parents", biller, json={"parent_qr": "SB00003"}), 409, "parent_not_on_bill")
    assert_error(api.post(f"{path}/parents", biller, json={"parent_qr": "bad qr!"}), 400, "invalid_qr", "parent_qr")
    assert_error(api.post(f"{path}/parents", biller, json={}), 400, "validation_error", "parent_qr")
    assert_error(api.post("/api/returns", biller, json={"depot": "   "}), 400, "validation_error", "depot")
    assert_error(api.post("/api/returns", biller, json={"reason": "x"}), 400, "validation_error", "depot")
    assert_error(api.get("/api/returns/0", biller), 400, "validation_error", "return_id")
    assert_error(api.get("/api/returns/R1", biller), 400, "validation_error", "return_id")
    assert_error(api.get("/api/returns/999999", biller), 404, "return_not_found")
    assert_error(api.get("/api/returns", biller, params={"status": "lost"}), 400, "validation_error", "status")
    assert_error(api.post(f"/api/returns/{empty['id']}/finalise", biller), 409, "return_empty")
    # a dispatcher sees none of it
    for method, target in (
        ("GET", "/api/returns"),
        ("POST", "/api/returns"),
        ("GET", path),
        ("POST", f"{path}/parents"),
        ("POST", f"{path}/finalise"),
        ("POST", f"{path}/cancel"),
    ):
        body = (
            {"depot": "X"} if target == "/api/returns" else ({"parent_qr": "SB00002"} if "parents" in target else None)
        )
        assert_error(api.request(method, target, dispatcher, json=body), 403, "forbidden")
    assert (count_events(sql_conn), count_rows(sql_conn, "return_item")) == before

    # read, list, finalise (replayed), then nothing more goes in; cancel the empty one
    detail = api.get(path, biller)
    assert detail.status_code == 200 and [i["parent_qr"] for i in detail.json["items"]] == ["SB00001"]
    assert_schema(detail, "GET", "/api/returns/{return_id}")
    listed = api.get("/api/returns", admin, params={"status": "open"})
    assert listed.status_code == 200 and [t["id"] for t in listed.json["items"]] == [empty["id"], ticket["id"]]
    assert_schema(listed, "GET", "/api/returns")
    done = api.post(f"{path}/finalise", biller, key="f1")
    assert done.status_code == 200 and done.json["status"] == "finalised", done.text
    assert_schema(done, "POST", "/api/returns/{return_id}/finalise")
    assert api.post(f"{path}/finalise", biller, key="f1").json == done.json
    assert_error(api.post(f"{path}/parents", biller, json={"parent_qr": "SB00002"}), 409, "return_not_open")
    assert_error(api.post(f"{path}/cancel", biller), 409, "return_not_open")
    gone = api.post(f"/api/returns/{empty['id']}/cancel", biller, key="c1")
    assert gone.status_code == 200 and gone.json["status"] == "cancelled"
    assert_schema(gone, "POST", "/api/returns/{return_id}/cancel")
    assert_error(api.post(f"/api/returns/{empty['id']}/finalise", biller), 409, "return_not_open")
    # the returned parent goes on another bill with the bill routes
    api.bill(biller, "B-2", capacity=1)
    assert api.add_parent(biller, "B-2", "SB00001").status_code == 200
    kinds = [k for (k,) in sql_conn.execute("SELECT kind FROM event WHERE kind LIKE 'return%' ORDER BY id")]
    assert kinds == ["return_opened", "return_add", "return_opened", "return_finalised", "return_cancelled"]
    check_counters(sql_conn)
    check_tickets(sql_conn)


def test_a_bags_history_reads_as_a_story(api, sql_conn):
    """linked -> billed on B1 -> returned on R -> billed on B2, with who and when at each step,
    for the parent and for a child inside it."""
    admin = api.admin()
    dina = api.dispatcher("lucknow", username="dina")
    bob, rita = api.biller(username="bob"), api.biller(username="rita")
    api.open_parent(dina, "SB00001")
    assert api.post("/api/scans/child", dina, json={"parent_qr": "SB00001", "child_qr": "CH-01"}).status_code == 200
    api.bill(bob, "B1", capacity=1)
    assert api.add_parent(bob, "B1", "SB00001").status_code == 200
    assert api.post("/api/bills/B1/complete", bob).status_code == 200
    ticket = api.post("/api/returns", rita, json={"depot": "Agra"}).json
    r = ticket["ticket_no"]
    assert api.post(f"/api/returns/{ticket['id']}/parents", rita, json={"parent_qr": "SB00001"}).status_code == 200
    api.bill(bob, "B2", capacity=1)
    assert api.add_parent(bob, "B2", "SB00001").status_code == 200
    story = [
        ("link", "dina", "CH-01 linked into SB00001 by dina"),
        ("bill_add", "bob", "SB00001 billed on B1 by bob"),
        ("return_add", "rita", f"SB00001 returned on ticket {r} from bill B1 (depot Agra) by rita"),
        ("bill_created", "bob", "bill B2 created by bob"),
        ("bill_add", "bob", "SB00001 billed on B2 by bob"),
    ]
    for qr in ("SB00001", "CH-01"):
        history = api.get(f"/api/bags/{qr}/history", dina)  # the dispatcher of the parent's area reads it too
        assert history.status_code == 200, history.text
        assert_schema(history, "GET", "/api/bags/{qr}/history")
        items = history.json["items"]
        assert set(EVENT_KEYS) < set(items[0]), "the event fields are all still there"
        told = [(i["kind"], i["username"], i["summary"]) for i in items if i["kind"] != "parent_scan"]
        assert told == story, qr
        times = [i["occurred_at"] for i in items]
        assert times == sorted(times) and all(times)
    first = api.get("/api/bags/SB00001/history", admin).json["items"][0]
    assert first["summary"] == "parent SB00001 opened (new) by dina"


def test_a_childs_story_ends_where_it_left_the_parent(db, sql_conn):
    """A child taken out before its parent was billed does not carry the parent's later bills."""
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_children(db, "SB00001", ["STAY-1", "LEAVE-1"])
    scans.unlink_child(db, "LEAVE-1")
    billed(db, "B1", ["SB00001"], complete=False)
    from tracetrack_db import events

    leave = [e.summary for e in events.bag_history(db, "LEAVE-1").items]
    stay = [e.summary for e in events.bag_history(db, "STAY-1").items]
    assert leave == ["LEAVE-1 linked into SB00001", "LEAVE-1 taken out of SB00001"]
    assert stay[-2:] == ["bill B1 created", "SB00001 billed on B1"] and "STAY-1 linked into SB00001" in stay


def test_the_rollup_the_dashboard_and_the_activity_report_take_the_new_kinds(api, sql_conn):
    """Reports count kinds (0010's rollup): a return is a bill action, a ticket's own events are counted
    by kind in the rollup and ignored by the activity figures; the views refresh over them."""
    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.bill(biller, "B-1", capacity=1)
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    ticket = api.post("/api/returns", biller, json={"depot": "Agra"}).json
    assert api.post(f"/api/returns/{ticket['id']}/parents", biller, json={"parent_qr": "SB00001"}).status_code == 200
    assert api.post(f"/api/returns/{ticket['id']}/finalise", biller).status_code == 200
    # the rollup groups by kind whatever it is (these events are too recent to be rolled up: the report
    # counts them from the event table itself)
    assert reports.roll_up(api.db) is not None
    views.refresh_views(api.db)
    assert api.get("/api/dashboard/analytics", admin).status_code == 200
    activity = api.get("/api/reports/activity", admin)
    assert activity.status_code == 200, activity.text
    users = {u["username"]: u["counts"] for u in activity.json["by_user"]}
    assert users[biller.username]["bill_actions"] == 3  # bill created, parent added, parent returned
    assert reports.BILL_ACTIONS[-1] == "return_add"
