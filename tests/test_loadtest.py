"""The locust load test and the deployment check against the real server."""

from __future__ import annotations

import json

import pytest

from .test_cli import run
from .test_server import running_server

pytestmark = pytest.mark.server


def test_loadtest_50_users_for_30_seconds_without_failures(db_url, tmp_path):
    env = {"TRACETRACK_LOGIN_ADDRESS_RATE": "1000"}
    with running_server(db_url, env_extra=env) as (base, _proc):
        result = run(
            ["loadtest", "--host", base, "--users", "50", "--duration", "30s", "--out", str(tmp_path)],
            {"TRACETRACK_ADMIN_PASSWORD": "tracetrack-demo"},
            timeout=240,
        )
    # behaviour, not timing: every request answered as the contract says (the
    # p95 verdict belongs to the benchmarks, on a machine of known load)
    report = json.loads(next(tmp_path.glob("locust-*_report.json")).read_text())
    assert report["total"]["requests"] > 100 and report["total"]["failures"] == 0, result.stdout
    names = {r["name"] for r in report["rows"]}
    assert {
        "POST /api/scans/child",
        "POST /api/scans/parent",
        "GET /api/dashboard/analytics",
        "POST /api/bills",
    } <= names
    assert report["memory_before"] and report["memory_after"]


def test_loadtest_fails_against_targets_it_cannot_meet(db_url, tmp_path):
    with running_server(db_url) as (base, _proc):
        result = run(
            [
                "loadtest",
                "--host",
                base,
                "--users",
                "5",
                "--duration",
                "5s",
                "--p95-ms",
                "0.001",
                "--out",
                str(tmp_path),
            ],
            {"TRACETRACK_ADMIN_PASSWORD": "tracetrack-demo"},
            timeout=120,
        )
    assert result.returncode == 1 and "FAIL: p95" in result.stdout


def test_loadtest_takes_no_password_on_the_command_line(tmp_path):
    result = run(["loadtest", "--admin-password", "secret-on-the-command-line"], {}, timeout=60)
    assert result.returncode == 2 and "No such option" in result.stderr
    result = run(["loadtest", "--host", "http://127.0.0.1:9"], {"TRACETRACK_ADMIN_PASSWORD": ""}, timeout=60)
    assert result.returncode == 1 and "TRACETRACK_ADMIN_PASSWORD" in result.stderr


def test_verify_checks_a_deployment_end_to_end(db_url, tmp_path):
    result = run(
        ["verify", "--users", "10", "--duration", "5s", "--p95-ms", "60000"],
        {"DATABASE_URL": db_url, "TRACETRACK_VERIFY_OUT": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "PASS: every check passed"
    for step in (
        "migrate",
        "analyze",
        "refresh views",
        "start server",
        "POST /api/scans/child",
        "DELETE /api/bills/{no}",
        "GET /api/bills/{no}/manifest.pdf",
        "GET /api/reports/activity",
        "POST /api/imports (dry run)",
        "GET /api/imports/{id}/results.csv",
        "GET /metrics",
        "load test (10 users, 5s)",
    ):
        assert any(line.startswith("ok") and step in line for line in lines), step
