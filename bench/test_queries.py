"""A benchmark for every named query at 600,000 bags (6,000,000 with --bags),
and a check that none of them scans the big tables.

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
        "bag_counts_by_parent": {"parent_id": s["full_parent"][1]},
        "bag_history": {"qr_id": s["billed_parent"][0], "limit": 10_000},
        "bill_add_parent": {**common, "bill_no": s["open_bill"][0], "parent_qr": s["full_parent"][0]},
        "bill_complete": {**common, "bill_no": s["completed_bill"][0]},
        "bill_delete": {**common, "bill_no": s["open_bill"][0]},
        "bill_parents": {"bill_id": s["billed_parent"][2], "bill_no": "x"},
        "bill_real_totals": {"bill_id": s["billed_parent"][2]},
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
        "get_bag": {"qr_id": s["linked_child"][0]}, "get_bag_by_id": {"id": s["full_parent"][1]},
        "get_bag_detail_json": {"qr_id": s["billed_parent"][0]},
        "get_bag_family": {"qr_id": s["billed_parent"][0]},
        "get_bill": {"bill_no": s["open_bill"][0]}, "get_bill_by_id": {"id": s["open_bill"][1]},
        "get_idempotency_key": {"user_id": user, "key": "k"},
        "get_login": {"username": s["user"][1]}, "get_user": {"id": user},
        "get_user_by_username": {"username": s["user"][1]},
        "link_child": {**common, "parent_qr": s["open_parent"][0], "child_qr": f"BENCH-CHILD-{n}"},
        "link_children": {**common, "parent_qr": s["open_parent"][0],
                          "child_qrs": [f"BENCH-BATCH-{n}-{i}" for i in range(5)]},
        "list_users": {"after_id": 0, "limit": 50},
        "login_failed": {"id": user, "max_failures": 5, "lock_seconds": 900},
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
    if name in ("index_usage", "table_stats", "purge_idempotency_keys"):
        pytest.skip("maintenance query over catalogs / the small idempotency table")
    with bench_db.connection() as conn:
        conn.execute("SET enable_seqscan = on")
    before = seq_scans(bench_db)
    run_rolled_back(bench_db, name, params_for(name, sample))
    after = seq_scans(bench_db)
    assert after == before, f"{name} scanned {[t for t in BIG_TABLES if after.get(t) != before.get(t)]}"


@pytest.mark.parametrize("filters", [
    {}, {"type": "child"}, {"status": "pending"}, {"dispatch_area": "jaipur"}, {"q": "SB012"},
    {"linked": False}, {"billed": True}, {"type": "parent", "dispatch_area": "lucknow"},
])
def test_list_filters_never_scan_a_big_table(bench_db: Database, filters: dict):
    from tracetrack_db import bags

    before = seq_scans(bench_db)
    page = bags.list_bags(bench_db, limit=50, **filters)
    bags.list_bags(bench_db, limit=50, cursor=page.next_cursor, **filters) if page.next_cursor else None
    assert seq_scans(bench_db) == before, filters
