"""`tracetrack loadtest` against a PostgreSQL cluster of its own, with autovacuum on
as a deployment runs it (this machine's shared server has it off, so each run there
leaves its dead tuples to the next).

A throwaway cluster (tests/pgcluster.py: the machine's PostgreSQL binaries, a free
port, the shared server's memory settings), seeded with `--bags`, the service as its
least-privilege role under `tracetrack serve` (default sizing), then one loadtest per
`--runs` with the options after `--`; the cluster is removed at the end.

    python bench/cluster_loadtest.py --bags 6000000 --runs 2 -- \
        --profile realistic --users 1000 --spawn-rate 20 --steady --duration 180s --p95-ms 50
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from benchdb import BenchServer  # noqa: E402

from tests.pgcluster import Cluster, free_port  # noqa: E402

# the shared server's settings, so the two sets of figures compare (autovacuum aside)
SETTINGS = {"shared_buffers": "128MB", "effective_cache_size": "4GB", "max_wal_size": "1GB", "autovacuum": "on"}


CLI = [sys.executable, "-c", "from tracetrack_ops.cli import main; main()"]  # `tracetrack` of this checkout


def tracetrack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env={**os.environ, **env}, check=True, text=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", type=int, default=6_000_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("loadtest", nargs=argparse.REMAINDER, help="-- then the options of tracetrack loadtest")
    args = ap.parse_args()
    options = [a for a in args.loadtest if a != "--"]
    with Cluster("loadtest", settings=SETTINGS) as cluster:
        owner = BenchServer(cluster.url())
        owner.start()
        url = owner.seeded(args.bags)
        service_password, admin_password = secrets.token_hex(12), secrets.token_hex(12)
        tracetrack(
            "db",
            "service-role",
            "tt_lt_service",
            env={"DATABASE_URL": url, "TRACETRACK_SERVICE_PASSWORD": service_password},
        )
        tracetrack(
            "users",
            "create",
            "--username",
            "ltadmin",
            "--role",
            "admin",
            env={"DATABASE_URL": url, "TRACETRACK_PASSWORD": admin_password},
        )
        service = url.replace("user=postgres", f"user=tt_lt_service password={service_password}")
        port, metrics = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": service,
            "TRACETRACK_OWNER_URL": url,
            "TRACETRACK_SECRET_KEY": secrets.token_hex(24),
        }
        serve = [*CLI, "serve", "--port", str(port)]
        server = subprocess.Popen(
            [*serve, "--metrics-port", str(metrics), "--no-access-log"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            host = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(host + "/readyz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            for run in range(1, args.runs + 1):
                print(f"== run {run} of {args.runs} (autovacuum on)", flush=True)
                loadtest = [
                    "loadtest",
                    "--host",
                    host,
                    "--metrics",
                    f"http://127.0.0.1:{metrics}",
                    "--admin-user",
                    "ltadmin",
                ]
                subprocess.run(
                    [*CLI, *loadtest, *options],
                    env={**os.environ, "TRACETRACK_ADMIN_PASSWORD": admin_password},
                    check=False,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
