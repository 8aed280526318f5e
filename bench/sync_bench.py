"""The cost of an operation in an offline sync against the single call, in process:
1,000 links sent as one POST /api/scans/sync, against 1,000 POST /api/scans/child,
through the WSGI app (no server, no network) on the same database, alternating
rounds on fresh parents so both do the same work (a new child linked each time).
A resend of each sync list (1,000 replayed verdicts) is timed too.

    python bench/sync_bench.py --database-url postgresql://…/a_migrated_db [--rounds 5]

Prints per round and the medians: milliseconds for the 1,000 operations and
microseconds per operation. Writes bags, events and sync verdicts into that
database: point it at a scratch one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import falcon.testing
import orjson

from tracetrack_api.app import create_app
from tracetrack_api.config import ApiSettings
from tracetrack_db import Database, Settings, users

OPS = 1000
PER_PARENT = 30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a migrated scratch database")
    with Database(args.database_url, min_size=2, max_size=2) as db:
        if users.find_user(db, "sync-bench-admin") is None:
            users.create_user(db, "sync-bench-admin", "sync-bench-password", "admin")
        app = create_app(
            db, ApiSettings(db=Settings(), secret_key="sync-bench-secret-0123456789abcdef", refresh_interval=0)
        )
        client = falcon.testing.TestClient(app)
        token = client.simulate_post(
            "/api/auth/login", json={"username": "sync-bench-admin", "password": "sync-bench-password"}
        ).json["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        run = f"{int(time.time()) % 100000:05d}"
        parent_no = iter(range(1, 99999))

        def parents(n: int) -> list[str]:
            """Fresh open parents, n of them (not timed)."""
            out = []
            for _ in range(n):
                qr = f"M444-{next(parent_no):05d}"
                opened = client.simulate_post(
                    "/api/scans/parent", headers=headers, json={"qr_id": qr, "dispatch_area": "lucknow"}
                )
                assert opened.status_code in (200, 201), opened.text
                out.append(qr)
            return out

        def links(tag: str) -> list[tuple[str, str]]:
            ps = parents(-(-OPS // PER_PARENT))
            return [(ps[i // PER_PARENT], f"SYB{run}-{tag}-{i:04d}") for i in range(OPS)]

        def singles(pairs: list[tuple[str, str]]) -> float:
            started = time.perf_counter()
            for parent, child in pairs:
                body = orjson.dumps({"parent_qr": parent, "child_qr": child})
                result = client.simulate_post("/api/scans/child", headers=headers, body=body)
                assert result.status_code == 200, result.text
            return time.perf_counter() - started

        def synced(pairs: list[tuple[str, str]], tag: str) -> tuple[float, float]:
            at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            ops = [
                {"client_op_id": f"{tag}-{i}", "op": "link_child", "device_time": at, "parent_qr": p, "child_qr": c}
                for i, (p, c) in enumerate(pairs)
            ]
            body = orjson.dumps({"device_id": f"bench-{run}", "operations": ops})
            started = time.perf_counter()
            result = client.simulate_post("/api/scans/sync", headers=headers, body=body)
            first = time.perf_counter() - started
            assert result.status_code == 200, result.text[:300]
            assert all(r["verdict"] == "ok" and not r["replayed"] for r in result.json["results"])
            started = time.perf_counter()
            again = client.simulate_post("/api/scans/sync", headers=headers, body=body)
            resend = time.perf_counter() - started
            assert all(r["replayed"] for r in again.json["results"])
            return first, resend

        # warm: prepared statements (psycopg prepares after 5 runs), the user cache
        singles(links("warm-s")[:50])
        synced(links("warm-y")[:50], f"warm-{run}")
        single_times, sync_times, resend_times = [], [], []
        for r in range(args.rounds):
            single_times.append(singles(links(f"s{r}")))
            first, resend = synced(links(f"y{r}"), f"r{run}-{r}")
            sync_times.append(first)
            resend_times.append(resend)
            print(
                f"round {r + 1}: 1,000 single POST /api/scans/child {single_times[-1] * 1000:.0f} ms, "
                f"one sync of 1,000 links {first * 1000:.0f} ms, its resend {resend * 1000:.0f} ms"
            )
        s, y, z = (statistics.median(t) for t in (single_times, sync_times, resend_times))
        print(
            f"median per operation: single call {s * 1e6 / OPS:.0f} us, in a sync {y * 1e6 / OPS:.0f} us "
            f"({y / s:.2f} of the single call), replayed in a resend {z * 1e6 / OPS:.0f} us"
        )


if __name__ == "__main__":
    main()
