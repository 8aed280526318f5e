"""`tracetrack import` and `tracetrack rules` on the shipped example files:
each layout imports cleanly in order, a second run changes nothing, a dry
run of a bad file exits 1 naming its rows."""

from __future__ import annotations

from pathlib import Path

from .api_helpers import count_events, sql_value
from .factories import check_counters
from .test_cli import run

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_examples_import_in_order_and_again_change_nothing(db_url, sql_conn):
    env = {"DATABASE_URL": db_url, "CI": "true"}
    steps = [
        ("links", []),
        ("blocks", ["--rule", "label_no"]),
        ("bags", []),
        ("bills", []),  # the bills take the parents the first two files filled
    ]
    for layout, extra in steps:
        done = run(
            ["import", str(EXAMPLES / f"{layout}.csv"), "--layout", layout, "--dispatch-area", "lucknow"] + extra, env
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 already_done, 0 error, 0 skipped" in done.stdout, done.stdout
    assert sql_value(sql_conn, "SELECT linked_parent_count FROM bill WHERE bill_no = 'INV/2026/0101'") == 2
    events = count_events(sql_conn)
    again = run(["import", str(EXAMPLES / "links.csv"), "--layout", "links", "--dispatch-area", "lucknow"], env)
    assert again.returncode == 0 and "0 ok," in again.stdout, again.stdout
    assert count_events(sql_conn) == events
    check_counters(sql_conn)


def test_a_failing_dry_run_exits_1_and_names_the_rows(db_url, sql_conn, tmp_path):
    env = {"DATABASE_URL": db_url, "CI": "true"}
    bad = tmp_path / "bad.csv"
    bad.write_text("parent_qr,child_qr\nSB00001,GOOD-0001\nSB00001,SB00002\n")
    done = run(["import", str(bad), "--layout", "links", "--dispatch-area", "lucknow", "--dry-run"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "dry run, nothing changed" in done.stdout
    assert "row 3: error not_a_child" in done.stderr and "row 2: skipped block_failed" in done.stderr
    assert sql_value(sql_conn, "SELECT count(*) FROM bag") == 0
    refused = run(["import", str(bad), "--layout", "bags"], env)
    assert refused.returncode == 1 and "missing_column" in refused.stderr


def test_rules_commands(db_url):
    env = {"DATABASE_URL": db_url, "CI": "true"}
    added = run(["rules", "add", "lot_code", r"CODE:(?P<qr>[A-Z0-9]+)", "--description", "after CODE:"], env)
    assert added.returncode == 0, added.stderr
    bad = run(["rules", "add", "lookbehind", r"(?<=LOT)(?P<qr>\d+)"], env)
    assert bad.returncode == 1 and "invalid_rule" in bad.stderr
    changed = run(["rules", "change", "lot_code", "--pattern", r"KODE:(?P<qr>[A-Z0-9]+)"], env)
    assert changed.returncode == 0, changed.stderr
    listed = run(["rules", "list"], env)
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        ["label_no", r"LABEL\s*NO\.?:?\s*(?P<qr>[A-Za-z0-9][A-Za-z0-9_/-]*)"],
        ["lot_code", r"KODE:(?P<qr>[A-Z0-9]+)"],
    ]
