"""Helpers and fixtures for the HTTP tests: the Falcon app over a fresh, real
PostgreSQL database (the `db` fixture of conftest), a test client, users of
each role logged in through POST /api/auth/login, and checks for the error
shape and the OpenAPI schemas.

Import into a test module with `from .api_helpers import *`.
"""

from __future__ import annotations

import itertools
import json as stdlib_json
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
