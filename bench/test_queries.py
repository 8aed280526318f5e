"""A benchmark for every named query, every composed list and export statement,
and the Python path over them (the library's functions, `Database` verbs and row
factories), at 600,000 bags (6,000,000 with --bags), and a check that none of
them scans the big tables.

Groups (pytest-benchmark's table per group, and `group` in the saved JSON):
- one per SQL file (`bags.sql`, `scans.sql` ...): each named query run bare
  (`test_query[<name>]`) beside the library function that runs it
  (`test_python[<module>.<function>]`), so the Python cost is read off one table;
- `lists: bags` / `lists: bills` / `lists: events`: the composed keyset statements
  bare (`test_composed`) and through `list_bags`/`list_bills`/`recent_events`
  (one page of 50 rows as dataclasses, with the next-page cursor);
- `exports`: the COPY SELECT on a narrow filter bare, `exports.bags_csv` and
  `bills_csv` streamed whole, and every bag exported (`test_export_all_bags`);
- `row factories`: one page of `bag_row` (50 rows) and one row fetched as
  tuples, dicts and `Bag` dataclasses through `Database.run_sql`/`one`, and
  `Database.one` against a bare cursor.

Writes run inside a transaction that is rolled back, so every round measures
the same work on the same data (the commit's WAL flush is measured by the
HTTP benchmark and the bare write loop in bench/http_bench.py).
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from tracetrack_db import Database, bags, bills, events, exports, maintenance, scans, users
from tracetrack_db.models import Bag
from tracetrack_db.queries import load

BIG_TABLES = ("bag", "bill", "event")
_n = itertools.count()


def params_for(name: str, s: dict) -> dict:
    """Parameters that make each query do its real work on the seeded data."""
    n = next(_n)
    user = s["user"][0]
    common = {"user_id": user, "idempotency_key": None, "restrict_area": None}
    table = {
        "bag_history": {"qr_id": s["billed_parent"][0], "limit": 10_000, "area": None},
        "bill_add_parent": {**common, "bill_no": s["open_bill"][0], "parent_qr": s["full_parent"][0]},
        "bill_complete": {**common, "bill_no": s["completed_bill"][0]},
        "bill_delete": {**common, "bill_no": s["open_bill"][0]},
        "bill_parents": {"bill_id": s["billed_parent"][2]},
        "bill_remove_parent": {**common, "bill_no": s["billed_parent"][3], "parent_qr": s["billed_parent"][0]},
        "bill_reopen": {**common, "bill_no": s["completed_bill"][0]},
        "bill_update": {
            **common,
            "bill_no": s["open_bill"][0],
            "capacity": None,
            "description": "d",
            "destination": None,
            "vehicle_number": None,
        },
        "claim_idempotency_key": {"user_id": user, "key": f"k{n}", "fingerprint": "f"},
        "create_area": {"name": f"bench_area_{n}", "label": "Bench"},
        "create_bill": {
            **common,
            "bill_no": f"BENCH-{n}",
            "capacity": 10,
            "description": "",
            "destination": "",
            "vehicle_number": "",
        },
        "create_parent_format": {"name": f"BF{n}", "pattern": "^BF[0-9]{6}$", "capacity": 30, "expected_weight_kg": 30},
        "create_user": {"username": f"bench-user-{n}", "password_hash": "x", "role": "biller", "dispatch_area": None},
        "area_exists": {"name": "lucknow"},
        "dashboard_bag_totals": {"area": None},
        "dashboard_bill_totals": {"area": None},
        "dashboard_recent_scans": {"area": None, "limit": 20},
        "dashboard_user_activity": {"area": None},
        "delete_bag": {**common, "qr_id": s["linked_child"][0]},
        "get_bag": {"qr_id": s["linked_child"][0], "area": None},
        "get_bag_by_id": {"id": s["full_parent"][1]},
        "event_partitions_ahead": {"months": 3},
        "event_strays_move": {"rows": 1},
        "event_partition_count": {},
        "history_retention": {"qr_id": s["billed_parent"][0]},
        "get_bag_detail_json": {"qr_id": s["billed_parent"][0], "area": None},
        "visible_bag_id": {"qr_id": s["linked_child"][0], "area": None},
        "get_bill": {"bill_no": s["open_bill"][0]},
        "get_bill_by_id": {"id": s["open_bill"][1]},
        "get_idempotency_key": {"user_id": user, "key": "k"},
        "get_login": {"username": s["user"][1]},
        "get_user": {"id": user},
        "get_principal": {"id": user},
        "get_user_by_username": {"username": s["user"][1]},
        "link_child": {**common, "parent_qr": s["open_parent"][0], "child_qr": f"BENCH-CHILD-{n}"},
        "link_children": {
            **common,
            "parent_qr": s["open_parent"][0],
            "child_qrs": [f"BENCH-BATCH-{n}-{i}" for i in range(5)],
        },
        "list_users": {"after_id": 0, "limit": 50},
        "revoke_tokens": {"id": user},
        "throttle_incr": {"key": f"login-tries:bench{n}:127.0.0.1", "ttl": 900},
        "throttle_add": {"key": f"login-wait:bench{n}:127.0.0.1", "ttl": 2},
        "write_position_record": {"key": f"wrote:bench{n}", "ttl": 15},
        "write_position_of": {"key": "wrote:bench0"},
        "throttle_delete": {"keys": [f"login-tries:bench{n}:127.0.0.1"]},
        "login_succeeded": {"id": user, "password_hash": None, "address": "10.0.0.7", "user_agent": "bench"},
        "record_security_event": {
            "kind": "login_failed",
            "actor_id": None,
            "actor": "",
            "user_id": None,
            "username": f"bench{n}",
            "reason": "invalid_credentials",
            "address": "10.0.0.7",
            "user_agent": "bench",
            "details": None,
        },
        "open_parent": {**common, "qr_id": f"M444-{n % 100000:05d}", "dispatch_area": "lucknow"},
        "purge_idempotency_keys": {"hours": 24},
        "record_view_refresh": {"view_name": "mv_bench", "duration_ms": 1.0},
        "register_bag": {**common, "qr_id": f"BENCH-REG-{n}", "type": "child", "dispatch_area": "lucknow"},
        "store_idempotent_response": {"user_id": user, "key": "k", "status": 200, "response": b"{}"},
        "unlink_child": {**common, "child_qr": s["linked_child"][0]},
        "move_child": {**common, "child_qr": s["linked_child"][0], "to_parent_qr": s["open_parent"][0]},
        "close_parent": {**common, "qr_id": s["short_parent"][0], "reason": "bench"},
        "reopen_parent": {**common, "qr_id": s["short_parent"][0]},
        "undo_last_link": {**common, "user_id": s["last_linker"][0], "window_seconds": 10 * 365 * 86400},
        "sync_begin_op": {
            "user_id": user,
            "device_id": "bench-hh",
            "client_op_id": f"op-{n}",
            "device_time": datetime.now(UTC),
            "max_ahead": 300,
            "max_behind": 604800,
        },
        "sync_verdict": {"user_id": user, "device_id": "bench-hh", "client_op_id": f"op-{n}"},
        "purge_sync_ops": {"max_behind_seconds": 7 * 86400},
        "sync_keep_verdict": {
            "device_id": "bench-hh",
            "client_op_id": f"op-{n}",
            "user_id": user,
            "op": "unlink_child",
            "args": '{"child_qr": "BENCH-1"}',
            "device_time": datetime.now(UTC),
            "status": 404,
            "code": "bag_not_found",
            "message": "bag BENCH-1 not found",
            "result": None,
        },
        "get_format": {"name": "SB"},
        "add_format": {"name": f"BQ{n}", "pattern": f"^BQ{n}Z[0-9]{{4}}$", "capacity": 30, "expected_weight_kg": 30},
        "change_format": {"name": "SB", "pattern": None, "capacity": 30, "expected_weight_kg": None},
        "fail_import": {"job_id": 0, "message": "bench"},
        "get_account": {"id": user},
        "get_password": {"id": user},
        "change_password": {"id": user, "password_hash": "x", "checked_hash": "not-it"},
        "update_user": {
            "id": user,
            "role": None,
            "dispatch_area": None,
            "clear_area": False,
            "is_active": None,
            "password_hash": None,
            "must_change_password": None,
        },
        # dashboard and reports (issue 11): the last day, and a 30-day range, in India's zone
        "dashboard_hourly": {"area": None, "since": _ago(hours=26)},
        "roll_up_events": {"since": None, "zone": None},
        "report_rolled_to": {"time_zone": "Asia/Kolkata"},
        "report_users": {"ids": [user]},
        "report_bill_totals": {**_REPORT, "created_by": None, "status": None, "on": "created"},
        "report_bill_page": {
            **_REPORT,
            "created_by": None,
            "status": None,
            "on": "created",
            "before_id": None,
            "limit": 51,
        },
        "report_activity": {
            **{k: v for k, v in _REPORT.items() if k != "settled"},
            "days_end": _ago(days=1),
            "q_from": _ago(days=1),
            "q_to": _ago(minutes=5),
            "live_from": _ago(minutes=5),
            "bucket": "day",
            "user_id": None,
        },
        "manifest": {"bill_no": s["billed_parent"][3]},
        # imports (a 30-row block of new children into a new parent; a bill of one parent; 30 bags)
        "get_rule": {"name": "label_no"},
        "add_rule": {"name": f"bench_rule_{n}", "pattern": r"CODE:(?P<qr>\w+)", "description": "", "user_id": user},
        "change_rule": {"name": "label_no", "pattern": None, "description": "bench"},
        "parent_qrs": {"qrs": [f"SB{i:05d}" for i in range(50)] + [f"LABEL-{i}" for i in range(50)]},
        "start_import": {
            "user_id": user,
            "file_name": "bench.csv",
            "file_sha256": "0" * 64,
            "file_bytes": 1,
            "file_format": "csv",
            "layout": "links",
            "rule": None,
            "rule_pattern": None,
            "dry_run": False,
            "all_or_nothing": False,
            "dispatch_area": None,
        },
        "finish_import": {
            "job_id": 0,
            "status": "done",
            "rows": 0,
            "blocks": 0,
            "failed_blocks": 0,
            "verdicts": "{}",
            "codes": "{}",
            "message": "",
        },
        "import_links": {
            "job_id": 0,
            "user_id": user,
            "dispatch_area": "lucknow",
            "parents": [f"M444-{n % 100000:05d}"],
            "parent_rows": [None],
            "ends": [30],
            "rows": list(range(2, 32)),
            "qrs": [f"BENCH-IMP-{n}-{i}" for i in range(30)],
        },
        "import_bills": {
            "job_id": 0,
            "user_id": user,
            "bills": [f"BENCH-IMP-{n}"],
            "capacities": [10],
            "destinations": [None],
            "vehicles": [None],
            "descriptions": [None],
            "ends": [1],
            "rows": [2],
            "qrs": [s["full_parent"][0]],
        },
        "import_bags": {
            "job_id": 0,
            "user_id": user,
            "rows": list(range(2, 32)),
            "qrs": [f"BENCH-BAG-{n}-{i}" for i in range(30)],
            "types": ["child"] * 30,
            "areas": ["lucknow"] * 30,
        },
        "get_import": {"job_id": 1},
        # returns (issue 12): a billed parent scanned into the open ticket, which is then cancelled
        "return_open": {**common, "depot": "Bench depot", "reason": ""},
        "get_return": {"id": s["open_return"][0]},
        "return_items": {"ticket_id": s["open_return"][0]},
        "get_return_item": {"id": 1},
        "return_add_parent": {**common, "ticket_id": s["open_return"][0], "parent_qr": s["billed_parent"][0]},
        "return_close": {**common, "ticket_id": s["open_return"][0], "status": "cancelled"},
        "import_problems": {"job_id": 1, "limit": 20},
    }
    return table.get(name, {})


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


_REPORT = {
    "start": _ago(days=30),
    "end": _ago(),
    "settled": _ago(minutes=5),
    "tz": "Asia/Kolkata",
    "area": None,
}


def run_rolled_back(db: Database, name: str, params: dict) -> None:
    with db.connection() as conn, conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(db.queries[name].sql, params)
        if cur.description is not None:
            cur.fetchall()


# not statements to time alone: the refresher's lock, and COPY (imports write their results with it)
NAMED = {
    q.name: q
    for q in load()
    # remove_format succeeds only on a format no parent uses: its cost is the in-use look-up,
    # measured in the README's Parent formats section (an index range, under 1 ms at 6M bags)
    if q.name not in ("try_refresh_lock", "release_refresh_lock", "copy_import_rows", "remove_format")
}
QUERIES = sorted(NAMED)


def sql_file(name: str) -> str:
    """The file a named query comes from ("bags.sql:12" -> "bags.sql"): its benchmark group."""
    return NAMED[name].source.rsplit(":", 1)[0].rsplit("/", 1)[-1]


def describe(benchmark, sample: dict, group: str) -> None:
    benchmark.group = group
    benchmark.extra_info["bags"] = sample["bags"]


@pytest.mark.parametrize("name", QUERIES)
def test_query(benchmark, bench_db: Database, sample: dict, name: str):
    """The statement alone: BEGIN, execute, fetch, ROLLBACK on one pooled connection."""
    describe(benchmark, sample, sql_file(name))
    benchmark(lambda: run_rolled_back(bench_db, name, params_for(name, sample)))


# The library's functions over the same queries (normalising the input, the
# Database verb, the row factory building dataclasses, and for some a second
# query): name -> (the SQL file of its main query, a call taking (db, sample, conn)).
# `conn` is a connection inside a transaction that is rolled back, for writes.
PYTHON = {
    "bags.get_bag": ("bags.sql", lambda db, s, c: bags.get_bag(db, s["linked_child"][0])),
    "bags.get_bag_detail_json": ("bags.sql", lambda db, s, c: bags.get_bag_detail_json(db, s["billed_parent"][0])),
    "bags.visible_bag_id": ("bags.sql", lambda db, s, c: bags.visible_bag_id(db, s["linked_child"][0])),
    "bags.register_bag": (
        "bags.sql",
        lambda db, s, c: bags.register_bag(
            db, f"BENCH-REG-{next(_n)}", "child", "lucknow", user_id=s["user"][0], conn=c
        ),
    ),
    "bags.delete_bag": ("bags.sql", lambda db, s, c: bags.delete_bag(db, s["linked_child"][0], conn=c)),
    "scans.open_parent": (
        "scans.sql",
        lambda db, s, c: scans.open_parent(
            db, f"M444-{next(_n) % 100000:05d}", dispatch_area="lucknow", user_id=s["user"][0], conn=c
        ),
    ),
    "scans.link_child": (
        "scans.sql",
        lambda db, s, c: scans.link_child(
            db, s["open_parent"][0], f"BENCH-CHILD-{next(_n)}", user_id=s["user"][0], conn=c
        ),
    ),
    "scans.link_children(5)": (
        "scans.sql",
        lambda db, s, c: scans.link_children(
            db, s["open_parent"][0], [f"BENCH-BATCH-{next(_n)}-{i}" for i in range(5)], user_id=s["user"][0], conn=c
        ),
    ),
    "scans.unlink_child": ("scans.sql", lambda db, s, c: scans.unlink_child(db, s["linked_child"][0], conn=c)),
    "bills.get_bill": ("bills.sql", lambda db, s, c: bills.get_bill(db, s["open_bill"][0])),
    "bills.get_bill_detail": ("bills.sql", lambda db, s, c: bills.get_bill_detail(db, s["full_bill"][0])),
    "bills.create_bill": ("bills.sql", lambda db, s, c: bills.create_bill(db, f"BENCH-{next(_n)}", 10, conn=c)),
    "bills.add_parent": (
        "bills.sql",
        lambda db, s, c: bills.add_parent(db, s["open_bill"][0], s["full_parent"][0], conn=c),
    ),
    "bills.remove_parent": (
        "bills.sql",
        lambda db, s, c: bills.remove_parent(db, s["billed_parent"][3], s["billed_parent"][0], conn=c),
    ),
    "events.bag_history": ("events.sql", lambda db, s, c: events.bag_history(db, s["billed_parent"][0])),
    "users.find_user": ("users.sql", lambda db, s, c: users.find_user(db, s["user"][1])),
    "users.get_principal": ("users.sql", lambda db, s, c: users.get_principal(db, s["user"][0])),
    "users.list_users": ("users.sql", lambda db, s, c: users.list_users(db)),
}


@pytest.mark.parametrize("name", sorted(PYTHON))
def test_python(benchmark, bench_db: Database, sample: dict, name: str):
    """The library function: what a caller of tracetrack_db (and the API) pays."""
    group, call = PYTHON[name]
    describe(benchmark, sample, group)

    def once() -> None:
        with bench_db.connection() as conn, conn.transaction(force_rollback=True):
            call(bench_db, sample, conn)

    benchmark(once)


# -- sequential scans -------------------------------------------------------------------------


def _flush_stats(conn) -> None:
    """Make this backend's table counters visible to a read of pg_stat_user_tables.
    PostgreSQL 15+: pg_stat_force_next_flush(). 13 and 14 have no such function:
    a backend sends its counters when it goes idle, at most every 500 ms, to the
    statistics collector, so wait that long, end one more transaction, and read
    a fresh snapshot (the collector handles the counters before the request)."""
    if conn.info.server_version >= 150000:
        conn.execute("SELECT pg_stat_force_next_flush()")
    else:
        time.sleep(0.55)
        conn.execute("SELECT 1")
    conn.execute("SELECT pg_stat_clear_snapshot()")


def _seq_scans(conn) -> dict[str, int]:
    """Sequential scans of each big table; for the partitioned event log (0021), of its
    partitions holding 10,000 rows or more (an empty month's partition is scanned, not
    searched: the planner's right choice, and no cost)."""
    _flush_stats(conn)
    return dict(
        conn.execute(
            "SELECT coalesce(i.inhparent::regclass::text, s.relname), sum(s.seq_scan)::bigint "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "LEFT JOIN pg_inherits i ON i.inhrelid = s.relid AND i.inhparent = 'event'::regclass "
            "WHERE (s.relname = ANY(%s) OR i.inhparent IS NOT NULL) AND (i.inhparent IS NULL OR c.reltuples >= 10000) "
            "GROUP BY 1",
            (list(BIG_TABLES),),
        ).fetchall()
    )


def scans_during(db: Database, run) -> list[str]:
    """The big tables `run(conn)` scanned sequentially, by PostgreSQL's own counters
    (which also count the scans inside server-side functions). One connection for
    the run and the counting, so its counters are the ones flushed."""
    with db.connection() as conn:
        conn.execute("SET enable_seqscan = on")
        before = _seq_scans(conn)
        run(conn)
        after = _seq_scans(conn)
    return [t for t in BIG_TABLES if after.get(t) != before.get(t)]


@pytest.mark.parametrize("name", QUERIES)
def test_query_never_scans_a_big_table(bench_db: Database, sample: dict, name: str):
    """Runs the query (rolled back) and reads PostgreSQL's own counters: no
    sequential scan of bag, bill or event, including inside the functions."""
    if name in ("index_usage", "table_stats", "purge_idempotency_keys", "unaddressable_identifiers"):
        pytest.skip("maintenance query over catalogs, the small idempotency table, or a deliberate full check")

    def run(conn) -> None:
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute(NAMED[name].sql, params_for(name, sample))
            if cur.description is not None:
                cur.fetchall()

    # A 30-day bill report reads a third of the seeded bills (they span 90 days, a few
    # thousand at 6M bags): scanning `bill` is the planner's right choice there; bag and
    # event must still be reached by index.
    allowed = {"bill"} if name in ("report_bill_totals", "report_bill_page") else set()
    assert [t for t in scans_during(bench_db, run) if t not in allowed] == [], name


# -- lists and exports --------------------------------------------------------------------------

# The composed statements (tracetrack_db.listing), by the names `tracetrack db explain` knows,
# with the filter combinations the API sends. Exports are measured on a narrow filter here
# (their cost is the rows they stream); test_export_all_bags and bench/export_bench.py
# measure whole exports.
COMPOSED = [
    ("list_bags", {}),
    ("list_bags", {"type": "child"}),
    ("list_bags", {"status": "pending"}),
    ("list_bags", {"dispatch_area": "jaipur"}),
    ("list_bags", {"q": "SB012"}),
    ("list_bags", {"linked": False}),
    ("list_bags", {"billed": True}),
    ("list_bags", {"billed": False}),
    ("list_bags", {"linked": True}),
    ("list_bags", {"type": "parent", "dispatch_area": "lucknow"}),
    ("list_bills", {}),
    ("list_bills", {"status": "processing"}),
    ("list_bills", {"q": "lucknow/"}),
    ("list_events", {}),
    ("list_events", {"dispatch_area": "indore"}),
    ("list_events", {"qr_id": "SB00015"}),
    ("export_bags", {"q": "SB0001"}),
    ("export_bills", {"status": "processing"}),
    ("list_security_log", {}),
    ("list_security_log", {"kind": "login_failed"}),
    ("export_security_log", {"kind": "lockout"}),
]
GROUP = {
    "list_bags": "lists: bags",
    "list_bills": "lists: bills",
    "list_events": "lists: events",
    "export_bags": "exports",
    "export_bills": "exports",
    "list_security_log": "lists: security log",
    "export_security_log": "exports",
}


def run_composed(db: Database, name: str, filters: dict, conn=None) -> None:
    query, params = maintenance.COMPOSED[name](db, **filters)
    db.run_sql(query, params, conn=conn)


def ids(cases: list) -> list[str]:
    return [f"{n}{f or ''}" for n, f in cases]


@pytest.mark.parametrize(("name", "filters"), COMPOSED, ids=ids(COMPOSED))
def test_composed(benchmark, bench_db: Database, sample: dict, name: str, filters: dict):
    """The composed statement alone (tuples, no paging)."""
    describe(benchmark, sample, GROUP[name])
    benchmark(lambda: run_composed(bench_db, name, filters))


# The same through the library: a Page of dataclasses with its next cursor, or
# the CSV stream (COPY) read to its end.
LIBRARY = [
    ("list_bags", {}),
    ("list_bags", {"type": "child"}),
    ("list_bags", {"q": "SB012"}),
    ("list_bags", {"billed": True}),
    ("list_bags", {"type": "parent", "dispatch_area": "lucknow"}),
    ("list_bills", {}),
    ("list_bills", {"status": "processing"}),
    ("list_events", {}),
    ("list_events", {"qr_id": "SB00015"}),
    ("export_bags", {"q": "SB0001"}),
    ("export_bills", {"status": "processing"}),
]
_LIBRARY_CALLS = {
    "list_bags": lambda db, f: bags.list_bags(db, **f),
    "list_bills": lambda db, f: bills.list_bills(db, **f),
    "list_events": lambda db, f: events.recent_events(db, **f),
    "export_bags": lambda db, f: sum(map(len, exports.bags_csv(db, **f))),
    "export_bills": lambda db, f: sum(map(len, exports.bills_csv(db, **f))),
}
_LIBRARY_NAMES = {
    "list_bags": "bags.list_bags",
    "list_bills": "bills.list_bills",
    "list_events": "events.recent_events",
    "export_bags": "exports.bags_csv",
    "export_bills": "exports.bills_csv",
}


@pytest.mark.parametrize(("name", "filters"), LIBRARY, ids=[f"{_LIBRARY_NAMES[n]}{f or ''}" for n, f in LIBRARY])
def test_library(benchmark, bench_db: Database, sample: dict, name: str, filters: dict):
    describe(benchmark, sample, GROUP[name])
    benchmark(lambda: _LIBRARY_CALLS[name](bench_db, filters))


def test_export_all_bags(benchmark, bench_db: Database, sample: dict):
    """Every bag through exports.bags_csv (COPY, 64 KiB chunks), read to the end."""
    describe(benchmark, sample, "exports")
    size = benchmark.pedantic(lambda: sum(map(len, exports.bags_csv(bench_db))), rounds=3, iterations=1)
    benchmark.extra_info["bytes"] = size
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["rows_per_s"] = round(sample["bags"] / benchmark.stats.stats.median)


@pytest.mark.parametrize(("name", "filters"), COMPOSED, ids=ids(COMPOSED))
def test_composed_never_scans_a_big_table(bench_db: Database, name: str, filters: dict):
    assert scans_during(bench_db, lambda conn: run_composed(bench_db, name, filters, conn)) == [], (name, filters)


@pytest.mark.parametrize("filters", [{"type": "child"}, {"q": "SB012"}, {"dispatch_area": "lucknow"}])
def test_next_pages_never_scan_a_big_table(bench_db: Database, filters: dict):
    page = bags.list_bags(bench_db, limit=50, **filters)
    query, params = bags.list_query(limit=50, cursor=page.next_cursor, **filters)
    assert scans_during(bench_db, lambda conn: bench_db.run_sql(query, params, conn=conn)) == [], filters


# -- row factories and the verbs ---------------------------------------------------------------


@pytest.mark.parametrize("row", ["tuple", "dict", "Bag"])
def test_row_factory_page(benchmark, bench_db: Database, sample: dict, row: str):
    """One page of bag_row (50 rows, 14 columns) built as tuples, dicts or Bag dataclasses."""
    describe(benchmark, sample, "row factories")
    query, params = bags.list_query(limit=50, type="child")
    factory = {"tuple": None, "dict": dict, "Bag": Bag}[row]
    benchmark(lambda: bench_db.run_sql(query, params, row=factory))


@pytest.mark.parametrize("how", ["cursor", "Database.one tuple", "Database.one Bag"])
def test_verb_one_row(benchmark, bench_db: Database, sample: dict, how: str):
    """get_bag by a bare cursor on a pooled connection, and by the Database verb
    (parameter check, the cached row factory) as a tuple and as a Bag."""
    describe(benchmark, sample, "row factories")
    text = NAMED["get_bag"].sql
    params = {"qr_id": sample["linked_child"][0], "area": None}
    if how == "cursor":

        def once():
            with bench_db.connection(read=True) as conn:
                return conn.execute(text, params).fetchone()
    else:
        factory = Bag if how.endswith("Bag") else None

        def once():
            return bench_db.one("get_bag", params, row=factory, read=True)

    assert benchmark(once) is not None
