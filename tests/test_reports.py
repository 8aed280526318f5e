"""Bill and activity reports (GET /api/reports/bills, .csv, /activity) and
`tracetrack report eod`: figures, filters, paging, roles, the dispatcher's
area, the rollup against the event log, and plans that use indexes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest

from tracetrack_db import Database, reports, views

from .api_helpers import Api, assert_error, assert_schema

TODAY = date.today  # UTC: the test app's zone


@pytest.fixture(name="api")
def _api(db: Database) -> Api:
    return Api(db)


@pytest.fixture
def warehouse(api: Api):
    """Two areas' parents on three bills: B-1 (lucknow, completed), B-2
    (lucknow + indore, processing), B-3 (empty, by another biller)."""
    admin, biller, other = api.admin(), api.biller(), api.biller()
    lucknow, indore = api.dispatcher("lucknow"), api.dispatcher("indore")
    api.parent_with_children(lucknow, "SB00001", 30)  # full: expected 30, actual 30
    api.parent_with_children(lucknow, "SB00002", 10)  # short: expected 30, actual 10
    api.parent_with_children(lucknow, "SB00003", 5)
    api.parent_with_children(indore, "SB00004", 7)
    assert api.post("/api/scans/unlink", lucknow, json={"child_qr": "SB00003-C004"}).status_code == 200
    api.bill(biller, "B-1", 2)
    for parent in ("SB00001", "SB00002"):
        assert api.add_parent(biller, "B-1", parent).status_code == 200
    assert api.post("/api/bills/B-1/complete", biller).status_code == 200
    api.bill(biller, "B-2", 3)
    for parent in ("SB00003", "SB00004"):
        assert api.add_parent(biller, "B-2", parent).status_code == 200
    api.bill(other, "B-3", 1)
    return {"admin": admin, "biller": biller, "other": other, "lucknow": lucknow, "indore": indore}


# bills ---------------------------------------------------------------------------------
def test_bill_report_figures_per_bill_day_biller_and_area(api: Api, warehouse):
    biller = warehouse["biller"]
    result = api.get("/api/reports/bills", biller)
    assert result.status_code == 200, result.text
    assert_schema(result, "GET", "/api/reports/bills")
    body = result.json
    today = TODAY().isoformat()
    assert (body["first_day"], body["last_day"], body["time_zone"], body["on"]) == (today, today, "UTC", "created")
    assert body["start"] == f"{today}T00:00:00+00:00"
    bills = {b["bill_no"]: b for b in body["bills"]}
    assert [b["bill_no"] for b in body["bills"]] == ["B-3", "B-2", "B-1"]  # newest first
    b1 = bills["B-1"]
    assert (b1["status"], b1["parents"], b1["children"]) == ("completed", 2, 40)
    assert (b1["expected_weight_kg"], b1["actual_weight_kg"], b1["difference_kg"]) == (60, 40, -20)
    assert (b1["created_by_username"], b1["completed_by_username"]) == (biller.username, biller.username)
    assert b1["completed_by"] == biller.id and b1["completed_at"].endswith("+00:00")
    assert b1["dispatch_areas"] == ["lucknow"] and b1["day"] == today
    assert bills["B-2"]["dispatch_areas"] == ["indore", "lucknow"] and bills["B-2"]["completed_by"] is None
    assert bills["B-2"]["children"] == 11 and bills["B-3"]["dispatch_areas"] == []
    totals = body["totals"]
    assert (totals["bills"], totals["completed"], totals["parents"], totals["children"]) == (3, 1, 4, 51)
    assert (totals["expected_weight_kg"], totals["actual_weight_kg"], totals["difference_kg"]) == (120, 51, -69)
    assert body["by_day"] == [{"day": today, "totals": totals}]
    by_biller = {b["username"]: b["totals"] for b in body["by_biller"]}
    assert by_biller[biller.username]["bills"] == 2 and by_biller[warehouse["other"].username]["bills"] == 1
    by_area = {a["dispatch_area"]: a["totals"] for a in body["by_area"]}
    assert by_area["lucknow"]["parents"] == 3 and by_area["lucknow"]["children"] == 44
    assert by_area["lucknow"]["bills"] == 2 and by_area["lucknow"]["completed"] == 1
    assert (by_area["indore"]["bills"], by_area["indore"]["children"], by_area["indore"]["difference_kg"]) == (
        1,
        7,
        -23,
    )


def test_bill_report_filters_and_completed_basis(api: Api, warehouse):
    biller, other = warehouse["biller"], warehouse["other"]

    def names(**params):
        result = api.get("/api/reports/bills", biller, params={k: str(v) for k, v in params.items()})
        assert result.status_code == 200, result.text
        return [b["bill_no"] for b in result.json["bills"]]

    assert names(status="processing") == ["B-2"]
    assert names(created_by=other.id) == ["B-3"]
    assert names(dispatch_area="indore") == ["B-2"]
    assert names(on="completed") == ["B-1"]
    completed = api.get("/api/reports/bills", biller, params={"on": "completed"}).json
    assert [b["username"] for b in completed["by_biller"]] == [biller.username]  # who completed them
    yesterday = (TODAY() - timedelta(days=1)).isoformat()
    assert names(**{"from": yesterday, "to": yesterday}) == []
    assert names(**{"from": yesterday}) == []  # to defaults to from


def test_bill_report_pages_keep_totals_whole(api: Api, warehouse):
    biller = warehouse["biller"]
    first = api.get("/api/reports/bills", biller, params={"limit": "2"}).json
    assert [b["bill_no"] for b in first["bills"]] == ["B-3", "B-2"] and first["next_cursor"]
    second = api.get("/api/reports/bills", biller, params={"limit": "2", "cursor": first["next_cursor"]}).json
    assert [b["bill_no"] for b in second["bills"]] == ["B-1"] and second["next_cursor"] is None
    assert first["totals"] == second["totals"] and first["totals"]["bills"] == 3


def test_bill_report_reads_settled_bills_from_the_view_with_the_same_figures(api: Api, warehouse, sql_conn):
    """Bills unchanged since mv_bills_by_area' refresh come from it (as the service role)."""
    biller = warehouse["biller"]
    before = api.get("/api/reports/bills", biller).json
    sql_conn.execute("UPDATE bill SET updated_at = now() - interval '1 hour'")
    views.refresh_views(api.db)
    after = api.get("/api/reports/bills", biller).json
    assert after == before


def test_bill_report_csv(api: Api, warehouse):
    result = api.get("/api/reports/bills.csv", warehouse["biller"], params={"dispatch_area": "lucknow"})
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [r["bill_no"] for r in rows] == ["B-2", "B-1"]  # newest first, as the JSON
    assert rows[1]["difference_kg"] == "-20.000" and rows[1]["completed_by_username"]
    assert rows[0]["dispatch_areas"] == "indore lucknow" and rows[0]["completed_at"] == ""
    assert rows[0]["created_at"].endswith("+00:00")


def test_bill_report_refuses_bad_ranges_roles_and_areas(api: Api, warehouse):
    biller = warehouse["biller"]
    for path in ("/api/reports/bills", "/api/reports/bills.csv"):
        assert_error(api.get(path, biller, params={"from": "2026-03-02", "to": "2026-03-01"}), 400, "invalid_range")
        assert_error(api.get(path, biller, params={"from": "2026-01-01", "to": "2026-06-01"}), 400, "invalid_range")
        assert_error(api.get(path, biller, params={"from": "2026-02-30"}), 400, "validation_error", "from")
        assert_error(api.get(path, biller, params={"to": "yesterday"}), 400, "validation_error", "to")
        assert_error(api.get(path, biller, params={"dispatch_area": "atlantis"}), 400, "unknown_area")
        assert_error(api.get(path, warehouse["lucknow"]), 403, "forbidden")
        # the calendar's edges (their local midnights overflow datetime in UTC): a 400, never a 500
        for edge in ("9999-12-31", "0001-01-01"):
            assert_error(api.get(path, biller, params={"from": edge}), 400, "invalid_range", "from")
    assert_error(api.get("/api/reports/activity", biller, params={"from": "9999-12-31"}), 400, "invalid_range")
    ninety_two = api.get("/api/reports/bills", biller, params={"from": "2026-01-01", "to": "2026-04-02"})
    assert ninety_two.status_code == 200 and len(ninety_two.json["by_day"]) == 92


# activity ------------------------------------------------------------------------------------
def test_activity_per_bucket_user_and_area(api: Api, warehouse):
    result = api.get("/api/reports/activity", warehouse["admin"])
    assert result.status_code == 200, result.text
    assert_schema(result, "GET", "/api/reports/activity")
    body = result.json
    assert body["bucket"] == "day" and len(body["buckets"]) == 1
    counts = {"parent_scans": 4, "links": 52, "unlinks": 1, "bill_actions": 3 + 4 + 1}  # created, added, completed
    assert body["totals"] == counts and body["buckets"][0]["counts"] == counts
    users = {u["username"]: u for u in body["by_user"]}
    assert users[warehouse["lucknow"].username]["counts"] == {
        "parent_scans": 3,
        "links": 45,
        "unlinks": 1,
        "bill_actions": 0,
    }
    assert users[warehouse["lucknow"].username]["dispatch_area"] == "lucknow"
    assert users[warehouse["biller"].username]["counts"]["bill_actions"] == 7
    areas = {a["dispatch_area"]: a["counts"] for a in body["by_area"]}
    assert areas["indore"] == {"parent_scans": 1, "links": 7, "unlinks": 0, "bill_actions": 1}  # SB00004 added
    assert areas[""]["bill_actions"] == 4  # bills created and completed name no area
    hourly = api.get("/api/reports/activity", warehouse["admin"], params={"bucket": "hour"}).json
    assert len(hourly["buckets"]) == 24 and hourly["totals"] == counts
    assert [b["start"][11:] for b in hourly["buckets"][:2]] == ["00:00:00+00:00", "01:00:00+00:00"]
    mine = api.get("/api/reports/activity", warehouse["admin"], params={"user": str(warehouse["indore"].id)}).json
    assert mine["totals"] == {"parent_scans": 1, "links": 7, "unlinks": 0, "bill_actions": 0}


def test_a_dispatcher_sees_only_their_area(api: Api, warehouse):
    indore = warehouse["indore"]
    own = api.get("/api/reports/activity", indore).json
    assert own["dispatch_area"] == "indore"
    assert own["totals"] == {"parent_scans": 1, "links": 7, "unlinks": 0, "bill_actions": 1}
    assert {a["dispatch_area"] for a in own["by_area"]} == {"indore"}
    assert api.get("/api/reports/activity", indore, params={"dispatch_area": "indore"}).status_code == 200
    assert_error(api.get("/api/reports/activity", indore, params={"dispatch_area": "lucknow"}), 403, "wrong_area")
    assert_error(api.get("/api/reports/activity", indore, params={"bucket": "week"}), 400, "validation_error")
    long = {"from": "2026-01-01", "to": "2026-02-01", "bucket": "hour"}  # 32 days of hours
    assert_error(api.get("/api/reports/activity", indore, params=long), 400, "invalid_range")


def test_rolled_up_and_live_counts_agree(db: Database, sql_conn):
    """The same events counted from the event log (while the rollup is three
    days behind, as if its refresher had stopped) and from the rollup (quarters
    and local days) give the same reports."""
    now = datetime.now(UTC)
    zones = ("UTC", "Asia/Kolkata", "America/St_Johns")  # +05:30, -03:30
    for zone in zones:  # asked for before: their days are rolled up too
        reports.roll_up(db, zone=zone)
    behind = now - timedelta(days=4)
    sql_conn.execute("DELETE FROM event_rollup")
    sql_conn.execute("UPDATE event_rollup_state SET rolled_to = %s WHERE time_zone = ''", (behind,))
    for zone in zones:
        midnight = reports.local_midnight(behind.astimezone(reports.as_zone(zone)).date(), reports.as_zone(zone))
        sql_conn.execute("UPDATE event_rollup_state SET rolled_to = %s WHERE time_zone = %s", (midnight, zone))
    for h in range(60):
        for kind in ("link", "parent_scan"):
            sql_conn.execute(
                "INSERT INTO event (occurred_at, kind, user_id, dispatch_area) VALUES (%s, %s, 1, 'lucknow')",
                (now - timedelta(hours=h, minutes=7 * h), kind),
            )
    first = (now - timedelta(days=4)).date()
    # each zone's own today: from 18:30 UTC, Kolkata's date is already tomorrow's
    last = {zone: now.astimezone(reports.as_zone(zone)).date() for zone in zones}
    live = {
        (zone, bucket): reports.activity_report(db, first, last[zone], zone=zone, bucket=bucket)
        for zone in zones
        for bucket in ("day", "hour")
    }
    reports.roll_up(db)  # quarters up to a few minutes ago, and the days of the zones asked for
    for (zone, bucket), before in live.items():
        after = reports.activity_report(db, first, last[zone], zone=zone, bucket=bucket)
        assert after.buckets == before.buckets and after.by_user == before.by_user, (zone, bucket)
        assert after.totals.links == 60
        assert after.rolled_to is not None and before.rolled_to is not None and after.rolled_to > before.rolled_to


# EXPLAIN ----------------------------------------------------------------------------------------
def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@pytest.mark.parametrize(
    "name",
    [
        "report_bill_totals",
        "report_bill_page",
        "report_activity",
    ],
)
def test_report_queries_never_scan_big_tables_sequentially(db: Database, name):
    """With sequential scans priced out, a plan still holding one on bag, bill
    or event has no index to use (the bench checks the same at 6M rows)."""
    now = datetime.now(UTC)
    params = {
        "start": now - timedelta(days=30),
        "end": now,
        "days_end": now - timedelta(days=1),
        "q_from": now - timedelta(days=1),
        "q_to": now - timedelta(minutes=5),
        "live_from": now - timedelta(minutes=5),
        "tz": "Asia/Kolkata",
        "bucket": "day",
        "area": None,
        "user_id": None,
        "created_by": None,
        "status": None,
        "on": "created",
        "settled": now - timedelta(minutes=5),
        "before_id": None,
        "limit": 101,
    }
    query = db.queries[name]
    with db.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query.sql}", {k: params[k] for k in query.params}).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    seq = [n["Relation Name"] for n in _plan_nodes(plan[0]["Plan"]) if n["Node Type"] == "Seq Scan"]
    assert not set(seq) & {"bag", "bill", "event", "event_rollup"}, seq


# end of day ---------------------------------------------------------------------------------------
def test_end_of_day_in_every_format(api: Api, warehouse, db_url, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tracetrack_ops.cli import cli

    summary = reports.end_of_day(api.db)
    assert [b.bill_no for b in summary.bills] == ["B-1"]
    assert (summary.dispatched.parents, summary.dispatched.children) == (2, 40)
    assert summary.dispatched.difference_kg == -20
    assert [s.username for s in summary.scans] == [warehouse["indore"].username, warehouse["lucknow"].username]
    assert (summary.scans[1].dispatch_area, summary.scans[1].links, summary.scans[1].unlinks) == ("lucknow", 45, 1)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TRACETRACK_TIMEZONE", "Asia/Kolkata")
    runner = CliRunner()
    day = datetime.now(UTC).astimezone(reports.as_zone("Asia/Kolkata")).date().isoformat()
    out = runner.invoke(cli, ["report", "eod", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert (data["day"], data["time_zone"]) == (day, "Asia/Kolkata")
    text = runner.invoke(cli, ["report", "eod", "--date", day])
    assert text.exit_code == 0 and "B-1" in text.output and "Scans per dispatcher" in text.output
    assert "\x1b[" not in text.output  # plain when not a terminal
    table = runner.invoke(cli, ["report", "eod", "--format", "csv"])
    assert table.exit_code == 0 and table.output.startswith(f"day,{day},time_zone,Asia/Kolkata\n")
    assert runner.invoke(cli, ["report", "eod", "--format", "pdf"]).exit_code != 0  # needs --output
    pdf = tmp_path / "eod.pdf"
    made = runner.invoke(cli, ["report", "eod", "--format", "pdf", "--output", str(pdf)])
    assert made.exit_code == 0, made.output
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        extracted = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "B-1" in extracted and warehouse["lucknow"].username in extracted
    bad = runner.invoke(cli, ["report", "eod", "--date", "29-11-2026"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
