"""HTTP: the OpenAPI 3.1 document (complete, valid, true to the routes and to
the real answers), /health, and 503 when the database is down."""

from __future__ import annotations

import re

from tracetrack_api import routes
from tracetrack_api.tokens import TokenSigner
from tracetrack_db import Database, __version__

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings, sample, walk_every_route

METHODS = ("get", "post", "put", "patch", "delete")


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


def test_real_answers_match_their_documented_schemas(api):
    """One walk over every route; each answer is checked against the document."""
    walk_every_route(api)


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
