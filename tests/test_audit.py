"""The security log (issue 12, items 10 and 11): every kind is written by the
action that causes it, through the real API, with who, whom, the client
address (a proxy's header only from a trusted proxy) and user agent; a failed
change leaves no row, a failed login leaves one; GET /api/audit pages and
filters it, /api/audit.csv streams it, admins only. The service's database
role cannot change or delete the security log or the event log, not even
through a function that runs as the owner, and the owner's trigger refuses
them too."""

from __future__ import annotations

import csv
import getpass
import io
import re
from datetime import UTC

import psycopg
import pytest

from tracetrack_api.cache import LocalCache
from tracetrack_db import audit, errors, formats, users
from tracetrack_db.users import UserChanges

from .api_helpers import *  # noqa: F403
from .api_helpers import Api
from .test_cli import run

NEW = "quiet-tractor-harvest-88"
RESET = "granary-lantern-4711"
AGENT = "ScannerApp/2.1 (Android 13)"
PROXY = "127.0.0.1"  # a trusted proxy in the test settings (TRACETRACK_TRUSTED_PROXIES' default)
STRANGER = "198.51.100.7"  # not a trusted proxy


def call(api: Api, method: str, path: str, caller=None, *, peer: str = PROXY, headers=None, json=None, params=None):
    """A request from `peer` (the socket's address) with our user agent."""
    all_headers = {"User-Agent": AGENT, **(headers or {})}
    if isinstance(caller, str):  # a bare token
        all_headers["Authorization"] = f"Bearer {caller}"
    elif caller is not None:
        all_headers.update(caller.headers)
    return api.client.simulate_request(method, path, json=json, params=params, headers=all_headers, remote_addr=peer)


def login(api: Api, username: str, password: str = PASSWORD, *, peer: str = PROXY, client: str = "203.0.113.5"):
    """A login through the trusted proxy, which names `client` (X-Real-IP)."""
    return call(
        api,
        "POST",
        "/api/auth/login",
        peer=peer,
        headers={"X-Real-IP": client},
        json={"username": username, "password": password},
    )


def rows(sql_conn, kind: str | None = None, after: int = 0) -> list[dict]:
    """The security log's rows (of a kind), oldest first, after id `after`."""
    with sql_conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT * FROM security_log WHERE id > %s AND (%s::text IS NULL OR kind = %s) ORDER BY id",
            (after, kind, kind),
        )
        return cur.fetchall()


def last_id(sql_conn) -> int:
    return sql_value(sql_conn, "SELECT coalesce(max(id), 0) FROM security_log")


def kinds(sql_conn, after: int) -> list[str]:
    return [r["kind"] for r in rows(sql_conn, after=after)]


# logins ------------------------------------------------------------------------------------
def test_logins_succeeded_and_failed_with_address_user_agent_and_reason(api, sql_conn):
    user = api.biller()
    start = last_id(sql_conn)
    assert login(api, user.username).status_code == 200
    assert login(api, user.username, "not-the-password-1").status_code == 401
    assert login(api, "nobody.here", PASSWORD).status_code == 401
    users.update_user(api.db, user.id, UserChanges(is_active=False))
    after_deactivation = last_id(sql_conn)
    assert login(api, user.username.upper()).status_code == 401  # the right password of a deactivated user
    ok, wrong, unknown = rows(sql_conn, after=start)[:3]
    assert ok["kind"] == "login_succeeded" and ok["reason"] is None
    assert ok["actor_id"] == ok["user_id"] == user.id and ok["actor"] == ok["username"] == user.username
    assert wrong["kind"] == "login_failed" and wrong["user_id"] == user.id and wrong["actor_id"] is None
    assert wrong["reason"] == "invalid_credentials" and wrong["details"] == {"cause": "wrong_password"}
    assert unknown["user_id"] is None and unknown["username"] == "nobody.here"
    assert unknown["details"] == {"cause": "unknown_user"}
    for row in (ok, wrong, unknown):
        assert row["client_address"] == "203.0.113.5" and row["user_agent"] == AGENT
    (inactive,) = rows(sql_conn, "login_failed", after_deactivation)
    assert inactive["user_id"] == user.id and inactive["username"] == user.username.lower()
    assert inactive["details"] == {"cause": "inactive"} and inactive["reason"] == "invalid_credentials"


def test_a_proxy_header_counts_only_from_a_trusted_proxy(api, sql_conn):
    user = api.biller()
    start = last_id(sql_conn)
    forwarded = {"X-Forwarded-For": "10.9.9.9, 203.0.113.77"}  # the proxy appended the last one
    assert (
        call(
            api,
            "POST",
            "/api/auth/login",
            peer=PROXY,
            headers=forwarded,
            json={"username": user.username, "password": PASSWORD},
        ).status_code
        == 200
    )
    assert login(api, user.username, peer=PROXY, client="203.0.113.78").status_code == 200
    spoofed = {"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "203.0.113.98"}
    assert (
        call(
            api,
            "POST",
            "/api/auth/login",
            peer=STRANGER,
            headers=spoofed,
            json={"username": user.username, "password": PASSWORD},
        ).status_code
        == 200
    )
    addresses = [r["client_address"] for r in rows(sql_conn, "login_succeeded", start)]
    assert addresses == ["203.0.113.77", "203.0.113.78", STRANGER]
    # the same rule for a change made by a logged-in caller
    admin = api.admin()
    mark = last_id(sql_conn)
    assert (
        call(
            api,
            "PATCH",
            f"/api/users/{user.id}",
            admin,
            peer=STRANGER,
            headers=spoofed,
            json={"role": "dispatcher", "dispatch_area": "indore"},
        ).status_code
        == 200
    )
    assert {r["client_address"] for r in rows(sql_conn, after=mark)} == {STRANGER}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def frozen_api(db, **settings) -> Api:
    """An app whose login counters live in a cache with a clock that stands still."""
    local = LocalCache(Clock())
    return make_api(db, cache=local, counters=local, **settings)


def test_a_lockout_and_refused_attempts_are_logged_once_per_period(db, sql_conn):
    api = frozen_api(db)
    user = api.biller()
    start = last_id(sql_conn)
    for _ in range(5):  # the free tries
        assert login(api, user.username, "not-the-password-1").status_code == 401
    assert kinds(sql_conn, start) == ["login_failed"] * 5
    assert login(api, user.username, "not-the-password-1").status_code == 401  # the first that waits after it
    assert kinds(sql_conn, start)[5:] == ["lockout", "login_failed"]
    (lockout,) = rows(sql_conn, "lockout", start)
    assert lockout["user_id"] == user.id and lockout["reason"] == "rate_limited"
    assert lockout["client_address"] == "203.0.113.5" and lockout["user_agent"] == AGENT
    mark = last_id(sql_conn)
    for _ in range(3):  # refused at once: one row for the three
        assert login(api, user.username).status_code == 429
    (refused,) = rows(sql_conn, after=mark)
    assert refused["kind"] == "login_failed" and refused["reason"] == "rate_limited"
    assert refused["user_id"] == user.id and refused["details"]["limit"] == "user"
    # the same user from another address is not locked out, and logs in
    assert login(api, user.username, client="203.0.113.6").status_code == 200


def test_a_flood_from_one_address_costs_one_row(db, sql_conn):
    api = frozen_api(db, login_address_rate=2)
    start = last_id(sql_conn)
    for i in range(6):
        login(api, f"made.up{i}", "not-the-password-1", client="203.0.113.50")
    refused = rows(sql_conn, "login_failed", start)
    assert [r["reason"] for r in refused] == ["invalid_credentials"] * 2 + ["rate_limited"]
    assert refused[-1]["details"]["limit"] == "address"


# sessions and passwords ---------------------------------------------------------------------
def test_logout_and_password_change_revoke_tokens(api, sql_conn):
    user = api.biller()
    start = last_id(sql_conn)
    wrong = call(
        api, "POST", "/api/me/password", user, json={"current_password": "nope-nope-nope-1", "new_password": NEW}
    )
    assert wrong.status_code == 400
    changed = call(api, "POST", "/api/me/password", user, json={"current_password": PASSWORD, "new_password": NEW})
    assert changed.status_code == 200
    fresh = changed.json["token"]
    assert call(api, "POST", "/api/auth/logout", fresh).status_code == 200
    logged = rows(sql_conn, after=start)
    assert [(r["kind"], r["reason"]) for r in logged] == [
        ("password_change_failed", "wrong_password"),
        ("password_changed", None),
        ("tokens_revoked", "password_changed"),
        ("logout", None),
        ("tokens_revoked", "logout"),
    ]
    for row in logged:
        assert row["actor_id"] == row["user_id"] == user.id and row["actor"] == user.username
        assert row["client_address"] == PROXY and row["user_agent"] == AGENT  # no proxy header: the peer


def test_user_changes_by_an_admin(api, sql_conn):
    admin = api.admin()
    start = last_id(sql_conn)
    created = call(
        api,
        "POST",
        "/api/users",
        admin,
        json={"username": "audited.user", "password": PASSWORD, "role": "dispatcher", "dispatch_area": "lucknow"},
    )
    assert created.status_code == 201, created.text
    uid = created.json["id"]
    patch = {"role": "biller", "dispatch_area": None}
    assert call(api, "PATCH", f"/api/users/{uid}", admin, json=patch).status_code == 200
    assert call(api, "PATCH", f"/api/users/{uid}", admin, json={"password": RESET}).status_code == 200
    assert call(api, "PATCH", f"/api/users/{uid}", admin, json={"is_active": False}).status_code == 200
    logged = rows(sql_conn, after=start)
    assert [(r["kind"], r["reason"], r["details"]) for r in logged] == [
        ("user_created", None, {"role": "dispatcher", "dispatch_area": "lucknow"}),
        ("role_changed", None, {"from": "dispatcher", "to": "biller"}),
        ("area_changed", None, {"from": "lucknow", "to": None}),
        ("tokens_revoked", "role_changed", None),
        ("password_reset", None, None),
        ("tokens_revoked", "password_reset", None),
        ("active_changed", None, {"from": True, "to": False}),
        ("tokens_revoked", "deactivated", None),
    ]
    for row in logged:
        assert (row["actor_id"], row["actor"], row["user_id"]) == (admin.id, admin.username, uid)
        assert row["username"] == "audited.user" and row["user_agent"] == AGENT


def test_a_failed_change_leaves_no_row(api, sql_conn):
    admin = api.admin()
    start = last_id(sql_conn)
    assert_error(call(api, "PATCH", f"/api/users/{admin.id}", admin, json={"role": "biller"}), 409, "last_admin")
    assert_error(call(api, "PATCH", "/api/users/999999", admin, json={"role": "biller"}), 404, "user_not_found")
    api.open_parent(admin, "SB00001", area="lucknow")
    assert_error(call(api, "DELETE", "/api/parent-formats/SB", admin), 409, "format_in_use")
    assert_error(
        call(api, "POST", "/api/extraction-rules", admin, json={"name": "label_no", "pattern": "X(?P<qr>\\d+)"}),
        409,
        "rule_exists",
    )
    assert rows(sql_conn, after=start) == []


# formats and rules ---------------------------------------------------------------------------
def test_format_and_rule_changes(api, sql_conn):
    admin = api.admin()
    start = last_id(sql_conn)
    body = {"name": "AUD", "pattern": "^AUD[0-9]{4}$", "capacity": 12, "expected_weight_kg": 12}
    assert call(api, "POST", "/api/parent-formats", admin, json=body).status_code == 201
    assert call(api, "PATCH", "/api/parent-formats/AUD", admin, json={"capacity": 10}).status_code == 200
    assert call(api, "DELETE", "/api/parent-formats/AUD", admin).status_code == 200
    rule = {"name": "audit_rule", "pattern": "LOT (?P<qr>[A-Z0-9]+)", "description": "lots"}
    assert call(api, "POST", "/api/extraction-rules", admin, json=rule).status_code == 201
    assert (
        call(api, "PATCH", "/api/extraction-rules/audit_rule", admin, json={"description": "lot labels"}).status_code
        == 200
    )
    logged = rows(sql_conn, after=start)
    assert [r["kind"] for r in logged] == [
        "format_added",
        "format_changed",
        "format_removed",
        "rule_added",
        "rule_changed",
    ]
    assert logged[0]["details"] == {
        "name": "AUD",
        "pattern": "^AUD[0-9]{4}$",
        "capacity": 12,
        "expected_weight_kg": "12.000",
    }
    assert logged[1]["details"]["capacity"] == 10 and logged[1]["details"]["changed"] == ["capacity"]
    assert logged[4]["details"] == {
        "name": "audit_rule",
        "pattern": rule["pattern"],
        "description": "lot labels",
        "changed": ["description"],
    }
    for row in logged:
        assert (row["actor_id"], row["actor"], row["user_id"]) == (admin.id, admin.username, None)
        assert row["client_address"] == PROXY and row["user_agent"] == AGENT


def test_the_cli_and_the_library_name_themselves(db, db_url, sql_conn):
    start = last_id(sql_conn)
    done = run(["formats", "add", "CLIF", "^CLIF[0-9]{3}$", "--capacity", "5"], {"DATABASE_URL": db_url, "CI": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    formats.change_format(db, "CLIF", capacity=6)  # a library caller with no origin of its own
    by_cli, by_library = rows(sql_conn, after=start)
    assert by_cli["kind"] == "format_added" and by_cli["actor"] == f"cli:{getpass.getuser()}"
    assert by_cli["actor_id"] is None and by_cli["user_agent"] == "tracetrack-cli" and by_cli["client_address"] is None
    assert by_library["kind"] == "format_changed" and by_library["actor"] == "library"


def test_origin_reaches_the_library_writers(db, sql_conn):
    origin = audit.Origin(actor_id=None, actor="cli:ops", address="192.0.2.1", user_agent="script")
    start = last_id(sql_conn)
    user = users.create_user(db, "lib.audited", PASSWORD, "biller", origin=origin)
    users.revoke_tokens(db, user.id, origin=origin)
    with pytest.raises(errors.InvalidCredentials):
        users.authenticate(db, "lib.audited", "wrong-password-123", origin=origin)
    logged = rows(sql_conn, after=start)
    assert [r["kind"] for r in logged] == ["user_created", "logout", "tokens_revoked", "login_failed"]
    assert {(r["actor"], r["client_address"], r["user_agent"]) for r in logged[:3]} == {
        ("cli:ops", "192.0.2.1", "script")
    }
    with pytest.raises(ValueError):
        audit.record(db, "no_such_kind")


def test_a_huge_user_agent_is_cut_not_refused(api, sql_conn):
    user = api.biller()
    start = last_id(sql_conn)
    result = call(
        api,
        "POST",
        "/api/auth/login",
        headers={"User-Agent": "x" * 5000},
        json={"username": user.username, "password": PASSWORD},
    )
    assert result.status_code == 200
    (row,) = rows(sql_conn, after=start)
    assert len(row["user_agent"]) == 500


# GET /api/audit and /api/audit.csv --------------------------------------------------------------
def _activity(api: Api) -> tuple:
    admin = api.admin()
    users_ = [api.biller() for _ in range(3)]
    for u in users_:
        login(api, u.username, "not-the-password-1")
    api.post("/api/auth/logout", users_[0])
    return admin, users_


def test_the_list_pages_and_filters(api, sql_conn):
    admin, (one, two, _) = _activity(api)
    everything = api.walk("/api/audit", admin, limit=3)
    ids = [r["id"] for r in everything]
    assert ids == sorted(ids, reverse=True) and ids == [r["id"] for r in rows(sql_conn)][::-1]
    assert set(everything[0]) == {f.name for f in audit.SecurityEvent.__dataclass_fields__.values()}
    failed = api.walk("/api/audit", admin, {"kind": "login_failed"}, limit=2)
    assert [r["id"] for r in failed] == [r["id"] for r in rows(sql_conn, "login_failed")][::-1]
    assert len(failed) == 3
    mine = api.walk("/api/audit", admin, {"user": str(one.id)}, limit=2)
    expected = [r["id"] for r in rows(sql_conn) if one.id in (r["actor_id"], r["user_id"])][::-1]
    assert [r["id"] for r in mine] == expected and len(expected) >= 5  # created, login, failed, logout x2
    both = api.walk("/api/audit", admin, {"user": str(one.id), "kind": "logout"})
    assert [r["kind"] for r in both] == ["logout"]
    # a time range, cut between two rows the database dated
    all_rows = rows(sql_conn)
    cut = all_rows[len(all_rows) // 2]["occurred_at"]
    stamp = cut.astimezone(UTC).isoformat().replace("+00:00", "Z")
    since = api.walk("/api/audit", admin, {"from": stamp}, limit=50)
    before = api.walk("/api/audit", admin, {"to": stamp}, limit=50)
    assert {r["id"] for r in since} == {r["id"] for r in all_rows if r["occurred_at"] >= cut}
    assert {r["id"] for r in before} == {r["id"] for r in all_rows if r["occurred_at"] < cut}
    assert api.walk("/api/audit", admin, {"from": stamp, "to": stamp}) == []
    assert_error(api.get("/api/audit", admin, params={"kind": "nonsense"}), 400, "validation_error", "kind")
    assert_error(api.get("/api/audit", admin, params={"from": "yesterday"}), 400, "validation_error", "from")
    assert_error(api.get("/api/audit", admin, params={"cursor": "zz"}), 400, "invalid_cursor", "cursor")
    assert two.id


def test_the_csv_streams_every_row_with_the_filters(api, sql_conn):
    admin, (one, _, _) = _activity(api)
    sql_conn.execute(
        "INSERT INTO security_log (kind, actor, user_agent) VALUES ('login_failed', '', '=HYPERLINK(\"x\")')"
    )
    result = api.get("/api/audit.csv", admin)
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    assert 'filename="audit.csv"' in result.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(result.text)))
    assert table[0] == list(audit.SecurityEvent.__dataclass_fields__)
    assert [int(r[0]) for r in table[1:]] == [r["id"] for r in rows(sql_conn)]  # every row, oldest first
    assert table[-1][table[0].index("user_agent")] == '\'=HYPERLINK("x")'  # a formula stays text
    failed = list(csv.reader(io.StringIO(api.get("/api/audit.csv", admin, params={"kind": "logout"}).text)))
    assert len(failed) == 2 and failed[1][table[0].index("user_id")] == str(one.id)
    mine = list(csv.reader(io.StringIO(api.get("/api/audit.csv", admin, params={"user": str(one.id)}).text)))
    assert {int(r[0]) for r in mine[1:]} == {r["id"] for r in rows(sql_conn) if one.id in (r["actor_id"], r["user_id"])}


def test_only_admins_read_the_log(api):
    for caller in (api.biller(), api.dispatcher()):
        assert_error(api.get("/api/audit", caller), 403, "forbidden")
        assert_error(api.get("/api/audit.csv", caller), 403, "forbidden")
    assert_error(api.get("/api/audit"), 401, "unauthenticated")


# item 11: the service role cannot change history ------------------------------------------------
HISTORY = ("event", "security_log")


@pytest.fixture
def service_conn(service_url):
    with psycopg.connect(service_url, autocommit=True) as conn:
        yield conn


def _counts(sql_conn) -> tuple:
    return sql_conn.execute("SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM security_log)").fetchone()


@pytest.mark.parametrize("table", HISTORY)
@pytest.mark.parametrize("statement", ["UPDATE {} SET occurred_at = now()", "DELETE FROM {}", "TRUNCATE {}"])
def test_the_service_role_cannot_change_or_delete_history(api, service_conn, sql_conn, table, statement):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")  # some events and log rows to aim at
    before = _counts(sql_conn)
    assert before[0] > 0 and before[1] > 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # refused by privilege, before any trigger
        service_conn.execute(statement.format(table))
    assert _counts(sql_conn) == before


def test_the_service_role_appends_only_what_it_may(service_conn, sql_conn):
    service_conn.execute("INSERT INTO security_log (kind, actor) VALUES ('logout', 'x')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the server dates every row
        service_conn.execute("INSERT INTO security_log (kind, occurred_at) VALUES ('logout', '2000-01-01')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_conn.execute("INSERT INTO event (kind) VALUES ('link')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_conn.execute("SELECT 1 FROM security_log FOR UPDATE")


@pytest.mark.parametrize("table", HISTORY)
def test_the_owner_is_stopped_by_the_trigger(sql_conn, table):
    sql_conn.execute("INSERT INTO security_log (kind) VALUES ('logout')")
    for statement in ("UPDATE {} SET occurred_at = now()", "DELETE FROM {}", "TRUNCATE {}"):
        with pytest.raises(psycopg.Error) as refused, sql_conn.transaction():
            sql_conn.execute(statement.format(table))
        assert refused.value.diag.message_hint == "append_only", refused.value


@pytest.mark.parametrize("table", HISTORY)
def test_no_grant_for_changing_history_can_be_recorded(sql_conn, table):
    for privileges in ("UPDATE", "SELECT, DELETE", "TRUNCATE", "ALL", "UPDATE (kind)"):
        with pytest.raises(psycopg.errors.CheckViolation), sql_conn.transaction():
            sql_conn.execute("INSERT INTO service_grant (object, privileges) VALUES (%s, %s)", (table, privileges))


def test_no_function_the_service_may_call_changes_history(service_conn, sql_conn):
    """A SECURITY DEFINER function runs as the owner: none of those the service
    may run names an UPDATE, DELETE or TRUNCATE of the history tables, and
    one that did would still meet the trigger."""
    definers = service_conn.execute(
        "SELECT p.proname, p.prosrc FROM pg_proc p WHERE p.prosecdef "
        "AND has_function_privilege(current_user, p.oid, 'EXECUTE') AND p.proname LIKE 'tt\\_%%'"
    ).fetchall()
    assert len(definers) >= 20
    pattern = r"(update\s+(only\s+)?(event|security_log)\b|delete\s+from\s+(only\s+)?(event|security_log)\b|truncate)"
    for name, source in definers:
        assert not re.search(pattern, source, re.IGNORECASE), name
    # the one that runs dynamic SQL takes only its fixed names
    with pytest.raises(psycopg.Error) as refused:
        service_conn.execute("SELECT tt_refresh_view('event; DELETE FROM event')")
    assert refused.value.diag.message_hint == "validation_error"
    # a definer function that tried (say, added by a careless migration) meets the trigger
    sql_conn.execute("INSERT INTO security_log (kind) VALUES ('logout')")
    for table in HISTORY:
        sql_conn.execute(f"CREATE FUNCTION tt_probe_{table}() RETURNS void LANGUAGE sql AS 'DELETE FROM {table}'")
        sql_conn.execute("INSERT INTO definer_function (name) VALUES (%s)", (f"tt_probe_{table}",))
    sql_conn.execute("SELECT tt_apply_privileges()")
    before = _counts(sql_conn)
    for table in HISTORY:
        with pytest.raises(psycopg.Error) as refused:
            service_conn.execute(f"SELECT tt_probe_{table}()")
        assert refused.value.diag.message_hint == "append_only"
    assert _counts(sql_conn) == before


def test_the_kinds_are_the_constraints(sql_conn):
    check = sql_value(
        sql_conn,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'security_log_kind_check'",
    )
    assert sorted(re.findall(r"'([a-z_]+)'", check)) == sorted(audit.KINDS)
