"""tracetrack_ops.seed: the COPY loader writes exactly `bags` bag rows whose
counters, bills, users and events are all consistent, the same for the same
seed, and leave a database the library keeps working on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracetrack_db import Database, bills, errors, passwords, scans, users
from tracetrack_ops import seed as seeding
from tracetrack_ops.seed import SeedRefused, SeedReport, seed

from .factories import check_counters

PASSWORD = "seed-test-password"

BAGS = 20_000
NOW = datetime(2026, 3, 2, 11, 45, 30, tzinfo=UTC)  # fixed, so that two seeds agree on timestamps too
AREAS = ["akola", "bathinda", "hisar", "indore", "jaipur", "lucknow", "raipur", "ranchi", "sangaria", "sri_ganganagar"]


@contextmanager
def clone(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh copy of the migrated template, like conftest's db_url, for module-scoped use."""
    name = f"{template_db}_seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    params = conninfo_to_dict(pg_server_url)
    params["dbname"] = name
    try:
        yield make_conninfo("", **params)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def seeded(pg_server_url: str, template_db: str) -> Iterator[tuple[str, SeedReport, list[tuple[int, int]]]]:
    """20,000 bags seeded once for the read-only checks of this module."""
    calls: list[tuple[int, int]] = []
    with clone(pg_server_url, template_db) as url:
        report = seed(
            url, BAGS, seed=42, now=NOW, password=PASSWORD, progress=lambda done, total: calls.append((done, total))
        )
        yield url, report, calls


@pytest.fixture(scope="module")
def conn(seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded[0], autocommit=True) as c:
        yield c


def scalar(conn: psycopg.Connection, query: str, params=None):
    return conn.execute(query, params).fetchone()[0]


# ---------------------------------------------------------------- counts and shape


def test_bags_means_total_bag_rows_and_report_matches(seeded, conn):
    _, report, _ = seeded
    assert scalar(conn, "SELECT count(*) FROM bag") == BAGS == report.bags
    assert report.parents + report.children == BAGS
    assert scalar(conn, "SELECT count(*) FROM bag WHERE type = 'parent'") == report.parents
    assert scalar(conn, "SELECT count(*) FROM bag WHERE type = 'child'") == report.children
    assert (
        scalar(conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL") == report.unlinked_children
    )
    assert scalar(conn, "SELECT count(*) FROM event") == report.events
    assert scalar(conn, "SELECT count(*) FROM app_user") == report.users == sum(report.users_by_role.values())
    by_status = dict(conn.execute("SELECT status, count(*) FROM bill GROUP BY status").fetchall())
    assert by_status == report.bills
    assert report.username_prefix == "seed42."
    assert report.parent_formats_added == ()  # 20,000 bags fit the two default formats
    assert report.seconds > 0


def test_about_ten_percent_of_children_unlinked(conn):
    unlinked, children = conn.execute(
        "SELECT count(*) FILTER (WHERE parent_id IS NULL), count(*) FROM bag WHERE type = 'child'"
    ).fetchone()
    assert 0.08 <= unlinked / children <= 0.12
    # unlinked children wait (pending); linked ones are completed
    assert (
        scalar(conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL AND status <> 'pending'") == 0
    )
    assert (
        scalar(
            conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NOT NULL AND status <> 'completed'"
        )
        == 0
    )


def test_parent_counters_equal_real_children(conn):
    check_counters(conn)
    assert scalar(conn, "SELECT count(*) FROM bag WHERE type = 'parent' AND child_count > capacity") == 0
    assert scalar(conn, "SELECT max(capacity) FROM bag WHERE type = 'parent'") == 30
    # children weigh 1 kg, parents expect 30 kg
    assert {r[0] for r in conn.execute("SELECT DISTINCT weight_kg FROM bag WHERE type = 'child'")} == {Decimal(1)}
    assert {r[0] for r in conn.execute("SELECT DISTINCT expected_weight_kg FROM bag WHERE type = 'parent'")} == {
        Decimal(30)
    }
    # status follows the fill: full = completed, empty = pending, else in progress
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM bag WHERE type = 'parent' AND status <>
        CASE WHEN child_count = capacity THEN 'completed' WHEN child_count = 0 THEN 'pending'
             ELSE 'in_progress' END""",
        )
        == 0
    )


def test_every_status_present(conn):
    parents = dict(conn.execute("SELECT status, count(*) FROM bag WHERE type = 'parent' GROUP BY status").fetchall())
    assert set(parents) == {"pending", "in_progress", "completed"}
    total = sum(parents.values())
    assert parents["completed"] > 0.75 * total  # most parents are full
    assert parents["pending"] < parents["in_progress"] < parents["completed"]
    assert {r[0] for r in conn.execute("SELECT DISTINCT status FROM bill")} == {"new", "processing", "completed"}


def test_bill_counters_equal_real_sums(conn):
    bad = conn.execute("""
        SELECT b.bill_no FROM bill b LEFT JOIN bag p ON p.bill_id = b.id
        GROUP BY b.id
        HAVING b.linked_parent_count <> count(p.id)
            OR b.total_child_count <> coalesce(sum(p.child_count), 0)
            OR b.total_weight_kg <> coalesce(sum(p.weight_kg), 0)
            OR b.expected_weight_kg <> coalesce(sum(p.expected_weight_kg), 0)
            OR b.expected_weight_kg <> 30 * count(p.id)
        LIMIT 5""").fetchall()
    assert bad == []
    # only completed parents go on bills
    assert (
        scalar(
            conn, "SELECT count(*) FROM bag WHERE bill_id IS NOT NULL AND (type <> 'parent' OR status <> 'completed')"
        )
        == 0
    )
    rows = conn.execute("SELECT status, capacity, linked_parent_count, completed_at FROM bill").fetchall()
    for status, capacity, linked, completed_at in rows:
        assert 10 <= capacity <= 50
        if status == "new":
            assert linked == 0 and completed_at is None
        elif status == "processing":
            assert 0 < linked < capacity and completed_at is None
        else:
            assert linked == capacity and completed_at is not None
    # bill numbers are unique case-insensitively (the unique index) and look like AREA/00001
    assert scalar(conn, "SELECT count(*) FROM bill WHERE bill_no !~ '^[A-Z_]+/[0-9]{5}$'") == 0


def test_users_in_every_role_and_area_share_one_password(seeded, conn):
    roles = dict(conn.execute("SELECT role, count(*) FROM app_user GROUP BY role").fetchall())
    assert set(roles) == {"admin", "biller", "dispatcher"}
    areas = {r[0] for r in conn.execute("SELECT name FROM dispatch_area")}
    assert {
        r[0] for r in conn.execute("SELECT DISTINCT dispatch_area FROM app_user WHERE role = 'dispatcher'")
    } == areas
    assert scalar(conn, "SELECT count(*) FROM app_user WHERE role = 'dispatcher' AND dispatch_area IS NULL") == 0
    assert scalar(conn, "SELECT count(*) FROM app_user WHERE username NOT LIKE 'seed42.%'") == 0
    hashes = [r[0] for r in conn.execute("SELECT DISTINCT password_hash FROM app_user")]
    assert len(hashes) == 1 and hashes[0].startswith("$argon2id$")
    assert passwords.verify_password(hashes[0], PASSWORD)
    # and the library logs them in
    with Database(seeded[0], max_size=2) as db:
        assert users.authenticate(db, "seed42.admin1", PASSWORD).user.role == "admin"
        assert users.authenticate(db, "seed42.lucknow.1", PASSWORD).user.dispatch_area == "lucknow"
    # bags are created by a dispatcher of their own area
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM bag b JOIN app_user u ON u.id = b.created_by
                           WHERE u.role <> 'dispatcher' OR u.dispatch_area <> b.dispatch_area""",
        )
        == 0
    )


def test_one_link_event_per_linked_child(conn):
    linked = scalar(conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NOT NULL")
    assert scalar(conn, "SELECT count(*) FROM event WHERE kind = 'link'") == linked
    assert (
        scalar(
            conn,
            """
        SELECT count(*) FROM bag c
        JOIN bag p ON p.id = c.parent_id
        JOIN event e ON e.kind = 'link' AND e.bag_id = c.id
        WHERE e.qr_id = c.qr_id AND e.parent_id = p.id AND e.parent_qr = p.qr_id
          AND e.dispatch_area = c.dispatch_area AND e.user_id = c.created_by
          AND e.occurred_at = c.created_at""",
        )
        == linked
    )
    kinds = dict(conn.execute("SELECT kind, count(*) FROM event GROUP BY kind").fetchall())
    assert kinds["parent_scan"] == scalar(conn, "SELECT count(*) FROM bag WHERE type = 'parent'")
    assert kinds["bag_created"] == scalar(conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL")
    assert kinds["bill_created"] == scalar(conn, "SELECT count(*) FROM bill")
    assert kinds["bill_add"] == scalar(conn, "SELECT count(*) FROM bag WHERE bill_id IS NOT NULL")
    assert kinds["bill_complete"] == scalar(conn, "SELECT count(*) FROM bill WHERE status = 'completed'")
    assert set(kinds) == {"parent_scan", "link", "bag_created", "bill_created", "bill_add", "bill_complete"}
    # each bill_add names the bill its parent is on
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM event e JOIN bag p ON p.id = e.parent_id
                           WHERE e.kind = 'bill_add' AND p.bill_id IS DISTINCT FROM e.bill_id""",
        )
        == 0
    )
    # a parent scan is its bag's first event; every event follows the bag's creation
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM event e JOIN bag p ON p.id = e.bag_id
                           WHERE e.kind = 'parent_scan' AND e.occurred_at <> p.created_at""",
        )
        == 0
    )


def test_time_order_and_window(conn):
    for table, column in (("event", "occurred_at"), ("bag", "created_at"), ("bill", "created_at")):
        inversions = scalar(
            conn,
            f"""SELECT count(*) FROM (
            SELECT {column} < lag({column}) OVER (ORDER BY id) AS bad FROM {table}) x WHERE bad""",
        )
        assert inversions == 0, table
    first, last = conn.execute("SELECT min(occurred_at), max(occurred_at) FROM event").fetchone()
    assert NOW - timedelta(days=91) < first and last <= NOW
    assert last > NOW - timedelta(days=2)  # the data reaches up to the present
    assert first < NOW - timedelta(days=85)  # and back about 90 days
    # a parent's children link after it was scanned, and bills complete after their last add
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM bag c JOIN bag p ON p.id = c.parent_id
                           WHERE c.created_at < p.created_at""",
        )
        == 0
    )
    assert scalar(conn, "SELECT count(*) FROM bill WHERE completed_at < created_at OR updated_at < created_at") == 0


def test_qr_formats(conn):
    # parents match a parent format, children none; the format's capacity is the parent's
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM bag b
        WHERE (b.type = 'parent') <> EXISTS (SELECT 1 FROM parent_format f WHERE b.qr_id ~ f.pattern)""",
        )
        == 0
    )
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM bag b WHERE b.type = 'parent'
                           AND b.capacity <> (tt_parent_format(b.qr_id)).capacity""",
        )
        == 0
    )
    prefixes = {r[0] for r in conn.execute("SELECT DISTINCT left(qr_id, 2) FROM bag WHERE type = 'parent'")}
    assert prefixes == {"SB", "M4"}  # both default formats in use


def test_identity_sequences_are_past_the_ids(conn):
    for table in ("bag", "bill", "event", "app_user"):
        top = scalar(conn, f"SELECT max(id) FROM {table}")
        last = scalar(conn, f"SELECT pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass)")
        assert last == top, table


def test_progress_reports_rows_written(seeded):
    _, report, calls = seeded
    assert calls, "progress was never called"
    total = calls[-1][1]
    assert calls[-1] == (total, total)
    assert total == report.bags + report.events + report.users + report.bill_count
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and len(calls) > 2


# ---------------------------------------------------------------- determinism

_DIGESTS = {
    "bag": """SELECT md5(string_agg(concat_ws('|', b.id, b.qr_id, b.type, b.status, b.dispatch_area, p.qr_id,
                  bl.bill_no, b.capacity, b.child_count, b.weight_kg, b.created_by, b.created_at, b.updated_at),
                  ',' ORDER BY b.id))
              FROM bag b LEFT JOIN bag p ON p.id = b.parent_id LEFT JOIN bill bl ON bl.id = b.bill_id""",
    "bill": """SELECT md5(string_agg(concat_ws('|', id, bill_no, capacity, description, destination,
                   vehicle_number, status, linked_parent_count, total_child_count, total_weight_kg,
                   expected_weight_kg, created_by, created_at, updated_at, completed_at), ',' ORDER BY id))
               FROM bill""",
    "event": """SELECT md5(string_agg(concat_ws('|', id, occurred_at, kind, user_id, bag_id, qr_id, parent_id,
                    parent_qr, bill_id, bill_no, dispatch_area, details), ',' ORDER BY id)) FROM event""",
    "app_user": """SELECT md5(string_agg(concat_ws('|', id, username, role, dispatch_area, created_at),
                       ',' ORDER BY id)) FROM app_user""",
}


def test_same_seed_same_data(seeded, conn, pg_server_url, template_db):
    _, report, _ = seeded
    with clone(pg_server_url, template_db) as url, psycopg.connect(url, autocommit=True) as other:
        again = seed(url, BAGS, seed=42, now=NOW, password=PASSWORD)
        qrs = [r[0] for r in conn.execute("SELECT qr_id FROM bag ORDER BY qr_id")]
        assert qrs == [r[0] for r in other.execute("SELECT qr_id FROM bag ORDER BY qr_id")]
        for table, query in _DIGESTS.items():
            assert scalar(conn, query) == scalar(other, query), table
    assert {k: v for k, v in vars(again).items() if k != "seconds"} == {
        k: v for k, v in vars(report).items() if k != "seconds"
    }


def test_different_seed_different_data():
    def plan(s: int) -> seeding._Plan:
        bases = {"app_user": 0, "bill": 0, "bag": 0, "event": 0}
        return seeding._Plan(5_000, s, AREAS, [(30, Decimal(30))] * 3, Decimal(1), int(NOW.timestamp() * 1000), bases)

    one, same, other = plan(7), plan(7), plan(8)
    assert one.qr == same.qr and list(one.fill) == list(same.fill)
    assert [b.bill_no for b in one.bills] == [b.bill_no for b in same.bills]
    assert one.qr != other.qr


# ---------------------------------------------------------------- refusal and afterwards


def test_refuses_a_database_that_has_bags(db_url, sql_conn):
    seed(db_url, 2_000, seed=1)
    before = [scalar(sql_conn, f"SELECT count(*) FROM {t}") for t in ("bag", "bill", "event", "app_user")]
    with pytest.raises(SeedRefused, match="already holds bags") as info:
        seed(db_url, 2_000, seed=1)
    assert info.value.status == 409
    with pytest.raises(SeedRefused, match="already holds bags"):
        seed(db_url, 2_000, seed=2)  # another seed too: bags are not namespaced
    after = [scalar(sql_conn, f"SELECT count(*) FROM {t}") for t in ("bag", "bill", "event", "app_user")]
    assert after == before


def test_refuses_when_its_users_exist(db_url, sql_conn):
    users_before = scalar(sql_conn, "SELECT count(*) FROM app_user")
    with Database(db_url, max_size=2) as db:
        users.create_user(db, "seed5.admin1", "something-else", "admin")
    with pytest.raises(SeedRefused, match="users of seed 5 exist"):
        seed(db_url, 500, seed=5)
    assert scalar(sql_conn, "SELECT count(*) FROM bag") == 0  # all or nothing
    assert scalar(sql_conn, "SELECT count(*) FROM app_user") == users_before + 1


@pytest.mark.parametrize("bags, seed_value", [(0, 1), (-5, 1), (True, 1), (10, -1), (10, "x")])
def test_rejects_bad_arguments(db_url, bags, seed_value):
    with pytest.raises(errors.ValidationError):
        seed(db_url, bags, seed=seed_value)


def test_tiny_seeds_are_consistent(db_url, sql_conn):
    report = seed(db_url, 1, seed=3)
    assert (report.parents, report.children) == (1, 0)
    row = sql_conn.execute("SELECT type, status, child_count FROM bag").fetchone()
    assert row == ("parent", "pending", 0)


def test_library_works_after_seeding(db, db_url, sql_conn):
    report = seed(db_url, 3_000, seed=9)  # real now: timestamps end before it
    assert scalar(sql_conn, "SELECT max(occurred_at) <= now() FROM event")
    top = {t: scalar(sql_conn, f"SELECT max(id) FROM {t}") for t in ("bag", "bill", "event")}
    dispatcher = users.find_user(db, "seed9.lucknow.1")
    unused = scalar(
        sql_conn,
        """SELECT 'SB' || lpad(n::text, 5, '0') FROM generate_series(0, 99999) n
                                 WHERE NOT EXISTS (SELECT 1 FROM bag WHERE qr_id = 'SB' || lpad(n::text, 5, '0'))
                                 LIMIT 1""",
    )
    opened = scans.open_parent(db, unused, user_id=dispatcher.id, restrict_area="lucknow")
    assert opened.created and opened.bag.id > top["bag"]
    new_child = scans.link_child(db, unused, "NEW-CHILD-0001", user_id=dispatcher.id)
    assert new_child.result == "linked"
    waiting = scalar(
        sql_conn,
        """SELECT qr_id FROM bag WHERE type = 'child' AND parent_id IS NULL
                                  AND dispatch_area = 'lucknow' ORDER BY id LIMIT 1""",
    )
    assert scans.link_child(db, unused, waiting, user_id=dispatcher.id, restrict_area="lucknow").child_count == 2
    assert scans.unlink_child(db, waiting, user_id=dispatcher.id).child_count == 1
    # a completed parent the seeder left off bills goes onto a new bill
    free = scalar(
        sql_conn,
        """SELECT qr_id FROM bag WHERE type = 'parent' AND status = 'completed'
                               AND bill_id IS NULL ORDER BY id LIMIT 1""",
    )
    biller = users.find_user(db, "seed9.biller1")
    bill = bills.create_bill(db, "AFTER-SEED-1", 1, user_id=biller.id)
    assert bill.id > (top["bill"] or 0)
    assert bills.add_parent(db, "AFTER-SEED-1", free, user_id=biller.id).result == "added"
    assert bills.complete_bill(db, "AFTER-SEED-1", user_id=biller.id).status == "completed"
    # the new events come after the seeded ones, in id and in time
    new = sql_conn.execute("SELECT min(id), min(occurred_at) FROM event WHERE id > %s", (top["event"],)).fetchone()
    assert new[0] == top["event"] + 1
    assert new[1] >= scalar(sql_conn, "SELECT max(occurred_at) FROM event WHERE id <= %s", (top["event"],))
    assert report.bags == 3_000


def test_third_parent_format_added_past_the_default_ones(db_url, sql_conn, monkeypatch):
    # Shrink the default families (100,000 QRs each) so that a small seed overflows them.
    small = (
        seeding.Family("SB", "^SB[0-9]{5}$", "SB{:05d}", 40, 3),
        seeding.Family("M444", "^M444-[0-9]{5}$", "M444-{:05d}", 40, 2),
        seeding.FAMILIES[2],
    )
    monkeypatch.setattr(seeding, "FAMILIES", small)
    report = seed(db_url, 5_000, seed=4)
    assert report.parent_formats_added == ("P7",)
    assert sql_conn.execute(
        "SELECT pattern, capacity, expected_weight_kg FROM parent_format WHERE name = 'P7'"
    ).fetchone() == ("^P[0-9]{7}$", 30, Decimal(30))
    families = dict(
        sql_conn.execute("SELECT left(qr_id, 1), count(*) FROM bag WHERE type = 'parent' GROUP BY 1").fetchall()
    )
    assert families["S"] == 40 and families["M"] == 40 and families["P"] == report.parents - 80
    assert (
        scalar(
            sql_conn,
            """SELECT count(*) FROM bag b WHERE b.type = 'parent'
                               AND b.capacity IS DISTINCT FROM (tt_parent_format(b.qr_id)).capacity""",
        )
        == 0
    )
    with Database(db_url, max_size=2) as db:  # the server accepts the new format's QRs
        assert scans.open_parent(db, "P9999999", dispatch_area="akola").bag.capacity == 30


def test_without_a_password_each_seed_gets_its_own_random_one(db_url):
    """Before, every seeded admin had the fixed password password123."""
    report = seed(db_url, 200, seed=11)
    assert len(report.password) >= 16 and report.password != "password123"
    with Database(db_url, min_size=1, max_size=1) as db:
        assert users.authenticate(db, "seed11.admin1", report.password).user.role == "admin"
        with pytest.raises(errors.InvalidCredentials):
            users.authenticate(db, "seed11.admin1", "password123")
