"""HTTP benchmark: GET /api/bags/{qr} and POST /api/scans/child with wrk at
several connection counts, beside a bare psycopg loop running the same query
with no HTTP, measured in the same run.

    tracetrack db seed --bags 600000            # DATABASE_URL set
    python bench/http_bench.py --connections 64,256 --duration 20
    python bench/http_bench.py --pgbouncer --connections 64 --rounds 3   # with and without PgBouncer

--pgbouncer starts a PgBouncer (Debian's, transaction pooling; tests/pgbouncer.py)
in front of the database's server and runs, alternating in each round, the
server connected directly (psycopg's prepared statements as configured, then
with TRACETRACK_PREPARE_THRESHOLD=none) and through PgBouncer (none: 1.18 has no
protocol-level prepared statements; the user-change listener connects directly).

Writes bench/.results/http-<timestamp>.json (git-ignored) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

from tracetrack_ops.server import serve_argv

HERE = Path(__file__).resolve().parent
ADMIN, PASSWORD = "bench-admin", "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str, parents: int) -> list[str]:
    """A bench admin, `parents` empty BW parents for the write tests, and a QR sample
    (BW parents already used by an earlier run are simply filled further)."""
    from tracetrack_db import Database, users

    with Database(url) as db:
        users.ensure_admin(db, ADMIN, PASSWORD)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""INSERT INTO parent_format (name, pattern, capacity, expected_weight_kg)
                        VALUES ('BENCH', '^BW[0-9]{6}$', 30, 30) ON CONFLICT (name) DO NOTHING""")
        conn.execute(
            """INSERT INTO bag (qr_id, type, dispatch_area, capacity, expected_weight_kg)
                        SELECT 'BW' || lpad(n::text, 6, '0'), 'parent', 'lucknow', 30, 30
                        FROM generate_series(0, %s - 1) n ON CONFLICT (qr_id) DO NOTHING""",
            (parents,),
        )
        total = conn.execute("SELECT max(id) FROM bag").fetchone()[0]
        rnd = random.Random(7)
        ids = [rnd.randint(1, total) for _ in range(20000)]
        rows = conn.execute("SELECT qr_id FROM bag WHERE id = ANY(%s) AND qr_id NOT LIKE 'BW%%'", (ids,)).fetchall()
        conn.execute("ANALYZE bag")
    return [r[0] for r in rows]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise SystemExit(f"server at {url} did not start")


def login(base: str) -> str:
    req = urllib.request.Request(
        base + "/api/auth/login",
        method="POST",
        data=json.dumps({"username": ADMIN, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(req).read())["token"]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * _UNITS[unit]

    pct = dict(re.findall(r"^\s+(50|75|90|99)(?:\.\d+)?%\s+(\S+)", out, re.M))
    extra = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms(pct["50"]),
        "p90_ms": ms(pct["90"]),
        "p99_ms": ms(pct["99"]),
        **extra,
    }


def run_wrk(script: str, base: str, path: str, conns: int, duration: int, env: dict) -> dict:
    cmd = [
        "wrk",
        "-t2",
        f"-c{conns}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk" / script),
        base + path,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True).stdout
    return {"command": " ".join(cmd[:-1] + [path]), **parse_wrk(out)}


def _read_params(qrs: list[str], n: int, rnd: random.Random, first_parent: int) -> dict:
    return {"qr_id": rnd.choice(qrs), "area": None}


def _write_params(qrs: list[str], n: int, rnd: random.Random, first_parent: int) -> dict:
    return {
        "parent_qr": f"BW{first_parent + n % 10000:06d}",
        "child_qr": f"BARE{os.getpid()}-{n}",
        "user_id": None,
        "restrict_area": None,
        "idempotency_key": None,
    }


def _bare_worker(url: str, query: str, make_params, qrs: list[str], first_parent: int, seconds: float, queue) -> None:
    from tracetrack_db.queries import load

    sql = load()[query].sql
    lat = []
    rnd = random.Random(os.getpid())
    try:
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
            n = 0
            end = time.perf_counter() + seconds
            while (now := time.perf_counter()) < end:
                conn.execute(sql, make_params(qrs, n, rnd, first_parent)).fetchall()
                lat.append(time.perf_counter() - now)
                n += 1
    finally:
        queue.put(lat)  # the parent waits for every worker, even one that failed


def bare_loop(url: str, query: str, qrs: list[str], first_parent: int, seconds: float, processes: int) -> dict:
    """The endpoint's own statement in a loop with no HTTP, one connection per process."""
    make_params = _write_params if query == "link_child" else _read_params
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=_bare_worker, args=(url, query, make_params, qrs, first_parent + i * 10000, seconds, queue)
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    lat = sorted(x for _ in procs for x in queue.get())
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs) or not lat:
        raise SystemExit(f"the bare {query} loop failed (see the traceback above)")
    return {
        "command": f"bare psycopg loop, {processes} processes, query {query}",
        "rps": len(lat) / seconds,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
        "requests": len(lat),
    }


def measure(
    args: argparse.Namespace, env: dict, qr_file: Path, c: int, per_thread: int, offset: int, run_id: str
) -> tuple[dict, dict]:
    """Start the server with `env`, run GET /api/bags/{qr} then POST /api/scans/child
    at `c` connections for args.duration seconds each, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(env)
    if args.server == "granian":
        serve = serve_argv(port, "--no-demo", "--metrics-port", "0", workers=args.workers, threads=args.threads)
    else:
        serve = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(HERE.parent / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
        ]
        env["TRACETRACK_WORKER_CLASS"] = args.server.split("-")[1]
        env["TRACETRACK_METRICS_BIND"] = f"127.0.0.1:{free_port()}"
        if args.workers:
            env["WEB_CONCURRENCY"] = str(args.workers)
        if args.threads:
            env["TRACETRACK_THREADS"] = str(args.threads)
    # the server's log (an access line per request) to a file: a pipe nobody reads fills and stalls it
    server_log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's whole life, closed below
    server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=server_log, start_new_session=True)
    try:
        wait_http(base + "/health")
        token = login(base)
        run_env = {"TT_TOKEN": token, "QR_FILE": str(qr_file), "PARENTS_PER_THREAD": str(per_thread)}
        run_wrk("get_bag.lua", base, "/api/bags/X", 16, 3, run_env)  # warm-up: prepare statements
        get = run_wrk("get_bag.lua", base, "/api/bags/{qr}", c, args.duration, run_env)
        post = run_wrk(
            "post_child.lua",
            base,
            "/api/scans/child",
            c,
            args.duration,
            {**run_env, "RUN_ID": run_id, "PARENT_OFFSET": str(offset)},
        )
        return get, post
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        server_log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="what the server and the bare loops connect as (a service role, see README Security)",
    )
    ap.add_argument(
        "--owner-url",
        default=os.environ.get("TRACETRACK_OWNER_URL"),
        help="the tables' owner, for the setup (bench parents and a parent format); default: --database-url",
    )
    ap.add_argument("--connections", default="64,256")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--bare-processes", type=int, default=2)
    ap.add_argument(
        "--server",
        choices=["granian", "gunicorn-gthread", "gunicorn-gevent"],
        default="granian",
        help="granian: `tracetrack serve`; gunicorn-*: deploy/gunicorn.conf.py",
    )
    ap.add_argument(
        "--pgbouncer",
        action="store_true",
        help="also through a PgBouncer started here (transaction pooling), alternating with direct runs",
    )
    ap.add_argument("--pgbouncer-pool", type=int, default=20, help="PgBouncer's default_pool_size")
    ap.add_argument("--rounds", type=int, default=1, help="with --pgbouncer: rounds of (direct, PgBouncer) runs")
    ap.add_argument("--out", default=str(HERE / ".results"))
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a seeded database")
    conns = [int(c) for c in args.connections.split(",")]
    per_thread = 20000
    # --pgbouncer: every run links into the same parents (a few children each, never full)
    http_parents = per_thread * 2 * (1 if args.pgbouncer else len(conns))
    owner_url = args.owner_url or args.database_url
    qrs = prepare(owner_url, http_parents + 10000 * args.bare_processes)
    with psycopg.connect(args.database_url) as conn:
        bags = conn.execute("SELECT count(*) FROM bag").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM event").fetchone()[0]
    qr_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    qr_file.write_text("\n".join(qrs) + "\n")

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "TRACETRACK_OWNER_URL": owner_url,
        "TRACETRACK_LOGIN_ADDRESS_RATE": "100000",
        "TRACETRACK_SECRET_KEY": os.environ.get("TRACETRACK_SECRET_KEY", "bench-secret-0123456789abcdef"),
    }
    results: dict = {
        "bags": bags,
        "events": events,
        "machine": f"{os.cpu_count()} cores",
        "server": args.server,
        "runs": [],
    }
    modes: list[tuple[str, dict[str, str]]] = [("direct", {})]
    bouncer = None
    if args.pgbouncer:
        sys.path.insert(0, str(HERE.parent))  # tests/pgbouncer.py
        from psycopg.conninfo import conninfo_to_dict

        from tests.pgbouncer import PgBouncer

        roles = {}
        for url in (args.database_url, owner_url):
            params = conninfo_to_dict(url)
            roles[str(params.get("user") or os.environ.get("USER", "postgres"))] = str(params.get("password") or "")
        bouncer = PgBouncer(args.database_url, roles, pool_size=args.pgbouncer_pool).start()
        results["pgbouncer"] = {"version": "1.18 (Debian)", "pool_mode": "transaction", "pool": args.pgbouncer_pool}
        modes = [
            ("direct", {}),
            ("direct, TRACETRACK_PREPARE_THRESHOLD=none", {"TRACETRACK_PREPARE_THRESHOLD": "none"}),
            (
                "PgBouncer",
                {
                    "DATABASE_URL": bouncer.route(args.database_url),
                    "TRACETRACK_PREPARE_THRESHOLD": "none",
                    "TRACETRACK_LISTEN_URL": args.database_url,
                },
            ),
        ]
    try:
        n = 0
        for round_no in range(args.rounds if args.pgbouncer else 1):
            # alternate the order from round to round, so neither side always runs first
            for label, overrides in modes if round_no % 2 == 0 else modes[::-1]:
                for i, c in enumerate(conns):
                    offset = 0 if args.pgbouncer else i * 2 * per_thread
                    get, post = measure(
                        args, {**env, **overrides}, qr_file, c, per_thread, offset, f"{int(time.time())}{n}"
                    )
                    n += 1
                    results["runs"] += [
                        {"endpoint": "GET /api/bags/{qr}", "connections": c, "mode": label, "round": round_no, **get},
                        {
                            "endpoint": "POST /api/scans/child",
                            "connections": c,
                            "mode": label,
                            "round": round_no,
                            **post,
                        },
                    ]
    finally:
        if bouncer is not None:
            bouncer.stop()
    bare = bare_loop(args.database_url, "get_bag_detail_json", qrs, 0, args.duration, args.bare_processes)
    bare_write = bare_loop(args.database_url, "link_child", qrs, http_parents, args.duration, args.bare_processes)
    results["bare"] = bare
    results["bare_write"] = bare_write
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"{args.server}: {bags:,} bags, {events:,} events; results in {path}\n")
    print("| endpoint | connections | database | round | req/s | p50 ms | p99 ms | non-2xx | vs bare loop |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        floor = bare if r["endpoint"].startswith("GET") else bare_write
        print(
            f"| {r['endpoint']} | {r['connections']} | {r['mode']} | {r['round'] + 1} | {r['rps']:,.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} | {r['rps'] / floor['rps']:.0%} |"
        )
    for name, b in (("get_bag_detail_json", bare), ("link_child", bare_write)):
        print(
            f"| bare psycopg loop, {name} ({args.bare_processes} processes) | - | {b['rps']:,.0f} "
            f"| {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | - | 100% |"
        )


if __name__ == "__main__":
    main()
