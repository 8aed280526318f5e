"""What the HTTP layer and the library add to the hot read, in process and in CPU
time: GET /api/bags/{qr} through the WSGI app (no server, no network), the
library call (`bags.get_bag_detail_json`) and the same statement bare on a held
connection (a psycopg cursor), for the same QRs, in alternating repetitions.

    python bench/app_overhead.py --database-url postgresql://…/tt_cpu_600k [--requests 3000] [--repeat 7]
    python bench/app_overhead.py --database-url … --no-access-log      # the app without its access line

Counts `time.process_time()` (every thread of this process: the deferred
hand-over of access lines and metrics included) per request; prints the medians
and each repetition. The served figures (granian, the GIL's hand-offs, PostgreSQL's
share) are bench/cpu_per_request.py's.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tt-overhead-"))  # as served

import falcon.testing  # (after the metrics directory is set, as a served worker imports)

from tracetrack_api import deferred, logs
from tracetrack_api.app import create_app
from tracetrack_api.config import ApiSettings
from tracetrack_db import Database, Settings, bags, users
from tracetrack_db.queries import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--requests", type=int, default=3000, help="per side and repetition")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-access-log", action="store_true")
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a seeded database")
    logs.configure("info", "text")  # as `tracetrack serve` configures a worker, the lines to /dev/null
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - the process's whole life
    n = args.requests
    with Database(args.database_url, min_size=2, max_size=2) as db:
        if users.find_user(db, "overhead-admin") is None:
            users.create_user(db, "overhead-admin", "overhead-password", "admin")
        app = create_app(
            db,
            ApiSettings(db=Settings(), secret_key="overhead-secret-0123456789abcdef"),
            access_log=not args.no_access_log,
        )
        token = (
            falcon.testing.TestClient(app)
            .simulate_post("/api/auth/login", json={"username": "overhead-admin", "password": "overhead-password"})
            .json["token"]
        )
        qrs = [r[0] for r in db.run_sql("SELECT qr_id FROM bag WHERE id % 97 = 0 AND qr_id NOT LIKE 'BW%' LIMIT 2000")]
        environs = [
            falcon.testing.create_environ(f"/api/bags/{qr}", headers={"Authorization": f"Bearer {token}"}) for qr in qrs
        ]
        statement = load()["get_bag_detail_json"].sql

        def start_response(status, headers, exc_info=None):
            if not status.startswith("200"):
                raise SystemExit(f"GET /api/bags/{{qr}} answered {status}")

        def through_app() -> None:
            for i in range(n):
                b"".join(app(dict(environs[i % len(environs)]), start_response))
            deferred.flush_all()  # its access lines and metrics, counted here (not in the next side's time)

        def library() -> None:
            for i in range(n):
                bags.get_bag_detail_json(db, qrs[i % len(qrs)])

        def bare() -> None:
            with db.connection() as conn:
                for i in range(n):
                    conn.execute(statement, {"qr_id": qrs[i % len(qrs)], "area": None}).fetchall()

        sides = {"through the app": through_app, "library call": library, "bare statement": bare}
        for side in sides.values():  # warm: prepared statements, caches
            side()
        results: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeat):
            for name, side in sides.items():
                started = time.process_time()
                side()
                results[name].append((time.process_time() - started) / n * 1e6)
    print(f"{len(qrs)} QRs, {n} requests per side, {args.repeat} repetitions; CPU us per request, medians:")
    for name, values in results.items():
        print(f"  {name:16} {statistics.median(values):6.0f}   ({', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
