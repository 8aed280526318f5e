"""Helpers and fixtures for the HTTP tests: the Falcon app over a fresh, real
PostgreSQL database (the `db` fixture of conftest), a test client, users of
each role logged in through POST /api/auth/login, and checks for the error
shape and the OpenAPI schemas.

Import into a test module with `from .api_helpers import *`.
"""

from __future__ import annotations

import itertools
import json as stdlib_json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import falcon
import falcon.testing
import orjson
import pytest

from tracetrack_api import openapi, routes
from tracetrack_api.app import create_app
from tracetrack_api.cache import LocalCache
from tracetrack_api.config import ApiSettings
from tracetrack_db import Database, Settings, users
from tracetrack_db import passwords as password_module

from .conftest import require_module

__all__ = [
    "SECRET",
    "PASSWORD",
    "Api",
    "Caller",
    "api",
    "make_api",
    "api_settings",
    "assert_error",
    "assert_schema",
    "openapi_document",
    "response_schema",
    "count_rows",
    "count_events",
    "sql_value",
    "doc_path",
    "BAG_KEYS",
    "BILL_KEYS",
    "EVENT_KEYS",
    "USER_KEYS",
    "require_module",
]

SECRET = "test-secret-" + "s3cr3t-f0r-t3sts-0nly"[:20]
PASSWORD = "correct-horse-9-staple"

BAG_KEYS = {
    "id",
    "qr_id",
    "type",
    "status",
    "dispatch_area",
    "parent_id",
    "parent_qr",
    "bill_id",
    "bill_no",
    "capacity",
    "child_count",
    "weight_kg",
    "created_by",
    "created_at",
    "updated_at",
    "closed_short_reason",
}
BILL_KEYS = {
    "id",
    "bill_no",
    "capacity",
    "description",
    "destination",
    "vehicle_number",
    "status",
    "linked_parent_count",
    "total_child_count",
    "total_weight_kg",
    "expected_weight_kg",
    "created_by",
    "created_at",
    "updated_at",
    "completed_at",
}
EVENT_KEYS = {
    "id",
    "occurred_at",
    "kind",
    "user_id",
    "username",
    "bag_id",
    "qr_id",
    "parent_id",
    "parent_qr",
    "bill_id",
    "bill_no",
    "dispatch_area",
    "idempotency_key",
    "details",
    "device_time",
}
USER_KEYS = {"id", "username", "role", "dispatch_area", "is_active", "last_login_at", "created_at", "updated_at"}

_names = itertools.count(1)


@cache
def _real_hash(password: str) -> str:
    return password_module.hash_password(password)


@contextmanager
def _hash_once(password: str):
    """Inside: users.create_user stores a real argon2id hash of `password`
    computed once per session (hashing costs ~0.15 s per user otherwise).
    Used by Api.user and by the input fuzz test; elsewhere POST /api/users and
    PATCH /api/users hash for real."""
    original = getattr(users, "hash_password", None)
    if original is None:  # the library changed: just hash for real
        yield
        return
    stored = _real_hash(password)
    users.hash_password = lambda p, name=None: stored if p == password else original(p, name)  # type: ignore[assignment]
    try:
        yield
    finally:
        users.hash_password = original


def api_settings(**overrides: Any) -> ApiSettings:
    """Test settings: a fixed secret, and no per-address login limit in the way of
    tests that log many users in from one address (test_login_guard sets it)."""
    values: dict[str, Any] = dict(db=Settings(), secret_key=SECRET, login_address_rate=1_000_000)
    values.update(overrides)
    return ApiSettings(**values)


@dataclass
class Caller:
    """A logged-in user: what the login answered, and the header to send."""

    id: int
    username: str
    role: str
    dispatch_area: str | None
    token: str
    login: dict = field(repr=False, default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """The app over `db`, its test client and shortcuts for authenticated calls."""

    def __init__(
        self,
        db: Database,
        settings: ApiSettings | None = None,
        cache: LocalCache | None = None,
        directory=None,
        counters=None,
    ):
        self.db = db
        self.settings = settings or api_settings()
        self.cache = cache if cache is not None else LocalCache()
        self.app = create_app(db, self.settings, self.cache, directory=directory, counters=counters)
        self.client = falcon.testing.TestClient(self.app)

    # requests --------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        caller: Caller | str | None = None,
        *,
        json: Any = None,
        body: bytes | str | None = None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = None,
    ) -> falcon.testing.Result:
        """`caller`: a Caller, a raw token string, or None (no Authorization)."""
        all_headers: dict[str, str] = {}
        if isinstance(caller, Caller):
            all_headers.update(caller.headers)
        elif isinstance(caller, str):
            all_headers["Authorization"] = f"Bearer {caller}"
        if key is not None:
            all_headers["Idempotency-Key"] = key
        if headers:
            all_headers.update(headers)
        if json is not None:
            try:
                body = orjson.dumps(json)
            except TypeError:  # integers beyond 64 bits
                body = stdlib_json.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return self.client.simulate_request(
            method, path, body=body, params=params, headers=all_headers, remote_addr="127.0.0.1"
        )  # as a local nginx or a server sets it

    def get(self, path: str, caller=None, **kw) -> falcon.testing.Result:
        return self.request("GET", path, caller, **kw)

    def post(self, path: str, caller=None, **kw) -> falcon.testing.Result:
        return self.request("POST", path, caller, **kw)

    def patch(self, path: str, caller=None, **kw) -> falcon.testing.Result:
        return self.request("PATCH", path, caller, **kw)

    def delete(self, path: str, caller=None, **kw) -> falcon.testing.Result:
        return self.request("DELETE", path, caller, **kw)

    # users -----------------------------------------------------------------
    def login(self, username: str, password: str = PASSWORD) -> falcon.testing.Result:
        return self.post("/api/auth/login", json={"username": username, "password": password})

    def user(
        self,
        role: str = "dispatcher",
        area: str | None = "lucknow",
        *,
        username: str | None = None,
        password: str = PASSWORD,
    ) -> Caller:
        """Create a user through tracetrack_db.users and log in through the API."""
        name = username or f"{role}{next(_names)}"
        with _hash_once(password):
            created = users.create_user(self.db, name, password, role, area if role == "dispatcher" else None)
        result = self.login(name, password)
        assert result.status_code == 200, result.text
        data = result.json
        assert data["user"]["id"] == created.id
        return Caller(created.id, created.username, created.role, created.dispatch_area, data["token"], data)

    def admin(self, **kw) -> Caller:
        return self.user("admin", None, **kw)

    def biller(self, **kw) -> Caller:
        return self.user("biller", None, **kw)

    def dispatcher(self, area: str = "lucknow", **kw) -> Caller:
        return self.user("dispatcher", area, **kw)

    # shortcuts for building state through the API ---------------------------
    def open_parent(self, caller: Caller, qr: str, area: str | None = None, expect: int | None = None) -> dict:
        body: dict[str, Any] = {"qr_id": qr}
        if area is not None:
            body["dispatch_area"] = area
        result = self.post("/api/scans/parent", caller, json=body)
        assert result.status_code in ((expect,) if expect else (200, 201)), result.text
        return result.json

    def fill(self, caller: Caller, parent: str, children: list[str]) -> dict:
        result = self.post("/api/scans/batch", caller, json={"parent_qr": parent, "child_qrs": children})
        assert result.status_code == 200, result.text
        assert all(item["result"] == "linked" for item in result.json["items"]), result.text
        return result.json

    def parent_with_children(self, caller: Caller, qr: str, n: int, area: str | None = None) -> dict:
        self.open_parent(caller, qr, area)
        return self.fill(caller, qr, [f"{qr}-C{i:03d}" for i in range(n)])

    def bill(self, caller: Caller, bill_no: str, capacity: int = 2, **extra) -> dict:
        result = self.post("/api/bills", caller, json={"bill_no": bill_no, "capacity": capacity, **extra})
        assert result.status_code == 201, result.text
        return result.json

    def add_parent(self, caller: Caller, bill_no: str, parent: str) -> falcon.testing.Result:
        return self.post(f"/api/bills/{bill_no}/parents", caller, json={"parent_qr": parent})

    def walk(self, path: str, caller: Caller, params: dict | None = None, limit: int = 2) -> list[dict]:
        """Every item of a keyset-paginated list, page by page; checks the page shape."""
        items: list[dict] = []
        cursor = None
        for _ in range(10_000):
            query = dict(params or {}, limit=str(limit))
            if cursor is not None:
                query["cursor"] = cursor
            result = self.get(path, caller, params=query)
            assert result.status_code == 200, result.text
            page = result.json
            assert set(page) == {"items", "next_cursor"}
            assert len(page["items"]) <= limit
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items
            assert isinstance(cursor, str) and cursor
            assert len(page["items"]) == limit
        raise AssertionError("pagination never ended")


def make_api(db: Database, cache: LocalCache | None = None, counters=None, **settings: Any) -> Api:
    """An app with specific settings (e.g. make_api(db, user_refresh_seconds=0))."""
    return Api(db, api_settings(**settings), cache, counters=counters)


@pytest.fixture
def api(db: Database) -> Api:
    """The app with the default test settings over a fresh migrated database."""
    return Api(db)


# checks ---------------------------------------------------------------------
def assert_error(result: falcon.testing.Result, status: int, code: str, field: str | None = None) -> dict:
    """The response is the contract's error body with this status and code (and field)."""
    assert result.status_code == status, f"{result.status_code} != {status}: {result.text}"
    assert result.headers.get("content-type", "").startswith("application/json"), result.headers
    body = result.json
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert set(error) <= {"code", "message", "field", "request_id"}, body
    if field is not None:
        assert error.get("field") == field, body
    return error


def count_rows(sql_conn, table: str, where: str = "true", params: tuple = ()) -> int:
    assert table.isidentifier()
    return sql_conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


def count_events(sql_conn, kind: str | None = None) -> int:
    if kind is None:
        return count_rows(sql_conn, "event")
    return count_rows(sql_conn, "event", "kind = %s", (kind,))


def sql_value(sql_conn, query: str, params: tuple = ()) -> Any:
    row = sql_conn.execute(query, params).fetchone()
    return None if row is None else row[0]


@cache
def openapi_document() -> dict:
    """The document the app serves, built from the route table (no database needed)."""
    return openapi.build(routes.OPERATIONS, routes.PATH_VALUES, routes.SPANS_SEGMENTS)


def doc_path(path: str) -> str:
    """A route template as the OpenAPI document spells it (the table's own spelling)."""
    return path


def response_schema(method: str, path: str, status: int, media: str = "application/json") -> dict:
    """The documented schema of one answer, with the components it refers to."""
    doc = openapi_document()
    responses = doc["paths"][doc_path(path)][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}: {sorted(responses)}"
    content = responses[str(status)]["content"]
    assert media in content, f"{method} {path} {status} documents {sorted(content)}, not {media}"
    return {**content[media]["schema"], "components": doc["components"]}


def assert_schema(result: falcon.testing.Result, method: str, path: str) -> None:
    """The response matches the schema the OpenAPI document gives for its status."""
    jsonschema = require_module("jsonschema")
    schema = response_schema(method, path, result.status_code)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(result.json), key=lambda e: list(e.absolute_path))
    assert not errors, f"{method} {path} {result.status_code}: " + "; ".join(
        f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
    )


# one walk over every route ------------------------------------------------------
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
                "console_file": "app.js",
                "import_id": "1",
                "rule_name": "label_no",
                "format_name": "SB",
                "return_id": "1",
            }[match.group(1)],
        )

    return re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)


def walk_every_route(api: Api) -> None:
    """One walk over every route, as every role and none: each answer is checked
    against the OpenAPI document, and every documented operation must answer
    with success at least once (test_api_openapi; test_pgbouncer runs it
    through PgBouncer)."""
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
        ("/console", "/console", "text/html"),
        ("/console/assets/app.js", "/console/assets/{console_file}", "text/javascript"),
        ("/console/assets/console.css", "/console/assets/{console_file}", "text/css"),
        ("/console/assets/icon.svg", "/console/assets/{console_file}", "image/svg+xml"),
    ):
        result = api.get(path)  # public
        assert result.status_code == 200 and result.headers["content-type"].startswith(media), path
        response_schema("GET", template, 200, media)  # documented with its media type
    call("GET", "/docs/assets/{asset}", values={"asset": "docs.py"}, expect=400)
    call("GET", "/console/assets/{console_file}", values={"console_file": "index.html"}, expect=400)
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
            ("get", "/console"),
            ("get", "/console/assets/{console_file}"),
        }
    )
    assert not missing, f"no successful answer checked for {sorted(missing)}"
