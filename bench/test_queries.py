"""A benchmark for every named query and every composed list and export
statement at 600,000 bags (6,000,000 with --bags), and a check that none of
them scans the big tables.

Writes run inside a transaction that is rolled back, so every round measures
the same work on the same data (the commit's WAL flush is measured by the
HTTP benchmark and the bare write loop in bench/http_bench.py).
"""

from __future__ import annotations

import itertools

import pytest

from tracetrack_db import Database
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
        "bill_update": {**common, "bill_no": s["open_bill"][0], "capacity": None, "description": "d",
                        "destination": None, "vehicle_number": None},
        "claim_idempotency_key": {"user_id": user, "key": f"k{n}", "fingerprint": "f"},
        "create_area": {"name": f"bench_area_{n}", "label": "Bench"},
        "create_bill": {**common, "bill_no": f"BENCH-{n}", "capacity": 10, "description": "", "destination": "",
                        "vehicle_number": ""},
        "create_parent_format": {"name": f"BF{n}", "pattern": "^BF[0-9]{6}$", "capacity": 30,
                                 "expected_weight_kg": 30},
        "create_user": {"username": f"bench-user-{n}", "password_hash": "x", "role": "biller",
                        "dispatch_area": None},
        "dashboard_bag_totals": {"area": None}, "dashboard_hourly": {"area": None},
        "dashboard_recent_scans": {"area": None, "limit": 20}, "dashboard_user_activity": {"area": None},
        "delete_bag": {**common, "qr_id": s["linked_child"][0]},
        "get_bag": {"qr_id": s["linked_child"][0], "area": None}, "get_bag_by_id": {"id": s["full_parent"][1]},
        "get_bag_detail_json": {"qr_id": s["billed_parent"][0], "area": None},
        "visible_bag_id": {"qr_id": s["linked_child"][0], "area": None},
        "get_bill": {"bill_no": s["open_bill"][0]}, "get_bill_by_id": {"id": s["open_bill"][1]},
        "get_idempotency_key": {"user_id": user, "key": "k"},
        "get_login": {"username": s["user"][1]}, "get_user": {"id": user}, "get_principal": {"id": user},
        "get_user_by_username": {"username": s["user"][1]},
        "link_child": {**common, "parent_qr": s["open_parent"][0], "child_qr": f"BENCH-CHILD-{n}"},
        "link_children": {**common, "parent_qr": s["open_parent"][0],
                          "child_qrs": [f"BENCH-BATCH-{n}-{i}" for i in range(5)]},
        "list_users": {"after_id": 0, "limit": 50},
        "revoke_tokens": {"id": user},
        "throttle_incr": {"key": f"login-tries:bench{n}:127.0.0.1", "ttl": 900},
        "throttle_add": {"key": f"login-wait:bench{n}:127.0.0.1", "ttl": 2},
        "throttle_delete": {"keys": [f"login-tries:bench{n}:127.0.0.1"]},
        "login_succeeded": {"id": user, "password_hash": None},
        "open_parent": {**common, "qr_id": f"M444-{n % 100000:05d}", "dispatch_area": "lucknow"},
        "purge_idempotency_keys": {"hours": 24},
        "record_view_refresh": {"view_name": "mv_bench", "duration_ms": 1.0},
        "register_bag": {**common, "qr_id": f"BENCH-REG-{n}", "type": "child", "dispatch_area": "lucknow"},
        "store_idempotent_response": {"user_id": user, "key": "k", "status": 200, "response": b"{}"},
        "unlink_child": {**common, "child_qr": s["linked_child"][0]},
        "update_user": {"id": user, "role": None, "dispatch_area": None, "clear_area": False, "is_active": None,
                        "password_hash": None},
    }
    return table.get(name, {})


def run_rolled_back(db: Database, name: str, params: dict) -> None:
    with db.connection() as conn, conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(db.queries[name].sql, params)
        if cur.description is not None:
            cur.fetchall()


QUERIES = [q.name for q in load() if q.name not in ("try_refresh_lock", "release_refresh_lock")]


@pytest.mark.parametrize("name", QUERIES)
def test_query(benchmark, bench_db: Database, sample: dict, name: str):
    benchmark.group = "named queries"
    benchmark.extra_info["bags"] = sample["bags"]
    benchmark(lambda: run_rolled_back(bench_db, name, params_for(name, sample)))


def seq_scans(db: Database) -> dict[str, int]:
    with db.connection() as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return dict(conn.execute("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                                 (list(BIG_TABLES),)).fetchall())


@pytest.mark.parametrize("name", QUERIES)
def test_query_never_scans_a_big_table(bench_db: Database, sample: dict, name: str):
    """Runs the query (rolled back) and reads PostgreSQL's own counters: no
    sequential scan of bag, bill or event, including inside the functions."""
    if name in ("index_usage", "table_stats", "purge_idempotency_keys", "unaddressable_identifiers"):
        pytest.skip("maintenance query over catalogs, the small idempotency table, or a deliberate full check")
    with bench_db.connection() as conn:
        conn.execute("SET enable_seqscan = on")
    before = seq_scans(bench_db)
    run_rolled_back(bench_db, name, params_for(name, sample))
    after = seq_scans(bench_db)
    assert after == before, f"{name} scanned {[t for t in BIG_TABLES if after.get(t) != before.get(t)]}"


# The composed statements (tracetrack_db.listing), by the names `tracetrack db explain` knows,
# with the filter combinations the API sends. Exports are measured on a narrow filter: their
# cost is the rows they stream (a full export is timed in bench/RESULTS.md).
COMPOSED = [
    ("list_bags", {}), ("list_bags", {"type": "child"}), ("list_bags", {"status": "pending"}),
    ("list_bags", {"dispatch_area": "jaipur"}), ("list_bags", {"q": "SB012"}), ("list_bags", {"linked": False}),
    ("list_bags", {"billed": True}), ("list_bags", {"billed": False}), ("list_bags", {"linked": True}),
    ("list_bags", {"type": "parent", "dispatch_area": "lucknow"}),
    ("list_bills", {}), ("list_bills", {"status": "processing"}), ("list_bills", {"q": "lucknow/"}),
    ("list_events", {}), ("list_events", {"dispatch_area": "indore"}), ("list_events", {"qr_id": "SB00015"}),
    ("export_bags", {"q": "SB0001"}), ("export_bills", {"status": "processing"}),
]


def run_composed(db: Database, name: str, filters: dict) -> None:
    from tracetrack_db import maintenance

    query, params = maintenance.COMPOSED[name](db, **filters)
    db.run_sql(query, params)


@pytest.mark.parametrize(("name", "filters"), COMPOSED, ids=[f"{n}{f or ''}" for n, f in COMPOSED])
def test_composed(benchmark, bench_db: Database, sample: dict, name: str, filters: dict):
    benchmark.group = "lists and exports"
    benchmark.extra_info["bags"] = sample["bags"]
    benchmark(lambda: run_composed(bench_db, name, filters))


@pytest.mark.parametrize(("name", "filters"), COMPOSED, ids=[f"{n}{f or ''}" for n, f in COMPOSED])
def test_composed_never_scans_a_big_table(bench_db: Database, name: str, filters: dict):
    before = seq_scans(bench_db)
    run_composed(bench_db, name, filters)
    assert seq_scans(bench_db) == before, (name, filters)


@pytest.mark.parametrize("filters", [{"type": "child"}, {"q": "SB012"}, {"dispatch_area": "lucknow"}])
def test_next_pages_never_scan_a_big_table(bench_db: Database, filters: dict):
    from tracetrack_db import bags

    page = bags.list_bags(bench_db, limit=50, **filters)
    before = seq_scans(bench_db)
    bags.list_bags(bench_db, limit=50, cursor=page.next_cursor, **filters)
    assert seq_scans(bench_db) == before, filters
