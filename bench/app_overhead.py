"""What the HTTP layer adds to the hot read, in process: GET /api/bags/{qr}
through the WSGI app (no server, no network) against the same statement run
bare on a connection of the same pool, for the same QRs, in one run.

    python bench/app_overhead.py --database-url postgresql://…/tt_bench600 [--requests 4000]

Prints the medians and their difference: the microseconds of Falcon, the route
table's endpoint, token check, parameter checks and metrics per request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import falcon.testing

from tracetrack_api.app import create_app
from tracetrack_api.config import ApiSettings
from tracetrack_db import Database, Settings, users
from tracetrack_db.queries import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    ap.add_argument("--requests", type=int, default=4000)
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("set DATABASE_URL (or --database-url) to a seeded database")
    with Database(args.database_url, min_size=2, max_size=2) as db:
        if users.find_user(db, "overhead-admin") is None:
            users.create_user(db, "overhead-admin", "overhead-password", "admin")
        app = create_app(db, ApiSettings(db=Settings(), secret_key="overhead-secret-0123456789abcdef"))
        token = (
            falcon.testing.TestClient(app)
            .simulate_post("/api/auth/login", json={"username": "overhead-admin", "password": "overhead-password"})
            .json["token"]
        )
        qrs = [r[0] for r in db.run_sql("SELECT qr_id FROM bag WHERE id % 97 = 0 AND qr_id NOT LIKE 'BW%' LIMIT 2000")]
        environs = [
            falcon.testing.create_environ(f"/api/bags/{qr}", headers={"Authorization": f"Bearer {token}"}) for qr in qrs
        ]

        def start_response(status, headers, exc_info=None):
            start_response.status = status

        for environ in environs[:200]:  # warm: prepared statements, caches
            b"".join(app(dict(environ), start_response))
        through_app = []
        for i in range(args.requests):
            environ = dict(environs[i % len(environs)])
            started = time.perf_counter()
            b"".join(app(environ, start_response))
            through_app.append(time.perf_counter() - started)
            assert start_response.status.startswith("200"), start_response.status  # type: ignore[attr-defined]
        statement = load()["get_bag_detail_json"].sql
        bare = []
        with db.connection() as conn:
            for i in range(args.requests):
                started = time.perf_counter()
                conn.execute(statement, {"qr_id": qrs[i % len(qrs)], "area": None}).fetchall()
                bare.append(time.perf_counter() - started)
    app_us, bare_us = statistics.median(through_app) * 1e6, statistics.median(bare) * 1e6
    print(
        f"{len(qrs)} QRs, {args.requests} requests: through the app {app_us:.0f} us, bare statement "
        f"{bare_us:.0f} us, the HTTP layer {app_us - bare_us:.0f} us per request (medians)"
    )


if __name__ == "__main__":
    main()
