"""HTTP: hostile and malformed input. Every refusal is a 4xx with the error
body of the contract (and "field" where a field is to blame); client input
never produces a 500."""

from __future__ import annotations

from tracetrack_api import routes, routes_formats, schema

from .api_helpers import *  # noqa: F403
from .api_helpers import _hash_once

LIST_ROUTES = ("/api/users", "/api/bags", "/api/scans", "/api/bills")


def body_operations() -> list[tuple[str, str, object]]:
    """(METHOD, route template, Body spec) of every operation that takes a body."""
    return [(op.method, op.path, op.body) for op in routes.OPERATIONS if op.body is not None]


def concrete(path: str, user_id: int) -> str:
    return (
        path.replace("{user_id}", str(user_id))
        .replace("{bill_no}", "B-1")
        .replace("{qr}", "SB00001")
        .replace("{parent_qr}", "SB00001")
        .replace("{rule_name}", "label_no")
        .replace("{format_name}", "SB")
        .replace("{return_id}", "1")
    )


def kind(spec) -> str:
    """string | integer | number | boolean | string_list | enum, of a body field."""
    return {
        schema.Int: "integer",
        schema.Bool: "boolean",
        schema.TextList: "string_list",
        schema.Enum: "enum",
        routes_formats.Kilograms: "number",
    }.get(type(spec.value), "string")


VALID: dict[tuple[str, str], dict] = {  # a valid body per operation (before any hostile change)
    ("POST", "/api/auth/login"): {"username": "nobody", "password": "correct-horse-9-staple"},
    ("POST", "/api/users"): {"username": "fresh", "password": PASSWORD, "role": "biller"},
    # not the caller's password: no hostile new_password may end the walking admin's token
    ("POST", "/api/me/password"): {
        "current_password": "not-the-current-one",
        "new_password": "quiet-tractor-harvest-88",
    },
    ("PATCH", "/api/users/{user_id}"): {"is_active": True},
    ("POST", "/api/areas"): {"name": "zone_z"},
    ("POST", "/api/bags"): {"qr_id": "LOOSE-9", "type": "child", "dispatch_area": "lucknow"},
    ("POST", "/api/scans/parent"): {"qr_id": "SB00001", "dispatch_area": "lucknow"},
    ("POST", "/api/scans/child"): {"parent_qr": "SB00001", "child_qr": "KID-9"},
    ("POST", "/api/scans/batch"): {"parent_qr": "SB00001", "child_qrs": ["KID-9"]},
    ("POST", "/api/scans/unlink"): {"child_qr": "KID-9"},
    ("POST", "/api/scans/move"): {"child_qr": "KID-9", "to_parent_qr": "SB00002"},
    ("POST", "/api/scans/close"): {"parent_qr": "SB00001", "reason": "end of lot"},
    ("POST", "/api/scans/reopen"): {"parent_qr": "SB00001"},
    ("POST", "/api/scans/sync"): {
        "device_id": "hh-1",
        "operations": [
            {"client_op_id": "o-1", "op": "unlink_child", "device_time": "2026-01-01T00:00Z", "child_qr": "KID-9"}
        ],
    },
    ("POST", "/api/bills"): {"bill_no": "B-9", "capacity": 1},
    ("PATCH", "/api/bills/{bill_no}"): {"description": "x"},
    ("POST", "/api/bills/{bill_no}/parents"): {"parent_qr": "SB00001"},
    ("POST", "/api/extraction-rules"): {"name": "lot_code", "pattern": "CODE:(?P<qr>[A-Z0-9]+)"},
    ("PATCH", "/api/extraction-rules/{rule_name}"): {"description": "x"},
    ("POST", "/api/parent-formats"): {
        "name": "TQ",
        "pattern": "^TQ[0-9]{5}$",
        "capacity": 10,
        "expected_weight_kg": 10,
    },
    ("PATCH", "/api/parent-formats/{format_name}"): {"capacity": 25},
    ("POST", "/api/returns"): {"depot": "Agra", "reason": "torn"},
    ("POST", "/api/returns/{return_id}/parents"): {"parent_qr": "SB00001"},
}


def valid_body(method: str, template: str) -> dict:
    key = (method, template)
    assert key in VALID, f"no valid body for {key}: add one"
    return dict(VALID[key])


def test_a_body_over_the_limit_is_413(db, sql_conn):
    api = make_api(db, max_body_bytes=120)
    admin = api.admin()
    small = {"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "lucknow"}
    assert api.post("/api/bags", admin, json=small).status_code == 201
    big = {"qr_id": "LOOSE-2", "type": "child", "dispatch_area": "lucknow", "padding": "x" * 200}
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    own_limits = {(op.method, op.path): op.max_body for op in routes.OPERATIONS}  # a row may allow more
    for method, template, _spec in body_operations():
        path = concrete(template, admin.id)
        over = {**big, "padding": "x" * own_limits[method, template]} if own_limits[method, template] else big
        assert_error(api.request(method, path, admin, json=over), 413, "payload_too_large")
        assert_error(api.request(method, path, admin, json=over, key="k-413"), 413, "payload_too_large")
    # whitespace counts too: the limit is on the bytes received
    raw = b'{"qr_id": "LOOSE-3", "type": "child", "dispatch_area": "lucknow"}' + b" " * 200
    assert_error(api.post("/api/bags", admin, body=raw), 413, "payload_too_large")
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before


def test_malformed_json_and_bodies_that_are_not_objects(api, sql_conn):
    admin = api.admin()
    before = count_events(sql_conn)
    for method, template, _spec in body_operations():
        path = concrete(template, admin.id)
        for raw in (b"{not json", b'{"qr_id": "SB00001"', b"{}}", b"\xff\xfe", b'{"a": 1,}', b"nul"):
            error = assert_error(
                api.request(method, path, admin, body=raw, headers={"Content-Type": "application/json"}),
                400,
                "invalid_json",
            )
            assert "JSON" in error["message"] or "json" in error["message"], (method, path, raw)
        for raw in (b"[]", b'"text"', b"5", b"null", b"[{}]"):
            assert_error(api.request(method, path, admin, body=raw), 400, "validation_error")
    assert count_events(sql_conn) == before


def test_unknown_wrongly_typed_and_missing_fields_name_the_field(api, sql_conn):
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    before = (
        count_rows(sql_conn, "bag"),
        count_rows(sql_conn, "bill"),
        count_rows(sql_conn, "app_user"),
        count_events(sql_conn),
    )
    wrong_type = {"string": 12, "enum": 12, "integer": "12", "number": "12", "boolean": "true", "string_list": "KID-1"}
    for method, template, spec in body_operations():
        path = concrete(template, admin.id)
        body = valid_body(method, template)
        error = assert_error(
            api.request(method, path, admin, json={**body, "surprise": 1}), 400, "validation_error", "surprise"
        )
        assert "surprise" in error["message"]
        for name, field_spec in spec.fields.items():
            assert_error(
                api.request(method, path, admin, json={**body, name: wrong_type[kind(field_spec)]}),
                400,
                "validation_error",
                name,
            )
            fraction = () if kind(field_spec) == "number" else (1.5,)  # 1.5 is a valid number
            for value in ([{"x": 1}] if kind(field_spec) == "string_list" else [name], {"x": 1}, *fraction):
                assert_error(
                    api.request(method, path, admin, json={**body, name: value}), 400, "validation_error", name
                )
            if not field_spec.nullable:
                assert_error(api.request(method, path, admin, json={**body, name: None}), 400, "validation_error", name)
            max_length = getattr(field_spec.value, "max_length", None)
            if max_length:
                assert_error(
                    api.request(method, path, admin, json={**body, name: "A" * (max_length + 1)}),
                    400,
                    "validation_error",
                    name,
                )
            if field_spec.required:
                missing = {k: v for k, v in body.items() if k != name}
                assert_error(api.request(method, path, admin, json=missing), 400, "validation_error", name)
    after = (
        count_rows(sql_conn, "bag"),
        count_rows(sql_conn, "bill"),
        count_rows(sql_conn, "app_user"),
        count_events(sql_conn),
    )
    assert after == before


def test_list_limits_and_cursors_are_checked_on_every_list(api):
    admin = api.admin()
    for path in LIST_ROUTES:
        for limit in ("201", "1000", "0", "-1", "ten", "1.5"):
            error = assert_error(api.get(path, admin, params={"limit": limit}), 400, "validation_error", "limit")
            assert "limit" in error["message"]
        assert api.get(path, admin, params={"limit": "200"}).status_code == 200
        assert api.get(path, admin, params={"limit": "1"}).status_code == 200
        for cursor in ("%%%", "djE", "djI6NQ", "AAAA", "djE6LTU"):
            assert_error(api.get(path, admin, params={"cursor": cursor}), 400, "invalid_cursor", "cursor")


def test_client_input_never_produces_a_500(api, sql_conn):
    """Hostile values in every body field, query parameter, path and header."""
    with _hash_once(PASSWORD):  # the valid user bodies carry PASSWORD: hash it once, not per request
        _never_a_500(api)


def _never_a_500(api):
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    hostile = [
        2**63,
        -(2**63) - 1,
        10**30,
        -1,
        0,
        1e308,
        "",
        " ",
        "\x00",
        "A\x00B",
        "\u202e\u200b",
        "\ud7ff",
        "x" * 5000,
        "'; DROP TABLE bag; --",
        "%",
        "_",
        "\\",
        "../../etc",
        ["\x00"],
        [""] * 3,
        {"a": None},
    ]
    problems: list[str] = []

    def check(result, what):
        if result.status_code >= 500:
            problems.append(f"{what} -> {result.status_code} {result.text[:120]}")
        elif result.status_code >= 400:
            assert_error(result, result.status_code, result.json["error"]["code"])

    for method, template, spec in body_operations():
        path = concrete(template, admin.id)
        body = valid_body(method, template)
        if template == "/api/auth/login":
            body = {"username": "nobody", "password": "x"}
        for name in spec.fields:
            if name == "password":
                continue  # a valid odd password is hashed (slow) and proves nothing more
            for value in hostile:
                check(
                    api.request(method, path, admin, json={**body, name: value}),
                    f"{method} {path} {name}={value!r:.40}",
                )
    bag_filters = ["type", "status", "dispatch_area", "q", "linked", "billed", "created_after", "created_before"]
    query_params = {
        "/api/bags": bag_filters + ["limit", "cursor"],
        "/api/scans": ["user", "bag", "since", "limit", "cursor"],
        "/api/bills": ["status", "q", "limit", "cursor"],
        "/api/users": ["limit", "cursor"],
        "/api/exports/bags.csv": bag_filters,
        "/api/exports/bills.csv": ["status", "q"],
        "/api/dashboard/analytics": ["dispatch_area"],
    }
    for path, names in query_params.items():
        for name in names:
            for value in (
                "\x00",
                "A\x00",
                "%",
                "_",
                "x" * 300,
                "9" * 40,
                "-1",
                "2024-13-45T99:99:99Z",
                "9999-12-31T23:59:59+14:00",
                "0001-01-01T00:00:00-12:00",
                "\u202e",
            ):
                check(api.get(path, admin, params={name: value}), f"GET {path}?{name}={value!r:.40}")
    for path in (
        "/api/bags/%00",
        "/api/bags/A%00B/history",
        "/api/bills/B%001",
        "/api/bills/%00/complete",
        "/api/bills/B-1/parents/%00",
        "/api/bags/" + "A" * 5000,
        "/api/bills/" + "B" * 5000,
        "/api/bags/%E2%80%AE",
        "/api/users/99999999999999999999999999",
    ):
        for method in ("GET", "DELETE", "PATCH", "POST"):
            check(api.request(method, path, admin, json={}), f"{method} {path[:60]}")
    for key in ("\x00", "k" * 201, " ", "\u00e9t\u00e9"):
        check(
            api.post(
                "/api/bags",
                admin,
                json={"qr_id": "KEYED-1", "type": "child", "dispatch_area": "lucknow"},
                headers={"Idempotency-Key": key},
            ),
            f"Idempotency-Key {key!r:.20}",
        )
    assert not problems, "\n".join(problems)


def test_sql_side_validation_errors_name_their_field(api):
    admin = api.admin()
    assert_error(
        api.post("/api/scans/parent", admin, json={"qr_id": "SB00001", "dispatch_area": "mars"}),
        400,
        "unknown_area",
        "dispatch_area",
    )
    assert_error(
        api.post("/api/scans/parent", admin, json={"qr_id": "SB00001"}), 400, "dispatch_area_required", "dispatch_area"
    )
    assert_error(
        api.post("/api/bags", admin, json={"qr_id": "KID-1", "type": "child", "dispatch_area": "mars"}),
        400,
        "unknown_area",
        "dispatch_area",
    )


def test_a_chunked_body_the_server_cannot_delimit_is_411(api, sql_conn):
    """Without a Content-Length and without wsgi.input_terminated, nobody knows where
    a chunked body ends: refused (411), never taken for an empty one."""
    admin = api.admin()
    api.bill(admin, "B-CHUNK", capacity=2)
    result = api.client.simulate_request(
        "PATCH",
        "/api/bills/B-CHUNK",
        body=b'{"capacity": 3}',
        headers={**admin.headers, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        extras={"CONTENT_LENGTH": "", "wsgi.input_terminated": False},
    )
    assert_error(result, 411, "length_required")
    assert sql_value(sql_conn, "SELECT capacity FROM bill WHERE bill_no = 'B-CHUNK'") == 2
