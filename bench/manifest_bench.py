"""Manifest speed: a full bill (500 parents of 30 children: 15,000 child QRs)
as JSON, CSV and PDF, from the library and through the app.

    python bench/manifest_bench.py                       # 500 x 30 in tt_bench_manifest, 30 runs each
    python bench/manifest_bench.py --bags 600000             # beside 600k seeded bags (tt_bench_manifest_600k)
    python bench/manifest_bench.py --bags 6000000 --show-plan

The server is found as for the other benchmarks (bench/benchdb.py:
TRACETRACK_BENCH_SERVER_URL, else TRACETRACK_TEST_DATABASE_URL, else the
embedded PostgreSQL). The benchmark's own database, `tt_bench_manifest`
(`tt_bench_manifest_<size>` with --bags: the bill's parents and children
among that many seeded bags), is created and migrated on first use (with
--bags, copied from the shared tt_bench_<size> when that exists, else seeded
alike) and its bill `BENCH/2026/500` built once through the library (the
same SQL functions as scans); later runs reuse it. The shared
tt_bench_<size> databases are never written to.

Measured, each `--runs` times after one warm-up, on one thread:
- `query`: tracetrack_db.manifests.manifest() (the statement, its 15,000 QRs,
  the row objects);
- `csv`, `pdf`: rendering an already read manifest (pure Python);
- `GET .../manifest`, `.csv`, `.pdf`: through the Falcon app in this process
  (routing, token check, handler, JSON serialisation; no socket);
and the statement's plan (EXPLAIN ANALYZE): it must use bag_bill_id_idx and
bag_parent_id_idx, else the script fails. `--max-ms` (default 500) fails the
run when the median of GET .../manifest.pdf is slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchdb import BenchServer, label, with_dbname  # noqa: E402

from tracetrack_api.app import create_app  # noqa: E402
from tracetrack_api.config import ApiSettings  # noqa: E402
from tracetrack_db import Database, Settings, bills, errors, maintenance, migrations, queries, scans, users  # noqa: E402
from tracetrack_db.manifest_pdf import manifest_pdf  # noqa: E402
from tracetrack_db.manifests import manifest, manifest_csv  # noqa: E402

BILL = "BENCH/2026/500"
USER, PASSWORD = "manifest-bench", "manifest-bench-password-1"
INDEXES = ("bag_bill_id_idx", "bag_parent_id_idx")


def database(server: BenchServer, bags: int) -> str:
    """The benchmark's own database: created and migrated once; with `bags`,
    a copy of the shared tt_bench_<size> when that exists (CREATE DATABASE ...
    TEMPLATE: minutes less than seeding again), else seeded the same way."""
    assert server.url
    name = f"tt_bench_manifest_{label(bags)}" if bags else "tt_bench_manifest"
    url = with_dbname(server.url, name)
    with psycopg.connect(server.url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            shared = f"tt_bench_{label(bags)}"
            if bags and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (shared,)).fetchone():
                print(f"copying {shared} to {name} (once) ...", flush=True)
                copy_database(conn, shared, name)
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrations.migrate(url)
    if bags:
        with psycopg.connect(url) as conn:
            some = conn.execute("SELECT 1 FROM bag LIMIT 1").fetchone()
        if some is None:
            from tracetrack_ops.seed import seed

            print(f"seeding {name} with {bags:,} bags (once) ...", flush=True)
            seed(url, bags, seed=42)
    return url


def copy_database(conn: psycopg.Connection, template: str, name: str, attempts: int = 60) -> None:
    """CREATE DATABASE name TEMPLATE template, waiting (up to a minute) while
    another session is connected to the template (PostgreSQL refuses then)."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    for attempt in range(attempts):
        try:
            conn.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def build_bill(db: Database, url: str, parents: int, children: int) -> None:
    """The bill, full and completed, unless a run before built it. Its parents
    are of a format of their own (MFB-#####), so they never meet a seeded QR."""
    try:
        bills.get_bill(db, BILL)
        return
    except errors.BillNotFound:
        pass
    print(f"building {BILL}: {parents} parents x {children} children (once) ...", flush=True)
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg) "
            "VALUES ('manifest_bench', '^MFB-[0-9]{5}$', %s, %s) ON CONFLICT DO NOTHING",
            (children, children),
        )
    admin = users.find_user(db, USER) or users.ensure_admin(db, USER, PASSWORD)
    assert admin is not None
    bills.create_bill(
        db, BILL, parents, destination="Raipur mandi, gate 2", vehicle_number="CG04 AB 1234", user_id=admin.id
    )
    for i in range(parents):
        qr = f"MFB-{i:05d}"
        scans.open_parent(db, qr, dispatch_area="raipur", user_id=admin.id)
        scans.link_children(db, qr, [f"MFB{i:05d}-{j:02d}" for j in range(children)], user_id=admin.id)
        bills.add_parent(db, BILL, qr, user_id=admin.id)
    bills.complete_bill(db, BILL, user_id=admin.id)
    maintenance.vacuum_analyze(db)
    print(f"built in {time.monotonic() - started:.1f} s", flush=True)


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    action()  # warm-up: prepared statements, imports, caches
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        out.append((time.perf_counter() - started) * 1000)
    return out


def plan(url: str) -> tuple[str, float]:
    """The manifest statement's plan (EXPLAIN ANALYZE) and its execution time in ms."""
    statement = queries.load()["manifest"].sql
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + sql.SQL(statement), {"bill_no": BILL}).fetchall()
    text = "\n".join(r[0] for r in rows)
    execution = float(text.rsplit("Execution Time:", 1)[1].split()[0])
    return text, execution


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", type=int, default=0, help="seeded bags beside the bill (0: the bill's own only)")
    ap.add_argument("--parents", type=int, default=500)
    ap.add_argument("--children", type=int, default=30)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--max-ms", type=float, default=500.0, help="fail above this median for GET manifest.pdf")
    ap.add_argument("--show-plan", action="store_true")
    args = ap.parse_args()

    with BenchServer() as server:
        url = database(server, args.bags)
        with Database(url, min_size=1, max_size=2, timeout=30) as db:
            build_bill(db, url, args.parents, args.children)
            m = manifest(db, BILL)
            assert (m.totals.parents, m.totals.children) == (args.parents, args.parents * args.children), m.totals
            bags_total = db.run_sql(sql.SQL("SELECT count(*) AS n FROM bag"), row=dict)[0]["n"]
            pdf = manifest_pdf(m)
            pages = pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page")

            text, execution = plan(url)
            missing = [index for index in INDEXES if index not in text]
            if args.show_plan or missing:
                print(text)
            if missing:
                print(f"the manifest statement does not use {missing}", file=sys.stderr)
                return 1

            app = create_app(db, ApiSettings(db=Settings(), secret_key="manifest-bench-secret-key-0123456789"))
            client = falcon.testing.TestClient(app)
            token = client.simulate_post("/api/auth/login", json={"username": USER, "password": PASSWORD}).json
            headers = {"Authorization": f"Bearer {token['token']}"}
            path = "/api/bills/" + BILL.replace("/", "%2F") + "/manifest"

            def get(suffix: str) -> Callable[[], Any]:
                def call() -> None:
                    result = client.simulate_get(path + suffix, headers=headers)
                    assert result.status_code == 200, result.text

                return call

            results = {
                "query: manifest()": timed(lambda: manifest(db, BILL), args.runs),
                "csv: manifest_csv()": timed(lambda: manifest_csv(m), args.runs),
                "pdf: manifest_pdf()": timed(lambda: manifest_pdf(m), args.runs),
                "GET .../manifest (JSON)": timed(get(""), args.runs),
                "GET .../manifest.csv": timed(get(".csv"), args.runs),
                "GET .../manifest.pdf": timed(get(".pdf"), args.runs),
            }

    print()
    print(
        f"{args.parents} parents x {args.children} children on one bill, {bags_total:,} bags in the database; "
        f"{args.runs} runs each after a warm-up; {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    print(
        f"PDF: {len(pdf):,} bytes, {pages} pages; the statement alone (EXPLAIN ANALYZE): {execution:.1f} ms, "
        f"{'with' if 'JIT:' in text else 'no'} JIT, indexes used: {', '.join(INDEXES)}"
    )
    print()
    print("| what | median ms | p95 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, times in results.items():
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} | {times[0]:.1f} | {times[-1]:.1f} |")
    median_pdf = statistics.median(results["GET .../manifest.pdf"])
    if median_pdf > args.max_ms:
        print(f"GET manifest.pdf took {median_pdf:.0f} ms (median), over --max-ms {args.max_ms:.0f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
