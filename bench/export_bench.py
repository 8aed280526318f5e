"""Export throughput: GET /api/exports/bags.csv of every bag through the real
server, beside `COPY (the same SELECT) TO STDOUT` in psql into /dev/null (the
floor: what PostgreSQL alone needs to produce the CSV).

    python bench/export_bench.py --bags 6000000              # tt_bench_6m, seeded once (see benchdb.py)
    python bench/export_bench.py --database-url postgresql://…/db --runs 3 --check

The server is `tracetrack serve --no-demo` (granian, default workers and threads),
started as bench/http_bench.py does; the client is curl writing to /dev/null, so
it costs next to nothing. The server's memory is sampled from /proc (psutil)
every 0.1 s over the process tree: its RSS before the export, its largest RSS
during it, and the kernel's own peak (VmHWM) per process. `--check` compares the
SHA-256 of the HTTP body with psql's output once (not timed).

Prints a Markdown table; writes bench/.results/export-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchdb import BenchServer, label  # noqa: E402
from http_bench import ADMIN, PASSWORD, free_port, login, wait_http  # noqa: E402

from tracetrack_ops.server import serve_argv  # noqa: E402

ROUTE = "/api/exports/bags.csv"
GOAL_ROWS_PER_S, GOAL_FLOOR_SHARE = 300_000, 0.70


def export_select(url: str) -> str:
    """The exact SELECT the endpoint copies for an admin with no filters."""
    from tracetrack_db import exports

    query, params = exports.bags_query()
    assert not params, params
    with psycopg.connect(url) as conn:
        return query.as_string(conn)


def psql_floor(url: str, select: str) -> dict:
    copy = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", copy]
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(cmd, stdout=devnull, check=True)
    return {
        "seconds": time.perf_counter() - started,
        "command": 'psql -X -q -d <url> -c "COPY (<exports.bags_query()>) TO STDOUT WITH (FORMAT csv, HEADER)" '
        "> /dev/null",
    }


class MemorySampler(threading.Thread):
    """RSS of the server's process tree (the granian master and its workers), every `every` s."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def tree(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def rss(self) -> int:
        total = 0
        for p in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def hwm(self) -> dict[int, int]:
        """VmHWM (peak resident set since the process started) per process, bytes."""
        out = {}
        for p in self.tree():
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        out[p.pid] = int(line.split()[1]) * 1024
            except (OSError, psutil.NoSuchProcess):
                pass
        return out

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def http_export(base: str, token: str, sampler: MemorySampler) -> dict:
    cmd = [
        "curl",
        "-sS",
        "--fail",
        "-o",
        os.devnull,
        "-H",
        f"Authorization: Bearer {token}",
        "-w",
        "%{http_code} %{size_download} %{time_starttransfer} %{time_total}",
        base + ROUTE,
    ]
    before = sampler.rss()
    start = len(sampler.samples)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    during = [rss for _, rss in sampler.samples[start:]] or [before]
    status, size, first, total = int(out[0]), int(out[1]), float(out[2]), float(out[3])
    if status != 200:
        raise SystemExit(f"GET {ROUTE} answered {status}")
    return {
        "seconds": total,
        "first_byte_s": first,
        "bytes": size,
        "rss_before": before,
        "rss_max_during": max(during),
        "rss_after": sampler.rss(),
        "command": f"curl -sS --fail -o /dev/null -H 'Authorization: Bearer …' {ROUTE}",
    }


def sha256_of(cmd: list[str]) -> str:
    h = hashlib.sha256()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        while chunk := proc.stdout.read(1 << 20):
            h.update(chunk)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode})")
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", type=int, default=6_000_000, help="size of the seeded database tt_bench_<size>")
    ap.add_argument("--database-url", help="use this seeded database instead of tt_bench_<size>")
    ap.add_argument("--server-url", help="maintenance URL of the server for tt_bench_<size> (see benchdb.py)")
    ap.add_argument("--runs", type=int, default=1, help="pairs of (psql floor, HTTP export), alternating")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--check", action="store_true", help="also compare the HTTP body with psql's (one more pass)")
    ap.add_argument("--out", default=str(HERE / ".results"))
    args = ap.parse_args()
    if not shutil.which("psql") or not shutil.which("curl"):
        raise SystemExit("needs psql (postgresql-client) and curl on PATH")

    server_pg = None
    url = args.database_url
    if not url:
        server_pg = BenchServer(args.server_url)
        server_pg.start()
        url = server_pg.seeded(args.bags)
    try:
        run(args, url)
    finally:
        if server_pg is not None:
            server_pg.stop()


def run(args: argparse.Namespace, url: str) -> None:
    from tracetrack_db import Database, users

    with Database(url) as db:
        users.ensure_admin(db, ADMIN, PASSWORD)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM bag_row").fetchone()[0]  # what the export writes
        version = conn.execute("SHOW server_version").fetchone()[0]
    select = export_select(url)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TRACETRACK_LOGIN_ADDRESS_RATE": "100000",
        "TRACETRACK_SECRET_KEY": os.environ.get("TRACETRACK_SECRET_KEY", "bench-secret-0123456789abcdef"),
    }
    serve = serve_argv(port, "--no-demo", "--metrics-port", "0", workers=args.workers, threads=args.threads)
    server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    result: dict = {
        "bags": rows,
        "postgresql": version,
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "route": ROUTE,
        "select": select,
        "runs": [],
    }
    try:
        wait_http(base + "/health")
        token = login(base)
        sampler = MemorySampler(server.pid)
        sampler.start()
        result["rss_idle"] = sampler.rss()
        for i in range(args.runs):
            floor = psql_floor(url, select)
            http = http_export(base, token, sampler)
            result["runs"].append({"floor": floor, "http": http})
            print(
                f"run {i + 1}: psql {rows / floor['seconds']:,.0f} rows/s, HTTP {rows / http['seconds']:,.0f} "
                f"rows/s ({floor['seconds'] / http['seconds']:.0%} of the floor), server RSS "
                f"{http['rss_before'] / 2**20:.0f} -> max {http['rss_max_during'] / 2**20:.0f} MiB",
                flush=True,
            )
        sampler.stop()
        result["vmhwm"] = {str(k): v for k, v in sampler.hwm().items()}
        if args.check:
            a = sha256_of(["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {token}", base + ROUTE])
            b = sha256_of(["psql", "-X", "-q", "-d", url, "-c", f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"])
            result["identical_to_psql"] = a == b
            print(f"HTTP body {'==' if a == b else '!='} psql output (sha256 {a[:16]}…)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"export-{label(rows)}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    runs = result["runs"]
    share = sorted(r["floor"]["seconds"] / r["http"]["seconds"] for r in runs)[(len(runs) - 1) // 2]
    http_s = sorted(r["http"]["seconds"] for r in runs)[(len(runs) - 1) // 2]
    floor_s = sorted(r["floor"]["seconds"] for r in runs)[(len(runs) - 1) // 2]
    peak_rss = max(r["http"]["rss_max_during"] for r in runs)
    size = runs[0]["http"]["bytes"]
    print(f"\n{rows:,} bags, PostgreSQL {version}, {result['machine']}; {path}\n")
    print(
        "| run | psql COPY > /dev/null (floor) s | rows/s | GET bags.csv s | rows/s | vs floor "
        "| server RSS before → peak during |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        f, h = r["floor"]["seconds"], r["http"]["seconds"]
        print(
            f"| {i} | {f:.2f} | {rows / f:,.0f} | {h:.2f} | {rows / h:,.0f} | {f / h:.0%} "
            f"| {r['http']['rss_before'] / 2**20:.0f} → {r['http']['rss_max_during'] / 2**20:.0f} MiB |"
        )
    print(
        f"| median | {floor_s:.2f} | {rows / floor_s:,.0f} | {http_s:.2f} | {rows / http_s:,.0f} | {share:.0%} "
        f"| idle {result['rss_idle'] / 2**20:.0f}, peak {peak_rss / 2**20:.0f} MiB |"
    )
    print(
        f"\nbody {size:,} bytes ({size / http_s / 1e6:,.0f} MB/s over HTTP); "
        "VmHWM per server process (MiB): " + ", ".join(f"{v / 2**20:.0f}" for v in result["vmhwm"].values())
    )
    ok = rows / http_s >= GOAL_ROWS_PER_S and share >= GOAL_FLOOR_SHARE
    verdict = "met" if ok else "NOT met"
    print(f"goal (≥ {GOAL_ROWS_PER_S:,} rows/s and ≥ {GOAL_FLOOR_SHARE:.0%} of the floor): {verdict}")


if __name__ == "__main__":
    main()
