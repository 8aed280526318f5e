"""Maintenance and data commands, run as real processes on a real database."""

from __future__ import annotations

import psycopg

from .test_cli import run


def test_refresh_views_analyze_and_stats_commands(db_url):
    env = {"DATABASE_URL": db_url}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO bag (qr_id, type, dispatch_area) VALUES ('MAINT-0001', 'child', 'hisar')")
        before = conn.execute("SELECT refreshed_at FROM view_refresh WHERE view_name = 'mv_bag_totals'").fetchone()[0]
    refreshed = run(["db", "refresh-views"], env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert "mv_bag_totals" in refreshed.stdout and "mv_recent_scans" in refreshed.stdout
    with psycopg.connect(db_url) as conn:
        after = conn.execute("SELECT refreshed_at FROM view_refresh WHERE view_name = 'mv_bag_totals'").fetchone()[0]
        assert after > before
        assert conn.execute("SELECT bags FROM mv_bag_totals WHERE dispatch_area = 'hisar'").fetchone() == (1,)

    analyzed = run(["db", "analyze"], env)
    assert analyzed.returncode == 0 and "bag" in analyzed.stdout
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'bag'"
        ).fetchone() == (True,)

    usage = run(["db", "index-usage"], env)
    assert usage.returncode == 0, usage.stderr
    assert "bag_qr_id_key" in usage.stdout and "UNUSED" in usage.stdout  # a fresh database uses few indexes

    stats = run(["db", "table-stats"], env)
    assert stats.returncode == 0 and "event" in stats.stdout and "dead_rows" in stats.stdout


def test_explain_a_named_query(db_url):
    env = {"DATABASE_URL": db_url}
    plan = run(["db", "explain", "get_bag"], env)
    assert plan.returncode == 0, plan.stderr
    assert "bag" in plan.stdout and ("Scan" in plan.stdout or "Result" in plan.stdout)
    empty = run(["db", "explain", "link_child", "--analyze"], env)  # no parent to link into yet
    assert empty.returncode == 1 and "bag_not_found" in empty.stderr and "Traceback" not in empty.stderr
    from tracetrack_db import Database, scans

    with Database(db_url) as db:
        scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    analyzed = run(["db", "explain", "link_child", "--analyze"], env)
    assert analyzed.returncode == 0 and "Execution Time" in analyzed.stdout
    with psycopg.connect(db_url) as conn:  # --analyze ran in a rolled-back transaction
        assert conn.execute("SELECT count(*) FROM bag").fetchone() == (1,)
    unknown = run(["db", "explain", "no_such_query"], env)
    assert unknown.returncode == 1 and "unknown query" in unknown.stderr


def test_identifiers_no_path_can_name_are_reported(db, sql_conn):
    """Rows from before the path rules (their constraints are NOT VALID) are listed."""
    from tracetrack_db import bills, maintenance, scans

    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    bills.create_bill(db, "FINE/1", 1)
    assert maintenance.unaddressable_identifiers(db) == []
    sql_conn.execute("ALTER TABLE bag DROP CONSTRAINT bag_qr_id_path")
    sql_conn.execute("ALTER TABLE bill DROP CONSTRAINT bill_bill_no_check")
    sql_conn.execute(
        "INSERT INTO bag (qr_id, type, dispatch_area) VALUES ('OLD-1/', 'child', 'lucknow'), "
        "('OLD/HISTORY', 'child', 'lucknow')"
    )
    sql_conn.execute("INSERT INTO bill (bill_no, capacity) VALUES ('OLD/complete', 1)")
    assert maintenance.unaddressable_identifiers(db) == [
        ("bag", "OLD-1/"),
        ("bag", "OLD/HISTORY"),
        ("bill", "OLD/complete"),
    ]


def test_explain_a_list_or_export_with_its_filters(db_url):
    env = {"DATABASE_URL": db_url}
    plan = run(["db", "explain", "list_bags", "--filter", "type=child", "--filter", "linked=false"], env)
    assert plan.returncode == 0, plan.stderr
    assert "Limit" in plan.stdout and "bag" in plan.stdout
    for name in ("list_bills", "list_events", "export_bags", "export_bills"):
        result = run(["db", "explain", name, "--analyze"], env)
        assert result.returncode == 0 and "Execution Time" in result.stdout, (name, result.stderr)
    bad = run(["db", "explain", "list_bags", "--filter", "colour=red"], env)
    assert bad.returncode == 1 and "colour" in bad.stderr and "Traceback" not in bad.stderr
    named = run(["db", "explain", "get_bag", "--filter", "type=child"], env)
    assert named.returncode == 1 and "--filter applies to" in named.stderr


def test_seed_command_loads_and_refuses_a_second_time(db_url):
    env = {"DATABASE_URL": db_url}
    seeded = run(["db", "seed", "--bags", "5000", "--seed", "7"], env, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 5,000 bags" in seeded.stdout
    password = seeded.stdout.split("with password ", 1)[1].split()[0]  # generated, shown once
    assert password != "correct-horse-9-staple" and len(password) >= 16
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bag").fetchone() == (5000,)
        # views refreshed after the load
        assert conn.execute("SELECT sum(bags) FROM mv_bag_totals").fetchone() == (5000,)
    again = run(["db", "seed", "--bags", "5000"], env)
    assert again.returncode == 1 and "seed" in again.stderr.lower()


def test_purge_idempotency_command(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO idempotency_key (user_id, key, fingerprint, created_at) VALUES "
            "(1, 'a', 'f', now() - interval '3 days'), (1, 'b', 'f', now())"
        )
    result = run(["db", "purge-idempotency", "--hours", "24"], {"DATABASE_URL": db_url})
    assert result.returncode == 0 and "removed 1 idempotency keys" in result.stdout
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT key FROM idempotency_key").fetchall() == [("b",)]
