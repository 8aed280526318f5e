"""Where the benchmarks' databases live, shared by bench/conftest.py and the scripts.

The server (a maintenance URL on which the benchmarks may CREATE DATABASE):

1. `TRACETRACK_BENCH_SERVER_URL`, else `TRACETRACK_TEST_DATABASE_URL` (the tests' server);
2. else the embedded PostgreSQL of `tracetrack_db.embedded` (the `pgserver` wheel, as the
   tests use), its data kept under `$XDG_CACHE_HOME/tracetrack-bench` (default
   `~/.cache/tracetrack-bench`) so a seeded database survives between runs.

On that server one database per size, `tt_bench_<label>` (`tt_bench_600k`, `tt_bench_6m`;
`TRACETRACK_BENCH_DBNAME` names another, for a branch's own data beside the shared ones),
migrated, seeded once with `tracetrack_ops.seed.seed(..., seed=42)`, vacuumed and its
views refreshed, then reused. A database that holds another number of bags is refused
(drop it to reseed). PostgreSQL 13 or later, as the README promises.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MIN_SERVER_VERSION = 130000
NEEDS = (
    "the benchmarks need a PostgreSQL 13+ server on which they may CREATE DATABASE: set "
    "TRACETRACK_BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres (a maintenance URL), "
    "or install the embedded server with pip install -e '.[server]'"
)


def label(bags: int) -> str:
    """600000 -> '600k', 6000000 -> '6m': the data size in database and baseline names."""
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if bags >= size and bags % size == 0:
            return f"{bags // size}{unit}"
    return str(bags)


def with_dbname(url: str, dbname: str) -> str:
    return make_conninfo("", **{**conninfo_to_dict(url), "dbname": dbname})


class BenchServer:
    """The server the benchmark databases live on; `stop()` ends an embedded one."""

    def __init__(self, url: str | None = None):
        self.url = (
            url or os.environ.get("TRACETRACK_BENCH_SERVER_URL") or os.environ.get("TRACETRACK_TEST_DATABASE_URL")
        )
        self.embedded: Any = None  # an EmbeddedPostgres once started
        self.version = 0

    def start(self) -> str:
        if not self.url:
            from tracetrack_db.embedded import EmbeddedPostgres
            from tracetrack_db.errors import DatabaseUnavailable

            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tracetrack-bench"
            self.embedded = EmbeddedPostgres(cache)
            try:
                self.url = self.embedded.start()
            except DatabaseUnavailable as exc:
                raise SystemExit(f"{exc}\n{NEEDS}") from None
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                self.version = conn.info.server_version
        except psycopg.OperationalError as exc:
            raise SystemExit(f"cannot reach the benchmark server: {str(exc).strip()}\n{NEEDS}") from None
        if self.version < MIN_SERVER_VERSION:
            raise SystemExit(f"PostgreSQL {self.version // 10000} is too old: {NEEDS}")
        return self.url

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    def __enter__(self) -> BenchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seeded(self, bags: int, *, name: str | None = None, log=print) -> str:
        """The URL of `name` (default `tt_bench_<label>`), created, migrated and seeded on first use."""
        from tracetrack_db import Database, maintenance, migrations, views
        from tracetrack_ops.seed import seed

        assert self.url, "start() first"
        name = name or os.environ.get("TRACETRACK_BENCH_DBNAME") or f"tt_bench_{label(bags)}"
        url = with_dbname(self.url, name)
        with psycopg.connect(self.url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        migrations.migrate(url)
        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT count(*) FROM bag").fetchone()[0]
        if have == 0:
            log(f"seeding {name} with {bags:,} bags (once; about 35 s per million on 2 cores) ...")
            started = time.monotonic()
            seed(url, bags, seed=42)
            with Database(url, min_size=1, max_size=1) as db:
                maintenance.vacuum_analyze(db)
                views.refresh_views(db)
            log(f"seeded {name} in {time.monotonic() - started:.0f} s")
        elif have < bags:  # more is fine: the HTTP benchmarks add their own rows
            raise SystemExit(
                f"{name} holds {have:,} bags, fewer than {bags:,}: drop it to reseed (DROP DATABASE {name})"
            )
        return url


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Create and seed a benchmark database once; print its URL.")
    ap.add_argument("--bags", type=int, default=600_000)
    ap.add_argument("--server-url", help="maintenance URL (default: see the module docstring)")
    ap.add_argument("--name", help="the database's name (default tt_bench_<label>: 600k, 6m)")
    args = ap.parse_args()
    server = BenchServer(args.server_url)
    server.start()
    try:
        print(server.seeded(args.bags, name=args.name))
    finally:
        server.stop()
