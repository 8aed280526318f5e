"""The site's time zone (TRACETRACK_TIMEZONE): what today, an hour and a day
mean in the dashboard and the reports. Stored times stay UTC; answers are in
the site's zone with its offset.

Events at chosen times are INSERTed as the tables' owner (the service role
cannot write the event log; nothing forbids the owner appending to it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tracetrack_db import Database, reports, views
from tracetrack_db.settings import ConfigError, Settings

from .api_helpers import Api, api_settings, assert_schema

KOLKATA = ZoneInfo("Asia/Kolkata")


def add_event(sql_conn, at: datetime, kind: str = "parent_scan", area: str | None = "lucknow", user_id=None) -> None:
    sql_conn.execute(
        "INSERT INTO event (occurred_at, kind, user_id, qr_id, dispatch_area) VALUES (%s, %s, %s, 'SB09999', %s)",
        (at, kind, user_id, area),
    )


# the setting ------------------------------------------------------------------------
def test_the_zone_is_utc_by_default_and_checked_at_start():
    assert Settings.from_env({}).timezone == "UTC"
    assert Settings.from_env({"TRACETRACK_TIMEZONE": "Asia/Kolkata"}).zone == KOLKATA
    for bad in ("Mars/Olympus", "IST+5", "../../etc/passwd", "Asia/"):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"TRACETRACK_TIMEZONE": bad})
        assert caught.value.name == "TRACETRACK_TIMEZONE"
        assert str(caught.value).startswith("TRACETRACK_TIMEZONE: not a known IANA time zone")


def test_the_command_line_names_a_bad_zone(monkeypatch):
    from click.testing import CliRunner

    from tracetrack_ops.cli import cli

    monkeypatch.setenv("TRACETRACK_TIMEZONE", "Nowhere/Town")
    result = CliRunner().invoke(cli, ["config", "--format", "json"])
    assert "TRACETRACK_TIMEZONE" in result.output and "not a known IANA time zone" in result.output


# the dashboard ------------------------------------------------------------------------
def test_kolkata_hourly_buckets_start_at_local_hours_on_the_half_hour_utc(db: Database, sql_conn):
    now = datetime.now(UTC)
    add_event(sql_conn, now - timedelta(minutes=1))
    views.refresh_views(db)
    board = views.analytics(db, zone="Asia/Kolkata")
    hours = [b.hour for b in board.scans.hourly]
    assert len(hours) == 24 and board.time_zone == "Asia/Kolkata"
    for hour in hours:
        assert hour.utcoffset() == timedelta(hours=5, minutes=30)
        assert (hour.minute, hour.second) == (0, 0)  # xx:00 IST
        assert hour.astimezone(UTC).minute == 30  # xx:30 UTC
    assert [b - a for a, b in zip(hours, hours[1:], strict=False)] == [timedelta(hours=1)] * 23
    assert hours[-1] <= now < hours[-1] + timedelta(hours=1)
    assert board.scans.hourly[-1].scans + board.scans.hourly[-2].scans >= 1  # the minute before now
    assert board.generated_at.utcoffset() == timedelta(hours=5, minutes=30)


def test_nepal_buckets_start_at_a_quarter_past_utc(db: Database):
    board = views.analytics(db, zone="Asia/Kathmandu")
    assert {b.hour.astimezone(UTC).minute for b in board.scans.hourly} == {15}


def test_scans_today_start_at_local_midnight(db: Database, sql_conn):
    now = datetime.now(UTC)
    midnight = reports.local_midnight(now.astimezone(KOLKATA).date(), KOLKATA)
    add_event(sql_conn, midnight + timedelta(minutes=1))  # today in Kolkata (if still ahead, still today)
    add_event(sql_conn, midnight + timedelta(minutes=2), kind="link")
    add_event(sql_conn, midnight - timedelta(minutes=1))  # yesterday in Kolkata
    add_event(sql_conn, midnight - timedelta(minutes=16), kind="unlink")
    views.refresh_views(db)
    assert views.analytics(db, zone=KOLKATA).scans.today == 2
    # in UTC the same four scans fall on the UTC day(s) they happened
    utc_midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    expected = sum(1 for at in (midnight + timedelta(minutes=m) for m in (1, 2, -1, -16)) if at >= utc_midnight)
    assert views.analytics(db, zone="UTC").scans.today == expected


def test_the_service_dashboard_uses_the_configured_zone(db: Database, sql_conn):
    api = Api(db, api_settings(db=Settings(timezone="Asia/Kolkata")))
    admin = api.admin()
    views.refresh_views(db)
    result = api.get("/api/dashboard/analytics", admin)
    assert result.status_code == 200, result.text
    assert_schema(result, "GET", "/api/dashboard/analytics")
    body = result.json
    assert body["time_zone"] == "Asia/Kolkata"
    assert all(b["hour"].endswith(":00:00+05:30") for b in body["scans"]["hourly"])
    assert body["generated_at"].endswith("+05:30")


# the reports -------------------------------------------------------------------------------
def test_a_scan_at_2350_utc_counts_on_the_next_local_day_in_kolkata(db: Database, sql_conn):
    day = date.today() - timedelta(days=10)
    late = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23, minutes=50)
    add_event(sql_conn, late)
    reports.roll_up(db, since=late - timedelta(days=1))  # an event written with a past time: recount
    next_day = day + timedelta(days=1)
    in_kolkata = reports.activity_report(db, day, next_day, zone="Asia/Kolkata")
    assert [(b.start.date(), b.counts.parent_scans) for b in in_kolkata.buckets] == [(day, 0), (next_day, 1)]
    assert in_kolkata.buckets[1].start.isoformat() == f"{next_day}T00:00:00+05:30"
    in_utc = reports.activity_report(db, day, next_day, zone="UTC")
    assert [b.counts.parent_scans for b in in_utc.buckets] == [1, 0]
    hourly = reports.activity_report(db, next_day, next_day, zone="Asia/Kolkata", bucket="hour")
    assert len(hourly.buckets) == 24
    assert [(b.start.hour, b.counts.parent_scans) for b in hourly.buckets if b.counts.parent_scans] == [(5, 1)]


def test_a_bill_created_at_2350_utc_is_on_the_next_local_day_in_kolkata(db: Database, sql_conn):
    from tracetrack_db import bills

    bills.create_bill(db, "TZ-1", 1)
    day = date.today() - timedelta(days=3)
    late = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23, minutes=50)
    sql_conn.execute("UPDATE bill SET created_at = %s WHERE bill_no = 'TZ-1'", (late,))
    next_day = day + timedelta(days=1)
    kolkata = reports.bill_report(db, next_day, next_day, zone="Asia/Kolkata")
    assert [b.bill_no for b in kolkata.bills] == ["TZ-1"] and kolkata.bills[0].day == next_day.isoformat()
    assert kolkata.bills[0].created_at.isoformat() == f"{next_day}T05:20:00+05:30"
    assert kolkata.start.isoformat() == f"{next_day}T00:00:00+05:30"
    assert reports.bill_report(db, day, day, zone="Asia/Kolkata").bills == []
    assert [b.bill_no for b in reports.bill_report(db, day, day, zone="UTC").bills] == ["TZ-1"]
