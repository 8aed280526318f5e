"""Dashboard views: contents, refresh rules, the refresher thread, and plans
that never touch the base tables on a request."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tracetrack_db import Database, bills, scans, views

from .factories import full_parent, make_user


def analytics(db: Database, area: str | None = None) -> dict:
    """The typed Dashboard, as nested dicts."""
    return dataclasses.asdict(views.analytics(db, area))


def test_analytics_reflects_data_after_a_refresh_and_states_as_of(db: Database):
    before = analytics(db)
    assert before["bags"]["total"] == 0
    full_parent(db, 1, area="lucknow")
    full_parent(db, 2, area="indore", children=10)
    scans.open_parent(db, "SB00003", dispatch_area="indore")
    scans.link_child(db, "SB00003", "LOOSE-0001")
    scans.unlink_child(db, "LOOSE-0001")
    bills.create_bill(db, "V-1", 3)
    assert analytics(db)["bags"]["total"] == 0  # views, not live tables
    timings = views.refresh_views(db)
    assert timings is not None and set(timings) == {*views.VIEWS, views.ROLLUP}
    after = analytics(db)
    assert after["as_of"] > before["as_of"]
    assert after["bags"]["by_type"] == {"parent": 3, "child": 41}
    assert after["bags"]["by_status"]["parent"] == {"completed": 1, "in_progress": 1, "pending": 1}
    assert after["bags"]["unlinked_children"] == 1
    assert after["bags"]["by_area"]["indore"] == {"parent": 2, "child": 11}
    assert after["bills"]["by_status"] == {"new": 1}
    assert after["scans"]["today"] >= 40 and len(after["scans"]["hourly"]) == 24
    assert after["scans"]["hourly"][-1]["scans"] >= 40
    assert after["recent_scans"][0]["qr_id"] == "LOOSE-0001" and after["recent_scans"][0]["kind"] == "unlink"


def test_dispatchers_area_only(db: Database):
    full_parent(db, 1, area="lucknow", children=5)
    full_parent(db, 2, area="indore", children=7)
    views.refresh_views(db)
    indore = analytics(db, "indore")
    assert indore["bags"]["by_type"] == {"parent": 1, "child": 7}
    assert set(indore["bags"]["by_area"]) == {"indore"}
    assert all(r["qr_id"].startswith(("C00002", "SB00002")) for r in indore["recent_scans"])


def test_bill_figures_are_scoped_to_the_area_too(db: Database):
    """Before: a dispatcher's dashboard counted every bill, those holding only
    another area's parents included."""
    full_parent(db, 1, area="lucknow", children=30)
    full_parent(db, 2, area="indore", children=30)
    full_parent(db, 3, area="indore", children=30)
    full_parent(db, 4, area="indore", children=30)
    bills.create_bill(db, "ONLY-INDORE", 2)
    bills.add_parent(db, "ONLY-INDORE", "SB00002")
    bills.add_parent(db, "ONLY-INDORE", "SB00003")
    bills.complete_bill(db, "ONLY-INDORE")
    bills.create_bill(db, "MIXED", 2)
    bills.add_parent(db, "MIXED", "SB00001")
    bills.add_parent(db, "MIXED", "SB00004")
    bills.create_bill(db, "EMPTY", 1)
    views.refresh_views(db)
    everyone = analytics(db)["bills"]
    assert everyone == {"by_status": {"completed": 1, "processing": 1, "new": 1}, "parents_billed": 4}
    lucknow = analytics(db, "lucknow")["bills"]
    assert lucknow == {"by_status": {"processing": 1}, "parents_billed": 1}  # MIXED only, its own parent only
    indore = analytics(db, "indore")["bills"]
    assert indore == {"by_status": {"completed": 1, "processing": 1}, "parents_billed": 3}
    assert analytics(db, "jaipur")["bills"] == {"by_status": {}, "parents_billed": 0}


def test_per_user_activity(db: Database):
    user = make_user(db, "dispatcher", "lucknow")
    scans.open_parent(db, "SB00001", user_id=user.id, restrict_area="lucknow")
    scans.link_child(db, "SB00001", "ACT-0001", user_id=user.id, restrict_area="lucknow")
    views.refresh_views(db)
    activity = analytics(db)["users"]
    assert [(a["username"], a["events_24h"], a["links_7d"]) for a in activity] == [(user.username, 2, 1)]


def test_one_refresher_at_a_time_and_fresh_views_are_skipped(db: Database, db_url):
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(7314027002)")
        assert views.refresh_views(db) is None  # another process is refreshing
        other.execute("SELECT pg_advisory_unlock(7314027002)")
    assert views.refresh_views(db)
    assert views.refresh_views(db, min_interval=60) == {}  # just refreshed: nothing to do


def test_refresher_thread_refreshes_on_its_interval(db: Database):
    first = views.refresh_times(db)
    refresher = views.Refresher(db, interval=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while views.refresh_times(db)["mv_bag_totals"] <= first["mv_bag_totals"]:
            assert time.monotonic() < deadline, "the refresher never refreshed"
            time.sleep(0.1)
    finally:
        refresher.stop()


def _relations(plan: dict) -> set[str]:
    found = {plan["Relation Name"]} if "Relation Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _relations(child)
    return found


@pytest.mark.parametrize(
    "name",
    [
        "dashboard_bag_totals",
        "dashboard_bill_totals",
        "dashboard_hourly",
        "dashboard_user_activity",
        "dashboard_recent_scans",
        "view_refresh_times",
    ],
)
def test_dashboard_queries_never_read_base_tables(db: Database, name):
    query = db.queries[name]
    params = {"area": "lucknow", "limit": 20, "since": datetime.now(UTC) - timedelta(days=1)}
    with db.connection() as conn:
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query.sql}", {k: params[k] for k in query.params}).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    touched = _relations(plan[0]["Plan"])
    assert touched and not touched & {"bag", "event", "bill", "app_user"}, touched


def test_refresher_also_forgets_old_idempotency_keys(db: Database, sql_conn):
    from tracetrack_db import idempotency

    idempotency.run_once(db, 1, "old-key", "f", lambda conn: (200, {}))
    idempotency.run_once(db, 1, "new-key", "f", lambda conn: (200, {}))
    sql_conn.execute("UPDATE idempotency_key SET created_at = now() - interval '2 days' WHERE key = 'old-key'")
    sql_conn.execute("UPDATE view_refresh SET refreshed_at = now() - interval '1 hour'")
    refresher = views.Refresher(db, interval=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while sql_conn.execute("SELECT count(*) FROM idempotency_key WHERE key = 'old-key'").fetchone()[0]:
            assert time.monotonic() < deadline, "old keys were never purged"
            time.sleep(0.1)
    finally:
        refresher.stop()
    assert sql_conn.execute("SELECT key FROM idempotency_key").fetchall() == [("new-key",)]


@pytest.mark.parametrize("concurrently", [True, False])
def test_readers_never_wait_for_a_concurrent_refresh(db: Database, db_url, concurrently):
    """A refresh holds its lock until its transaction ends: with CONCURRENTLY
    the dashboard's reads go on meanwhile; the plain REFRESH (the control case)
    would make them wait, which is why the refresher never uses it."""
    full_parent(db, 1, children=3)
    with psycopg.connect(db_url, autocommit=True) as refresher, refresher.transaction():
        refresher.execute("REFRESH MATERIALIZED VIEW " + ("CONCURRENTLY " if concurrently else "") + "mv_bag_totals")
        with psycopg.connect(db_url, autocommit=True) as reader:
            reader.execute("SET lock_timeout = '2s'")
            if concurrently:
                assert reader.execute("SELECT sum(bags) FROM mv_bag_totals").fetchone()[0] is None  # old contents
                with Database(db_url, min_size=1, max_size=2) as other:
                    seen: list = []
                    thread = threading.Thread(target=lambda: seen.append(views.analytics(other)))
                    thread.start()
                    thread.join(30)
                    assert seen and seen[0].bags.total == 0
            else:
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    reader.execute("SELECT sum(bags) FROM mv_bag_totals")
    assert analytics(db)["bags"]["total"] == 4  # committed: the new contents for everyone
