"""HTTP: bills — create, list, read, edit, delete, parents on and off,
complete and reopen — with every conflict of the contract."""

from __future__ import annotations

import dataclasses

from tracetrack_db import Bill

from .api_helpers import *  # noqa: F403


def test_create_and_read_bills(api, sql_conn):
    biller = api.biller()
    created = api.post(
        "/api/bills",
        biller,
        json={
            "bill_no": "INV-2024/001",
            "capacity": 3,
            "description": "rice",
            "destination": "Delhi",
            "vehicle_number": "UP32 AB 1234",
        },
    )
    assert created.status_code == 201, created.text
    bill = created.json
    assert set(bill) == BILL_KEYS
    assert (
        bill["bill_no"],
        bill["capacity"],
        bill["status"],
        bill["linked_parent_count"],
        bill["total_child_count"],
        bill["total_weight_kg"],
        bill["expected_weight_kg"],
        bill["completed_at"],
        bill["created_by"],
    ) == ("INV-2024/001", 3, "new", 0, 0, 0, 0, None, biller.id)
    assert (bill["description"], bill["destination"], bill["vehicle_number"]) == ("rice", "Delhi", "UP32 AB 1234")
    minimal = api.post("/api/bills", biller, json={"bill_no": "B-2", "capacity": 1}, key="bill-2")
    assert minimal.status_code == 201 and minimal.json["description"] == ""
    assert count_events(sql_conn, "bill_created") == 2
    # a retried create with the same key: the first answer, no bill_exists, nothing new
    replay = api.post("/api/bills", biller, json={"bill_no": "B-2", "capacity": 1}, key="bill-2")
    assert (replay.status_code, replay.json) == (201, minimal.json)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert (count_rows(sql_conn, "bill"), count_events(sql_conn)) == (2, 2)
    # read back, with any case
    detail = api.get("/api/bills/b-2", biller)
    assert detail.status_code == 200, detail.text
    assert set(detail.json) == {"bill", "parents"}
    assert detail.json["bill"]["bill_no"] == "B-2" and detail.json["parents"] == []
    assert_error(api.get("/api/bills/B-404", biller), 404, "bill_not_found")
    # bill numbers are unique whatever their case
    before = count_rows(sql_conn, "bill")
    for same in ("B-2", "b-2", "inv-2024/001"):
        assert_error(
            api.post("/api/bills", biller, json={"bill_no": same, "capacity": 1}), 409, "bill_exists", "bill_no"
        )
    # validation
    for capacity in (0, 501, -1):
        assert_error(
            api.post("/api/bills", biller, json={"bill_no": "B-9", "capacity": capacity}),
            400,
            "validation_error",
            "capacity",
        )
    for capacity in ("5", 2.5, True, None):
        assert_error(
            api.post("/api/bills", biller, json={"bill_no": "B-9", "capacity": capacity}),
            400,
            "validation_error",
            "capacity",
        )
    for bill_no in ("", " ", "-starts-with-dash", "has space", "x" * 65):
        assert_error(
            api.post("/api/bills", biller, json={"bill_no": bill_no, "capacity": 1}), 400, "validation_error", "bill_no"
        )
    assert_error(
        api.post("/api/bills", biller, json={"bill_no": "B-9", "capacity": 1, "vehicle_number": "v" * 51}),
        400,
        "validation_error",
        "vehicle_number",
    )
    assert_error(api.post("/api/bills", biller, json={"capacity": 1}), 400, "validation_error", "bill_no")
    assert count_rows(sql_conn, "bill") == before


def test_list_bills_with_filters_and_pages(api):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    for n in range(1, 6):
        api.bill(admin, f"B-{n}", capacity=1)
    api.bill(admin, "X-1", capacity=1)
    assert api.add_parent(admin, "B-2", "SB00001").status_code == 200
    assert api.post("/api/bills/B-2/complete", admin).status_code == 200
    listed = api.get("/api/bills", admin)
    assert listed.status_code == 200 and listed.json["next_cursor"] is None
    items = listed.json["items"]
    assert all(set(b) == BILL_KEYS for b in items)
    assert [b["bill_no"] for b in items] == ["X-1", "B-5", "B-4", "B-3", "B-2", "B-1"]  # newest first
    for limit in (1, 4, 6):
        assert [b["bill_no"] for b in api.walk("/api/bills", admin, limit=limit)] == [b["bill_no"] for b in items]
    assert [b["bill_no"] for b in api.get("/api/bills", admin, params={"status": "completed"}).json["items"]] == ["B-2"]
    assert len(api.get("/api/bills", admin, params={"status": "new"}).json["items"]) == 5
    assert [b["bill_no"] for b in api.get("/api/bills", admin, params={"q": "x"}).json["items"]] == ["X-1"]
    assert [b["bill_no"] for b in api.walk("/api/bills", admin, params={"q": "b-", "status": "new"}, limit=2)] == [
        "B-5",
        "B-4",
        "B-3",
        "B-1",
    ]
    assert api.get("/api/bills", admin, params={"q": "%"}).json["items"] == []  # not a wildcard
    for name, value, code in (
        ("status", "open", "validation_error"),
        ("q", "q" * 65, "validation_error"),
        ("limit", "500", "validation_error"),
        ("cursor", "!!", "invalid_cursor"),
    ):
        assert_error(api.get("/api/bills", admin, params={name: value}), 400, code, name)


def test_parents_on_and_off_a_bill(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 30, area="lucknow")
    api.parent_with_children(admin, "SB00002", 2, area="indore")
    api.bill(biller, "B-1", capacity=2)

    added = api.add_parent(biller, "b-1", "sb00001")
    assert added.status_code == 200, added.text
    assert set(added.json) == {"result", "bill"} and added.json["result"] == "added"
    bill = added.json["bill"]
    assert set(bill) == BILL_KEYS
    assert (
        bill["status"],
        bill["linked_parent_count"],
        bill["total_child_count"],
        bill["total_weight_kg"],
        bill["expected_weight_kg"],
    ) == ("processing", 1, 30, 30, 30)
    again = api.add_parent(biller, "B-1", "SB00001")
    assert again.status_code == 200 and again.json["result"] == "already_added"
    assert again.json["bill"]["linked_parent_count"] == 1
    assert api.add_parent(biller, "B-1", "SB00002").json["bill"]["total_child_count"] == 32
    detail = api.get("/api/bills/B-1", biller).json
    assert [p["qr_id"] for p in detail["parents"]] == ["SB00001", "SB00002"]
    assert all(set(p) == BAG_KEYS and p["bill_no"] == "B-1" for p in detail["parents"])
    assert [(p["child_count"], p["weight_kg"]) for p in detail["parents"]] == [(30, 30), (2, 2)]
    assert (detail["bill"]["linked_parent_count"], detail["bill"]["total_weight_kg"]) == (2, 32)
    assert api.get("/api/bags/SB00002", biller).json["bag"]["bill_no"] == "B-1"

    removed = api.delete("/api/bills/B-1/parents/sb00002", biller)
    assert removed.status_code == 200, removed.text
    assert set(removed.json) == {"result", "bill"} and removed.json["result"] == "removed"
    assert (
        removed.json["bill"]["linked_parent_count"],
        removed.json["bill"]["total_child_count"],
        removed.json["bill"]["total_weight_kg"],
    ) == (1, 30, 30)
    assert api.get("/api/bags/SB00002", biller).json["bag"]["bill_id"] is None
    assert [e for e in (count_events(sql_conn, "bill_add"), count_events(sql_conn, "bill_remove"))] == [2, 1]


def test_bill_conflicts(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    for n in (1, 2, 3):
        api.parent_with_children(admin, f"SB0000{n}", 1, area="lucknow")
    api.open_parent(admin, "SB00004", area="lucknow")  # empty
    api.bill(biller, "B-1", capacity=1)
    api.bill(biller, "B-2", capacity=2)
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    before = (count_events(sql_conn), sql_value(sql_conn, "SELECT sum(linked_parent_count) FROM bill"))
    assert_error(api.add_parent(biller, "B-1", "SB00002"), 409, "bill_full")
    assert_error(api.add_parent(biller, "B-2", "SB00001"), 409, "parent_on_other_bill")
    assert_error(api.add_parent(biller, "B-2", "SB00004"), 409, "parent_empty")
    assert_error(api.add_parent(biller, "B-2", "SB00002-C000"), 422, "not_a_parent")
    assert_error(api.add_parent(biller, "B-2", "SB09999"), 404, "bag_not_found")
    assert_error(api.add_parent(biller, "B-404", "SB00002"), 404, "bill_not_found")
    assert_error(api.add_parent(biller, "B-2", "?"), 400, "invalid_qr", "parent_qr")
    assert_error(api.delete("/api/bills/B-2/parents/SB00001", biller), 409, "parent_not_on_bill")
    assert_error(api.delete("/api/bills/B-2/parents/SB00002", biller), 409, "parent_not_on_bill")
    assert_error(api.delete("/api/bills/B-2/parents/SB09999", biller), 404, "bag_not_found")
    assert_error(api.delete("/api/bills/B-404/parents/SB00001", biller), 404, "bill_not_found")
    assert_error(api.post("/api/bills/B-2/complete", biller), 409, "bill_not_full")
    assert_error(api.post("/api/bills/B-2/reopen", biller), 409, "bill_not_completed")
    assert_error(api.post("/api/bills/B-404/complete", biller), 404, "bill_not_found")
    assert_error(api.post("/api/bills/B-404/reopen", biller), 404, "bill_not_found")
    assert (count_events(sql_conn), sql_value(sql_conn, "SELECT sum(linked_parent_count) FROM bill")) == before


def test_complete_and_reopen(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.parent_with_children(admin, "SB00002", 3, area="lucknow")
    api.parent_with_children(admin, "SB00003", 1, area="lucknow")
    api.bill(biller, "B-1", capacity=2)
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    assert_error(api.post("/api/bills/B-1/complete", biller), 409, "bill_not_full")
    assert api.add_parent(biller, "B-1", "SB00002").status_code == 200
    completed = api.post("/api/bills/b-1/complete", biller)
    assert completed.status_code == 200, completed.text
    assert set(completed.json) == BILL_KEYS
    assert (completed.json["status"], completed.json["linked_parent_count"], completed.json["total_child_count"]) == (
        "completed",
        2,
        5,
    )
    assert completed.json["completed_at"] is not None
    # a completed bill is frozen
    events = count_events(sql_conn)
    assert_error(api.add_parent(biller, "B-1", "SB00003"), 409, "bill_completed")
    assert_error(api.delete("/api/bills/B-1/parents/SB00001", biller), 409, "bill_completed")
    assert_error(api.patch("/api/bills/B-1", biller, json={"description": "late"}), 409, "bill_completed")
    assert_error(
        api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "KID-1"}), 409, "parent_on_bill"
    )
    again = api.post("/api/bills/B-1/complete", biller)  # completing twice changes nothing
    assert again.status_code == 200 and again.json["completed_at"] == completed.json["completed_at"]
    assert count_events(sql_conn) == events
    reopened = api.post("/api/bills/B-1/reopen", admin)
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json["status"], reopened.json["completed_at"]) == ("processing", None)
    assert_error(api.post("/api/bills/B-1/reopen", biller), 409, "bill_not_completed")
    assert api.delete("/api/bills/B-1/parents/SB00001", biller).json["bill"]["linked_parent_count"] == 1
    assert [count_events(sql_conn, k) for k in ("bill_complete", "bill_reopen")] == [1, 1]


def test_edit_a_bill(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.parent_with_children(admin, "SB00002", 1, area="lucknow")
    api.bill(biller, "B-1", capacity=3, description="old")
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    assert api.add_parent(biller, "B-1", "SB00002").status_code == 200
    edited = api.patch("/api/bills/b-1", biller, json={"capacity": 2, "destination": "Pune"})
    assert edited.status_code == 200, edited.text
    assert set(edited.json) == BILL_KEYS
    assert (edited.json["capacity"], edited.json["destination"], edited.json["description"]) == (2, "Pune", "old")
    assert count_events(sql_conn, "bill_updated") == 1
    assert_error(api.patch("/api/bills/B-1", biller, json={"capacity": 1}), 409, "bill_capacity_too_small")
    assert_error(api.patch("/api/bills/B-1", biller, json={"capacity": 0}), 400, "validation_error", "capacity")
    assert_error(api.patch("/api/bills/B-1", biller, json={"capacity": "2"}), 400, "validation_error", "capacity")
    assert_error(
        api.patch("/api/bills/B-1", biller, json={"description": None}), 400, "validation_error", "description"
    )
    assert_error(api.patch("/api/bills/B-1", biller, json={"bill_no": "B-9"}), 400, "validation_error", "bill_no")
    assert_error(api.patch("/api/bills/B-404", biller, json={"capacity": 5}), 404, "bill_not_found")
    assert count_events(sql_conn, "bill_updated") == 1
    assert api.get("/api/bills/B-1", biller).json["bill"]["capacity"] == 2


def test_delete_a_bill_releases_its_parents(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.bill(biller, "B-1", capacity=1)
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    assert api.post("/api/bills/B-1/complete", biller).status_code == 200
    deleted = api.delete("/api/bills/B-1", admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json == {"deleted": "B-1"}
    assert_error(api.get("/api/bills/B-1", admin), 404, "bill_not_found")
    assert_error(api.delete("/api/bills/B-1", admin), 404, "bill_not_found")
    parent = api.get("/api/bags/SB00001", admin).json
    assert parent["bag"]["bill_id"] is None and parent["bill"] is None
    assert count_rows(sql_conn, "bag") == 2
    assert count_events(sql_conn, "bill_deleted") == 1
    # the parent may go on a new bill, and its number is free again
    api.bill(biller, "b-1", capacity=1)
    assert api.add_parent(biller, "b-1", "SB00001").json["result"] == "added"
    # and the parent's history still says it was on the first bill
    kinds = [e["kind"] for e in api.get("/api/bags/SB00001/history", admin).json["items"]]
    assert kinds.count("bill_add") == 2


def test_bill_export_streams_every_matching_bill(api):
    import csv
    import io

    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.bill(biller, "B-1", capacity=1, destination='Agra, "North"')
    api.bill(biller, "B-2", capacity=5)
    api.bill(biller, "X-1", capacity=5)
    assert api.add_parent(biller, "B-1", "SB00001").status_code == 200
    assert api.post("/api/bills/B-1/complete", biller).status_code == 200
    result = api.get("/api/exports/bills.csv", biller)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/csv")
    assert 'filename="bills.csv"' in result.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Bill)]  # the columns of Bill, in order
    assert [r["bill_no"] for r in rows] == ["B-1", "B-2", "X-1"]
    assert [rows[0][k] for k in ("status", "capacity", "linked_parent_count", "total_child_count")] == [
        "completed",
        "1",
        "1",
        "1",
    ]
    assert rows[0]["destination"] == 'Agra, "North"' and rows[0]["completed_at"]
    completed = list(
        csv.DictReader(io.StringIO(api.get("/api/exports/bills.csv", admin, params={"status": "completed"}).text))
    )
    assert [r["bill_no"] for r in completed] == ["B-1"]
    prefixed = csv.DictReader(io.StringIO(api.get("/api/exports/bills.csv", admin, params={"q": "b-"}).text))
    assert [r["bill_no"] for r in prefixed] == ["B-1", "B-2"]
    assert_error(api.get("/api/exports/bills.csv", admin, params={"status": "lost"}), 400, "validation_error", "status")


def test_a_parents_history_shows_that_its_bill_was_deleted(api):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00001").status_code == 200
    assert api.delete("/api/bills/B-1", admin).status_code == 200
    items = api.get("/api/bags/SB00001/history", admin).json["items"]
    assert [e["kind"] for e in items][-2:] == ["bill_add", "bill_remove"]
    assert items[-1]["bill_no"] == "B-1" and items[-1]["details"] == {"bill_deleted": True}
