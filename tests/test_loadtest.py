"""The locust load test and the deployment check against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tracetrack_ops.loadtest import prepare_accounts

from .test_cli import run
from .test_server import running_server

pytestmark = pytest.mark.server


def test_loadtest_50_users_for_30_seconds_without_failures(db_url, tmp_path):
    env = {"TRACETRACK_LOGIN_ADDRESS_RATE": "1000"}
    with running_server(db_url, env_extra=env) as (base, proc):
        result = run(
            ["loadtest", "--host", base, "--users", "50", "--duration", "30s", "--out", str(tmp_path)]
            + ["--metrics", proc.metrics],
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
    # the server's own count of the run's requests (its histogram, read before and after)
    # agrees with the client's: every request the client saw answered, plus those the users
    # finished while locust stopped (it waits up to 5 s for their tasks; its stats are closed)
    client, server = report["total"]["requests"], report["server"]["requests"]
    assert client <= server <= client * 1.05 + 2 * 50, (client, server)
    assert 0 < report["server"]["p50_ms"] <= report["server"]["p95_ms"] <= report["server"]["p99_ms"]
    assert report["profile"] == "stress" and 0 < report["generator_cpu"] < 2
    assert "server side (its histogram" in result.stdout and "load generator CPU" in result.stdout


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


def test_server_quantiles_from_two_readings_of_its_histogram():
    from tracetrack_ops.loadtest import histogram_quantiles

    before = {0.001: 10.0, 0.005: 10.0, 0.01: 10.0, 0.025: 10.0, float("inf"): 10.0}
    after = {0.001: 10.0, 0.005: 60.0, 0.01: 100.0, 0.025: 109.0, float("inf"): 110.0}
    got = histogram_quantiles(before, after)
    assert got is not None and got["requests"] == 100
    assert got["p50_ms"] == pytest.approx(5.0)  # the 50th of 100 new requests: the 0.005 bucket's top
    assert got["p95_ms"] == pytest.approx(10 + 15 * 5 / 9)  # linear within (10 ms, 25 ms]
    assert got["p99_ms"] == pytest.approx(25.0)  # the 99th: the last request at or below 25 ms
    assert histogram_quantiles(after, after) is None  # no request between the readings
    assert histogram_quantiles(after, before) == {"reset": True}  # a restart between them: no figures
    assert histogram_quantiles(None, None) is None


@pytest.mark.parametrize(
    ("profile", "dispatcher", "biller"), [("stress", (0.2, 0.8), (0.5, 2.0)), ("realistic", (2.0, 5.0), (5.0, 15.0))]
)
def test_the_profiles_pause_as_people_do(profile, dispatcher, biller):
    """In a subprocess: importing locust patches the process with gevent."""
    from tracetrack_ops.loadtest import locustfile

    path = str(locustfile())
    code = (
        f"import runpy, json; m = runpy.run_path({path!r}); "
        "print(json.dumps({k: [m[k].wait_time(None) for _ in range(300)] for k in ('Dispatcher', 'Biller', 'Admin')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TT_PROFILE": profile},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    waits = json.loads(out.stdout.splitlines()[-1])
    assert dispatcher[0] <= min(waits["Dispatcher"]) and max(waits["Dispatcher"]) <= dispatcher[1]
    assert biller[0] <= min(waits["Biller"]) and max(waits["Biller"]) <= biller[1]
    assert biller[0] <= min(waits["Admin"]) or profile == "stress"


def test_a_second_run_reuses_its_accounts(db_url, tmp_path):
    """The accounts of an earlier run are reused as they are: resetting their passwords
    (as runs once did) makes an admin's reset, whose user must choose a new password
    before anything else, and every request of the second run was refused 403."""
    env = {"TRACETRACK_LOGIN_ADDRESS_RATE": "1000"}
    with running_server(db_url, env_extra=env) as (base, proc):
        for attempt in range(2):
            out = tmp_path / str(attempt)
            result = run(
                ["loadtest", "--host", base, "--users", "6", "--duration", "5s", "--out", str(out)]
                + ["--metrics", proc.metrics, "--p95-ms", "60000"],
                {"TRACETRACK_ADMIN_PASSWORD": "tracetrack-demo"},
                timeout=180,
            )
            report = json.loads(next(out.glob("locust-*_report.json")).read_text())
            assert report["total"]["requests"] > 0 and report["total"]["failures"] == 0, result.stdout


def test_steady_leaves_the_ramp_out_of_every_figure(db_url, tmp_path):
    """--steady: locust's statistics, the server's histogram and the generator's CPU all
    start when the last user has started. Started at one user a second, the ramp's
    requests (about a third of the run's here) would show up as the server having
    answered far more than the client counted, were its histogram read at the start."""
    users = 12
    with running_server(db_url, env_extra={"TRACETRACK_LOGIN_ADDRESS_RATE": "1000"}) as (base, proc):
        result = run(
            ["loadtest", "--host", base, "--users", str(users), "--spawn-rate", "1", "--duration", "30s"]
            + ["--steady", "--out", str(tmp_path), "--metrics", proc.metrics, "--p95-ms", "60000"],
            {"TRACETRACK_ADMIN_PASSWORD": "tracetrack-demo"},
            timeout=240,
        )
    report = json.loads(next(tmp_path.glob("locust-*_report.json")).read_text())
    assert report["steady"] and report["total"]["failures"] == 0, result.stdout
    spawned = json.loads(next(tmp_path.glob("locust-*_spawned.json")).read_text())
    assert spawned["users"] == users and spawned["histogram"]
    client, server = report["total"]["requests"], report["server"]["requests"]
    assert 0 < client <= server <= client * 1.05 + 2 * users, (client, server)
    assert 0 < report["generator_cpu"] < 2 and "steady state" in result.stdout


def test_every_simulated_admin_has_an_account_of_its_own(db_url):
    """One export at a time per user: admins sharing accounts were refused their parallel
    exports (429 too_many_exports), counted as failures of a 1,000-user run."""
    with running_server(db_url, env_extra={"TRACETRACK_LOGIN_ADDRESS_RATE": "1000"}) as (base, _proc):
        tokens = prepare_accounts(base, "admin", "tracetrack-demo", 60)
    admins = {account["username"] for account in tokens["admin"]}
    assert len(admins) == len(tokens["admin"]) > 60 // 10  # the locust file's weights: a tenth are admins
