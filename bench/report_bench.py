"""Report benchmark: the 30-day bill report (JSON and CSV) and the 30-day daily
activity report through the real server (`tracetrack serve`, granian), in the
site's time zone, with a client loop at 1 and N concurrent clients.

    python bench/report_bench.py --database-url postgresql://postgres@127.0.0.1/tt_bench_6m \\
        --timezone Asia/Kolkata --requests 200 --clients 1,4

The database is migrated first (the server does it too). Each endpoint is asked
once before it is timed (a zone's first daily report counts its days once).
Writes bench/.results/reports-<timestamp>.json (git-ignored) and prints a
Markdown table: requests, req/s, p50, p90, p99, max (ms) and answer size.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from tracetrack_db import Database, users, views
from tracetrack_ops.server import serve_argv

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from http_bench import ADMIN, PASSWORD, free_port, wait_http  # noqa: E402 - bench/ is not a package


def endpoints(today: date) -> list[tuple[str, str]]:
    first = (today - timedelta(days=29)).isoformat()
    last = today.isoformat()
    month = f"from={first}&to={last}"
    week = f"from={(today - timedelta(days=6)).isoformat()}&to={last}"
    return [
        ("bills, 30 days (JSON, first page of 100)", f"/api/reports/bills?{month}&limit=100"),
        ("bills, 30 days, on=completed (JSON)", f"/api/reports/bills?{month}&on=completed&limit=100"),
        ("bills, 30 days (CSV, every bill)", f"/api/reports/bills.csv?{month}"),
        ("activity, 30 days, bucket=day", f"/api/reports/activity?{month}&bucket=day"),
        ("activity, 30 days, bucket=day, one area", f"/api/reports/activity?{month}&bucket=day&dispatch_area=lucknow"),
        ("activity, 7 days, bucket=hour", f"/api/reports/activity?{week}&bucket=hour"),
    ]


def login(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/api/auth/login",
        json.dumps({"username": ADMIN, "password": PASSWORD}),
        {"Content-Type": "application/json"},
    )
    return json.loads(conn.getresponse().read())["token"]


def client(port: int, token: str, path: str, count: int, out: list[float], sizes: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # keep-alive, like a dashboard
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        out.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"{path}: {response.status} {body[:300]!r}")
        sizes.append(len(body))
    conn.close()


def measure(port: int, token: str, path: str, requests: int, clients: int) -> dict:
    latencies: list[float] = []
    sizes: list[int] = []
    per_client = max(1, requests // clients)
    threads = [
        threading.Thread(target=client, args=(port, token, path, per_client, latencies, sizes)) for _ in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p / 100 * len(latencies))) - 1)]

    return {
        "requests": len(latencies),
        "clients": clients,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1],
        "bytes": statistics.median(sizes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="a seeded database (the owner)")
    ap.add_argument("--timezone", default="Asia/Kolkata")
    ap.add_argument("--requests", type=int, default=200, help="per endpoint and client count")
    ap.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--out", default=str(HERE / ".results"))
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a seeded database")
    from tracetrack_db import migrations

    migrations.migrate(args.database_url)
    with Database(args.database_url, min_size=1, max_size=1, timeout=30) as db:
        users.ensure_admin(db, ADMIN, PASSWORD)
        refresh = views.refresh_views(db)  # the views and the rollup, timed (the refresher does this every 30 s)
    with psycopg.connect(args.database_url) as conn:
        counted = conn.execute(
            "SELECT (SELECT count(*) FROM bag), (SELECT count(*) FROM event), (SELECT count(*) FROM bill)"
        ).fetchone()
    assert counted is not None
    bags, events, bills = counted
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "TRACETRACK_TIMEZONE": args.timezone,
        "TRACETRACK_LOGIN_ADDRESS_RATE": "100000",
        "TRACETRACK_ACCESS_LOG": "0",
        "TRACETRACK_SECRET_KEY": os.environ.get("TRACETRACK_SECRET_KEY", "bench-secret-0123456789abcdef"),
    }
    serve = serve_argv(port, "--no-demo", "--metrics-port", "0", workers=args.workers)
    server_log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=server_log, start_new_session=True)
    today = datetime.now(ZoneInfo(args.timezone)).date()
    results: dict = {
        "bags": bags,
        "events": events,
        "bills": bills,
        "machine": f"{os.cpu_count()} cores",
        "time_zone": args.timezone,
        "command": " ".join(sys.argv),
        "refresh_ms": refresh,
        "runs": [],
    }
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        token = login(port)
        for name, path in endpoints(today):
            first = measure(port, token, path, 1, 1)  # once: a zone's first daily report counts its days
            measure(port, token, path, 10, 1)  # warm-up: prepared statements in every worker
            for clients in (int(c) for c in args.clients.split(",")):
                run = measure(port, token, path, args.requests, clients)
                results["runs"].append({"endpoint": name, "path": path, "first_ms": first["max_ms"], **run})
                print(f"{name}: {clients} clients p50 {run['p50_ms']:.1f} p99 {run['p99_ms']:.1f} ms", file=sys.stderr)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / f"reports-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved.write_text(json.dumps(results, indent=2, default=str))
    print(f"{bags:,} bags, {events:,} events, {bills:,} bills; {os.cpu_count()} cores; zone {args.timezone}")
    print(f"results in {saved}\n")
    print("| report | clients | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | answer bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(
            f"| {r['endpoint']} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['bytes']:,.0f} |"
        )
    print("\nrefresh (views and rollup), ms: " + ", ".join(f"{k} {v:.0f}" for k, v in (refresh or {}).items()))


if __name__ == "__main__":
    main()
