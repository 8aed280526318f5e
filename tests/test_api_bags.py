"""HTTP: registering, reading, listing, deleting bags; history; area rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from tracetrack_db import Bag

from .api_helpers import *  # noqa: F403
from .api_helpers import Api


def test_register_bags(api, sql_conn):
    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher("lucknow")
    parent = api.post(
        "/api/bags", admin, json={"qr_id": " sb00001\u200b ", "type": "parent", "dispatch_area": "indore"}
    )
    assert parent.status_code == 201, parent.text
    bag = parent.json
    assert set(bag) == BAG_KEYS
    assert (bag["qr_id"], bag["type"], bag["status"], bag["dispatch_area"]) == (
        "SB00001",
        "parent",
        "pending",
        "indore",
    )
    assert (bag["capacity"], bag["child_count"], bag["weight_kg"], bag["created_by"]) == (30, 0, 0, admin.id)
    assert bag["parent_id"] is None and bag["bill_id"] is None
    other_format = api.post(
        "/api/bags", admin, json={"qr_id": "m444-00001", "type": "parent", "dispatch_area": "akola"}
    )
    assert other_format.status_code == 201 and other_format.json["capacity"] == 30
    child = api.post("/api/bags", biller, json={"qr_id": "loose-1", "type": "child", "dispatch_area": "jaipur"})
    assert child.status_code == 201, child.text
    assert (child.json["qr_id"], child.json["type"], child.json["capacity"], child.json["weight_kg"]) == (
        "LOOSE-1",
        "child",
        None,
        1,
    )
    # a dispatcher registers in their own area without naming it
    own = api.post("/api/bags", dispatcher, json={"qr_id": "LOOSE-2", "type": "child"})
    assert own.status_code == 201 and own.json["dispatch_area"] == "lucknow"
    assert count_events(sql_conn, "bag_created") == 4
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    # errors change nothing
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "SB00001", "type": "parent", "dispatch_area": "indore"}),
        409,
        "qr_taken",
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "loose-1 ", "type": "child", "dispatch_area": "jaipur"}),
        409,
        "qr_taken",
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "CHILD-9", "type": "parent", "dispatch_area": "indore"}),
        422,
        "not_a_parent",
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "SB00009", "type": "child", "dispatch_area": "indore"}),
        422,
        "not_a_child",
    )
    for bad in ("AB", "A B!", "x" * 101, "\u200b\u200b"):
        assert_error(
            api.post("/api/bags", admin, json={"qr_id": bad, "type": "child", "dispatch_area": "indore"}),
            400,
            "invalid_qr",
            "qr_id",
        )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "CHILD-9", "type": "child"}),
        400,
        "dispatch_area_required",
        "dispatch_area",
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "CHILD-9", "type": "child", "dispatch_area": "mars"}),
        400,
        "unknown_area",
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "CHILD-9", "type": "box", "dispatch_area": "indore"}),
        400,
        "validation_error",
        "type",
    )
    assert_error(
        api.post("/api/bags", dispatcher, json={"qr_id": "CHILD-9", "type": "child", "dispatch_area": "indore"}),
        403,
        "wrong_area",
    )
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before


def test_bag_detail_has_the_family_and_the_bill(api):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 3, area="lucknow")
    api.bill(admin, "B-7", capacity=2, destination="Delhi")
    assert api.add_parent(admin, "B-7", "SB00001").status_code == 200
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "lucknow"})

    parent = api.get("/api/bags/SB00001", admin)
    assert parent.status_code == 200, parent.text
    detail = parent.json
    assert set(detail) == {"bag", "parent", "children", "bill"}
    assert set(detail["bag"]) == BAG_KEYS and detail["bag"]["qr_id"] == "SB00001"
    assert (detail["bag"]["child_count"], detail["bag"]["weight_kg"], detail["bag"]["bill_no"]) == (3, 3, "B-7")
    assert detail["parent"] is None
    assert [c["qr_id"] for c in detail["children"]] == ["SB00001-C000", "SB00001-C001", "SB00001-C002"]
    assert all(set(c) == BAG_KEYS and c["parent_qr"] == "SB00001" for c in detail["children"])
    assert set(detail["bill"]) == BILL_KEYS
    assert (detail["bill"]["bill_no"], detail["bill"]["destination"], detail["bill"]["linked_parent_count"]) == (
        "B-7",
        "Delhi",
        1,
    )

    child = api.get("/api/bags/sb00001-c001", admin)  # any case
    assert child.status_code == 200, child.text
    assert child.json["bag"]["qr_id"] == "SB00001-C001" and child.json["bag"]["parent_qr"] == "SB00001"
    assert child.json["parent"]["qr_id"] == "SB00001" and child.json["children"] == []
    assert child.json["bill"]["bill_no"] == "B-7"  # the parent's bill

    loose = api.get("/api/bags/LOOSE-1", admin)
    assert loose.status_code == 200
    assert (loose.json["parent"], loose.json["children"], loose.json["bill"]) == (None, [], None)
    # a trailing slash names the bag "LOOSE-1/", which no QR can be: never LOOSE-1 itself
    assert_error(api.get("/api/bags/LOOSE-1/", admin), 400, "invalid_qr")

    assert_error(api.get("/api/bags/SB09999", admin), 404, "bag_not_found")
    assert_error(api.get("/api/bags/a!b", admin), 400, "invalid_qr")
    assert_error(api.get("/api/bags/SB09999/history", admin), 404, "bag_not_found")
    assert_error(api.get("/api/bags/x/history", admin), 400, "invalid_qr")


def test_list_bags_with_filters(api, sql_conn):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")  # in progress
    api.parent_with_children(admin, "SB00002", 30, area="indore")  # completed
    api.open_parent(admin, "SB00003", area="lucknow")  # pending, empty
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "indore"})
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00002").status_code == 200

    def qrs(**params):
        result = api.get("/api/bags", admin, params={k: str(v) for k, v in params.items()})
        assert result.status_code == 200, result.text
        assert set(result.json) == {"items", "next_cursor"}
        assert all(set(b) == BAG_KEYS for b in result.json["items"])
        ids = [b["id"] for b in result.json["items"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        return {b["qr_id"] for b in result.json["items"]}

    everything = qrs(limit=200)
    assert len(everything) == 3 + 32 + 1
    assert qrs(type="parent") == {"SB00001", "SB00002", "SB00003"}
    assert qrs(type="parent", status="pending") == {"SB00003"}
    assert qrs(type="parent", status="in_progress") == {"SB00001"}
    assert qrs(type="parent", status="completed") == {"SB00002"}
    assert qrs(dispatch_area="lucknow") == {"SB00001", "SB00003", "SB00001-C000", "SB00001-C001"}
    assert qrs(q="sb00001") == {"SB00001", "SB00001-C000", "SB00001-C001"}
    assert qrs(q="SB00001-C00", limit=1) <= {"SB00001-C000", "SB00001-C001"}
    assert qrs(linked="false") == {"LOOSE-1"}
    assert len(qrs(linked="true", limit=200)) == 32
    assert qrs(billed="true") == {"SB00002"}
    assert qrs(billed="false") == {"SB00001", "SB00003"}
    assert qrs(type="child", dispatch_area="indore", linked="false") == {"LOOSE-1"}
    # created_after / created_before
    sql_conn.execute("UPDATE bag SET created_at = now() - interval '10 days' WHERE qr_id = 'LOOSE-1'")
    cut = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert qrs(created_before=cut) == {"LOOSE-1"}
    assert "LOOSE-1" not in qrs(created_after=cut, limit=200)
    assert qrs(created_after=cut.replace("+00:00", "Z"), type="parent") == {"SB00001", "SB00002", "SB00003"}
    # bad filters are 400 with the field
    for name, value in (
        ("type", "box"),
        ("status", "lost"),
        ("linked", "maybe"),
        ("billed", "2"),
        ("created_after", "yesterday"),
        ("created_before", "2024-01-01T00:00:00"),
        ("q", "x" * 101),
        ("limit", "201"),
        ("limit", "0"),
        ("limit", "ten"),
        ("cursor", "not-a-cursor"),
    ):
        code = "invalid_cursor" if name == "cursor" else "validation_error"
        assert_error(api.get("/api/bags", admin, params={name: value}), 400, code, name)


def test_bag_pagination_walks_every_bag_once(api):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 6, area="lucknow")
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "hisar"})
    everything = api.get("/api/bags", admin, params={"limit": "200"}).json["items"]
    assert len(everything) == 8
    for limit in (1, 3, 7, 8):
        walked = api.walk("/api/bags", admin, limit=limit)
        assert [b["id"] for b in walked] == [b["id"] for b in everything], limit
    # filtered pages stay filtered
    children = api.walk("/api/bags", admin, params={"type": "child", "dispatch_area": "lucknow"}, limit=4)
    assert len(children) == 6 and all(b["type"] == "child" for b in children)
    # the cursor is opaque but checked
    page = api.get("/api/bags", admin, params={"limit": "3"}).json
    assert page["next_cursor"]
    for bad in ("@@@", "djI6MTA", "djE6LTE", "djE6YWJj"):  # junk, v2:10, v1:-1, v1:abc
        assert_error(api.get("/api/bags", admin, params={"cursor": bad}), 400, "invalid_cursor", "cursor")


def test_delete_bags(api, sql_conn):
    admin, biller = api.admin(), api.biller()
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "hisar"})
    api.parent_with_children(admin, "SB00001", 3, area="lucknow")
    api.parent_with_children(admin, "SB00002", 1, area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00002").status_code == 200

    deleted = api.delete("/api/bags/loose-1", admin, key="del-1")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json == {"deleted": "LOOSE-1"}
    events = count_events(sql_conn)
    replay = api.delete("/api/bags/loose-1", admin, key="del-1")  # a retried delete: the first answer
    assert (replay.status_code, replay.json) == (200, {"deleted": "LOOSE-1"})
    assert replay.headers.get("idempotent-replayed") == "true" and count_events(sql_conn) == events
    assert_error(api.get("/api/bags/LOOSE-1", admin), 404, "bag_not_found")
    assert_error(api.delete("/api/bags/LOOSE-1", admin), 404, "bag_not_found")
    # a biller may delete too; a linked child leaves its parent first
    unlinks = count_events(sql_conn, "unlink")
    child = api.delete("/api/bags/SB00001-C002", biller)
    assert child.status_code == 200 and child.json == {"deleted": "SB00001-C002"}
    parent = api.get("/api/bags/SB00001", admin).json
    assert (parent["bag"]["child_count"], parent["bag"]["weight_kg"]) == (2, 2)
    assert [c["qr_id"] for c in parent["children"]] == ["SB00001-C000", "SB00001-C001"]
    assert count_events(sql_conn, "unlink") == unlinks + 1
    assert count_events(sql_conn, "bag_deleted") == 2
    # refused: a parent holding children, a parent on a bill, a child of a billed parent
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    assert_error(api.delete("/api/bags/SB00001", admin), 409, "bag_has_children")
    assert_error(api.delete("/api/bags/SB00002", admin), 409, "bag_on_bill")
    assert_error(api.delete("/api/bags/SB00002-C000", biller), 409, "bag_on_bill")
    assert_error(api.delete("/api/bags/no!", admin), 400, "invalid_qr")
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    # an emptied parent can go
    for qr in ("SB00001-C000", "SB00001-C001"):
        assert api.post("/api/scans/unlink", admin, json={"child_qr": qr}).status_code == 200
    assert api.delete("/api/bags/SB00001", admin).json == {"deleted": "SB00001"}
    assert count_rows(sql_conn, "bag", "qr_id = 'SB00001-C000'") == 1  # its former children stay


def test_history_is_the_whole_genealogy(api):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", ["KID-1", "KID-2", "KID-3"])
    assert api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-3"}).status_code == 200
    api.open_parent(dispatcher, "SB00002")
    api.fill(dispatcher, "SB00002", ["KID-3"])  # the former child moves on
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00001").status_code == 200
    assert api.post("/api/bills/B-1/complete", admin).status_code == 200

    result = api.get("/api/bags/SB00001/history", admin)
    assert result.status_code == 200, result.text
    assert set(result.json) == {"qr_id", "items", "retained_from"} and result.json["qr_id"] == "SB00001"
    assert result.json["retained_from"] is None  # nothing archived: the history is whole
    items = result.json["items"]
    assert all(set(e) == EVENT_KEYS | {"summary"} for e in items)  # the event's fields and the sentence
    assert [e["id"] for e in items] == sorted(e["id"] for e in items)  # oldest first
    assert items[-1]["summary"] == f"bill B-1 completed by {admin.username}"
    seen = [(e["kind"], e["qr_id"] or e["bill_no"]) for e in items]
    assert seen == [
        ("parent_scan", "SB00001"),
        ("link", "KID-1"),
        ("link", "KID-2"),
        ("link", "KID-3"),
        ("unlink", "KID-3"),
        ("bill_created", "B-1"),
        ("bill_add", "B-1"),
        ("bill_complete", "B-1"),
    ], seen
    # the bag's own link to SB00002 belongs to KID-3's history, not to SB00001's
    assert all(e["parent_qr"] in (None, "SB00001") for e in items)
    assert items[0]["username"] == dispatcher.username and items[0]["user_id"] == dispatcher.id
    assert items[-1]["username"] == admin.username

    child = api.get("/api/bags/KID-1/history", dispatcher).json["items"]
    assert [(e["kind"], e["qr_id"] or e["bill_no"]) for e in child] == [
        ("link", "KID-1"),
        ("bill_created", "B-1"),
        ("bill_add", "B-1"),
        ("bill_complete", "B-1"),
    ]
    moved = api.get("/api/bags/KID-3/history", dispatcher).json["items"]
    assert [(e["kind"], e["parent_qr"]) for e in moved] == [
        ("link", "SB00001"),
        ("unlink", "SB00001"),
        ("link", "SB00002"),
    ]


def test_the_history_of_a_deleted_bag_is_still_readable(api):
    admin = api.admin()
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "hisar"})
    assert api.delete("/api/bags/LOOSE-1", admin).status_code == 200
    result = api.get("/api/bags/LOOSE-1/history", admin)
    assert result.status_code == 200, result.text
    assert [e["kind"] for e in result.json["items"]] == ["bag_created", "bag_deleted"]


def test_dispatchers_see_only_their_area(api):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.parent_with_children(admin, "SB00001", 2, area="indore")
    api.parent_with_children(admin, "SB00002", 2, area="lucknow")
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "indore"})

    for path in (
        "/api/bags/SB00001",
        "/api/bags/SB00001-C000",
        "/api/bags/LOOSE-1",
        "/api/bags/SB00001/history",
        "/api/bags/SB00001-C001/history",
    ):
        # exactly what an unknown QR gets: the same status, code and message
        other = api.get(path, dispatcher)
        unknown = api.get(path.replace("SB00001", "SB00404").replace("LOOSE-1", "LOOSE-404"), dispatcher)
        assert_error(other, 404, "bag_not_found")
        assert other.json["error"]["message"] == unknown.json["error"]["message"].replace("SB00404", "SB00001").replace(
            "LOOSE-404", "LOOSE-1"
        ), path
    assert api.get("/api/bags/SB00002", dispatcher).status_code == 200
    assert api.get("/api/bags/SB00002/history", dispatcher).status_code == 200
    # the list is confined to their area, whatever they ask
    mine = api.walk("/api/bags", dispatcher, limit=2)
    assert {b["qr_id"] for b in mine} == {"SB00002", "SB00002-C000", "SB00002-C001"}
    assert {
        b["qr_id"] for b in api.get("/api/bags", dispatcher, params={"dispatch_area": "lucknow"}).json["items"]
    } == {"SB00002", "SB00002-C000", "SB00002-C001"}
    assert api.get("/api/bags", dispatcher, params={"q": "SB00001"}).json["items"] == []
    assert api.get("/api/bags", dispatcher, params={"linked": "false"}).json["items"] == []
    assert_error(api.get("/api/bags", dispatcher, params={"dispatch_area": "indore"}), 403, "wrong_area")
    # admins see everything, and may filter by any area
    assert len(api.get("/api/bags", admin).json["items"]) == 7
    assert len(api.get("/api/bags", admin, params={"dispatch_area": "indore"}).json["items"]) == 4


# reports: the dashboard and the bag export ---------------------------------------------
def test_dashboard_totals_from_the_views_per_area(api, sql_conn):
    from tracetrack_db import views

    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", ["KID-1", "KID-2"])
    api.parent_with_children(admin, "SB00002", 1, area="indore")
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "indore"})
    api.bill(admin, "B-1", capacity=2)
    api.bill(admin, "B-2", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00002").status_code == 200
    views.refresh_views(api.db)
    refreshed = sql_value(sql_conn, "SELECT min(refreshed_at) FROM view_refresh")

    everything = api.get("/api/dashboard/analytics", admin)
    assert everything.status_code == 200, everything.text
    body = everything.json
    assert {"as_of", "bags", "bills", "scans", "users", "recent_scans"} <= set(body)
    assert body["dispatch_area"] is None
    assert datetime.fromisoformat(body["as_of"]) == refreshed
    bags = body["bags"]
    assert (bags["total"], bags["by_type"], bags["unlinked_children"]) == (6, {"parent": 2, "child": 4}, 1)
    assert bags["by_area"] == {"lucknow": {"parent": 1, "child": 2}, "indore": {"parent": 1, "child": 2}}
    assert bags["by_status"]["parent"] == {"in_progress": 2}
    assert body["bills"]["by_status"] == {"new": 1, "processing": 1}
    assert body["bills"]["parents_billed"] == 1
    scan_events = count_rows(sql_conn, "event", "kind IN ('parent_scan', 'link', 'unlink')")
    assert len(body["scans"]["hourly"]) == 24
    assert sum(b["scans"] for b in body["scans"]["hourly"]) == scan_events == 5
    assert body["scans"]["last_hour"] <= body["scans"]["today"] <= scan_events
    assert {s["qr_id"] for s in body["recent_scans"]} == {"SB00001", "KID-1", "KID-2", "SB00002", "SB00002-C000"}
    assert {u["username"] for u in body["users"]} == {admin.username, dispatcher.username}

    # a dispatcher's dashboard is their area's (never the cached answer of another area)
    mine = api.get("/api/dashboard/analytics", dispatcher)
    assert mine.status_code == 200, mine.text
    area = mine.json
    assert area["dispatch_area"] == "lucknow"
    assert (area["bags"]["total"], area["bags"]["by_area"], area["bags"]["unlinked_children"]) == (
        3,
        {"lucknow": {"parent": 1, "child": 2}},
        0,
    )
    assert sum(b["scans"] for b in area["scans"]["hourly"]) == 3
    assert {s["qr_id"] for s in area["recent_scans"]} == {"SB00001", "KID-1", "KID-2"}
    assert [u["username"] for u in area["users"]] == [dispatcher.username]
    same = api.get("/api/dashboard/analytics", dispatcher, params={"dispatch_area": "lucknow"})
    assert same.json["bags"]["total"] == 3
    assert_error(api.get("/api/dashboard/analytics", dispatcher, params={"dispatch_area": "indore"}), 403, "wrong_area")
    # admins may look at one area
    indore = api.get("/api/dashboard/analytics", admin, params={"dispatch_area": "indore"}).json
    assert (indore["dispatch_area"], indore["bags"]["total"], indore["bags"]["unlinked_children"]) == ("indore", 3, 1)


def test_bag_export_streams_every_matching_row(api, sql_conn):
    import csv
    import io

    admin, biller = api.admin(), api.biller()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    sql_conn.execute(
        "INSERT INTO bag (qr_id, type, dispatch_area, weight_kg) "
        "SELECT 'BULK-' || lpad(n::text, 5, '0'), 'child', 'indore', 1 FROM generate_series(1, 450) n"
    )
    result = api.get("/api/exports/bags.csv", biller)
    assert result.status_code == 200, result.text[:300]
    assert result.headers["content-type"].startswith("text/csv")
    assert 'filename="bags.csv"' in result.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Bag)]  # the columns of Bag, in order
    assert len(rows) == count_rows(sql_conn, "bag") == 453  # no row cap (a page stops at 200)
    assert [r["qr_id"] for r in rows[:3]] == ["SB00001", "SB00001-C000", "SB00001-C001"]  # oldest first
    assert rows[1]["parent_qr"] == "SB00001" and rows[0]["child_count"] == "2"
    # the list filters apply
    parents = list(csv.DictReader(io.StringIO(api.get("/api/exports/bags.csv", admin, params={"type": "parent"}).text)))
    assert [r["qr_id"] for r in parents] == ["SB00001"]
    lucknow = api.get("/api/exports/bags.csv", admin, params={"dispatch_area": "lucknow", "linked": "true"}).text
    assert [r["qr_id"] for r in csv.DictReader(io.StringIO(lucknow))] == ["SB00001-C000", "SB00001-C001"]
    nothing = api.get("/api/exports/bags.csv", admin, params={"q": "NOPE"})
    assert nothing.status_code == 200 and len(nothing.text.strip().splitlines()) == 1  # the header only
    assert_error(api.get("/api/exports/bags.csv", admin, params={"linked": "maybe"}), 400, "validation_error", "linked")
    assert_error(
        api.get("/api/exports/bags.csv", admin, params={"created_after": "soon"}),
        400,
        "validation_error",
        "created_after",
    )


def test_dashboard_counts_scans_per_hour_on_a_server_in_india(db_url, sql_conn):
    from tracetrack_db import Database, views

    name = sql_value(sql_conn, "SELECT current_database()")
    sql_conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Kolkata'")
    with Database(db_url, min_size=1, max_size=4) as india:
        api = Api(india)
        dispatcher = api.dispatcher("lucknow")
        api.open_parent(dispatcher, "SB00001")
        api.fill(dispatcher, "SB00001", ["KID-1", "KID-2"])
        views.refresh_views(india)
        scans = api.get("/api/dashboard/analytics", dispatcher).json["scans"]
    assert sum(b["scans"] for b in scans["hourly"]) == 3
    assert scans["last_hour"] + sum(b["scans"] for b in scans["hourly"][:-1]) == 3


def test_bags_and_bills_whose_codes_contain_a_slash_are_reachable(api):
    admin = api.admin()
    assert (
        api.post(
            "/api/bags", admin, json={"qr_id": "LOT/2024/0001", "type": "child", "dispatch_area": "lucknow"}
        ).status_code
        == 201
    )
    api.bill(admin, "INV/2024/001", capacity=1)
    assert api.get("/api/bags", admin, params={"q": "LOT/2024/0001"}).json["items"][0]["qr_id"] == "LOT/2024/0001"
    assert api.get("/api/bags/LOT%2F2024%2F0001", admin).status_code == 200
    assert api.get("/api/bags/LOT%2F2024%2F0001/history", admin).status_code == 200
    assert api.get("/api/bills/INV%2F2024%2F001", admin).status_code == 200


def test_dashboard_refuses_an_empty_or_malformed_area_and_caches_per_area(api):
    admin = api.admin()
    for bad in ("", "NOT AN AREA", "x", "well_formed_but_not_there"):
        assert_error(
            api.get(f"/api/dashboard/analytics?dispatch_area={bad}", admin), 400, "unknown_area", "dispatch_area"
        )
    assert not [k for k in api.cache._data if "well_formed" in k]  # nothing cached for it
    everything = api.get("/api/dashboard/analytics", admin).json
    assert api.get("/api/dashboard/analytics?dispatch_area=akola", admin).json["dispatch_area"] == "akola"
    assert api.get("/api/dashboard/analytics", admin).json["dispatch_area"] is None
    assert api.get("/api/dashboard/analytics", admin).json["bags"] == everything["bags"]
