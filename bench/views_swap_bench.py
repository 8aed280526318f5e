"""How long the dashboard's readers wait while `tracetrack db migrate` rebuilds the
views: before issue 10 (the views file re-run in one transaction: DROP and
CREATE under exclusive locks, on every start) and now (re-run only when its
text changed, built beside the live views and swapped in).

    python bench/views_swap_bench.py postgresql://postgres@127.0.0.1:5432/tt_bench_6m

A reader thread reads two views every 10 ms meanwhile; the table gives the
rebuild's wall time and the longest read. Needs a migrated, seeded database
(bench/benchdb.py) and git (the old views file is read from commit cdcfb7b);
leaves the views rebuilt and current.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tracetrack_db import migrations

OLD_VIEWS = "cdcfb7b:sql/views/dashboard.sql"  # the last commit before views were swapped in


def main(url: str) -> None:
    root = Path(__file__).resolve().parent.parent
    old_text = subprocess.run(
        ["git", "-C", str(root), "show", OLD_VIEWS], capture_output=True, text=True, check=True
    ).stdout

    def readers(stop: threading.Event, took: list[float]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT sum(bags) FROM mv_bag_totals").fetchone()
                conn.execute("SELECT count(*) FROM mv_recent_scans").fetchone()
                took.append(time.perf_counter() - started)
                time.sleep(0.01)

    def run(label: str, action: Callable[[], object]) -> None:
        stop, took = threading.Event(), list[float]()
        thread = threading.Thread(target=readers, args=(stop, took))
        thread.start()
        time.sleep(1)
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        time.sleep(0.5)
        stop.set()
        thread.join()
        print(f"| {label} | {wall:.1f} s | {max(took) * 1000:.0f} ms | {len(took)} |")

    def before() -> None:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(old_text.encode())

    def now_changed() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE schema_views SET checksum = 'forced'")  # as if the file had changed
        migrations.migrate(url)

    print("| views rebuild | wall | longest dashboard read meanwhile | reads |")
    print("|---|---|---|---|")
    run("unchanged views file (every start now)", lambda: migrations.migrate(url))
    run("before: the file re-run (DROP + CREATE, one transaction)", before)
    run("now, file changed: built beside, swapped in", now_changed)


if __name__ == "__main__":
    main(sys.argv[1])
