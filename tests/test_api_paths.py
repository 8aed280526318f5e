"""HTTP: identifiers in paths (QRs and bill numbers may hold "/", sent as %2F),
exact Allow headers, and the small rules of issue 8: what a deleted bill is
answered by, a bill with no parent left, an edit that changes nothing,
integer-valued floats, Idempotency-Key characters, scan lists of another area."""

from __future__ import annotations

from tracetrack_api import routes

from .api_helpers import *  # noqa: F403


def test_operations_on_x_slash_never_touch_x(api, sql_conn):
    """A trailing %2F reaches the server as a trailing "/": it names "X/", which
    no QR or bill number can be, so every operation answers 400 and X is untouched."""
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.post("/api/bags", admin, json={"qr_id": "ZZTS01", "type": "child", "dispatch_area": "lucknow"})
    api.bill(admin, "ZZB1", capacity=1)

    def state():
        return (
            sql_conn.execute("SELECT id, qr_id, parent_id, updated_at FROM bag ORDER BY id").fetchall(),
            sql_conn.execute("SELECT id, bill_no, description, status, updated_at FROM bill").fetchall(),
            count_events(sql_conn),
        )

    before = state()
    calls = []
    for op in routes.OPERATIONS:
        if "{qr}" in op.path or "{bill_no}" in op.path or "{parent_qr}" in op.path:
            for slash in ("%2F", "/"):
                path = (
                    op.path.replace("{qr}", "ZZTS01" + slash)
                    .replace("{bill_no}", "ZZB1" + slash)
                    .replace("{parent_qr}", "SB00001" + slash)
                )
                body = (
                    {"description": "touched"}
                    if op.method == "PATCH"
                    else ({"parent_qr": "SB00001"} if op.body is not None else None)
                )
                result = api.request(op.method, path, admin, json=body)
                calls.append((op.id, slash))
                assert result.status_code == 400, (op.id, path, result.text)
                assert result.json["error"]["code"] in ("invalid_qr", "validation_error"), (op.id, result.text)
    assert len(calls) == 2 * 13  # 10 operations, and the three manifests
    assert state() == before
    # the identifiers without the slash are there and work
    assert api.get("/api/bags/ZZTS01", admin).status_code == 200
    assert api.get("/api/bills/zzb1", admin).json["bill"]["bill_no"] == "ZZB1"


def test_identifiers_holding_a_slash_are_reached_with_percent_2f(api):
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    linked = api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "lot/2026/7"})
    assert linked.status_code == 200
    assert api.get("/api/bags/LOT%2F2026%2F7", admin).json["bag"]["parent_qr"] == "SB00001"
    assert [e["kind"] for e in api.get("/api/bags/lot%2F2026%2F7/history", admin).json["items"]] == ["link"]
    api.bill(admin, "LC/2026/001", capacity=1)
    assert api.add_parent(admin, "lc%2F2026%2F001", "SB00001").status_code == 200
    assert api.post("/api/bills/LC%2F2026%2F001/complete", admin).json["status"] == "completed"
    assert api.post("/api/bills/LC%2F2026%2F001/reopen", admin).json["status"] == "processing"
    removed = api.delete("/api/bills/LC%2F2026%2F001/parents/SB00001", admin)
    assert removed.status_code == 200 and removed.json["result"] == "removed"
    # QRs and bill numbers that would end in a route's word, or break a path, are refused at entry
    for qr in ("CH9/HISTORY", "ch9/history", "A//BB", "ABCD/", "/ABCD"):
        assert_error(
            api.post("/api/bags", admin, json={"qr_id": qr, "type": "child", "dispatch_area": "lucknow"}),
            400,
            "invalid_qr",
            "qr_id",
        )
    for bill_no in ("B/complete", "parents", "B//C", "B/", "/B", "B/.x"):
        assert_error(
            api.post("/api/bills", admin, json={"bill_no": bill_no, "capacity": 1}), 400, "validation_error", "bill_no"
        )
    # so "ch99%2Fhistory" has one reading: the history of CH99
    api.post("/api/bags", admin, json={"qr_id": "CH99", "type": "child", "dispatch_area": "lucknow"})
    history = api.get("/api/bags/ch99%2Fhistory", admin)
    assert history.status_code == 200 and history.json["qr_id"] == "CH99"


def test_allow_names_exactly_the_methods_of_each_path(api):
    admin = api.admin()
    table: dict[str, set[str]] = {}
    for op in routes.OPERATIONS:
        table.setdefault(op.path, set()).add(op.method)
    samples = {"{qr}": "SB00001", "{bill_no}": "B1", "{parent_qr}": "SB00002", "{user_id}": str(admin.id)}
    for template, methods in table.items():
        path = template
        for name, value in samples.items():
            path = path.replace(name, value)
        options = api.request("OPTIONS", path)
        assert options.status_code == 200
        assert set(options.headers["allow"].split(", ")) == methods, (template, options.headers["allow"])
        for method in {"GET", "POST", "PATCH", "DELETE", "PUT"} - methods:
            result = api.request(method, path, admin)
            assert_error(result, 405, "method_not_allowed")
            assert set(result.headers["allow"].split(", ")) == methods | {"OPTIONS"}, (template, method)


def test_bill_rules_of_the_contract(api, sql_conn):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.bill(admin, "ECHO-1", capacity=2, description="first")
    # a bill whose last parent leaves is new again
    assert api.add_parent(admin, "ECHO-1", "SB00001").json["bill"]["status"] == "processing"
    assert api.delete("/api/bills/ECHO-1/parents/SB00001", admin).json["bill"]["status"] == "new"
    # an edit naming nothing is refused; an edit to the same values records nothing
    events = count_events(sql_conn, "bill_updated")
    assert_error(api.patch("/api/bills/ECHO-1", admin, json={}), 400, "validation_error")
    same = api.patch("/api/bills/ECHO-1", admin, json={"description": "first", "capacity": 2})
    assert same.status_code == 200 and same.json["description"] == "first"
    assert count_events(sql_conn, "bill_updated") == events
    changed = api.patch("/api/bills/ECHO-1", admin, json={"description": "second", "capacity": 2})
    assert changed.status_code == 200
    assert sql_conn.execute("SELECT details FROM event WHERE kind = 'bill_updated'").fetchall() == [
        ({"description": "second"},)
    ]
    # a JSON integer may be written 2.0 (JSON Schema counts it as one); 2.5 is no integer
    assert api.bill(admin, "ECHO-2", capacity=2.0)["capacity"] == 2
    assert_error(
        api.post("/api/bills", admin, json={"bill_no": "ECHO-3", "capacity": 2.5}), 400, "validation_error", "capacity"
    )
    # a deleted bill is answered by its own number, however the path spelt it
    deleted = api.delete("/api/bills/%20echo-1%09", admin)
    assert deleted.status_code == 200 and deleted.json == {"deleted": "ECHO-1"}


def test_idempotency_key_characters_are_checked_with_a_clear_message(api, sql_conn):
    admin = api.admin()
    before = count_rows(sql_conn, "bag")
    for key in ("\u00e9t\u00e9", "has space", "k" * 201):
        error = assert_error(
            api.post(
                "/api/bags",
                admin,
                json={"qr_id": "KEYED-1", "type": "child", "dispatch_area": "lucknow"},
                headers={"Idempotency-Key": key},
            ),
            400,
            "validation_error",
            "Idempotency-Key",
        )
        assert "visible ASCII" in error["message"]
    assert count_rows(sql_conn, "bag") == before


def test_a_dispatchers_scan_list_of_another_areas_bag_is_not_found(api):
    admin, dispatcher = api.admin(), api.dispatcher("lucknow")
    api.parent_with_children(admin, "SB00001", 1, area="indore")
    api.parent_with_children(admin, "SB00002", 1, area="lucknow")
    other = api.get("/api/scans", dispatcher, params={"bag": "SB00001"})
    unknown = api.get("/api/scans", dispatcher, params={"bag": "SB00404"})
    assert_error(other, 404, "bag_not_found")
    assert other.json["error"].keys() == unknown.json["error"].keys()
    assert other.json["error"]["message"] == unknown.json["error"]["message"].replace("SB00404", "SB00001")
    assert [e["qr_id"] for e in api.get("/api/scans", dispatcher, params={"bag": "SB00002"}).json["items"]] == [
        "SB00002-C000",
        "SB00002",
    ]
    assert len(api.get("/api/scans", admin, params={"bag": "SB00001"}).json["items"]) == 2
