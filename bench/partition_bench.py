"""Issue 13 item 1, measured: migration 0021's conversion of an unpartitioned event log
and `tracetrack db archive`, each while two writers insert events (their longest insert is
the writers' stall), and the scan write path and the history query on a partitioned log
against an unpartitioned one (alternating blocks).

    # a database at 0020 (the unpartitioned log), as main's code builds it:
    python bench/partition_bench.py build  URL --bags 6000000
    PYTHONPATH=. python bench/partition_bench.py ab      PARTITIONED_URL PLAIN_URL
    PYTHONPATH=. python bench/partition_bench.py convert URL
    PYTHONPATH=. python bench/partition_bench.py archive URL --before 2026-08 --to DIR

`build` migrates only up to 0020 (`--upto`), then seeds; `convert` applies 0021 statement
by statement as the runner does (no transaction), then the runner for the views.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


class Writers:
    """Threads inserting one event per transaction; (start, seconds) of each insert."""

    def __init__(self, url: str, count: int = 2):
        self.url, self._stop = url, threading.Event()
        self.times: list[tuple[float, float]] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                s = time.monotonic()
                conn.execute(
                    "INSERT INTO event (kind, qr_id, dispatch_area) VALUES ('parent_scan', 'WRITER', 'lucknow')"
                )
                self.times.append((s, time.monotonic() - s))

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        time.sleep(2)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1)
        self._stop.set()
        for t in self._threads:
            t.join()

    def longest(self, start: float, end: float) -> float:
        """The longest insert that overlapped [start, end], in ms."""
        return 1000 * max((d for s, d in self.times if s < end and s + d > start), default=0.0)


def build(url: str, bags: int, upto: int) -> None:
    from tracetrack_db import Database, maintenance, migrations, views
    from tracetrack_ops.seed import seed

    params = conninfo_to_dict(url)
    with psycopg.connect(make_conninfo("", **{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(params["dbname"]))))
    migrations.migrate(url, migrations=[m for m in migrations.discover() if m.version <= upto])
    started = time.monotonic()
    seed(url, bags, seed=42)
    with Database(url, min_size=1, max_size=1) as db:
        maintenance.vacuum_analyze(db)
        views.refresh_views(db)
    print(f"seeded {bags:,} bags in {time.monotonic() - started:.0f} s")


def convert(url: str) -> None:
    from tracetrack_db import migrations

    m = next(m for m in migrations.discover() if m.version == 21)
    steps = []
    with Writers(url) as w, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        start = time.monotonic()
        for statement in migrations.split_statements(m.sql):
            s = time.monotonic()
            conn.execute(statement.encode())
            steps.append((s, time.monotonic(), " ".join(statement.split())[:60]))
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (m.version, m.name, m.checksum),
        )
        took = time.monotonic() - start
        s = time.monotonic()
        migrations.migrate(url)  # the views file built again and swapped in, the privileges
        views_took = time.monotonic() - s
    for s, e, text in steps:
        print(f"{(e - s) * 1000:9.1f} ms  longest insert meanwhile {w.longest(s, e):7.1f} ms  {text}")
    print(f"0021: {took:.1f} s; then the views' rebuild and swap: {views_took:.1f} s")
    lat = sorted(d for _, d in w.times)
    print(
        f"writers: {len(lat)} inserts, p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 "
        f"{lat[int(len(lat) * 0.99)] * 1000:.1f} ms, longest {lat[-1] * 1000:.0f} ms"
    )


def archive(url: str, before: str, directory: Path) -> None:
    from tracetrack_db import partitions

    marks: list[tuple[float, str]] = []
    with Writers(url) as w:
        s = time.monotonic()
        done = partitions.archive(
            url, partitions.parse_month(before), directory, lambda m: marks.append((time.monotonic(), m))
        )
        e = time.monotonic()
    for (t0, m0), (t1, _) in zip(marks, [*marks[1:], (e, "")], strict=True):
        print(f"{(t1 - t0) * 1000:9.1f} ms  longest insert meanwhile {w.longest(t0, t1):7.1f} ms  {m0}")
    for a in done:
        print(f"{a.partition}: {a.rows} rows, {a.file.stat().st_size:,} bytes")
    print(f"archive: {e - s:.1f} s, longest insert {w.longest(s, e):.0f} ms")


def ab(partitioned: str, plain: str, blocks: int, n: int) -> None:
    from tracetrack_db.queries import load

    named = load()
    link, history = named["link_child"].sql, named["bag_history"].sql

    def setup(url: str):
        conn = psycopg.connect(url)

        def one(query: str):
            row = conn.execute(query).fetchone()
            assert row is not None, query
            return row[0]

        parent = one(
            "SELECT qr_id FROM bag WHERE type = 'parent' AND status <> 'completed' AND bill_id IS NULL "
            "ORDER BY id DESC LIMIT 1"
        )
        billed = one(
            "SELECT b.qr_id FROM bag b JOIN bill bl ON bl.id = b.bill_id WHERE bl.status = 'processing' "
            "ORDER BY b.id LIMIT 1"
        )
        user = one("SELECT id FROM app_user ORDER BY id LIMIT 1")
        conn.rollback()
        return conn, parent, billed, user

    dbs = {"partitioned": setup(partitioned), "plain": setup(plain)}
    out: dict[str, dict[str, list[float]]] = {k: {"link_child": [], "bag_history": []} for k in dbs}
    for block in range(blocks):
        order = list(dbs.items()) if block % 2 == 0 else list(reversed(dbs.items()))
        for name, (conn, parent, billed, user) in order:
            times = []
            for i in range(n):
                params = {"user_id": user, "idempotency_key": None, "restrict_area": None}
                s = time.perf_counter()
                conn.execute(link, {**params, "parent_qr": parent, "child_qr": f"AB-{block}-{i}"}).fetchall()
                times.append(time.perf_counter() - s)
                conn.rollback()  # every round the same work on the same data
            out[name]["link_child"].append(statistics.median(times) * 1e6)
            times = []
            for _ in range(max(n // 10, 1)):
                s = time.perf_counter()
                conn.execute(history, {"qr_id": billed, "limit": 10_000, "area": None}).fetchall()
                times.append(time.perf_counter() - s)
                conn.rollback()
            out[name]["bag_history"].append(statistics.median(times) * 1e6)
    for q in ("link_child", "bag_history"):
        p, u = out["partitioned"][q], out["plain"][q]
        ratios = [x / y for x, y in zip(p, u, strict=True)]
        print(
            f"{q}: partitioned {statistics.median(p):.0f} us, plain {statistics.median(u):.0f} us (medians of "
            f"block medians); partitioned/plain per block {[round(r, 2) for r in ratios]}, "
            f"median {statistics.median(ratios):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("url")
    b.add_argument("--bags", type=int, default=6_000_000)
    b.add_argument("--upto", type=int, default=20)
    c = sub.add_parser("convert")
    c.add_argument("url")
    a = sub.add_parser("archive")
    a.add_argument("url")
    a.add_argument("--before", required=True)
    a.add_argument("--to", type=Path, required=True)
    x = sub.add_parser("ab")
    x.add_argument("partitioned")
    x.add_argument("plain")
    x.add_argument("--blocks", type=int, default=6)
    x.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.url, args.bags, args.upto)
    elif args.cmd == "convert":
        convert(args.url)
    elif args.cmd == "archive":
        archive(args.url, args.before, args.to)
    else:
        ab(args.partitioned, args.plain, args.blocks, args.n)


if __name__ == "__main__":
    main()
