"""CPU microseconds per request, by CPU accounting: the server's and
PostgreSQL's, against the same statement in a bare psycopg loop.

    python bench/benchdb.py --bags 600000 --name tt_cpu_600k      # prints the URL
    python bench/cpu_per_request.py --database-url postgresql://postgres@127.0.0.1:5432/tt_cpu_600k
    python bench/cpu_per_request.py ... --after-load 60            # first a 60 s write load
    python bench/cpu_per_request.py ... --endpoints get_bag,post_child,dashboard,batch --no-bare

Starts `tracetrack serve` (the project's sizing, access log on as by default,
the view refresher off, metrics on) on the database, warms up, then for each
round and endpoint, alternating with the bare loop:

- reads utime+stime (/proc/<pid>/stat, in CLK_TCK ticks) of the server's
  process tree and of the PostgreSQL backends of the database that are not
  this tool's own (pg_stat_activity: client backends only, so no autovacuum;
  the refresher is off), runs wrk for --duration seconds, reads them again
  and divides by the requests wrk completed;
- the bare loop: one process, one connection (prepare_threshold=0), the
  endpoint's own named statement for --duration seconds; the same reading of
  that process and its backend.

wrk (the load generator) is never counted. On a shared machine CPU time is
steadier than throughput (it is what the processes used, not how long they
waited), but caches and frequency are shared: alternate and take medians.
Prints a Markdown table and writes bench/.results/cpu-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import free_port, login, prepare, wait_http

from tracetrack_ops.server import serve_argv

HERE = Path(__file__).resolve().parent
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
OWN = ("cpu-bench", "cpu-bare")  # application_name of this tool's sessions: not the server's
PER_THREAD = 20000  # parents each wrk thread may link into (post_child), batch: one per request

# endpoint: (wrk script, path shown, named statement of its bare loop or None)
ENDPOINTS = {
    "get_bag": ("get_bag.lua", "GET /api/bags/{qr}", "get_bag_detail_json"),
    "post_child": ("post_child.lua", "POST /api/scans/child", "link_child"),
    "dashboard": (None, "GET /api/dashboard/analytics", None),
    "batch": ("post_child.lua", "POST /api/scans/batch (30 children)", None),  # with BATCH_SIZE=30
}


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def process_tree(root: int) -> list[int]:
    """root and every descendant, from /proc/*/stat's ppid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def backends(conn: psycopg.Connection) -> list[int]:
    """The database's client backends that are not this tool's (autovacuum and the
    other background workers are not client backends)."""
    rows = conn.execute(
        """SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND backend_type = 'client backend'
             AND pid <> pg_backend_pid() AND application_name <> ALL(%s)""",
        (list(OWN),),
    ).fetchall()
    return [r[0] for r in rows]


class Meter:
    """CPU ticks of a set of processes between start() and stop(); a process
    that appears in between counts from zero (its whole life is in the window)."""

    def __init__(self, server_pids, backend_pids):
        self.server_pids, self.backend_pids = server_pids, backend_pids

    def read(self) -> tuple[dict[int, int], dict[int, int]]:
        return ({p: cpu_ticks(p) for p in self.server_pids()}, {p: cpu_ticks(p) for p in self.backend_pids()})

    def start(self) -> None:
        self.before = self.read()

    def stop(self) -> tuple[float, float]:
        """(server, PostgreSQL) CPU microseconds since start()."""
        after = self.read()
        server, pg = (sum(t - self.before[i].get(p, 0) for p, t in after[i].items()) * TICK_US for i in (0, 1))
        return server, pg


# the bare loop --------------------------------------------------------------------------
def _bare_params(query: str, qrs: list[str], n: int, rnd: random.Random, first_parent: int, run_id: str) -> dict:
    if query == "link_child":  # from first_parent on, one child per parent (30 runs fill them)
        return {
            "parent_qr": f"BW{first_parent + n % PER_THREAD:06d}",
            "child_qr": f"X{run_id}-{n}",
            "user_id": None,
            "restrict_area": None,
            "idempotency_key": None,
        }
    return {"qr_id": rnd.choice(qrs), "area": None}


def _bare_child(url: str, query: str, qrs: list[str], first_parent: int, run_id: str, seconds: float, pipe) -> None:
    from tracetrack_db.queries import load

    sql = load()[query].sql
    rnd = random.Random(7)
    with psycopg.connect(url, autocommit=True, prepare_threshold=0, application_name="cpu-bare") as conn:
        for n in range(200):  # warm: prepared, catalog caches
            conn.execute(sql, _bare_params(query, qrs, n, rnd, first_parent, run_id + "W")).fetchall()
        pipe.send(conn.info.backend_pid)
        pipe.recv()  # go
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.execute(sql, _bare_params(query, qrs, n, rnd, first_parent, run_id)).fetchall()
            n += 1
        pipe.send(n)
        pipe.recv()  # measured: may close


def bare_run(
    url: str, query: str, qrs: list[str], first_parent: int, run_id: str, seconds: float, processes: int = 1
) -> dict:
    """The statement in `processes` loops at once (1: the floor; as many as wrk's
    connections: what the same concurrency costs PostgreSQL without the server)."""
    pipes, procs = [], []
    for i in range(processes):
        ours, theirs = multiprocessing.Pipe()
        args = (url, query, qrs, first_parent + i * 2000, f"{run_id}P{i}", seconds, theirs)
        procs.append(multiprocessing.Process(target=_bare_child, args=args))
        procs[-1].start()
        theirs.close()  # so that a child that dies makes recv() raise EOFError, not wait forever
        pipes.append(ours)
    try:
        backends = [pipe.recv() for pipe in pipes]
        meter = Meter(lambda: [p.pid for p in procs], lambda: backends)
        meter.start()
        for pipe in pipes:
            pipe.send("go")
        n = sum(pipe.recv() for pipe in pipes)
        client, pg = meter.stop()
        for pipe in pipes:
            pipe.send("done")
    finally:
        for proc in procs:
            proc.join(30)
    return per_request(client, pg, n)


def per_request(server_us: float, pg_us: float, n: int) -> dict:
    return {
        "requests": n,
        "server_us": server_us / n,
        "pg_us": pg_us / n,
        "total_us": (server_us + pg_us) / n,
    }


# the commit rate -------------------------------------------------------------------------
def _commit_child(url: str, seconds: float, queue) -> None:
    with psycopg.connect(url, autocommit=True, application_name="cpu-bare") as conn:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.execute("INSERT INTO cpu_bench_commit (at) VALUES (now())")
            n += 1
    queue.put(n)


def commit_rate(url: str, connections: int, seconds: float) -> dict:
    """Autocommit single-row INSERTs on `connections` connections for `seconds`: commits
    per second, and WAL flushes (pg_stat_wal.wal_sync, the whole server's: others' too on
    a shared one) per commit, which shows group commit."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cpu_bench_commit (id bigserial PRIMARY KEY, at timestamptz)")
        syncs = value(conn, "SELECT wal_sync FROM pg_stat_wal")
        queue: multiprocessing.Queue = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_commit_child, args=(url, seconds, queue)) for _ in range(connections)]
        for proc in procs:
            proc.start()
        commits = sum(queue.get() for _ in procs)
        for proc in procs:
            proc.join()
        syncs = value(conn, "SELECT wal_sync FROM pg_stat_wal") - syncs
        conn.execute("DROP TABLE cpu_bench_commit")
    return {"connections": connections, "commits_per_s": commits / seconds, "wal_syncs_per_s": syncs / seconds}


# the server ------------------------------------------------------------------------------
def run_wrk(endpoint: str, base: str, conns: int, seconds: float, env: dict) -> dict:
    script, _, _ = ENDPOINTS[endpoint]
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{round(seconds)}s", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(HERE / "wrk" / script), base + "/api/bags/X"]
    else:
        cmd += ["-H", f"Authorization: Bearer {env['TT_TOKEN']}", base + "/api/dashboard/analytics"]
    extra = {"BATCH_SIZE": "30"} if endpoint == "batch" else {}
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env, **extra}, check=True).stdout
    if script:
        return parse_wrk_counts(out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(found(r"(\d+) requests in", out)), "non2xx": int(non2xx.group(1) if non2xx else 0)}


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise SystemExit(f"no {pattern!r} in wrk's output:\n{text}")
    return match.group(1)


def parse_wrk_counts(out: str) -> dict:
    return json.loads(found(r"^JSON (.*)$", out))


def value(conn: psycopg.Connection, sql: Any, params: Any = None) -> Any:
    """The first column of the first row."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


class Server:
    """`tracetrack serve` on a free port, the refresher off, its log to a file."""

    def __init__(self, url: str, env_overrides: dict[str, str], workers: int | None, threads: int | None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TRACETRACK_REFRESH_INTERVAL": "0",
            "TRACETRACK_LOGIN_ADDRESS_RATE": "100000",
            "TRACETRACK_SECRET_KEY": "cpu-bench-secret-0123456789abcdef",
            **env_overrides,
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's whole life
        self.proc = subprocess.Popen(
            serve_argv(self.port, "--no-demo", "--metrics-port", "0", workers=workers, threads=threads),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            # `python -m` puts its working directory first on sys.path: the variant's
            # PYTHONPATH (code before a change), not this checkout, must decide
            cwd=env_overrides.get("PYTHONPATH", "/").split(os.pathsep)[0] or "/",
        )
        wait_http(self.base + "/health")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def parse_variant(text: str) -> tuple[str, dict[str, str], int | None, int | None]:
    """label:KEY=VALUE,KEY=VALUE; workers= and threads= are serve's flags, the rest its
    environment (PYTHONPATH=/work/main runs another checkout's code: before and after in one run)."""
    label, _, spec = text.partition(":")
    env = dict(kv.split("=", 1) for kv in spec.split(",") if kv)
    workers, threads = env.pop("workers", None), env.pop("threads", None)
    return label, env, int(workers) if workers else None, int(threads) if threads else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--endpoints", default="get_bag", help=f"comma-separated, of {', '.join(ENDPOINTS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10, help="seconds of each measured run")
    ap.add_argument("--connections", type=int, default=8, help="wrk's (one wrk thread)")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare loops")
    ap.add_argument(
        "--bare-processes",
        default="1",
        help="loops at once, comma-separated for several bare sides (1: the floor ratios are taken against; "
        "wrk's connection count: the same concurrency without the server)",
    )
    ap.add_argument("--after-load", type=float, default=0, help="first run POST /api/scans/child for this many s")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="another server to alternate with, label:KEY=VALUE,... (workers=, threads=, or environment)",
    )
    ap.add_argument("--commit-rate", help="instead: the bare commit loop on these connection counts (1,8)")
    ap.add_argument("--out", default=str(HERE / ".results"))
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a seeded database")
    if args.commit_rate:
        print("| connections | commits/s | WAL flushes/s (whole server) | commits per flush |\n|---|---|---|---|")
        for c in args.commit_rate.split(","):
            row = commit_rate(args.database_url, int(c), args.duration)
            print(
                f"| {c} | {row['commits_per_s']:,.0f} | {row['wal_syncs_per_s']:,.0f} "
                f"| {row['commits_per_s'] / max(row['wal_syncs_per_s'], 1):.1f} |",
                flush=True,
            )
        return
    endpoints = args.endpoints.split(",")
    for e in endpoints:
        if e not in ENDPOINTS:
            raise SystemExit(f"unknown endpoint {e!r}: {', '.join(ENDPOINTS)}")
    url = args.database_url
    variants = [parse_variant(v) for v in args.variant] or [("server", {}, None, None)]
    # parents: wrk's post_child range, the load's, the batches' (one each), the bare loops' (from 6 x)
    qrs = prepare(url, 8 * PER_THREAD)
    qr_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    qr_file.write_text("\n".join(qrs) + "\n")
    run_id = f"{int(time.time()) % 100000}"
    admin = psycopg.connect(url, autocommit=True, application_name="cpu-bench")
    bags = value(admin, "SELECT count(*) FROM bag")
    servers: dict[str, Server] = {}
    results: dict = {"bags": bags, "args": vars(args), "runs": []}
    try:
        for label, overrides, workers, threads in variants:
            servers[label] = Server(url, overrides, workers, threads)
        first = next(iter(servers.values()))
        token = login(first.base)
        env = {"TT_TOKEN": token, "QR_FILE": str(qr_file), "PARENTS_PER_THREAD": str(PER_THREAD), "RUN_ID": run_id}
        offsets = {"post_child": 0, "load": PER_THREAD, "batch": 2 * PER_THREAD}
        if args.after_load:
            print(f"write load: POST /api/scans/child, {args.after_load:.0f} s, 16 connections", flush=True)
            load = run_wrk(
                "post_child",
                first.base,
                16,
                args.after_load,
                {**env, "PARENT_OFFSET": str(offsets["load"]), "RUN_ID": run_id + "L"},
            )
            results["load"] = load
            print(f"  {load['requests']} links, {load['non2xx']} non-2xx", flush=True)
        for i, server in enumerate(servers.values()):  # warm-up: pools full, statements prepared, caches
            for e in endpoints:
                if e != "batch":
                    run_wrk(
                        e,
                        server.base,
                        args.connections,
                        3,
                        {**env, "PARENT_OFFSET": str(random.randrange(PER_THREAD - 5000)), "RUN_ID": f"{run_id}W{i}"},
                    )
        # batches fill their parent: start past every parent of their range that has children
        used = value(
            admin,
            """SELECT max(substr(p.qr_id, 3)::int) FROM bag p
               WHERE p.qr_id BETWEEN %s AND %s AND EXISTS (SELECT 1 FROM bag c WHERE c.parent_id = p.id)""",
            (f"BW{2 * PER_THREAD:06d}", f"BW{5 * PER_THREAD - 1:06d}"),
        )
        batch_base = max(offsets["batch"], (used or 0) + 1)
        for r in range(args.rounds):
            for e in endpoints:
                _, label, query = ENDPOINTS[e]
                bare_sides = {"bare" if n == "1" else f"bare{n}": int(n) for n in args.bare_processes.split(",")}
                sides = list(servers) + ([] if args.no_bare or query is None else list(bare_sides))
                shift = r % len(sides)  # each side goes first in turn
                for side in sides[shift:] + sides[:shift]:
                    rid = f"{run_id}R{r}V{sides.index(side)}"
                    if side not in bare_sides:
                        server = servers[side]
                        # a run links about one child into each of its first few thousand parents:
                        # start each run at a random place, so no parent fills up (30) over many runs
                        offset = batch_base if e == "batch" else random.randrange(PER_THREAD - 5000)
                        meter = Meter(server.pids, lambda: backends(admin))
                        meter.start()
                        counts = run_wrk(
                            e,
                            server.base,
                            args.connections,
                            args.duration,
                            {**env, "PARENT_OFFSET": str(offset), "RUN_ID": rid},
                        )
                        s_us, pg_us = meter.stop()
                        if e == "batch":
                            batch_base += counts["requests"] + 100
                        row = {**per_request(s_us, pg_us, counts["requests"]), "non2xx": counts["non2xx"]}
                    else:
                        assert query is not None
                        start = 6 * PER_THREAD + random.randrange(PER_THREAD - 5000)
                        row = bare_run(url, query, qrs, start, rid, args.duration, bare_sides[side])
                    row.update(endpoint=label, side=side, round=r)
                    results["runs"].append(row)
                    print(
                        f"round {r + 1} {label:36s} {side:8s} {row['requests']:7d} req  "
                        f"{row['total_us']:7.0f} us (server/client {row['server_us']:.0f}, "
                        f"PostgreSQL {row['pg_us']:.0f})" + (f"  non-2xx {row['non2xx']}" if row.get("non2xx") else ""),
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
        admin.close()
        qr_file.unlink()
    summarize(results, endpoints, list(servers) + [f"bare{n}" for n in args.bare_processes.split(",") if n != "1"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nresults in {path}")


def summarize(results: dict, endpoints: list[str], servers: list[str]) -> None:
    print(f"\n{results['bags']:,} bags, medians of {results['args']['rounds']} rounds, CPU us per request")
    print("| endpoint | side | total | server (client) | PostgreSQL | to bare: median (per round) |")
    print("|---|---|---|---|---|---|")
    for e in endpoints:
        _, label, _ = ENDPOINTS[e]
        bare = [r for r in results["runs"] if r["endpoint"] == label and r["side"] == "bare"]
        for side in [*servers, "bare"]:
            rows = [r for r in results["runs"] if r["endpoint"] == label and r["side"] == side]
            if not rows:
                continue
            ratios = ""
            if bare and not side.startswith("bare"):
                per_round = [s["total_us"] / b["total_us"] for s, b in zip(rows, bare, strict=True)]
                ratios = f"{statistics.median(per_round):.2f}x ({', '.join(f'{x:.2f}' for x in per_round)})"
                results.setdefault("ratios", {}).setdefault(label, {})[side] = per_round
            med = {k: statistics.median(r[k] for r in rows) for k in ("total_us", "server_us", "pg_us")}
            print(
                f"| {label} | {side} | {med['total_us']:.0f} | {med['server_us']:.0f} | {med['pg_us']:.0f} | {ratios} |"
            )


if __name__ == "__main__":
    main()
