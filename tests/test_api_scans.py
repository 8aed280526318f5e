"""HTTP: scanning parents and children, batches, unlinking, recent scans,
area rules for dispatchers, and Idempotency-Key replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .api_helpers import *  # noqa: F403

LINK_KEYS = {"result", "child_count", "capacity", "parent_status", "weight_kg"}


def test_open_parent_creates_then_reopens(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    created = api.post("/api/scans/parent", dispatcher, json={"qr_id": "sb00001"})
    assert created.status_code == 201, created.text
    body = created.json
    assert set(body) == {"bag", "child_count", "capacity", "created"}
    assert (body["created"], body["child_count"], body["capacity"]) == (True, 0, 30)
    assert set(body["bag"]) == BAG_KEYS
    assert (body["bag"]["qr_id"], body["bag"]["type"], body["bag"]["dispatch_area"], body["bag"]["created_by"]) == (
        "SB00001",
        "parent",
        "lucknow",
        dispatcher.id,
    )
    again = api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00001"})
    assert again.status_code == 200, again.text
    assert again.json["created"] is False and again.json["bag"]["id"] == body["bag"]["id"]
    assert count_rows(sql_conn, "bag") == 1
    assert count_events(sql_conn, "parent_scan") == 2
    # admins name the area of a new parent; an existing parent keeps its own
    m444 = api.post("/api/scans/parent", admin, json={"qr_id": "M444-00001", "dispatch_area": "akola"})
    assert m444.status_code == 201 and m444.json["bag"]["dispatch_area"] == "akola"
    kept = api.post("/api/scans/parent", admin, json={"qr_id": "SB00001", "dispatch_area": "akola"})
    assert kept.status_code == 200 and kept.json["bag"]["dispatch_area"] == "lucknow"
    # errors
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    assert_error(api.post("/api/scans/parent", admin, json={"qr_id": "SB00002"}), 400, "dispatch_area_required")
    assert_error(
        api.post("/api/scans/parent", admin, json={"qr_id": "SB00002", "dispatch_area": "mars"}), 400, "unknown_area"
    )
    assert_error(api.post("/api/scans/parent", dispatcher, json={"qr_id": "CHILD-1"}), 422, "not_a_parent")
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    api.post("/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "lucknow"})
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    assert_error(api.post("/api/scans/parent", dispatcher, json={"qr_id": "LOOSE-1"}), 422, "not_a_parent")
    assert_error(api.post("/api/scans/parent", dispatcher, json={"qr_id": "S"}), 400, "invalid_qr", "qr_id")
    assert_error(api.post("/api/scans/parent", dispatcher, json={}), 400, "validation_error", "qr_id")
    # dispatchers: only their own area
    assert_error(api.post("/api/scans/parent", dispatcher, json={"qr_id": "M444-00001"}), 403, "wrong_area")
    assert_error(
        api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00003", "dispatch_area": "indore"}),
        403,
        "wrong_area",
    )
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    own = api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00003", "dispatch_area": "lucknow"})
    assert own.status_code == 201


def test_link_children_until_the_parent_is_full(api, sql_conn):
    dispatcher = api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    first = api.post("/api/scans/child", dispatcher, json={"parent_qr": "sb00001", "child_qr": " child-00 "})
    assert first.status_code == 200, first.text
    assert set(first.json) == LINK_KEYS
    assert first.json == {
        "result": "linked",
        "child_count": 1,
        "capacity": 30,
        "parent_status": "in_progress",
        "weight_kg": 1,
    }
    repeat = api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "CHILD-00"})
    assert repeat.status_code == 200
    assert (repeat.json["result"], repeat.json["child_count"]) == ("already_linked", 1)
    api.fill(dispatcher, "SB00001", [f"CHILD-{i:02d}" for i in range(1, 29)])
    thirtieth = api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "CHILD-29"})
    assert thirtieth.status_code == 200, thirtieth.text
    assert (thirtieth.json["result"], thirtieth.json["child_count"], thirtieth.json["parent_status"]) == (
        "linked",
        30,
        "completed",
    )  # the link that fills the parent completes it
    assert thirtieth.json["weight_kg"] == 30
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    full = assert_error(
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "CHILD-30"}),
        409,
        "parent_full",
    )
    assert "SB00001" in full["message"]
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    assert (
        sql_value(sql_conn, "SELECT count(*) FROM bag b JOIN bag p ON p.id = b.parent_id WHERE p.qr_id = 'SB00001'")
        == 30
    )
    detail = api.get("/api/bags/SB00001", dispatcher).json
    assert (detail["bag"]["status"], detail["bag"]["child_count"], len(detail["children"])) == ("completed", 30, 30)


def test_link_child_errors(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.parent_with_children(dispatcher, "SB00001", 1)
    api.open_parent(dispatcher, "SB00002")
    api.parent_with_children(admin, "SB00003", 1, area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00003").status_code == 200
    api.open_parent(admin, "SB00009", area="indore")
    api.post("/api/bags", admin, json={"qr_id": "FOREIGN-1", "type": "child", "dispatch_area": "indore"})

    def link(parent, child, caller=dispatcher):
        return api.post("/api/scans/child", caller, json={"parent_qr": parent, "child_qr": child})

    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    assert_error(link("SB00002", "SB00001-C000"), 409, "child_in_other_parent")
    assert_error(link("SB00002", "SB00001"), 422, "not_a_child")  # a parent QR cannot go into a parent
    assert_error(link("SB00002", "SB00555"), 422, "not_a_child")  # not even a new one
    assert_error(link("SB00001-C000", "NEW-1"), 422, "not_a_parent")
    assert_error(link("SB00404", "NEW-1"), 404, "bag_not_found")
    assert_error(link("SB00003", "NEW-1"), 409, "parent_on_bill")
    assert_error(link("SB00002", "bad"), 400, "invalid_qr", "child_qr")
    assert_error(link("bad", "NEW-1"), 400, "invalid_qr", "parent_qr")
    # dispatchers: another area's parent is an unknown parent; another area's child cannot be linked
    assert_error(link("SB00009", "NEW-1"), 404, "bag_not_found")
    assert link("SB00009", "NEW-1").json == link("SB00404", "NEW-1").json | {
        "error": {
            **link("SB00404", "NEW-1").json["error"],
            "message": link("SB00404", "NEW-1").json["error"]["message"].replace("SB00404", "SB00009"),
        }
    }
    wrong = assert_error(link("SB00002", "FOREIGN-1"), 403, "wrong_area")
    assert "indore" not in wrong["message"]
    # a parent and its children are in one area, whoever links them: an admin cannot mix them either
    assert_error(link("SB00002", "FOREIGN-1", admin), 403, "wrong_area")
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    # an admin may link across areas
    assert link("SB00009", "NEW-1", admin).json["result"] == "linked"
    assert api.get("/api/bags/NEW-1", admin).json["bag"]["dispatch_area"] == "indore"  # a new child takes its parent's


def test_batch_answers_a_result_per_child_in_input_order(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.parent_with_children(dispatcher, "SB00002", 1)
    api.post("/api/bags", admin, json={"qr_id": "FOREIGN-1", "type": "child", "dispatch_area": "indore"})
    assert (
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "AAA-0"}).status_code == 200
    )
    children = ["ZZZ-1", "aaa-0", "SB00002-C000", "MMM-1", "SB00003", "FOREIGN-1", "BBB-1", "ZZZ-1"]
    result = api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": children})
    assert result.status_code == 200, result.text
    body = result.json
    assert set(body) == {"parent_qr", "items", "child_count", "capacity", "parent_status"}
    assert (body["parent_qr"], body["child_count"], body["capacity"], body["parent_status"]) == (
        "SB00001",
        4,
        30,
        "in_progress",
    )
    assert all(set(i) == {"child_qr", "result", "error_code", "message"} for i in body["items"])
    assert [(i["child_qr"], i["result"], i["error_code"]) for i in body["items"]] == [
        ("ZZZ-1", "linked", None),
        ("AAA-0", "already_linked", None),
        ("SB00002-C000", "error", "child_in_other_parent"),
        ("MMM-1", "linked", None),
        ("SB00003", "error", "not_a_child"),
        ("FOREIGN-1", "error", "wrong_area"),
        ("BBB-1", "linked", None),
        ("ZZZ-1", "already_linked", None),
    ]
    assert all(i["message"] for i in body["items"] if i["result"] == "error")
    assert count_events(sql_conn, "link") == 1 + 1 + 3
    # a list longer than the parent's capacity is refused whole (child_qrs[<=capacity])
    api.open_parent(dispatcher, "SB00004")
    many = [f"KID-{i:02d}" for i in range(32)]
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00004", "child_qrs": many}),
        400,
        "too_many_children",
        "child_qrs",
    )
    # more children than room: the first scanned take the places, the rest are refused one by one
    assert (
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00004", "child_qrs": many[2:30]}).status_code
        == 200
    )
    result = api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00004", "child_qrs": many[30:] + many[:2]})
    assert result.status_code == 200, result.text
    outcome = [(i["child_qr"], i["result"], i["error_code"]) for i in result.json["items"]]
    assert outcome == [(qr, "linked", None) for qr in many[30:]] + [(qr, "error", "parent_full") for qr in many[:2]]
    assert (result.json["child_count"], result.json["parent_status"]) == (30, "completed")
    # the parent itself is checked first: the whole batch is refused
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00404", "child_qrs": ["X-001"]}),
        404,
        "bag_not_found",
    )
    assert_error(
        api.post("/api/scans/batch", admin, json={"parent_qr": "FOREIGN-1", "child_qrs": ["X-001"]}),
        422,
        "not_a_parent",
    )
    api.open_parent(admin, "SB00009", area="indore")
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00009", "child_qrs": ["X-001"]}),
        404,
        "bag_not_found",
    )
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": ["X-001", "!"]}),
        400,
        "invalid_qr",
        "child_qrs",
    )
    assert count_events(sql_conn, "link") == 1 + 1 + 3 + 30
    assert count_rows(sql_conn, "bag", "qr_id = 'X-001'") == 0


def test_batch_list_limits(api, sql_conn):
    dispatcher = api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    before = count_events(sql_conn)
    oversized = [f"KID-{i:04d}" for i in range(501)]
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": oversized}),
        400,
        "validation_error",
        "child_qrs",
    )
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": []}),
        400,
        "validation_error",
        "child_qrs",
    )
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": ["A-001", 7]}),
        400,
        "validation_error",
        "child_qrs",
    )
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"parent_qr": "SB00001", "child_qrs": "A-001"}),
        400,
        "validation_error",
        "child_qrs",
    )
    assert_error(
        api.post("/api/scans/batch", dispatcher, json={"child_qrs": ["A-001"]}), 400, "validation_error", "parent_qr"
    )
    assert count_events(sql_conn) == before


def test_unlink_keeps_the_child_and_reopens_the_parent(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", [f"KID-{i:02d}" for i in range(30)])
    assert api.get("/api/bags/SB00001", dispatcher).json["bag"]["status"] == "completed"
    result = api.post("/api/scans/unlink", dispatcher, json={"child_qr": "kid-07"})
    assert result.status_code == 200, result.text
    assert result.json == {
        "child_qr": "KID-07",
        "parent_qr": "SB00001",
        "child_count": 29,
        "capacity": 30,
        "parent_status": "in_progress",
    }
    child = api.get("/api/bags/KID-07", dispatcher).json
    assert child["bag"]["parent_id"] is None and child["bag"]["status"] == "pending" and child["parent"] is None
    assert count_rows(sql_conn, "bag", "qr_id = 'KID-07'") == 1
    assert count_events(sql_conn, "unlink") == 1
    # it can go into another parent now
    api.open_parent(dispatcher, "SB00002")
    assert (
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00002", "child_qr": "KID-07"}).json["result"]
        == "linked"
    )
    # errors
    assert api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-07"}).status_code == 200
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-07"}), 409, "child_not_linked")
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "SB00001"}), 422, "not_a_child")
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "NOBODY-1"}), 404, "bag_not_found")
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "?"}), 400, "invalid_qr", "child_qr")
    api.parent_with_children(admin, "SB00009", 1, area="indore")
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "SB00009-C000"}), 404, "bag_not_found")
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00001").status_code == 200
    assert_error(api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-00"}), 409, "parent_on_bill")
    assert count_events(sql_conn, "unlink") == 2  # the refused unlinks wrote nothing
    assert api.get("/api/bags/KID-00", admin).json["bag"]["parent_qr"] == "SB00001"


def test_recent_scans_with_filters_and_pages(api, sql_conn):
    admin, dispatcher, other = api.admin(), api.dispatcher("lucknow"), api.dispatcher("indore")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", ["KID-1", "KID-2"])
    api.open_parent(other, "SB00002")
    api.fill(other, "SB00002", ["KID-3"])
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00001").status_code == 200

    everything = api.get("/api/scans", admin, params={"limit": "200"})
    assert everything.status_code == 200
    items = everything.json["items"]
    assert all(set(e) == EVENT_KEYS for e in items)
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)  # newest first
    assert len(items) == count_events(sql_conn) == 7
    assert [e["kind"] for e in items] == [
        "bill_add",
        "bill_created",
        "link",
        "parent_scan",
        "link",
        "link",
        "parent_scan",
    ]
    # pages walk every event once
    for limit in (1, 2, 3):
        assert [e["id"] for e in api.walk("/api/scans", admin, limit=limit)] == [e["id"] for e in items]
    # filters
    mine = api.get("/api/scans", admin, params={"user": str(dispatcher.id)}).json["items"]
    assert [e["kind"] for e in mine] == ["link", "link", "parent_scan"] and all(
        e["username"] == dispatcher.username for e in mine
    )
    kid = api.get("/api/scans", admin, params={"bag": "kid-2"}).json["items"]
    assert [(e["kind"], e["qr_id"], e["parent_qr"]) for e in kid] == [("link", "KID-2", "SB00001")]
    assert (
        api.get("/api/scans", admin, params={"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}).json[
            "items"
        ]
        == []
    )
    assert len(api.get("/api/scans", admin, params={"since": "2000-01-01T00:00:00Z"}).json["items"]) == 7
    # dispatchers see only their area's events
    lucknow = api.walk("/api/scans", dispatcher, limit=2)
    assert {e["dispatch_area"] for e in lucknow} == {"lucknow"}
    assert [e["kind"] for e in lucknow] == ["bill_add", "link", "link", "parent_scan"]
    indore = api.get("/api/scans", other).json["items"]
    assert [(e["kind"], e["qr_id"]) for e in indore] == [("link", "KID-3"), ("parent_scan", "SB00002")]
    assert api.get("/api/scans", other, params={"user": str(dispatcher.id)}).json["items"] == []
    # bad filters
    for name, value, code in (
        ("user", "abc", "validation_error"),
        ("user", "0", "validation_error"),
        ("since", "last week", "validation_error"),
        ("bag", "!", "invalid_qr"),
        ("limit", "201", "validation_error"),
        ("cursor", "zzz", "invalid_cursor"),
    ):
        assert_error(api.get("/api/scans", admin, params={name: value}), 400, code, name)


def test_recent_scans_of_a_parent_include_its_links_and_bills(api):
    """The bag filter matches the bag itself and, for a parent, the events it is the parent of."""
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", ["KID-1", "KID-2"])
    assert api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-2"}).status_code == 200
    api.open_parent(dispatcher, "SB00002")
    api.fill(dispatcher, "SB00002", ["KID-2"])
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00001").status_code == 200
    items = api.get("/api/scans", admin, params={"bag": "sb00001"}).json["items"]
    assert [(e["kind"], e["qr_id"], e["parent_qr"]) for e in items] == [
        ("bill_add", None, "SB00001"),
        ("unlink", "KID-2", "SB00001"),
        ("link", "KID-2", "SB00001"),
        ("link", "KID-1", "SB00001"),
        ("parent_scan", "SB00001", None),
    ]
    child = api.get("/api/scans", dispatcher, params={"bag": "KID-2"}).json["items"]
    assert [(e["kind"], e["parent_qr"]) for e in child] == [
        ("link", "SB00002"),
        ("unlink", "SB00001"),
        ("link", "SB00001"),
    ]


# Idempotency-Key --------------------------------------------------------------------
def test_a_repeated_idempotency_key_replays_the_first_answer(api, sql_conn):
    dispatcher = api.dispatcher("lucknow")
    first = api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00001"}, key="scan-1")
    assert first.status_code == 201 and first.json["created"] is True
    assert "idempotent-replayed" not in first.headers
    events = count_events(sql_conn)
    replay = api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00001"}, key="scan-1")
    assert replay.status_code == 201  # the first status, although the parent exists now
    assert replay.json == first.json and replay.content == first.content
    assert replay.headers.get("idempotent-replayed") == "true"
    assert count_events(sql_conn) == events
    # the same for a link, many times over
    link = {"parent_qr": "SB00001", "child_qr": "KID-1"}
    linked = api.post("/api/scans/child", dispatcher, json=link, key="link-1")
    assert linked.json["result"] == "linked"
    events = count_events(sql_conn)
    for _ in range(3):
        again = api.post("/api/scans/child", dispatcher, json=link, key="link-1")
        assert (again.status_code, again.json) == (200, linked.json)
        assert again.headers.get("idempotent-replayed") == "true"
    assert count_events(sql_conn) == events
    # a new key is a new request: already_linked, which writes nothing
    fresh = api.post("/api/scans/child", dispatcher, json=link, key="link-2")
    assert fresh.json["result"] == "already_linked" and "idempotent-replayed" not in fresh.headers
    # the key is recorded with the events it produced
    assert sql_value(sql_conn, "SELECT idempotency_key FROM event WHERE kind = 'link'") == "link-1"


def test_an_idempotency_key_reused_for_another_request_is_refused(api, sql_conn):
    dispatcher, other = api.dispatcher("lucknow"), api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    first = api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "KID-1"}, key="k-1")
    assert first.status_code == 200
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    assert_error(
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "KID-2"}, key="k-1"),
        409,
        "idempotency_key_reused",
    )
    assert_error(
        api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-1"}, key="k-1"), 409, "idempotency_key_reused"
    )
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    # keys belong to their user: another user's identical key is a new request
    theirs = api.post("/api/scans/child", other, json={"parent_qr": "SB00001", "child_qr": "KID-2"}, key="k-1")
    assert theirs.status_code == 200 and theirs.json["result"] == "linked"
    assert "idempotent-replayed" not in theirs.headers
    # a key is 1-200 characters
    assert_error(
        api.post("/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "KID-3"}, key="k" * 201),
        400,
        "validation_error",
        "Idempotency-Key",
    )
    assert count_rows(sql_conn, "bag", "qr_id = 'KID-3'") == 0


def test_a_failed_request_does_not_use_up_its_idempotency_key(api, sql_conn):
    dispatcher = api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB00001")
    api.fill(dispatcher, "SB00001", [f"KID-{i:02d}" for i in range(30)])
    body = {"parent_qr": "SB00001", "child_qr": "LATE-1"}
    assert_error(api.post("/api/scans/child", dispatcher, json=body, key="late"), 409, "parent_full")
    assert count_rows(sql_conn, "idempotency_key") == 0
    assert api.post("/api/scans/unlink", dispatcher, json={"child_qr": "KID-00"}).status_code == 200
    retried = api.post("/api/scans/child", dispatcher, json=body, key="late")
    assert retried.status_code == 200 and retried.json["result"] == "linked"
    assert "idempotent-replayed" not in retried.headers
    replay = api.post("/api/scans/child", dispatcher, json=body, key="late")
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json == retried.json
