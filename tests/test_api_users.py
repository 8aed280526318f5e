"""HTTP: user management (admin) and dispatch areas."""

from __future__ import annotations

from .api_helpers import *  # noqa: F403


def test_admin_creates_lists_and_pages_through_users(api, sql_conn):
    admin = api.admin()
    created = api.post(
        "/api/users",
        admin,
        json={"username": "Disp.One", "password": "a-long-password", "role": "dispatcher", "dispatch_area": "ranchi"},
    )
    assert created.status_code == 201, created.text
    user = created.json
    assert set(user) == USER_KEYS
    assert (user["username"], user["role"], user["dispatch_area"], user["is_active"]) == (
        "Disp.One",
        "dispatcher",
        "ranchi",
        True,
    )
    assert user["last_login_at"] is None
    stored = sql_value(sql_conn, "SELECT password_hash FROM app_user WHERE id = %s", (user["id"],))
    assert stored.startswith("$argon2id$") and "a-long-password" not in stored
    # the new user logs in with that password
    login = api.login("disp.one", "a-long-password")
    assert login.status_code == 200 and login.json["user"]["id"] == user["id"]
    weak = api.post(
        "/api/users", admin, json={"username": "warehouse.clerk", "password": "WAREHOUSE.CLERK", "role": "biller"}
    )
    assert_error(weak, 400, "weak_password", "password")
    new_biller = {"username": "bill.er", "password": "sorghum-ledger-77", "role": "biller"}
    biller = api.post("/api/users", admin, json=new_biller, key="user-2")
    assert biller.status_code == 201 and biller.json["dispatch_area"] is None
    replay = api.post("/api/users", admin, json=new_biller, key="user-2")  # no username_taken, no second user
    assert (replay.status_code, replay.json) == (201, biller.json)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert count_rows(sql_conn, "app_user") == 3
    # the list walks every user once, by id, whatever the page size
    first = api.get("/api/users", admin)
    assert first.status_code == 200 and first.json["next_cursor"] is None
    ids = [u["id"] for u in first.json["items"]]
    assert ids == sorted(ids) and set(ids) == {admin.id, user["id"], biller.json["id"]}
    assert all(set(u) == USER_KEYS for u in first.json["items"])
    for limit in (1, 2):
        walked = api.walk("/api/users", admin, limit=limit)
        assert [u["id"] for u in walked] == ids


def test_user_creation_errors(api, sql_conn):
    admin = api.admin()
    before = count_rows(sql_conn, "app_user")
    new = {"username": "someone", "password": PASSWORD, "role": "biller"}
    taken = api.post("/api/users", admin, json={**new, "username": admin.username.upper()})
    assert_error(taken, 409, "username_taken", "username")
    for password in ("short", "1234567", ""):
        assert_error(
            api.post("/api/users", admin, json={**new, "password": password}), 400, "weak_password", "password"
        )
    assert_error(
        api.post("/api/users", admin, json={**new, "password": "p" * 1025}), 400, "validation_error", "password"
    )
    assert_error(
        api.post("/api/users", admin, json={**new, "role": "dispatcher"}),
        400,
        "dispatch_area_required",
        "dispatch_area",
    )
    assert_error(
        api.post("/api/users", admin, json={**new, "role": "dispatcher", "dispatch_area": "atlantis"}),
        400,
        "unknown_area",
        "dispatch_area",
    )
    assert_error(api.post("/api/users", admin, json={**new, "role": "root"}), 400, "validation_error", "role")
    for name in ("ab", "has space", "semi;colon"):
        assert_error(api.post("/api/users", admin, json={**new, "username": name}), 400, "validation_error", "username")
    assert_error(
        api.post("/api/users", admin, json={"username": "valid1", "role": "biller"}),
        400,
        "validation_error",
        "password",
    )
    assert count_rows(sql_conn, "app_user") == before


def test_admin_changes_a_user(api, sql_conn):
    admin = api.admin()
    dispatcher = api.dispatcher("lucknow")
    api.open_parent(admin, "SB00001", area="indore")
    assert_error(api.get("/api/bags/SB00001", dispatcher), 404, "bag_not_found")
    moved = api.patch(f"/api/users/{dispatcher.id}", admin, json={"dispatch_area": "indore"})
    assert moved.status_code == 200, moved.text
    assert set(moved.json) == USER_KEYS and moved.json["dispatch_area"] == "indore"
    assert api.get("/api/bags/SB00001", dispatcher).status_code == 200  # the new area applies at once
    # a new password: the old one stops working, the new one works
    changed = api.patch(f"/api/users/{dispatcher.id}", admin, json={"password": "brand-new-password"})
    assert changed.status_code == 200, changed.text
    assert_error(api.login(dispatcher.username, PASSWORD), 401, "invalid_credentials")
    assert api.login(dispatcher.username, "brand-new-password").status_code == 200
    # an empty change is refused (it names nothing to change) and changes nothing
    updated = sql_value(sql_conn, "SELECT updated_at FROM app_user WHERE id = %s", (dispatcher.id,))
    assert_error(api.patch(f"/api/users/{dispatcher.id}", admin, json={}), 400, "validation_error")
    assert sql_value(sql_conn, "SELECT updated_at FROM app_user WHERE id = %s", (dispatcher.id,)) == updated
    # errors
    assert_error(
        api.patch(f"/api/users/{dispatcher.id}", admin, json={"password": "short"}), 400, "weak_password", "password"
    )
    assert_error(
        api.patch(f"/api/users/{dispatcher.id}", admin, json={"dispatch_area": None}),
        400,
        "dispatch_area_required",
        "dispatch_area",
    )
    assert_error(
        api.patch(f"/api/users/{dispatcher.id}", admin, json={"dispatch_area": "atlantis"}),
        400,
        "unknown_area",
        "dispatch_area",
    )
    assert_error(
        api.patch(f"/api/users/{dispatcher.id}", admin, json={"role": "king"}), 400, "validation_error", "role"
    )
    assert_error(
        api.patch(f"/api/users/{dispatcher.id}", admin, json={"is_active": "no"}), 400, "validation_error", "is_active"
    )
    assert_error(api.patch("/api/users/999999", admin, json={"is_active": False}), 404, "user_not_found")
    assert sql_value(sql_conn, "SELECT dispatch_area FROM app_user WHERE id = %s", (dispatcher.id,)) == "indore"


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(api, sql_conn):
    admin = api.admin()
    assert_error(api.patch(f"/api/users/{admin.id}", admin, json={"role": "biller"}), 409, "last_admin")
    assert_error(api.patch(f"/api/users/{admin.id}", admin, json={"is_active": False}), 409, "last_admin")
    assert sql_value(sql_conn, "SELECT role || is_active::text FROM app_user WHERE id = %s", (admin.id,)) == "admintrue"
    second = api.post("/api/users", admin, json={"username": "second", "password": PASSWORD, "role": "admin"})
    assert second.status_code == 201
    # with a second active admin, the first may step down; then the second is the last one
    demoted = api.patch(f"/api/users/{admin.id}", admin, json={"role": "biller"})
    assert demoted.status_code == 200 and demoted.json["role"] == "biller"
    assert_error(api.get("/api/users", admin), 401, "unauthenticated")  # a role change ends its tokens
    assert_error(api.get("/api/users", api.login(admin.username).json["token"]), 403, "forbidden")
    other = api.login("second").json["token"]
    assert_error(api.patch(f"/api/users/{second.json['id']}", other, json={"is_active": False}), 409, "last_admin")


def test_areas(api, sql_conn):
    admin, dispatcher = api.admin(), api.dispatcher()
    listed = api.get("/api/areas", dispatcher)
    assert listed.status_code == 200
    assert listed.json["next_cursor"] is None
    names = [a["name"] for a in listed.json["items"]]
    assert names == sorted(names)
    assert set(names) == {
        "lucknow",
        "indore",
        "jaipur",
        "hisar",
        "sri_ganganagar",
        "sangaria",
        "bathinda",
        "raipur",
        "ranchi",
        "akola",
    }
    assert all(set(a) == {"name", "label"} and a["label"] for a in listed.json["items"])
    created = api.post("/api/areas", admin, json={"name": "new_town", "label": "New Town"})
    assert created.status_code == 201, created.text
    assert created.json == {"name": "new_town", "label": "New Town"}
    default_label = api.post("/api/areas", admin, json={"name": "far_away"})
    assert default_label.status_code == 201 and default_label.json["label"]
    assert "new_town" in [a["name"] for a in api.get("/api/areas", admin).json["items"]]
    assert_error(api.post("/api/areas", admin, json={"name": "new_town"}), 409, "area_exists", "name")
    for bad in ("X", "Upper", "has space", "9lives", "a" * 51):
        assert_error(api.post("/api/areas", admin, json={"name": bad}), 400, "validation_error", "name")
    assert_error(api.post("/api/areas", admin, json={}), 400, "validation_error", "name")
    # the new area is usable at once
    bag = api.post("/api/bags", admin, json={"qr_id": "SB00001", "type": "parent", "dispatch_area": "new_town"})
    assert bag.status_code == 201 and bag.json["dispatch_area"] == "new_town"
    assert count_rows(sql_conn, "dispatch_area") == 12
