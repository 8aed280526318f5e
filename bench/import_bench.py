"""Import benchmark: a links file of --rows rows (--children per parent, new
parents and children) sent as one POST /api/imports to a real server, beside
the same kind of links sent one POST /api/scans/child at a time (sequential,
one keep-alive connection), measured in the same run on the same database.

    python bench/import_bench.py --bags 600000 --rows 100000 --runs 2

Each run uses fresh QRs (parents BI<run><n>, children IC-<run>-<n>-<k>), so
the database grows by about --rows + --single bags per run. Also times a dry
run of the same file. Prints a Markdown table; writes
bench/.results/import-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import psutil
import psycopg
from benchdb import BenchServer, label
from http_bench import free_port, login, wait_http

from tracetrack_ops.server import serve_argv

HERE = Path(__file__).resolve().parent
FORMAT = ("BENCH_IMPORT", "^BI[0-9]{9}$", 30, 30)


def links_file(run: int, rows: int, children: int) -> bytes:
    lines = ["parent_qr,child_qr"]
    for i in range(rows):
        n, k = divmod(i, children)
        lines.append(f"BI{run:03d}{n:06d},IC-{run}-{n}-{k}")
    return ("\n".join(lines) + "\n").encode()


def post(conn: http.client.HTTPConnection, path: str, token: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    answer = conn.getresponse()
    return answer.status, answer.read()


def one_at_a_time(port: int, token: str, run: int, links: int, children: int) -> dict:
    """Open the parents (not timed), then send each link as its own request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    parents = (links + children - 1) // children
    for n in range(parents):
        status, _ = post(
            conn,
            "/api/scans/parent",
            token,
            orjson.dumps({"qr_id": f"BI{run + 500:03d}{n:06d}", "dispatch_area": "lucknow"}),
            "application/json",
        )
        assert status in (200, 201), status
    started = time.perf_counter()
    for i in range(links):
        n, k = divmod(i, children)
        body = orjson.dumps({"parent_qr": f"BI{run + 500:03d}{n:06d}", "child_qr": f"ICS-{run}-{n}-{k}"})
        status, text = post(conn, "/api/scans/child", token, body, "application/json")
        assert status == 200, text
    seconds = time.perf_counter() - started
    conn.close()
    return {"links": links, "seconds": seconds, "links_per_second": links / seconds}


def import_once(port: int, token: str, data: bytes, dry_run: bool) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    path = f"/api/imports?layout=links&dispatch_area=lucknow&file_name=bench.csv&dry_run={str(dry_run).lower()}"
    started = time.perf_counter()
    status, text = post(conn, path, token, data, "text/csv")
    seconds = time.perf_counter() - started
    conn.close()
    assert status == 201, text
    job = orjson.loads(text)
    return {"seconds": seconds, "rows": job["rows"], "verdicts": job["verdicts"], "blocks": job["blocks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", type=int, default=600_000, help="size of the seeded database tt_bench_<size>")
    ap.add_argument("--database-url", help="use this seeded database instead of tt_bench_<size>")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--children", type=int, default=30, help="links per parent in the file")
    ap.add_argument("--single", type=int, default=3_000, help="links sent one request at a time")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--import-workers", type=int, default=2, help="TRACETRACK_IMPORT_WORKERS of the server")
    ap.add_argument("--out", default=str(HERE / ".results"))
    args = ap.parse_args()

    server_pg = None
    url = args.database_url
    if not url:
        server_pg = BenchServer()
        server_pg.start()
        url = server_pg.seeded(args.bags)
    try:
        run(args, url)
    finally:
        if server_pg is not None:
            server_pg.stop()


def run(args: argparse.Namespace, url: str) -> None:
    from http_bench import ADMIN, PASSWORD

    from tracetrack_db import Database, users

    with Database(url) as db:
        users.ensure_admin(db, ADMIN, PASSWORD)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING",
            FORMAT,
        )
        bags = conn.execute("SELECT count(*) FROM bag").fetchone()[0]
        first_run = conn.execute("SELECT count(*) FROM import_job WHERE file_name = 'bench.csv'").fetchone()[0]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TRACETRACK_LOGIN_ADDRESS_RATE": "100000",
        "TRACETRACK_IMPORT_WORKERS": str(args.import_workers),
        "TRACETRACK_SECRET_KEY": os.environ.get("TRACETRACK_SECRET_KEY", "bench-secret-0123456789abcdef"),
    }
    server = subprocess.Popen(
        serve_argv(port, "--no-demo", "--metrics-port", "0", "--no-access-log"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    results = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        token = login(f"http://127.0.0.1:{port}")
        for i in range(args.runs):
            run_id = first_run + i + 1
            data = links_file(run_id, args.rows, args.children)
            dry = import_once(port, token, data, dry_run=True)
            real = import_once(port, token, data, dry_run=False)
            again = import_once(port, token, data, dry_run=False)
            single = one_at_a_time(port, token, run_id, args.single, args.children)
            ratio = (args.rows / real["seconds"]) / single["links_per_second"]
            results.append({"dry_run": dry, "import": real, "reimport": again, "single": single, "ratio": ratio})
            print(
                f"run {i + 1}: import {real['seconds']:.1f} s ({args.rows / real['seconds']:,.0f} rows/s, "
                f"{real['blocks']} blocks), dry run {dry['seconds']:.1f} s, re-import {again['seconds']:.1f} s; "
                f"one at a time {single['links_per_second']:,.0f} links/s; import / single {ratio:.0f}x",
                flush=True,
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"import-{label(bags)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    path.write_text(json.dumps({"bags": bags, "machine": machine, "args": vars(args), "runs": results}, indent=2))
    print(f"\n{bags:,} bags before, {machine}, import workers {args.import_workers}; {path}\n")
    print(
        "| run | import s | rows/s | dry run s | re-import s | one POST /api/scans/child at a time, links/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(results, 1):
        print(
            f"| {i} | {r['import']['seconds']:.1f} | {args.rows / r['import']['seconds']:,.0f} "
            f"| {r['dry_run']['seconds']:.1f} | {r['reimport']['seconds']:.1f} "
            f"| {r['single']['links_per_second']:,.0f} | {r['ratio']:.0f}x |"
        )


if __name__ == "__main__":
    main()
