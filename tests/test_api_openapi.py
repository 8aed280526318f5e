"""HTTP: the OpenAPI 3.1 document (complete, valid, true to the routes and to
the real answers), /health, and 503 when the database is down."""

from __future__ import annotations

import re

from tracetrack_api import routes
from tracetrack_api.tokens import TokenSigner
from tracetrack_db import Database, __version__

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings

METHODS = ("get", "post", "put", "patch", "delete")


def sample(path: str, **values: str) -> str:
    def fill(match: re.Match) -> str:
        return values.get(
            match.group(1),
            {
                "user_id": "1",
                "qr": "SB00001",
                "bill_no": "B-1",
                "parent_qr": "SB00001",
                "asset": "docs.js",
                "import_id": "1",
                "rule_name": "label_no",
                "format_name": "SB",
                "return_id": "1",
            }[match.group(1)],
        )

    return re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)


def refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_is_valid_openapi_3_1_with_every_route(api):
    result = api.get("/openapi.json")  # no token needed
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("application/json")
    doc = result.json
    assert doc == openapi_document()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    require_module("openapi_spec_validator").validate(doc)
    # every operation of the table, and nothing else
    assert {(p, m.upper()) for p, item in doc["paths"].items() for m in item} == {
        (op.path, op.method) for op in routes.OPERATIONS
    }
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(routes.OPERATIONS)
    assert all(re.fullmatch(r"[a-z][a-z_]+", i) for i in ids)
    tags = {t["name"] for t in doc["tags"]}
    for row in routes.OPERATIONS:
        op = doc["paths"][row.path][row.method.lower()]
        path, method = row.path, row.method
        assert op["operationId"] == row.id and op["tags"] == [row.tag] and row.tag in tags
        names = re.findall(r"\{([^}]+)\}", path)
        assert op["summary"] and ({"200", "201"} & set(op["responses"])), (path, method)
        declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert declared == names, (path, method)  # template variables are declared parameters
        assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
        codes = set(op["responses"])
        if row.roles is None:
            assert "security" not in op and op["x-roles"] is None, (path, method)
        else:
            assert op["security"] == [{"bearer": []}], (path, method)
            assert {"401", "403"} <= codes, (path, method)
            assert op["x-roles"] == list(row.roles)
            for role in row.roles:
                assert role in op["description"], (path, method)
        headers = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert headers == (["Idempotency-Key"] if row.idempotent else [])
        if row.idempotent:
            assert "idempotency_key_reused" in op["responses"]["409"]["description"]
        if row.body is not None:
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body["type"] == "object" and body["additionalProperties"] is False
            assert set(body["properties"]) == set(row.body.fields)
            assert {"400", "413"} <= codes
        for code, answer in op["responses"].items():
            assert answer["description"] and answer["content"], (path, method, code)
            if int(code) >= 400 and row.id not in ("health", "readyz"):  # their 503 is their own answer
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                assert answer["description"].startswith("error: ")
        if {"qr", "bill_no", "parent_qr"} & set(names):
            assert "405" in codes, (path, method)
    # every $ref resolves; the security scheme is bearer
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    error = schemas["Error"]
    assert error["required"] == ["error"] and error["properties"]["error"]["required"] == ["code", "message"]


def test_documented_operations_are_routed_and_others_are_405(api):
    user = api.admin()
    for path, item in openapi_document()["paths"].items():
        concrete = sample(path, user_id=str(user.id))
        for method in METHODS:
            result = api.request(method.upper(), concrete, user, json={} if method in ("post", "patch") else None)
            if method in item:
                assert result.status_code not in (404, 405) or result.json["error"]["code"] not in (
                    "not_found",
                    "method_not_allowed",
                ), (method, path, result.text)
            else:
                assert_error(result, 405, "method_not_allowed")


def test_the_contract_table_is_in_the_document():
    paths = openapi_document()["paths"]
    contract = {
        "/health": {"get"},
        "/openapi.json": set(),
        "/api/auth/login": {"post"},
        "/api/me": {"get"},
        "/api/users": {"get", "post"},
        "/api/users/{user_id}": {"patch"},
        "/api/areas": {"get", "post"},
        "/api/bags": {"get", "post"},
        "/api/bags/{qr}": {"get", "delete"},
        "/api/bags/{qr}/history": {"get"},
        "/api/scans/parent": {"post"},
        "/api/scans/child": {"post"},
        "/api/scans/batch": {"post"},
        "/api/scans/unlink": {"post"},
        "/api/scans": {"get"},
        "/api/bills": {"get", "post"},
        "/api/bills/{bill_no}": {"get", "patch", "delete"},
        "/api/bills/{bill_no}/parents": {"post"},
        "/api/bills/{bill_no}/parents/{parent_qr}": {"delete"},
        "/api/bills/{bill_no}/complete": {"post"},
        "/api/bills/{bill_no}/reopen": {"post"},
        "/api/dashboard/analytics": {"get"},
        "/api/exports/bags.csv": {"get"},
        "/api/exports/bills.csv": {"get"},
    }
    for path, methods in contract.items():
        if path == "/openapi.json":
            continue  # the document does not describe itself
        assert path in paths, path
        assert set(paths[path]) == methods, path


def test_real_answers_match_their_documented_schemas(api, sql_conn):
    """One walk over every route; each answer is checked against the document."""
    from tracetrack_db import views

    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher("lucknow")
    checked: set[tuple[str, str, int]] = set()

    def call(method, template, caller=None, expect=None, **kw):
        path = sample(template, **kw.pop("values", {}))
        result = api.request(method, path, caller, **kw)
        if expect is not None:
            assert result.status_code == expect, (method, path, result.text)
        assert_schema(result, method, template)
        checked.add((method, doc_path(template), result.status_code))
        return result

    call("GET", "/health", expect=200)
    call("GET", "/livez", expect=200)
    call("GET", "/readyz", expect=200)
    call("POST", "/api/auth/login", json={"username": admin.username, "password": PASSWORD}, expect=200)
    call("POST", "/api/auth/login", json={"username": admin.username, "password": "wrong-one"}, expect=401)
    call("POST", "/api/auth/login", json={"username": 1}, expect=400)
    call("GET", "/api/me", dispatcher, expect=200)
    call("GET", "/api/me", None, expect=401)
    changer = api.biller()
    new_password = {"current_password": PASSWORD, "new_password": "quiet-tractor-harvest-88"}
    call("POST", "/api/me/password", changer, json={**new_password, "current_password": "not-it-1"}, expect=400)
    call("POST", "/api/me/password", changer, json=new_password, expect=200)
    call("GET", "/api/users", admin, expect=200)
    call("GET", "/api/users", biller, expect=403)
    new_user = call(
        "POST", "/api/users", admin, json={"username": "x.y", "password": PASSWORD, "role": "biller"}, expect=201
    )
    call("POST", "/api/users", admin, json={"username": "x.y", "password": PASSWORD, "role": "biller"}, expect=409)
    call(
        "PATCH",
        "/api/users/{user_id}",
        admin,
        json={"is_active": False},
        values={"user_id": str(new_user.json["id"])},
        expect=200,
    )
    call("PATCH", "/api/users/{user_id}", admin, json={"is_active": False}, values={"user_id": "999999"}, expect=404)
    call("GET", "/api/areas", dispatcher, expect=200)
    call("POST", "/api/areas", admin, json={"name": "zone_q"}, expect=201)
    call("POST", "/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "lucknow"}, expect=201)
    call("POST", "/api/bags", admin, json={"qr_id": "LOOSE-1", "type": "child", "dispatch_area": "lucknow"}, expect=409)
    call(
        "POST", "/api/bags", admin, json={"qr_id": "LOOSE-2", "type": "parent", "dispatch_area": "lucknow"}, expect=422
    )
    call("POST", "/api/scans/parent", dispatcher, json={"qr_id": "SB00001"}, expect=201)
    call("POST", "/api/scans/parent", dispatcher, json={"qr_id": "SB00001"}, expect=200)
    call("POST", "/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "KID-1"}, expect=200)
    call("POST", "/api/scans/child", dispatcher, json={"parent_qr": "SB00001", "child_qr": "SB00002"}, expect=422)
    call(
        "POST",
        "/api/scans/batch",
        dispatcher,
        json={"parent_qr": "SB00001", "child_qrs": ["KID-2", "SB00003"]},
        expect=200,
    )
    call("POST", "/api/scans/batch", dispatcher, json={"parent_qr": "SB00404", "child_qrs": ["KID-2"]}, expect=404)
    call("POST", "/api/scans/parent", dispatcher, json={"qr_id": "SB00002"}, expect=201)
    call("POST", "/api/scans/move", dispatcher, json={"child_qr": "KID-2", "to_parent_qr": "SB00002"}, expect=200)
    call("POST", "/api/scans/move", dispatcher, json={"child_qr": "KID-2", "to_parent_qr": "SB00001"}, expect=200)
    call("POST", "/api/scans/move", dispatcher, json={"child_qr": "KID-2", "to_parent_qr": "SB09998"}, expect=404)
    call("POST", "/api/scans/unlink", dispatcher, json={"child_qr": "KID-2"}, expect=200)
    synced = {"client_op_id": "o-1", "op": "unlink_child", "device_time": "2030-01-01T00:00:00Z", "child_qr": "KID-1"}
    call("POST", "/api/scans/sync", dispatcher, json={"device_id": "hh-1", "operations": [synced]}, expect=200)
    call("POST", "/api/scans/sync", dispatcher, json={"device_id": "hh-1", "operations": []}, expect=400)
    call("POST", "/api/scans/unlink", dispatcher, json={"child_qr": "KID-2"}, expect=409)
    call("POST", "/api/scans/child", dispatcher, json={"parent_qr": "SB00002", "child_qr": "KID-3"}, expect=200)
    call("POST", "/api/scans/undo", dispatcher, expect=200)
    call("POST", "/api/scans/undo", dispatcher, expect=409)
    call("POST", "/api/scans/close", dispatcher, json={"parent_qr": "SB00002", "reason": "lot"}, expect=409)
    call("POST", "/api/scans/close", dispatcher, json={"parent_qr": "SB00001", "reason": "lot"}, expect=200)
    call("POST", "/api/scans/reopen", dispatcher, json={"parent_qr": "SB00001"}, expect=200)
    call("GET", "/api/scans", dispatcher, expect=200)
    call("GET", "/api/scans", dispatcher, params={"limit": "1"}, expect=200)
    call("GET", "/api/scans", dispatcher, params={"limit": "999"}, expect=400)
    call("GET", "/api/bags", dispatcher, expect=200)
    call("GET", "/api/bags/{qr}", dispatcher, expect=200)
    call("GET", "/api/bags/{qr}", dispatcher, values={"qr": "KID-1"}, expect=200)
    call("GET", "/api/bags/{qr}", dispatcher, values={"qr": "SB09999"}, expect=404)
    call("GET", "/api/bags/{qr}/history", dispatcher, expect=200)
    call("POST", "/api/bills", biller, json={"bill_no": "B-1", "capacity": 1}, expect=201)
    call("POST", "/api/bills", biller, json={"bill_no": "b-1", "capacity": 1}, expect=409)
    call("GET", "/api/bills", biller, expect=200)
    call("GET", "/api/bills/{bill_no}", biller, expect=200)
    call("PATCH", "/api/bills/{bill_no}", biller, json={"destination": "Agra"}, expect=200)
    call("POST", "/api/bills/{bill_no}/parents", biller, json={"parent_qr": "SB00001"}, expect=200)
    call("POST", "/api/bills/{bill_no}/parents", biller, json={"parent_qr": "KID-1"}, expect=422)
    call("POST", "/api/bills/{bill_no}/complete", biller, expect=200)
    call("POST", "/api/bills/{bill_no}/reopen", biller, expect=200)
    call("GET", "/api/bills/{bill_no}/manifest", biller, expect=200)
    call("GET", "/api/bills/{bill_no}/manifest", dispatcher, expect=403)
    call("GET", "/api/bills/{bill_no}/manifest", biller, values={"bill_no": "B-404"}, expect=404)
    for template, media in (
        ("/api/bills/{bill_no}/manifest.csv", "text/csv"),
        ("/api/bills/{bill_no}/manifest.pdf", "application/pdf"),
        ("/api/reports/bills.csv", "text/csv"),
    ):
        result = api.get(sample(template), biller)
        assert result.status_code == 200 and result.headers["content-type"].startswith(media), template
        response_schema("GET", template, 200, media)
    call("GET", "/api/reports/bills", biller, expect=200)
    call("GET", "/api/reports/bills", dispatcher, expect=403)
    call("GET", "/api/reports/activity", dispatcher, params={"bucket": "hour"}, expect=200)
    call("GET", "/api/reports/activity", dispatcher, params={"dispatch_area": "indore"}, expect=403)
    call("DELETE", "/api/bills/{bill_no}/parents/{parent_qr}", biller, expect=200)
    call("DELETE", "/api/bills/{bill_no}", biller, expect=403)
    call("DELETE", "/api/bills/{bill_no}", admin, expect=200)
    call("DELETE", "/api/bags/{qr}", biller, values={"qr": "LOOSE-1"}, expect=200)
    call("DELETE", "/api/bags/{qr}", biller, expect=409)
    views.refresh_views(api.db)
    call("GET", "/api/dashboard/analytics", dispatcher, expect=200)
    call("GET", "/api/dashboard/analytics", admin, expect=200)
    call("GET", "/api/dashboard/analytics", dispatcher, params={"dispatch_area": "indore"}, expect=403)
    call("GET", "/api/exports/bags.csv", dispatcher, expect=403)
    call("GET", "/api/exports/bills.csv", biller, params={"status": "lost"}, expect=400)
    for template, media in (("/api/exports/bags.csv", "text/csv"), ("/api/exports/bills.csv", "text/csv")):
        result = api.get(template, biller)
        assert result.status_code == 200 and result.headers["content-type"].startswith(media)
        response_schema("GET", template, 200, media)  # documented as CSV
    for path, template, media in (
        ("/docs", "/docs", "text/html"),
        ("/docs/assets/swagger-ui.css", "/docs/assets/{asset}", "text/css"),
        ("/docs/assets/docs.js", "/docs/assets/{asset}", "text/javascript"),
        ("/docs/assets/favicon-32x32.png", "/docs/assets/{asset}", "image/png"),
    ):
        result = api.get(path)  # public
        assert result.status_code == 200 and result.headers["content-type"].startswith(media), path
        response_schema("GET", template, 200, media)  # documented with its media type
    call("GET", "/docs/assets/{asset}", values={"asset": "docs.py"}, expect=400)
    call("GET", "/api/extraction-rules", biller, expect=200)
    call(
        "POST", "/api/extraction-rules", admin, json={"name": "lot_code", "pattern": "C:(?P<qr>[A-Z0-9]+)"}, expect=201
    )
    call("POST", "/api/extraction-rules", admin, json={"name": "lot_code", "pattern": "(?P<qr>x+)"}, expect=409)
    call("POST", "/api/extraction-rules", admin, json={"name": "bad_one", "pattern": "(x+)"}, expect=400)
    call("PATCH", "/api/extraction-rules/{rule_name}", admin, json={"description": "x"}, expect=200)
    call(
        "PATCH",
        "/api/extraction-rules/{rule_name}",
        admin,
        json={"description": "x"},
        values={"rule_name": "zz"},
        expect=404,
    )
    call("GET", "/api/parent-formats", dispatcher, expect=200)
    tiny = {"name": "TINY", "pattern": "^TINY[0-9]{3}$", "capacity": 2, "expected_weight_kg": 2.5}
    call("POST", "/api/parent-formats", biller, json=tiny, expect=403)
    call("POST", "/api/parent-formats", admin, json=tiny, expect=201)
    call("POST", "/api/parent-formats", admin, json=tiny, expect=409)
    call("POST", "/api/parent-formats", admin, json={**tiny, "name": "LOOSE", "pattern": "^TQ[0-9$"}, expect=400)
    call(
        "PATCH",
        "/api/parent-formats/{format_name}",
        admin,
        json={"capacity": 3},
        values={"format_name": "TINY"},
        expect=200,
    )
    call(
        "PATCH",
        "/api/parent-formats/{format_name}",
        admin,
        json={"capacity": 3},
        values={"format_name": "NOPE"},
        expect=404,
    )
    call("DELETE", "/api/parent-formats/{format_name}", admin, expect=409)  # SB00001 is an SB parent
    call("DELETE", "/api/parent-formats/{format_name}", admin, values={"format_name": "TINY"}, expect=200)
    # returns: SB00005 (one child) billed on B-R, returned on a ticket, finalised; another cancelled
    call("POST", "/api/scans/parent", dispatcher, json={"qr_id": "SB00005"}, expect=201)
    call("POST", "/api/scans/child", dispatcher, json={"parent_qr": "SB00005", "child_qr": "KID-5"}, expect=200)
    call("POST", "/api/bills", biller, json={"bill_no": "B-R", "capacity": 1}, expect=201)
    call("POST", "/api/bills/{bill_no}/parents", biller, json={"parent_qr": "SB00005"}, values={"bill_no": "B-R"})
    ticket = call("POST", "/api/returns", biller, json={"depot": "Agra", "reason": "torn"}, expect=201).json
    call("POST", "/api/returns", dispatcher, json={"depot": "Agra"}, expect=403)
    call("POST", "/api/returns", biller, json={"depot": " "}, expect=400)
    rid = {"return_id": str(ticket["id"])}
    call("POST", "/api/returns/{return_id}/parents", biller, json={"parent_qr": "SB00005"}, values=rid, expect=200)
    call("POST", "/api/returns/{return_id}/parents", biller, json={"parent_qr": "KID-5"}, values=rid, expect=422)
    call("POST", "/api/returns/{return_id}/parents", biller, json={"parent_qr": "SB09997"}, values=rid, expect=404)
    call("GET", "/api/returns", biller, expect=200)
    call("GET", "/api/returns/{return_id}", biller, values=rid, expect=200)
    call("GET", "/api/returns/{return_id}", biller, values={"return_id": "999999"}, expect=404)
    call("POST", "/api/returns/{return_id}/finalise", biller, values=rid, expect=200)
    call("POST", "/api/returns/{return_id}/parents", biller, json={"parent_qr": "SB00005"}, values=rid, expect=409)
    other = {"return_id": str(call("POST", "/api/returns", admin, json={"depot": "Hisar"}, expect=201).json["id"])}
    call("POST", "/api/returns/{return_id}/finalise", biller, values=other, expect=409)
    call("POST", "/api/returns/{return_id}/cancel", biller, values=other, expect=200)
    call("POST", "/api/returns/{return_id}/cancel", biller, values=rid, expect=409)
    links = b"parent_qr,child_qr\nSB00001,IMP-1\n"
    job = call("POST", "/api/imports", admin, body=links, params={"layout": "links"}, expect=201).json
    call("POST", "/api/imports", admin, body=b"", params={"layout": "links"}, expect=400)
    call("POST", "/api/imports", biller, body=links, params={"layout": "links"}, expect=403)
    call("GET", "/api/imports", admin, expect=200)
    call("GET", "/api/imports/{import_id}", admin, values={"import_id": str(job["id"])}, expect=200)
    call("GET", "/api/imports/{import_id}", admin, values={"import_id": "999999"}, expect=404)
    result = api.get(f"/api/imports/{job['id']}/results.csv", admin)
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    response_schema("GET", "/api/imports/{import_id}/results.csv", 200, "text/csv")
    call("POST", "/api/auth/logout", biller, expect=200)
    call("POST", "/api/auth/logout", biller, expect=401)  # its token has ended
    call("GET", "/api/audit", admin, params={"kind": "login_failed"}, expect=200)
    call("GET", "/api/audit", biller, expect=401)  # its token has ended
    call("GET", "/api/audit", dispatcher, expect=403)
    call("GET", "/api/audit", admin, params={"kind": "nope"}, expect=400)
    result = api.get("/api/audit.csv", admin, params={"kind": "logout"})
    assert result.status_code == 200 and result.text.count("\n") == 2, result.text  # the header and the logout
    response_schema("GET", "/api/audit.csv", 200, "text/csv")
    documented_success = {(m, p) for p, item in openapi_document()["paths"].items() for m in item}
    seen_success = {(m.lower(), p) for m, p, code in checked if code < 300}
    missing = (
        documented_success
        - seen_success
        - {
            ("get", "/api/exports/bags.csv"),
            ("get", "/api/exports/bills.csv"),
            ("get", "/api/bills/{bill_no}/manifest.csv"),
            ("get", "/api/bills/{bill_no}/manifest.pdf"),
            ("get", "/api/reports/bills.csv"),
            ("get", "/api/imports/{import_id}/results.csv"),
            ("get", "/api/audit.csv"),
            ("get", "/docs"),
            ("get", "/docs/assets/{asset}"),
        }
    )
    assert not missing, f"no successful answer checked for {sorted(missing)}"


# system -----------------------------------------------------------------------------
def test_health_reports_the_database_the_cache_and_the_pool(api):
    result = api.get("/health")
    assert result.status_code == 200, result.text
    body = result.json
    assert body["status"] == "ok"
    assert body == {
        "status": "ok",
        "version": __version__,
        "checks": {"database": True, "cache": True},
    }  # no details in public


def test_a_database_outage_is_503_with_retry_after(db):
    down = Database("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1", min_size=0, max_size=1, timeout=0.3)
    down.pool.open(wait=False)
    try:
        api = Api(down, api_settings())
        health = api.get("/health")
        assert health.status_code == 503, health.text
        assert health.headers.get("retry-after")
        assert health.json["status"] == "unavailable" and health.json["checks"]["database"] is False
        token, _ = TokenSigner(SECRET, 3600).issue(1, 0)
        for method, path, body in (
            ("GET", "/api/bags", None),
            ("POST", "/api/scans/parent", {"qr_id": "SB00001"}),
            ("GET", "/api/areas", None),
        ):
            result = api.request(method, path, token, json=body)
            assert_error(result, 503, "database_unavailable")
            assert result.headers.get("retry-after"), (method, path)
        login = api.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert_error(login, 503, "database_unavailable")
    finally:
        down.close()
    # the real database is untouched and fine
    assert Api(db).get("/health").status_code == 200
