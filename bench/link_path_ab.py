"""The scan hot path's SQL before and after issue 12 (bench/RESULTS.md, Issue 12), in
one run on one connection: tt_link_child with 0016's tt_lock_parent (the closed-short
refusal) and 0018's event.device_time default (one current_setting() per event),
against the same with the 0015 tt_lock_parent and no default. Alternating blocks,
each call its own transaction, rolled back. Also GET /api/bags/{qr}'s query (every
bag row now has closed_short_reason).

    python bench/link_path_ab.py postgresql://postgres@127.0.0.1:5432/tt_bench_600k

Point it at a benchmark database: it swaps tt_lock_parent and the column default
(committed) between blocks and puts today's back at the end.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import psycopg

from tracetrack_db import migrations
from tracetrack_db.queries import load

CALLS, BLOCKS = 300, 8


def definition_in(version: int, function: str) -> str:
    """The CREATE statement of `function` in migration `version`, as shipped."""
    migration = next(m for m in migrations.discover() if m.version == version)
    return next(x for x in migrations.split_statements(migration.sql) if f"FUNCTION {function}(" in x)


OLD_LOCK = definition_in(5, "tt_lock_parent")  # as at 0015: 0016 added the closed-short refusal


def first(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    if row is None:
        raise SystemExit(f"nothing in this database for: {query}")
    return row[0]


def main(url: str) -> None:
    detail = load()["get_bag_detail_json"].sql
    times: dict[str, list[float]] = {"link new": [], "link old": [], "bag detail": []}
    with psycopg.connect(url) as conn:
        new_lock = first(conn, "SELECT pg_get_functiondef('tt_lock_parent(text,text)'::regprocedure)")
        default = first(
            conn,
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
            "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
            "WHERE d.adrelid = 'event'::regclass AND a.attname = 'device_time'",
        )
        parent = first(
            conn,
            "SELECT qr_id FROM bag WHERE type = 'parent' AND status = 'in_progress' AND bill_id IS NULL "
            "AND child_count < capacity - 1 ORDER BY id DESC LIMIT 1",
        )
        billed = first(conn, "SELECT qr_id FROM bag WHERE type = 'parent' AND bill_id IS NOT NULL LIMIT 1")
        conn.rollback()

        def switch(variant: str) -> None:
            if variant == "old":
                conn.execute(OLD_LOCK)
                conn.execute("ALTER TABLE event ALTER COLUMN device_time DROP DEFAULT")
            else:
                conn.execute(new_lock)
                conn.execute(f"ALTER TABLE event ALTER COLUMN device_time SET DEFAULT {default}")
            conn.commit()

        n = 0
        try:
            for block in range(BLOCKS):
                for variant in ("new", "old") if block % 2 == 0 else ("old", "new"):
                    switch(variant)
                    start = time.perf_counter()
                    for _ in range(CALLS):
                        n += 1
                        conn.execute("SELECT * FROM tt_link_child(%s, %s, NULL, NULL, NULL)", (parent, f"AB-{n}"))
                        conn.rollback()
                    times[f"link {variant}"].append((time.perf_counter() - start) / CALLS * 1e6)
                start = time.perf_counter()
                for _ in range(CALLS):
                    conn.execute(detail, {"qr_id": billed, "area": None}).fetchone()
                times["bag detail"].append((time.perf_counter() - start) / CALLS * 1e6)
                conn.rollback()
        finally:
            conn.rollback()
            switch("new")
    for name, values in times.items():
        blocks = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:12s} median {statistics.median(values):8.1f} us  blocks: {blocks}")
    ratio = statistics.median(times["link new"]) / statistics.median(times["link old"])
    print(f"tt_link_child new / old, median of blocks: {ratio:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
