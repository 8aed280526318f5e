"""HTTP: login, tokens, the caller, the role rules of every route, the user
cache behind the token check, and the JSON answer to a bug (500)."""

from __future__ import annotations

import base64
import logging
import time
import types
from datetime import datetime

import orjson

from tracetrack_api import auth as auth_module
from tracetrack_api import routes
from tracetrack_api.tokens import TokenSigner
from tracetrack_db import users

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings

SAMPLE_PARAMS = {
    "{user_id}": "1",
    "{qr}": "SB00001",
    "{bill_no}": "B-1",
    "{parent_qr}": "SB00001",
    "{format_name}": "SB",
    "{return_id}": "1",
}
ALL_ROLES = {"admin", "biller", "dispatcher"}


def concrete(path: str) -> str:
    for template, value in SAMPLE_PARAMS.items():
        path = path.replace(template, value)
    return path


def operations() -> dict[tuple[str, str], set[str] | None]:
    """(METHOD, route template) -> the roles allowed (None: no token needed), as the table says."""
    return {(op.method, op.path): (None if op.roles is None else set(op.roles)) for op in routes.OPERATIONS}


def published_roles() -> dict[tuple[str, str], set[str] | None]:
    """The same, as the OpenAPI document says (x-roles)."""
    return {
        (method.upper(), path): (None if op["x-roles"] is None else set(op["x-roles"]))
        for path, item in openapi_document()["paths"].items()
        for method, op in item.items()
    }


# login ------------------------------------------------------------------------
def test_login_answers_a_token_its_expiry_and_the_user_and_me_is_the_caller(api):
    users.create_user(api.db, "Alice", PASSWORD, "dispatcher", "indore")
    before = time.time()
    result = api.login("aLICE")  # usernames are case-insensitive
    assert result.status_code == 200, result.text
    body = result.json
    assert set(body) == {"token", "expires_at", "user"}
    assert set(body["user"]) == USER_KEYS | {"must_change_password"}  # never the password hash
    assert (body["user"]["username"], body["user"]["role"], body["user"]["dispatch_area"]) == (
        "Alice",
        "dispatcher",
        "indore",
    )
    assert body["user"]["last_login_at"] is not None and body["user"]["is_active"] is True
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    ttl = api.settings.token_ttl_seconds
    assert before + ttl - 2 <= expires <= time.time() + ttl + 2
    me = api.get("/api/me", body["token"])
    assert me.status_code == 200, me.text
    assert set(me.json) == USER_KEYS | {"must_change_password"}
    assert (me.json["id"], me.json["username"]) == (body["user"]["id"], "Alice")
    for caller in (api.admin(), api.biller()):
        me = api.get("/api/me", caller)
        assert me.status_code == 200, me.text
        assert (me.json["id"], me.json["role"], me.json["dispatch_area"]) == (caller.id, caller.role, None)


def test_bad_credentials_are_401_invalid_credentials(api, sql_conn):
    admin = api.admin()
    unknown = assert_error(api.login("nobody", "correct-horse-9-staple"), 401, "invalid_credentials")
    wrong = assert_error(api.login(admin.username, "wrong-password"), 401, "invalid_credentials")
    assert unknown["message"] == wrong["message"]  # never tells which usernames exist
    assert api.login(admin.username).status_code == 200  # one failure does not lock
    # a deactivated account cannot log in, and its right password gets the same answer as a wrong one
    users.create_user(api.db, "gone", PASSWORD, "biller")
    sql_conn.execute("UPDATE app_user SET is_active = false WHERE username = 'gone'")
    assert assert_error(api.login("gone", PASSWORD), 401, "invalid_credentials") == wrong
    assert assert_error(api.login("gone", "wrong-password"), 401, "invalid_credentials") == wrong
    # a name that is not ASCII is nobody's: refused before any password check
    assert_error(api.login(admin.username[:-1] + "İ", PASSWORD), 400, "invalid_username", "username")
    # the body is checked first
    assert_error(api.post("/api/auth/login", json={"username": "x"}), 400, "validation_error", "password")
    assert_error(api.post("/api/auth/login", json={"password": "x"}), 400, "validation_error", "username")
    assert_error(
        api.post("/api/auth/login", json={"username": "u" * 65, "password": "correct-horse-9-staple"}),
        400,
        "validation_error",
        "username",
    )
    assert_error(
        api.post("/api/auth/login", json={"username": 5, "password": "correct-horse-9-staple"}),
        400,
        "validation_error",
        "username",
    )


# tokens -------------------------------------------------------------------------
def test_every_protected_route_answers_401_without_a_valid_token(db):
    api = make_api(db)
    user = api.biller()
    ttl = api.settings.token_ttl_seconds
    signer = TokenSigner(SECRET, ttl)
    expired, _ = signer.issue(user.id, 0, now=time.time() - 2 * ttl)
    just_expired, _ = signer.issue(user.id, 0, now=time.time() - ttl - 1)
    other_secret, _ = TokenSigner("another-secret-" + "y" * 20, ttl).issue(user.id, 0)
    payload, _, signature = user.token.partition(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            orjson.dumps({"u": user.id + 1, "v": 0, "i": int(time.time()), "e": int(time.time()) + 3600})
        )
        .rstrip(b"=")
        .decode()
    )
    unknown_user, _ = signer.issue(999_999, 0)
    other_version, _ = signer.issue(user.id, 1)
    bad_headers = {
        "no header": {},
        "garbage token": {"Authorization": "Bearer not-a-token"},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "token without scheme": {"Authorization": user.token},
        "expired": {"Authorization": f"Bearer {expired}"},
        "expired a second ago": {"Authorization": f"Bearer {just_expired}"},
        "other secret": {"Authorization": f"Bearer {other_secret}"},
        "forged payload": {"Authorization": f"Bearer {forged_payload}.{signature}"},
        "truncated signature": {"Authorization": f"Bearer {payload}.{signature[:-2]}"},
        "unknown user": {"Authorization": f"Bearer {unknown_user}"},
        "another token version": {"Authorization": f"Bearer {other_version}"},
        "non-ascii": {"Authorization": "Bearer t\u00f6ken.sig"},
    }
    ops = operations()
    protected = [(m, concrete(p)) for (m, p), roles in ops.items() if roles is not None]
    assert len(protected) >= 20
    for method, path in protected:
        for what, headers in bad_headers.items():
            result = api.request(method, path, headers=headers, json={} if method != "GET" else None)
            assert result.status_code == 401, (method, path, what, result.text)
            assert_error(result, 401, "unauthenticated")
            assert result.headers.get("www-authenticate") == "Bearer", (method, path, what)
    # the public routes need no token
    public = [(m, p) for (m, p), roles in ops.items() if roles is None]
    assert set(public) >= {("GET", "/health"), ("POST", "/api/auth/login")}
    assert api.get("/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    # a valid token, not quite expired, passes; it also verifies in another worker with the same secret
    almost, _ = signer.issue(user.id, 0, now=time.time() - ttl + 60)
    assert api.get("/api/me", almost).status_code == 200
    assert make_api(db).get("/api/me", user).status_code == 200
    different = Api(db, api_settings(secret_key="a-completely-different-secret-key"))
    assert_error(different.get("/api/me", user), 401, "unauthenticated")


# roles ---------------------------------------------------------------------------------
def test_every_operation_answers_every_role_as_the_published_document_says(api, sql_conn):
    """A walk over every operation of the served /openapi.json, for each role and
    for no token: 401 without a token where a role is needed, 403 forbidden (and
    nothing changed) for each role not listed, neither 401 nor 403 for each role
    listed. The roles come from the document, the answers from the live app: if
    the two ever disagree, this fails."""
    served = api.get("/openapi.json").json
    assert served == openapi_document()
    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.parent_with_children(admin, "SB00002", 1, area="lucknow")
    api.bill(admin, "B-1", capacity=1)
    assert api.add_parent(admin, "B-1", "SB00002").status_code == 200
    callers = {"admin": admin, "biller": biller, "dispatcher": dispatcher}

    def state():
        return (
            count_events(sql_conn),
            count_rows(sql_conn, "bag"),
            count_rows(sql_conn, "bill"),
            count_rows(sql_conn, "app_user"),
            count_rows(sql_conn, "dispatch_area"),
            sql_value(sql_conn, "SELECT string_agg(role || is_active::text, ',' ORDER BY id) FROM app_user"),
            sql_value(sql_conn, "SELECT description || status FROM bill WHERE bill_no = 'B-1'"),
        )

    checked = 0
    # logout last: it ends the callers' tokens
    for template, item in sorted(served["paths"].items(), key=lambda kv: kv[0] == "/api/auth/logout"):
        path = concrete(template).replace("/api/users/1", f"/api/users/{dispatcher.id}")
        for method, op in item.items():
            roles = op["x-roles"]
            body = {} if "requestBody" in op else None
            if roles is None:
                assert api.request(method.upper(), path, json=body).status_code not in (401, 403), template
                continue
            assert_error(api.request(method.upper(), path, json=body), 401, "unauthenticated")
            for role, caller in callers.items():
                before = state()
                result = api.request(method.upper(), path, caller, json=body)
                if role in roles:
                    assert result.status_code not in (401, 403), (method, template, role, result.text)
                else:
                    error = assert_error(result, 403, "forbidden")
                    assert "role" in error["message"], (method, template, role)
                    assert state() == before, (method, template, role)
                checked += 1
    assert checked == 3 * sum(1 for item in served["paths"].values() for op in item.values() if op["x-roles"])
    assert published_roles() == operations()  # the document states the table's rules


def test_the_contracts_role_rules():
    """DESIGN §4's roles, as the table states them."""
    ops = operations()
    everyone = {k for k, v in ops.items() if v == ALL_ROLES}
    assert everyone == {
        ("GET", "/api/me"),
        ("POST", "/api/me/password"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/areas"),
        ("GET", "/api/bags"),
        ("POST", "/api/bags"),
        ("GET", "/api/bags/{qr}"),
        ("GET", "/api/bags/{qr}/history"),
        ("GET", "/api/scans"),
        ("GET", "/api/dashboard/analytics"),
        ("GET", "/api/reports/activity"),
        ("GET", "/api/parent-formats"),
    }
    assert {k for k, v in ops.items() if v is None} == {
        ("GET", "/health"),
        ("POST", "/api/auth/login"),
        ("GET", "/livez"),
        ("GET", "/readyz"),
        ("GET", "/docs"),
        ("GET", "/docs/assets/{asset}"),
        ("GET", "/console"),
        ("GET", "/console/assets/{console_file}"),
    }
    admin_only = {
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("PATCH", "/api/users/{user_id}"),
        ("POST", "/api/areas"),
        ("DELETE", "/api/bills/{bill_no}"),
        ("POST", "/api/extraction-rules"),
        ("PATCH", "/api/extraction-rules/{rule_name}"),
        ("POST", "/api/parent-formats"),
        ("PATCH", "/api/parent-formats/{format_name}"),
        ("DELETE", "/api/parent-formats/{format_name}"),
        ("GET", "/api/audit"),
        ("GET", "/api/audit.csv"),
    }
    for (method, path), roles in ops.items():
        if (method, path) in everyone or roles is None:
            continue
        if (method, path) in admin_only:
            assert roles == {"admin"}, (method, path)
        elif path.startswith("/api/scans"):
            assert roles == {"admin", "dispatcher"}, (method, path)
        else:  # bills, manifests, reports, exports, imports, deleting a bag
            assert roles == {"admin", "biller"}, (method, path)


# the user directory: deactivation, role changes, and no database on the hot path --
def test_deactivation_and_role_changes_take_effect_on_the_next_request(db):
    api = make_api(db, user_refresh_seconds=0)
    admin, dispatcher, biller = api.admin(), api.dispatcher(), api.biller()
    assert api.get("/api/bags", dispatcher).status_code == 200
    result = api.patch(f"/api/users/{dispatcher.id}", admin, json={"is_active": False})
    assert result.status_code == 200 and result.json["is_active"] is False
    assert_error(api.get("/api/bags", dispatcher), 401, "unauthenticated")
    assert_error(api.post("/api/scans/parent", dispatcher, json={"qr_id": "SB00001"}), 401, "unauthenticated")
    # reactivated: a new login works (the old token stays ended)
    assert api.patch(f"/api/users/{dispatcher.id}", admin, json={"is_active": True}).status_code == 200
    assert api.get("/api/bags", api.login(dispatcher.username).json["token"]).status_code == 200
    # a biller made a dispatcher loses the bills (its tokens end) and, logged in again, gains the scanner
    assert api.get("/api/bills", biller).status_code == 200
    assert_error(api.post("/api/scans/parent", biller, json={"qr_id": "SB00001"}), 403, "forbidden")
    changed = api.patch(f"/api/users/{biller.id}", admin, json={"role": "dispatcher", "dispatch_area": "jaipur"})
    assert changed.status_code == 200, changed.text
    assert (changed.json["role"], changed.json["dispatch_area"]) == ("dispatcher", "jaipur")
    assert_error(api.get("/api/bills", biller), 401, "unauthenticated")
    biller = api.login(biller.username).json["token"]
    assert_error(api.get("/api/bills", biller), 403, "forbidden")
    opened = api.post("/api/scans/parent", biller, json={"qr_id": "SB00001"})
    assert opened.status_code == 201 and opened.json["bag"]["dispatch_area"] == "jaipur"


def test_the_token_check_uses_the_user_cache_not_the_database(db, sql_conn, monkeypatch):
    api = make_api(db, user_refresh_seconds=3600)
    dispatcher, biller = api.dispatcher(), api.biller()
    clock = [1000.0]
    monkeypatch.setattr(auth_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    lookups: list[int] = []
    real_load = auth_module.users.get_principal

    def counting_load(db, user_id):
        lookups.append(user_id)
        return real_load(db, user_id)

    monkeypatch.setattr(auth_module.users, "get_principal", counting_load)
    for _ in range(10):
        assert api.get("/api/areas", dispatcher).status_code == 200
        assert api.get("/api/bills", biller).status_code == 200
    assert sorted(lookups) == sorted([dispatcher.id, biller.id])  # one lookup per user for 20 requests
    # changed behind the app's back: the cached entries still apply ...
    sql_conn.execute("UPDATE app_user SET is_active = false WHERE id = %s", (dispatcher.id,))
    sql_conn.execute("UPDATE app_user SET role = 'dispatcher', dispatch_area = 'hisar' WHERE id = %s", (biller.id,))
    clock[0] += 3599
    assert api.get("/api/areas", dispatcher).status_code == 200
    assert api.get("/api/bills", biller).status_code == 200
    assert len(lookups) == 2
    # ... until they expire
    clock[0] += 2
    assert_error(api.get("/api/areas", dispatcher), 401, "unauthenticated")
    assert_error(api.get("/api/bills", biller), 403, "forbidden")
    assert len(lookups) == 4
    # and an app that refreshes on every request sees the changes at once
    fresh = make_api(db, user_refresh_seconds=0)
    clock[0] += 0.001
    assert_error(fresh.get("/api/areas", dispatcher), 401, "unauthenticated")
    sql_conn.execute("UPDATE app_user SET is_active = true WHERE id = %s", (dispatcher.id,))
    assert fresh.get("/api/areas", dispatcher).status_code == 200


# unexpected errors and unknown routes ------------------------------------------------
class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("kaboom: secret internals")


def test_an_unexpected_exception_is_a_json_500_with_a_request_id(api, caplog):
    api.app.add_route("/boom", Boom())
    with caplog.at_level(logging.ERROR, logger="tracetrack_api"):
        result = api.get("/boom")
    error = assert_error(result, 500, "internal_error")
    assert isinstance(error.get("request_id"), str) and len(error["request_id"]) >= 8
    assert result.headers.get("x-request-id") == error["request_id"]
    assert "kaboom" not in result.text and "RuntimeError" not in result.text
    assert error["request_id"] in caplog.text and "kaboom" in caplog.text  # logged with the traceback
    again = api.get("/boom")
    assert again.json["error"]["request_id"] != error["request_id"]
    # a request id given by the proxy is kept
    tagged = api.get("/boom", headers={"X-Request-Id": "req-12345"})
    assert tagged.json["error"]["request_id"] == "req-12345"
    assert tagged.headers.get("x-request-id") == "req-12345"
    # unknown paths and methods are JSON errors too
    biller = api.biller()
    assert_error(api.get("/api/nothing-here", biller), 404, "not_found")
    assert_error(api.get("/nothing"), 404, "not_found")
    assert_error(api.get("/api/users/not-a-number", biller), 405, "method_not_allowed")  # PATCH only
    assert_error(api.patch("/api/users/not-a-number", biller), 403, "forbidden")  # the role first ...
    assert_error(
        api.patch("/api/users/not-a-number", api.admin(), json={"role": "biller"}), 400, "validation_error", "user_id"
    )  # ... then the path
    assert_error(api.request("PUT", "/api/bags", biller), 405, "method_not_allowed")
    assert_error(api.delete("/api/scans", biller), 405, "method_not_allowed")


def test_a_new_password_ends_every_older_token_even_one_from_the_same_second(db):
    """Before: tokens_valid_after had whole seconds, so a token issued in the same
    second as the password change lived on."""
    api = make_api(db, user_refresh_seconds=3600)  # the change must not wait for the cache
    root = api.admin()
    user = api.biller()
    second = api.login(user.username).json["token"]
    assert api.patch(f"/api/users/{user.id}", root, json={"password": "a-brand-new-password"}).status_code == 200
    for old in (user.token, second):
        assert "log in again" in assert_error(api.get("/api/me", old), 401, "unauthenticated")["message"]
    fresh = api.login(user.username, "a-brand-new-password").json["token"]
    assert api.get("/api/me", fresh).status_code == 200


def test_deactivating_then_reactivating_does_not_revive_old_tokens(db):
    """Before: is_active false then true brought the user's old tokens back."""
    api = make_api(db, user_refresh_seconds=3600)
    root = api.admin()
    user = api.dispatcher()
    assert api.patch(f"/api/users/{user.id}", root, json={"is_active": False}).status_code == 200
    assert_error(api.get("/api/me", user), 401, "unauthenticated")
    assert api.patch(f"/api/users/{user.id}", root, json={"is_active": True}).status_code == 200
    assert_error(api.get("/api/me", user), 401, "unauthenticated")
    assert api.get("/api/me", api.login(user.username).json["token"]).status_code == 200


def test_a_role_change_ends_tokens_an_area_move_does_not(db):
    api = make_api(db, user_refresh_seconds=3600)
    root = api.admin()
    user = api.dispatcher()
    assert api.patch(f"/api/users/{user.id}", root, json={"dispatch_area": "jaipur"}).status_code == 200
    assert api.get("/api/me", user).json["dispatch_area"] == "jaipur"
    assert api.patch(f"/api/users/{user.id}", root, json={"role": "biller"}).status_code == 200
    assert_error(api.get("/api/me", user), 401, "unauthenticated")


def test_logout_ends_every_token_of_the_caller_only(db):
    api = make_api(db, user_refresh_seconds=3600)
    user = api.biller()
    phone = api.login(user.username).json["token"]
    other = api.biller()
    out = api.post("/api/auth/logout", user)
    assert out.status_code == 200, out.text
    assert out.json == {"logged_out": True}
    assert_error(api.get("/api/me", user), 401, "unauthenticated")
    assert_error(api.get("/api/me", phone), 401, "unauthenticated")  # the other device too
    assert_error(api.post("/api/auth/logout", user), 401, "unauthenticated")
    assert api.get("/api/me", other).status_code == 200
    assert api.get("/api/me", api.login(user.username).json["token"]).status_code == 200
    # another process (its own user cache) sees the logout within its refresh time
    elsewhere = make_api(db, user_refresh_seconds=0)
    assert_error(elsewhere.get("/api/me", phone), 401, "unauthenticated")


def test_a_token_newer_than_a_workers_cache_is_accepted_at_once(db):
    """Worker B cached the user at token version 0; the user logs out and in on
    worker A (version 1). B must accept the new token at once (it looks again),
    not refuse it for TRACETRACK_USER_REFRESH seconds, and still refuse the old."""
    one, two = make_api(db, user_refresh_seconds=3600), make_api(db, user_refresh_seconds=3600)
    user = one.biller()
    assert two.get("/api/me", user).status_code == 200  # B caches version 0
    assert one.post("/api/auth/logout", user).status_code == 200
    fresh = one.login(user.username).json["token"]
    assert two.get("/api/me", fresh).status_code == 200
    assert_error(two.get("/api/me", user), 401, "unauthenticated")


def test_a_logout_or_deactivation_reaches_every_worker_at_once(db, service_url):
    """Two workers, each with its own user cache refreshed only hourly and its
    UserChangeListener: a logout (or a deactivation) on one ends the tokens on
    the other as soon as the NOTIFY arrives, not an hour later."""
    from tracetrack_api.auth import UserChangeListener, UserDirectory

    workers, listeners = [], []
    for _ in range(2):
        directory = UserDirectory(db, 3600)
        listeners.append(UserChangeListener(service_url, directory).start())
        workers.append(Api(db, api_settings(user_refresh_seconds=3600), directory=directory))
    try:
        assert all(listener.listening.wait(10) for listener in listeners)
        one, two = workers
        root, user, other = one.admin(), one.biller(), one.dispatcher()
        for caller in (user, other):
            assert two.get("/api/me", caller).status_code == 200  # cached by the second worker

        def refused_on_two(caller) -> bool:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if two.get("/api/me", caller).status_code == 401:
                    return True
                time.sleep(0.02)
            return False

        assert one.post("/api/auth/logout", user).status_code == 200
        assert refused_on_two(user)
        assert one.patch(f"/api/users/{other.id}", root, json={"is_active": False}).status_code == 200
        assert refused_on_two(other)
    finally:
        for listener in listeners:
            listener.stop()
