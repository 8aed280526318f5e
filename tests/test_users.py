"""Users: creation rules, login with lockout, updates (last admin), listing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from tracetrack_db import errors, passwords, users
from tracetrack_db.users import UserChanges

from tests.factories import make_user


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """argon2id with minimal cost, to keep the many hashes here fast; the rules under test
    do not depend on the cost (test_login_rehashes_an_outdated_hash uses the difference)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def login_state(sql_conn, user_id: int) -> tuple[int, bool]:
    """(failed_logins, locked now?) straight from the table."""
    return sql_conn.execute(
        "SELECT failed_logins, coalesce(locked_until > now(), false) FROM app_user WHERE id = %s",
        (user_id,)).fetchone()


def insert_plain_users(sql_conn, names: list[str]) -> list[int]:
    """Users inserted behind the library's back (no argon2 cost), for listing tests."""
    return [sql_conn.execute(
        "INSERT INTO app_user (username, password_hash, role) VALUES (%s, 'x', 'biller') RETURNING id",
        (n,)).fetchone()[0] for n in names]


# --- create -----------------------------------------------------------------

def test_create_user_returns_the_user_without_the_hash(db, sql_conn):
    user = users.create_user(db, "Alice.D", "password123", "dispatcher", "indore")
    assert (user.username, user.role, user.dispatch_area, user.is_active) == ("Alice.D", "dispatcher", "indore", True)
    assert user.locked_until is None and user.last_login_at is None
    assert not hasattr(user, "password_hash")
    stored = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert "password123" not in stored
    assert users.get_user(db, user.id) == user
    assert users.find_user(db, "alice.d") == user
    assert users.find_user(db, "nobody") is None
    # eight characters are enough
    eight = users.create_user(db, "eight", "12345678", "admin")
    assert users.authenticate(db, "eight", "12345678").id == eight.id


def test_username_taken_case_insensitively(db, sql_conn):
    users.create_user(db, "alice", "password123", "admin")
    for other in ["alice", "ALICE", "Alice", "aLiCe"]:
        with pytest.raises(errors.UsernameTaken) as info:
            users.create_user(db, other, "password456", "biller")
        assert (info.value.code, info.value.status, info.value.field) == ("username_taken", 409, "username")
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 1


def test_create_user_validation(db, sql_conn):
    for password in ["", "short", "1234567", "seven!!", "p" * 1025]:
        with pytest.raises(errors.WeakPassword) as info:
            users.create_user(db, "weak", password, "admin")
        assert (info.value.code, info.value.status, info.value.field) == ("weak_password", 400, "password")
    for area in [None, ""]:
        with pytest.raises(errors.DispatchAreaRequired) as info:
            users.create_user(db, "disp", "password123", "dispatcher", area)
        assert (info.value.code, info.value.field) == ("dispatch_area_required", "dispatch_area")
    with pytest.raises(errors.UnknownArea) as info:
        users.create_user(db, "disp", "password123", "dispatcher", "atlantis")
    assert (info.value.code, info.value.field) == ("unknown_area", "dispatch_area")
    with pytest.raises(errors.ValidationError) as info:
        users.create_user(db, "root", "password123", "superuser")
    assert info.value.field == "role"
    for name in ["ab", "has space", "semi;colon", "x" * 65]:
        with pytest.raises(errors.ValidationError) as info:
            users.create_user(db, name, "password123", "biller")
        assert info.value.field == "username"
    assert sql_conn.execute("SELECT count(*) FROM app_user").fetchone()[0] == 0
    with pytest.raises(errors.UserNotFound) as info:
        users.get_user(db, 999_999)
    assert (info.value.code, info.value.status) == ("user_not_found", 404)


def test_ensure_admin_creates_once(db):
    created = users.ensure_admin(db, "root", "password123")
    assert created is not None and created.role == "admin"
    assert users.ensure_admin(db, "ROOT", "otherpass1") is None
    assert users.authenticate(db, "root", "password123").id == created.id


# --- authenticate -----------------------------------------------------------

def test_authenticate_outcomes(db, sql_conn):
    user = make_user(db, "admin", username="carol")
    logged = users.authenticate(db, "CAROL", "password123")
    assert (logged.id, logged.locked_until) == (user.id, None)
    assert logged.last_login_at is not None
    with pytest.raises(errors.InvalidCredentials) as info:
        users.authenticate(db, "ghost", "password123")
    assert (info.value.code, info.value.status) == ("invalid_credentials", 401)
    with pytest.raises(errors.InvalidCredentials):
        users.authenticate(db, "carol", "wrong-password")
    assert login_state(sql_conn, user.id) == (1, False)
    gone = make_user(db, "biller", username="gone")
    users.update_user(db, gone.id, UserChanges(is_active=False))
    with pytest.raises(errors.InvalidCredentials):
        users.authenticate(db, "gone", "password123")


def test_five_failures_lock_the_account_even_for_the_right_password(db, sql_conn):
    user = make_user(db, "biller", username="erin")
    for n in range(1, 5):
        with pytest.raises(errors.InvalidCredentials):
            users.authenticate(db, "erin", "wrong-password")
        assert login_state(sql_conn, user.id) == (n, False)
    with pytest.raises(errors.AccountLocked) as info:
        users.authenticate(db, "erin", "wrong-password")
    assert (info.value.code, info.value.status) == ("account_locked", 401)
    with pytest.raises(errors.AccountLocked):
        users.authenticate(db, "erin", "password123")
    assert login_state(sql_conn, user.id) == (0, True)
    lock_seconds = sql_conn.execute(
        "SELECT extract(epoch FROM locked_until - now()) FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert 14 * 60 < lock_seconds <= 15 * 60


def test_a_success_resets_the_failure_count(db, sql_conn):
    user = make_user(db, "biller", username="frank")
    for _ in range(4):
        with pytest.raises(errors.InvalidCredentials):
            users.authenticate(db, "frank", "wrong-password")
    users.authenticate(db, "frank", "password123")
    assert login_state(sql_conn, user.id) == (0, False)
    for _ in range(4):
        with pytest.raises(errors.InvalidCredentials):
            users.authenticate(db, "frank", "wrong-password")
    assert login_state(sql_conn, user.id) == (4, False)


def test_lock_expiry(db, sql_conn):
    """A lock set behind the library's back: refused while it lasts, cleared by a login after it."""
    user = make_user(db, "biller", username="hank")
    sql_conn.execute("UPDATE app_user SET locked_until = now() + interval '15 minutes' WHERE id = %s", (user.id,))
    with pytest.raises(errors.AccountLocked):
        users.authenticate(db, "hank", "password123")
    sql_conn.execute("UPDATE app_user SET locked_until = now() - interval '1 second', failed_logins = 3 "
                     "WHERE id = %s", (user.id,))
    assert users.authenticate(db, "hank", "password123").locked_until is None
    assert login_state(sql_conn, user.id) == (0, False)


def test_login_rehashes_an_outdated_hash(db, sql_conn, monkeypatch):
    user = make_user(db, "biller", username="rita")  # hashed with the cheap parameters
    old = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert "m=8," in old
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())  # the library's real parameters
    users.authenticate(db, "rita", "password123")
    new = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert new != old and new.startswith("$argon2id$") and not passwords.needs_rehash(new)
    assert users.authenticate(db, "rita", "password123").id == user.id
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


def test_update_password_replaces_the_hash_and_lifts_a_lock(db, sql_conn):
    user = make_user(db, "biller", username="olga")
    before = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    sql_conn.execute("UPDATE app_user SET failed_logins = 3, locked_until = now() + interval '10 minutes' "
                     "WHERE id = %s", (user.id,))
    users.update_user(db, user.id, UserChanges(password="new-password-1"))
    after = sql_conn.execute("SELECT password_hash FROM app_user WHERE id = %s", (user.id,)).fetchone()[0]
    assert after != before and after.startswith("$argon2id$")
    assert login_state(sql_conn, user.id) == (0, False)
    assert users.authenticate(db, "olga", "new-password-1").id == user.id
    with pytest.raises(errors.InvalidCredentials):
        users.authenticate(db, "olga", "password123")


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
