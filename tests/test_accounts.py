"""Accounts (issue 12, item 8): a user changes their own password (the current
one required, throttled like a login; every other token ends, this device gets
a fresh one), logout, and an admin's reset, after which the user may do
nothing but change it (403 password_change_required), in every worker."""

from __future__ import annotations

import time

import pytest

from tracetrack_api import routes
from tracetrack_api.table import Operation, check_table
from tracetrack_db import errors, users
from tracetrack_db.users import UserChanges

from .api_helpers import *  # noqa: F403
from .api_helpers import Api

NEW = "quiet-tractor-harvest-88"
TEMPORARY = "granary-lantern-4711"
LOGIN_KEYS = {"token", "expires_at", "user"}


def change(api, caller, current: str = PASSWORD, new: str = NEW, **kw):
    return api.post("/api/me/password", caller, json={"current_password": current, "new_password": new}, **kw)


def password_hash(sql_conn, user_id: int) -> str:
    return sql_value(sql_conn, "SELECT password_hash FROM app_user WHERE id = %s", (user_id,))


def flag(sql_conn, user_id: int) -> bool:
    return sql_value(sql_conn, "SELECT must_change_password FROM app_user WHERE id = %s", (user_id,))


# POST /api/me/password -----------------------------------------------------------------
def test_a_password_change_ends_the_other_tokens_and_answers_a_fresh_one(db):
    api = make_api(db, user_refresh_seconds=3600)  # the change must not wait for the cache
    user = api.biller()
    phone = api.login(user.username).json["token"]
    other = api.biller()
    changed = change(api, user)
    assert changed.status_code == 200, changed.text
    assert_schema(changed, "POST", "/api/me/password")
    body = changed.json
    assert set(body) == LOGIN_KEYS
    assert body["user"]["id"] == user.id and body["user"]["must_change_password"] is False
    fresh = body["token"]
    assert fresh not in (user.token, phone)
    # this device stays logged in with the new token; every older one has ended
    assert api.get("/api/me", fresh).json["id"] == user.id
    assert api.get("/api/bills", fresh).status_code == 200
    for old in (user.token, phone):
        assert "log in again" in assert_error(api.get("/api/me", old), 401, "unauthenticated")["message"]
    assert api.get("/api/me", other).status_code == 200  # another user's tokens live on
    # the old password is gone, the new one logs in
    assert_error(api.login(user.username, PASSWORD), 401, "invalid_credentials")
    assert api.login(user.username, NEW).status_code == 200
    # a worker that looks the user up every time refuses the old token too
    assert_error(make_api(db, user_refresh_seconds=0).get("/api/me", phone), 401, "unauthenticated")
    assert make_api(db, user_refresh_seconds=0).get("/api/me", fresh).status_code == 200


def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(api, sql_conn):
    user = api.dispatcher()
    before = password_hash(sql_conn, user.id)
    for wrong in ("not-my-password-at-all", "", PASSWORD.upper()):
        assert_error(change(api, user, current=wrong), 400, "wrong_password", "current_password")
    for weak in ("short", "password1234", "a" * 16, " " * 14, PASSWORD):
        assert_error(change(api, user, new=weak), 400, "weak_password", "new_password")
    assert_error(change(api, user, new="x" * 1025), 400, "validation_error", "new_password")
    assert_error(
        api.post("/api/me/password", user, json={"new_password": NEW}), 400, "validation_error", "current_password"
    )
    assert_error(
        api.post("/api/me/password", None, json={"current_password": PASSWORD, "new_password": NEW}),
        401,
        "unauthenticated",
    )
    assert password_hash(sql_conn, user.id) == before
    assert api.get("/api/me", user).status_code == 200  # nothing ended
    assert api.login(user.username, PASSWORD).status_code == 200


def test_wrong_current_passwords_are_throttled_as_failed_logins(api, sql_conn):
    """Not an unthrottled password oracle for whoever holds a token: each wrong
    current password counts as a failed login of that username from that
    address (5 free, then waits), shared with POST /api/auth/login."""
    user = api.biller()
    bystander = api.biller()
    codes = []
    for i in range(12):
        answer = change(api, user, current=f"guess-number-{i}-x")
        codes.append(answer.json["error"]["code"])
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) >= 1
            break
    assert codes[:5] == ["wrong_password"] * 5 and codes[-1] == "rate_limited", codes
    # the same counter as logins: this name from this address now waits there too
    assert_error(api.login(user.username, PASSWORD), 429, "rate_limited")
    # ... and the right password waits as well (counted before it is checked)
    assert_error(change(api, user), 429, "rate_limited")
    assert api.login(bystander.username).status_code == 200  # other names are not slowed down
    assert api.get("/api/me", user).status_code == 200  # nothing changed, nothing ended


def test_a_weak_new_password_costs_no_guess(api):
    """The new password is checked before the current one: a user who tries weak
    ones is not slowed down (and learns nothing about the current password)."""
    user = api.biller()
    for i in range(8):
        assert_error(change(api, user, current="wrong-but-unchecked", new=f"short{i}"), 400, "weak_password")
    assert change(api, user).status_code == 200


def test_the_change_is_not_replayed_and_stores_no_token(api, sql_conn):
    """Not an Idempotency-Key operation: its answer is a token, never stored."""
    row = next(op for op in routes.OPERATIONS if op.id == "change_password")
    assert not row.idempotent and row.before_password_change
    doc = openapi_document()["paths"]["/api/me/password"]["post"]
    assert all(p["name"] != "Idempotency-Key" for p in doc.get("parameters", []))
    user = api.dispatcher()
    first = change(api, user, key="pw-1")
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    # the same request again: the token it carried has ended
    assert_error(change(api, user, key="pw-1"), 401, "unauthenticated")
    # with the new token, the old password is no longer the current one
    again = change(api, first.json["token"], key="pw-1")
    assert_error(again, 400, "wrong_password", "current_password")
    assert count_rows(sql_conn, "idempotency_key") == 0


def test_every_role_changes_its_own_password_only(api, sql_conn):
    admin, biller, dispatcher = api.admin(), api.biller(), api.dispatcher()
    hashes = {c.id: password_hash(sql_conn, c.id) for c in (admin, biller, dispatcher)}
    result = change(api, dispatcher)
    assert result.status_code == 200 and result.json["user"]["id"] == dispatcher.id
    assert password_hash(sql_conn, dispatcher.id) != hashes[dispatcher.id]
    assert password_hash(sql_conn, admin.id) == hashes[admin.id]
    assert password_hash(sql_conn, biller.id) == hashes[biller.id]
    for caller in (admin, biller):
        assert change(api, caller).status_code == 200
    assert api.login(admin.username, NEW).status_code == 200


def test_logout_ends_every_token_of_the_caller(api):
    user = api.dispatcher()
    phone = api.login(user.username).json["token"]
    out = api.post("/api/auth/logout", user)
    assert (out.status_code, out.json) == (200, {"logged_out": True})
    for token in (user.token, phone):
        assert_error(api.get("/api/me", token), 401, "unauthenticated")
    assert_error(api.post("/api/auth/logout", phone), 401, "unauthenticated")
    assert api.get("/api/me", api.login(user.username).json["token"]).status_code == 200


# the library -----------------------------------------------------------------------------
def test_the_library_changes_a_password_and_clears_the_flag(db, sql_conn):
    admin = users.create_user(db, "root.admin", PASSWORD, "admin")
    user = users.create_user(db, "lib.user", PASSWORD, "biller")
    users.update_user(db, user.id, UserChanges(password=TEMPORARY, must_change_password=True))
    assert users.get_account(db, user.id).must_change_password is True
    assert users.get_principal(db, user.id).must_change_password is True
    assert users.authenticate(db, "lib.user", TEMPORARY).user.must_change_password is True
    with pytest.raises(errors.WrongPassword) as wrong:
        users.change_password(db, user.id, PASSWORD, NEW)
    assert wrong.value.field == "current_password"
    with pytest.raises(errors.WeakPassword) as weak:
        users.change_password(db, user.id, TEMPORARY, TEMPORARY)
    assert weak.value.field == "new_password"
    with pytest.raises(errors.UserNotFound):
        users.change_password(db, 999_999, TEMPORARY, NEW)
    before = sql_value(sql_conn, "SELECT token_version FROM app_user WHERE id = %s", (user.id,))
    done = users.change_password(db, user.id, TEMPORARY, NEW)
    assert done.token_version == before + 1
    assert done.user.must_change_password is False and flag(sql_conn, user.id) is False
    assert users.authenticate(db, "lib.user", NEW).user.id == user.id
    # an update that says nothing of the flag keeps it; the admin's own password sets none
    users.update_user(db, admin.id, UserChanges(password=TEMPORARY))
    assert flag(sql_conn, admin.id) is False


def test_a_reset_between_the_check_and_the_write_wins(db, sql_conn, monkeypatch):
    """The write happens only if the hash is still the one checked: a reset that
    lands in between is not silently overwritten by the user's change."""
    user = users.create_user(db, "racer", PASSWORD, "biller")
    checked = users.verify_password

    def check_then_reset(stored: str, given: str) -> bool:
        right = checked(stored, given)
        users.update_user(db, user.id, UserChanges(password=TEMPORARY, must_change_password=True))
        return right

    monkeypatch.setattr(users, "verify_password", check_then_reset)
    with pytest.raises(errors.WrongPassword):
        users.change_password(db, user.id, PASSWORD, NEW)
    monkeypatch.undo()
    assert flag(sql_conn, user.id) is True
    assert users.authenticate(db, "racer", TEMPORARY).user.must_change_password is True


def test_the_table_keeps_before_password_change_for_rows_with_a_user():
    public = Operation("x", "GET", "/api/xx", lambda ctx: None, "x", "system", None, dict, before_password_change=True)
    with pytest.raises(ValueError, match="before_password_change"):
        check_table((public,), routes.PATH_VALUES, routes.SPANS_SEGMENTS)
    open_rows = {(op.method, op.path) for op in routes.OPERATIONS if op.before_password_change}
    assert open_rows == {("GET", "/api/me"), ("POST", "/api/me/password"), ("POST", "/api/auth/logout")}


# an admin's reset ------------------------------------------------------------------------
def test_an_admin_reset_allows_only_the_password_change_until_it_is_made(api, sql_conn):
    admin, user = api.admin(), api.dispatcher("lucknow")
    reset = api.patch(f"/api/users/{user.id}", admin, json={"password": TEMPORARY})
    assert reset.status_code == 200, reset.text
    assert flag(sql_conn, user.id) is True
    assert_error(api.get("/api/me", user), 401, "unauthenticated")  # the reset ended the old tokens
    login = api.login(user.username, TEMPORARY)
    assert login.status_code == 200 and login.json["user"]["must_change_password"] is True
    assert_schema(login, "POST", "/api/auth/login")
    token = login.json["token"]
    # GET /api/me answers, with the flag
    me = api.get("/api/me", token)
    assert me.status_code == 200 and me.json["must_change_password"] is True
    assert_schema(me, "GET", "/api/me")
    # a read and a write are refused, with or without Idempotency-Key, and change nothing
    bags = count_rows(sql_conn, "bag")
    error = assert_error(api.get("/api/bags", token), 403, "password_change_required")
    assert "/api/me/password" in error["message"]
    assert_error(api.get("/api/areas", token), 403, "password_change_required")
    assert_error(api.post("/api/scans/parent", token, json={"qr_id": "SB00001"}), 403, "password_change_required")
    assert_error(
        api.post("/api/scans/parent", token, json={"qr_id": "SB00001"}, key="k1"), 403, "password_change_required"
    )
    assert count_rows(sql_conn, "bag") == bags and count_rows(sql_conn, "idempotency_key") == 0
    # a role the user lacks is still forbidden for that reason
    assert_error(api.get("/api/users", token), 403, "forbidden")
    # logout is open: it ends this token and any other
    second = api.login(user.username, TEMPORARY).json["token"]
    assert api.post("/api/auth/logout", second).status_code == 200
    assert_error(api.get("/api/me", token), 401, "unauthenticated")
    token = api.login(user.username, TEMPORARY).json["token"]
    # the change clears the flag; the fresh token can do everything the role may
    assert_error(change(api, token, current=TEMPORARY, new=TEMPORARY), 400, "weak_password", "new_password")
    changed = change(api, token, current=TEMPORARY)
    assert changed.status_code == 200, changed.text
    assert changed.json["user"]["must_change_password"] is False and flag(sql_conn, user.id) is False
    fresh = changed.json["token"]
    assert api.get("/api/me", fresh).json["must_change_password"] is False
    assert api.get("/api/bags", fresh).status_code == 200
    assert api.post("/api/scans/parent", fresh, json={"qr_id": "SB00001"}).status_code == 201
    assert_error(api.get("/api/bags", token), 401, "unauthenticated")
    assert api.login(user.username, NEW).json["user"]["must_change_password"] is False


def test_only_someone_elses_password_set_by_an_admin_raises_the_flag(api, sql_conn):
    admin, other_admin, biller = api.admin(), api.admin(), api.biller()
    # the admin's own new password: they chose it
    assert api.patch(f"/api/users/{admin.id}", admin, json={"password": TEMPORARY}).status_code == 200
    assert flag(sql_conn, admin.id) is False
    admin_token = api.login(admin.username, TEMPORARY).json["token"]
    assert api.get("/api/users", admin_token).status_code == 200
    # changes without a password leave the flag alone
    assert api.patch(f"/api/users/{biller.id}", admin_token, json={"is_active": True}).status_code == 200
    assert flag(sql_conn, biller.id) is False
    # another admin's password: that admin must change it too
    assert api.patch(f"/api/users/{other_admin.id}", admin_token, json={"password": TEMPORARY}).status_code == 200
    assert flag(sql_conn, other_admin.id) is True
    token = api.login(other_admin.username, TEMPORARY).json["token"]
    assert_error(api.get("/api/users", token), 403, "password_change_required")
    assert_error(
        api.patch(f"/api/users/{other_admin.id}", token, json={"password": NEW}), 403, "password_change_required"
    )  # not even their own PATCH: the change needs the current password
    # a reset that is replayed (Idempotency-Key) sets the flag once and answers the same
    first = api.patch(f"/api/users/{biller.id}", admin_token, json={"password": TEMPORARY}, key="reset-1")
    again = api.patch(f"/api/users/{biller.id}", admin_token, json={"password": TEMPORARY}, key="reset-1")
    assert first.status_code == again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    assert flag(sql_conn, biller.id) is True


def test_the_flag_reaches_a_worker_that_cached_the_user(db):
    """Worker two cached the user (no flag) for an hour. The reset and the change
    both bump the token version, so the token issued after each makes worker
    two look again: the flag holds there at once, and goes at once."""
    one, two = make_api(db, user_refresh_seconds=3600), make_api(db, user_refresh_seconds=3600)
    admin, user = one.admin(), one.biller()
    assert two.get("/api/bills", user).status_code == 200  # cached: version 0, no flag
    assert one.patch(f"/api/users/{user.id}", admin, json={"password": TEMPORARY}).status_code == 200
    token = one.login(user.username, TEMPORARY).json["token"]
    assert_error(two.get("/api/bills", token), 403, "password_change_required")
    assert two.get("/api/me", token).json["must_change_password"] is True
    # a worker that looks every time
    assert_error(make_api(db, user_refresh_seconds=0).get("/api/bills", token), 403, "password_change_required")
    changed = change(one, token, current=TEMPORARY)
    assert changed.status_code == 200, changed.text
    fresh = changed.json["token"]
    assert two.get("/api/bills", fresh).status_code == 200
    assert_error(two.get("/api/bills", token), 401, "unauthenticated")
    assert make_api(db, user_refresh_seconds=0).get("/api/bills", fresh).status_code == 200


def test_a_flag_set_alone_reaches_a_listening_worker_at_once(db, service_url, sql_conn):
    """The flag is announced like a role change (the app_user_changed trigger,
    0013): set by hand in SQL, without a new token version, a listening worker
    forgets its cached user at once and enforces it."""
    from tracetrack_api.auth import UserChangeListener, UserDirectory

    directory = UserDirectory(db, 3600)
    listener = UserChangeListener(service_url, directory).start()
    try:
        assert listener.listening.wait(10)
        worker = Api(db, api_settings(user_refresh_seconds=3600), directory=directory)
        user = worker.biller()
        assert worker.get("/api/bills", user).status_code == 200  # cached without the flag
        sql_conn.execute("UPDATE app_user SET must_change_password = true WHERE id = %s", (user.id,))
        deadline = time.monotonic() + 5
        while worker.get("/api/bills", user).status_code != 403 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert_error(worker.get("/api/bills", user), 403, "password_change_required")
    finally:
        listener.stop()
