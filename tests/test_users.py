"""Users: creation rules, password rules, login (one answer for every refusal), token versions,
updates (last admin), listing."""

from __future__ import annotations

import contextlib

import pytest
from argon2 import PasswordHasher

from tests.factories import make_user
from tracetrack_db import errors, passwords, users
from tracetrack_db.users import UserChanges


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """argon2id with minimal cost, to keep the many hashes here fast; the rules under test
    do not depend on the cost (test_login_rehashes_an_outdated_hash uses the difference)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def token_version(sql_conn, user_id: int) -> int:
    return sql_conn.execute("SELECT token_version FROM app_user WHERE id = %s", (user_id,)).fetchone()[0]


def insert_plain_users(sql_conn, names: list[str]) -> list[int]:
    """Users inserted behind the library's back (no argon2 cost), for listing tests."""
    return [
        sql_conn.execute(
            "INSERT INTO app_user (username, password_hash, role) VALUES (%s, 'x', 'biller') RETURNING id", (n,)
        ).fetchone()[0]
        for n in names
    ]


# --- create -----------------------------------------------------------------


def test_create_user_returns_the_user_without_the_hash(db, sql_conn):
    user = users.create_user(db, "Alice.D", "correct-horse-9-staple", "dispatcher", "indore")
    assert (user.username, user.role, user.dispatch_area, user.is_active) == ("Alice.D", "dispatcher", "indore", True)
    assert user.last_login_at is None
    assert not hasattr(user, "password_hash")
    stored = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert "correct-horse-9-staple" not in stored
    assert users.get_user(db, user.id) == user
    assert users.find_user(db, "alice.d") == user
    assert users.find_user(db, "nobody") is None
    assert users.find_user(db, "alİce.d") is None  # not ASCII: nobody's name


@pytest.mark.parametrize(
    "password, why",
    [
        ("12345678", "at least 12"),
        ("bbbbbbbbbbbb", "too easy"),
        (" " * 12, "whitespace"),
        ("\t\n" * 6, "whitespace"),
        ("password1234", "common"),
        ("qwertyuiop123", "common"),
        ("Aaaaaaaaaaaa", "username"),
        ("  aaaaaaaaaaaa ", "username"),
        ("abcdefghijklmnop", "too easy"),
        ("x" * 1025, "at most"),
    ],
)
def test_weak_passwords_are_refused_and_nothing_is_created(db, sql_conn, password, why):
    """Before: 8 characters were enough, so 'aaaaaaaa' for user 'aaaaaaaa' and eight spaces passed."""
    with pytest.raises(errors.WeakPassword) as info:
        users.create_user(db, "aaaaaaaaaaaa", password, "admin")
    assert (info.value.code, info.value.status, info.value.field) == ("weak_password", 400, "password")
    assert why in info.value.message
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 0


def test_a_long_unusual_password_is_accepted(db):
    user = users.create_user(db, "eight", "tractor-monsoon-41", "admin")
    assert users.authenticate(db, "eight", "tractor-monsoon-41").user.id == user.id
    long = "the monsoon tractor hauls forty-one sacks of sorghum to the depot " * 15  # ~1,000 characters
    users.update_user(db, user.id, UserChanges(password=long))
    assert users.authenticate(db, "eight", long).user.id == user.id
    with pytest.raises(errors.WeakPassword):
        users.update_user(db, user.id, UserChanges(password="a" * 1000))


def test_usernames_are_ascii_and_fold_one_way(db, sql_conn):
    """Before: 'admİn' logged in as 'admin' (PostgreSQL lowercases İ to i, Python to i̇),
    and the per-username limiter counted it apart."""
    admin = make_user(db, "admin", username="admin")
    assert users.login_name("ADMIN") == "admin"
    for odd in ["admİn", "ａdmin", "admın", "admin\u200b", "ＡＤＭＩＮ"]:
        with pytest.raises(errors.InvalidUsername) as info:
            users.authenticate(db, odd, "correct-horse-9-staple")
        assert (info.value.code, info.value.status, info.value.field) == ("invalid_username", 400, "username")
        with pytest.raises(errors.InvalidUsername):
            users.login_name(odd)
        with pytest.raises(errors.InvalidUsername):
            users.create_user(db, odd, "correct-horse-9-staple", "admin")
    assert users.authenticate(db, "AdMiN", "correct-horse-9-staple").user.id == admin.id
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 1


def test_username_taken_case_insensitively(db, sql_conn):
    users.create_user(db, "alice", "correct-horse-9-staple", "admin")
    for other in ["alice", "ALICE", "Alice", "aLiCe"]:
        with pytest.raises(errors.UsernameTaken) as info:
            users.create_user(db, other, "tractor-monsoon-41", "biller")
        assert (info.value.code, info.value.status, info.value.field) == ("username_taken", 409, "username")
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 1


def test_create_user_validation(db, sql_conn):
    for password in ["", "short", "1234567", "seven!!", "p" * 1025]:
        with pytest.raises(errors.WeakPassword) as info:
            users.create_user(db, "weak", password, "admin")
        assert (info.value.code, info.value.status, info.value.field) == ("weak_password", 400, "password")
    for area in [None, ""]:
        with pytest.raises(errors.DispatchAreaRequired) as info:
            users.create_user(db, "disp", "correct-horse-9-staple", "dispatcher", area)
        assert (info.value.code, info.value.field) == ("dispatch_area_required", "dispatch_area")
    with pytest.raises(errors.UnknownArea) as info:
        users.create_user(db, "disp", "correct-horse-9-staple", "dispatcher", "atlantis")
    assert (info.value.code, info.value.field) == ("unknown_area", "dispatch_area")
    with pytest.raises(errors.ValidationError) as info:
        users.create_user(db, "root", "correct-horse-9-staple", "superuser")
    assert info.value.field == "role"
    for name in ["ab", "has space", "semi;colon", "x" * 65]:
        with pytest.raises(errors.ValidationError) as info:
            users.create_user(db, name, "correct-horse-9-staple", "biller")
        assert info.value.field == "username"
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 0
    with pytest.raises(errors.UserNotFound) as info:
        users.get_user(db, 999_999)
    assert (info.value.code, info.value.status) == ("user_not_found", 404)


def test_ensure_admin_creates_once(db):
    created = users.ensure_admin(db, "root", "correct-horse-9-staple")
    assert created is not None and created.role == "admin"
    assert users.ensure_admin(db, "ROOT", "otherpass1") is None
    assert users.authenticate(db, "root", "correct-horse-9-staple").user.id == created.id


# --- authenticate -----------------------------------------------------------


def test_authenticate_outcomes(db, sql_conn):
    user = make_user(db, "admin", username="carol")
    logged = users.authenticate(db, "CAROL", "correct-horse-9-staple")
    assert logged.user.id == user.id and logged.token_version == 0
    assert logged.user.last_login_at is not None
    gone = make_user(db, "biller", username="gone")
    users.update_user(db, gone.id, UserChanges(is_active=False))
    refusals = [
        ("ghost", "correct-horse-9-staple"),
        ("carol", "wrong-password"),
        ("gone", "correct-horse-9-staple"),  # deactivated, right password
        ("gone", "wrong-password"),
    ]
    messages = set()
    for name, password in refusals:
        with pytest.raises(errors.InvalidCredentials) as info:
            users.authenticate(db, name, password)
        assert (info.value.code, info.value.status) == ("invalid_credentials", 401)
        messages.add(info.value.message)
    assert messages == {"wrong username or password"}  # before: "this account is deactivated"


def test_every_refusal_runs_exactly_one_password_check(db, monkeypatch):
    """Before: a locked account answered without a check (2 ms instead of ~300 ms), which
    told an attacker the name existed."""
    make_user(db, "biller", username="erin")
    gone = make_user(db, "biller", username="gone")
    users.update_user(db, gone.id, UserChanges(is_active=False))
    checks = []
    real = passwords.verify_password
    monkeypatch.setattr(users, "verify_password", lambda h, p: checks.append(h) or real(h, p))
    for name, password in [
        ("ghost", "x"),
        ("erin", "wrong"),
        ("gone", "correct-horse-9-staple"),
        ("gone", "wrong"),
        ("erin", "correct-horse-9-staple"),
    ]:
        checks.clear()
        with contextlib.suppress(errors.InvalidCredentials):
            users.authenticate(db, name, password)
        assert len(checks) == 1, name


def test_failures_never_lock_an_account(db):
    """Before: five wrong passwords locked the account (even the only admin) for 15 minutes."""
    user = make_user(db, "admin", username="frank")
    for _ in range(20):
        with pytest.raises(errors.InvalidCredentials):
            users.authenticate(db, "frank", "wrong-password")
    assert users.authenticate(db, "frank", "correct-horse-9-staple").user.id == user.id


def test_token_version_moves_on_logout_password_deactivation_and_role_change(db, sql_conn):
    make_user(db, "admin", username="root")
    user = make_user(db, "dispatcher", "lucknow", username="vera")
    assert token_version(sql_conn, user.id) == 0
    users.update_user(db, user.id, UserChanges(dispatch_area="jaipur"))  # an area move keeps tokens
    assert token_version(sql_conn, user.id) == 0
    users.update_user(db, user.id, UserChanges(role="dispatcher"))  # the same role: no change
    assert token_version(sql_conn, user.id) == 0
    users.update_user(db, user.id, UserChanges(role="biller", clear_area=True))
    assert token_version(sql_conn, user.id) == 1
    users.update_user(db, user.id, UserChanges(password="tractor-monsoon-41"))
    assert token_version(sql_conn, user.id) == 2
    users.update_user(db, user.id, UserChanges(is_active=False))
    assert token_version(sql_conn, user.id) == 3
    users.update_user(db, user.id, UserChanges(is_active=True))  # reactivation does not revive old tokens
    assert token_version(sql_conn, user.id) == 3
    assert users.revoke_tokens(db, user.id) == 4
    assert users.get_principal(db, user.id).token_version == 4
    assert users.authenticate(db, "vera", "tractor-monsoon-41").token_version == 4
    with pytest.raises(errors.UserNotFound):
        users.revoke_tokens(db, 424242)


def test_login_rehashes_an_outdated_hash(db, sql_conn, monkeypatch):
    user = make_user(db, "biller", username="rita")  # hashed with the cheap parameters
    old = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert "m=8," in old
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())  # the library's real parameters
    users.authenticate(db, "rita", "correct-horse-9-staple")
    new = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert new != old and new.startswith("$argon2id$") and not passwords.needs_rehash(new)
    assert users.authenticate(db, "rita", "correct-horse-9-staple").user.id == user.id
    assert sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0] == new


# --- update -----------------------------------------------------------------


def test_update_role_area_and_active(db):
    make_user(db, "admin", username="root")
    user = make_user(db, "dispatcher", "lucknow", username="kim")
    moved = users.update_user(db, user.id, UserChanges(dispatch_area="jaipur"))
    assert (moved.role, moved.dispatch_area) == ("dispatcher", "jaipur")
    biller = users.update_user(db, user.id, UserChanges(role="biller", clear_area=True))
    assert (biller.role, biller.dispatch_area) == ("biller", None)
    off = users.update_user(db, user.id, UserChanges(is_active=False))
    assert off.is_active is False and off.role == "biller"
    assert users.get_user(db, user.id) == off
    back = users.update_user(db, user.id, UserChanges(role="dispatcher", dispatch_area="hisar", is_active=True))
    assert (back.role, back.dispatch_area, back.is_active) == ("dispatcher", "hisar", True)


def test_update_validation(db):
    make_user(db, "admin", username="root")
    disp = make_user(db, "dispatcher", "lucknow", username="lee")
    biller = make_user(db, "biller", username="mia")
    with pytest.raises(errors.DispatchAreaRequired):
        users.update_user(db, disp.id, UserChanges(clear_area=True))
    with pytest.raises(errors.DispatchAreaRequired):
        users.update_user(db, biller.id, UserChanges(role="dispatcher"))
    with pytest.raises(errors.UnknownArea):
        users.update_user(db, disp.id, UserChanges(dispatch_area="atlantis"))
    with pytest.raises(errors.ValidationError) as info:
        users.update_user(db, disp.id, UserChanges(role="king"))
    assert info.value.field == "role"
    with pytest.raises(errors.WeakPassword):
        users.update_user(db, disp.id, UserChanges(password="short"))
    with pytest.raises(errors.UserNotFound):
        users.update_user(db, 424242, UserChanges(is_active=False))
    assert users.get_user(db, disp.id) == disp
    assert users.get_user(db, biller.id) == biller


def test_update_password_replaces_the_hash(db, sql_conn):
    user = make_user(db, "biller", username="olga")
    before = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    with pytest.raises(errors.WeakPassword):
        users.update_user(db, user.id, UserChanges(password="Olga-olga-olga"[:4] * 3))  # olgaolgaolga
    with pytest.raises(errors.WeakPassword):
        users.update_user(db, user.id, UserChanges(password="OLGA"))
    users.update_user(db, user.id, UserChanges(password="new-password-1"))
    after = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert after != before and after.startswith("$argon2id$")
    assert users.authenticate(db, "olga", "new-password-1").user.id == user.id
    with pytest.raises(errors.InvalidCredentials):
        users.authenticate(db, "olga", "correct-horse-9-staple")


def test_the_only_active_admin_cannot_be_demoted_or_deactivated(db):
    admin = make_user(db, "admin", username="root")
    inactive = make_user(db, "admin", username="root2")
    users.update_user(db, inactive.id, UserChanges(is_active=False))  # an inactive admin does not count
    with pytest.raises(errors.LastAdmin) as info:
        users.update_user(db, admin.id, UserChanges(role="biller"))
    assert (info.value.code, info.value.status) == ("last_admin", 409)
    with pytest.raises(errors.LastAdmin):
        users.update_user(db, admin.id, UserChanges(is_active=False))
    with pytest.raises(errors.LastAdmin):
        users.update_user(db, admin.id, UserChanges(role="dispatcher", dispatch_area="lucknow"))
    unchanged = users.get_user(db, admin.id)
    assert (unchanged.role, unchanged.is_active, unchanged.dispatch_area) == ("admin", True, None)
    # other changes to the last admin are fine
    assert users.update_user(db, admin.id, UserChanges(password="another-pass")).role == "admin"


def test_demotion_works_when_another_admin_exists(db):
    first = make_user(db, "admin", username="root")
    second = make_user(db, "admin", username="root2")
    assert users.update_user(db, first.id, UserChanges(role="biller")).role == "biller"
    with pytest.raises(errors.LastAdmin):
        users.update_user(db, second.id, UserChanges(is_active=False))
    # promote the first again; now the second may go
    users.update_user(db, first.id, UserChanges(role="admin"))
    assert users.update_user(db, second.id, UserChanges(is_active=False)).is_active is False
    assert users.get_user(db, first.id).role == "admin"


# --- list -------------------------------------------------------------------


def test_list_users_keyset_pages(db, sql_conn):
    ids = insert_plain_users(sql_conn, [f"user{i}" for i in range(7)])
    seen = []
    cursor = None
    pages = 0
    while True:
        page = users.list_users(db, limit=3, cursor=cursor)
        pages += 1
        assert len(page.items) <= 3
        seen.extend(u.id for u in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(ids)
    # an exactly full page has no next cursor
    exact = users.list_users(db, limit=7)
    assert [u.username for u in exact.items] == [f"user{i}" for i in range(7)]
    assert exact.next_cursor is None
    for cursor in ["garbage!", "djI6MTA", "djE6LTU", "djE6YWJj", "%%%"]:
        with pytest.raises(errors.InvalidCursor) as info:
            users.list_users(db, cursor=cursor)
        assert (info.value.code, info.value.field) == ("invalid_cursor", "cursor")
