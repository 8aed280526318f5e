"""What the read replica costs the hot paths, in process (the WSGI app, no
network): POST /api/scans/child and GET /api/bags/{qr} through an app whose
Database has no replica, against apps over a primary + hot standby of this
machine (tests/pgcluster.py) with the write positions in the in-process cache
and in Redis, in alternating blocks of one run.

    python bench/replica_bench.py [--rounds 6] [--block 300] [--redis-url redis://127.0.0.1:6379/0]

Prints the median microseconds per request of each, per request kind, and
the read right after one's own write (the bounded wait for the standby).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import falcon.testing
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pgcluster.py, tests/conftest.py

from tests.conftest import SERVICE_ROLE, as_service, make_service_role
from tests.pgcluster import Cluster
from tracetrack_api.app import create_app
from tracetrack_api.cache import LocalCache, RedisCache
from tracetrack_api.config import ApiSettings
from tracetrack_db import Database, Settings, migrations, privileges, scans, users

PASSWORD = "replica-bench-pass-1"


def start_response(status, headers, exc_info=None):
    start_response.status = status


def call(app, method: str, path: str, token: str, body: dict | None = None) -> float:
    data = orjson.dumps(body) if body is not None else b""
    environ = falcon.testing.create_environ(
        path,
        method=method,
        body=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    answer = b"".join(app(environ, start_response))
    took = time.perf_counter() - started
    assert start_response.status[:1] == "2", (method, path, start_response.status, answer)  # type: ignore[attr-defined]
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--block", type=int, default=300, help="requests of one kind per configuration per round")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = ap.parse_args()
    with Cluster("bench-primary") as primary, primary.standby("bench-standby") as standby:
        url = primary.url("postgres")
        migrations.migrate(url)
        make_service_role(url)
        privileges.grant_service(url, SERVICE_ROLE)
        service, read = as_service(url), as_service(standby.url("postgres"))
        settings = ApiSettings(db=Settings(), secret_key="replica-bench-secret-0123456789")
        dbs = {
            "no replica": Database(service, min_size=2, max_size=2).open(),
            "replica, local cache": Database(service, read_conninfo=read, min_size=2, max_size=2).open(),
        }
        caches: dict[str, LocalCache | RedisCache] = {n: LocalCache() for n in dbs}
        if args.redis_url:
            dbs["replica, Redis"] = Database(service, read_conninfo=read, min_size=2, max_size=2).open()
            caches["replica, Redis"] = RedisCache(args.redis_url, prefix=f"tracetrack-bench-{os.getpid()}:")
        apps, tokens, parents = {}, {}, {}
        for i, (name, db) in enumerate(dbs.items()):
            users.create_user(db, f"bench{i}", PASSWORD, "dispatcher", "lucknow")
            apps[name] = app = create_app(db, settings, cache=caches[name], access_log=False)
            login = falcon.testing.TestClient(app).simulate_post(
                "/api/auth/login", json={"username": f"bench{i}", "password": PASSWORD}
            )
            tokens[name] = login.json["token"]
            parents[name] = iter([f"SB{i}{n:04d}" for n in range(10000)])
        numbers = itertools.count()
        bags_in: dict[str, int] = {}
        times: dict[tuple[str, str], list[float]] = {}

        def block(name: str) -> None:
            app, token = apps[name], tokens[name]
            parent = ""

            def link() -> tuple[str, float]:
                nonlocal parent
                if not parent or bags_in[parent] == 30:
                    parent = next(parents[name])
                    scans.open_parent(dbs[name], parent, dispatch_area="lucknow")
                    bags_in[parent] = 0
                child = f"RB-{next(numbers)}"
                bags_in[parent] += 1
                return child, call(app, "POST", "/api/scans/child", token, {"parent_qr": parent, "child_qr": child})

            for _ in range(args.block):  # writes alone
                times.setdefault(("POST /api/scans/child", name), []).append(link()[1])
            for _ in range(args.block):  # a write, then at once a read of it (the standby may not have it yet)
                child, _took = link()
                after = call(app, "GET", f"/api/bags/{child}", token)
                times.setdefault(("GET /api/bags/{qr} right after one's own write", name), []).append(after)
            time.sleep(1.0)  # the standby catches up: the reads that follow need no wait
            for _ in range(args.block):
                took = call(app, "GET", f"/api/bags/{parent}", token)
                times.setdefault(("GET /api/bags/{qr}, standby caught up", name), []).append(took)

        names = list(dbs)
        for name in names:  # warm: prepared statements, caches
            block(name)
        times.clear()
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                block(name)
        print(f"{args.rounds} rounds x {args.block} requests per kind and configuration, medians in us:")
        kinds = list(dict.fromkeys(k for k, _ in times))
        print("| request | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for kind in kinds:
            base = statistics.median(times[(kind, names[0])]) * 1e6
            cells = []
            for name in names:
                us = statistics.median(times[(kind, name)]) * 1e6
                cells.append(f"{us:.0f}" + ("" if name == names[0] else f" ({us - base:+.0f})"))
            print(f"| {kind} | " + " | ".join(cells) + " |")
        print("the pieces read-your-writes adds, medians in us over 2000 calls each (wall clock):")
        db = dbs[names[1]]
        assert db.replica is not None
        pieces: dict[str, Callable[[], object]] = {"write_position() (a round trip to the primary)": db.write_position}
        for name in names[1:]:
            cache = caches[name]
            pieces[f"position kept ({name})"] = functools.partial(cache.set, "wrote:bench", b"1234567", 15)
            pieces[f"position looked up ({name})"] = functools.partial(cache.get, "wrote:bench")
        pieces["choose() (the routing of one read)"] = db.replica.choose
        for label, piece in pieces.items():
            took = []
            cpu = time.process_time()
            for _ in range(2000):
                started = time.perf_counter()
                piece()
                took.append(time.perf_counter() - started)
            cpu = (time.process_time() - cpu) / 2000
            print(f"- {label}: {statistics.median(took) * 1e6:.1f} (this process's CPU: {cpu * 1e6:.1f} per call)")
        for name in names[1:]:
            replica = dbs[name].replica
            if replica is not None:
                print(f"{name}: reads routed {dict(sorted(replica.routed.items()))}")
        for db in dbs.values():
            db.close()


if __name__ == "__main__":
    main()
