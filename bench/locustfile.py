"""Realistic TraceTrack load: dispatchers (60%), billers (30%), admins (10%).

Run it through `tracetrack loadtest` (which creates the accounts, logs them in
once and writes TT_TOKENS), or by hand:

    TT_TOKENS=tokens.json locust -f bench/locustfile.py --host http://127.0.0.1:5000

Answers that are a correct reaction to a race between users (a parent that
another dispatcher filled, a parent another biller billed first) count as
successes; a 5xx, a timeout or any other error counts as a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

from locust import FastHttpUser, between, events, task

TOKENS = json.loads(Path(os.environ["TT_TOKENS"]).read_text()) if os.environ.get("TT_TOKENS") else {}
# TT_PROFILE: "stress" (short pauses: how much one box takes) or "realistic" (people:
# a dispatcher scans every 2-5 s, a biller and an admin act every 5-15 s).
PROFILE = os.environ.get("TT_PROFILE") or "stress"
if PROFILE not in ("stress", "realistic"):
    raise RuntimeError(f"TT_PROFILE must be stress or realistic, got {PROFILE!r}")
REALISTIC = PROFILE == "realistic"
RUN = os.environ.get("TT_RUN_ID") or str(int(time.time()) % 100000)
_serial = itertools.count()
_per_role: dict[str, itertools.count] = {}  # each role's users take its accounts in turn
RACE_CODES = {
    "parent_full",
    "parent_on_bill",
    "parent_on_other_bill",
    "bill_full",
    "bill_completed",
    "child_in_other_parent",
    "parent_empty",
    "not_a_parent",
    "wrong_area",
    "already_added",
}


@events.spawning_complete.add_listener
def _note_all_spawned(user_count: int, **_kw) -> None:
    """With TT_SPAWNED set (`tracetrack loadtest --steady`): the moment every user has
    started, when locust resets its statistics (--reset-stats), write the server's
    histogram and this process's CPU time so far, read at that same moment, so the
    report's three figures cover the same span."""
    path = os.environ.get("TT_SPAWNED")
    if not path:
        return
    import resource

    from tracetrack_ops.loadtest import server_histogram

    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(path).write_text(
        json.dumps(
            {
                "users": user_count,
                "monotonic": time.monotonic(),
                "cpu": usage.ru_utime + usage.ru_stime,
                "histogram": [[b, c] for b, c in (server_histogram(os.environ.get("TT_METRICS")) or {}).items()],
            }
        )
    )


def _code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except Exception:  # noqa: BLE001 - not a JSON error body
        return None


class TraceTrackUser(FastHttpUser):
    abstract = True
    role = "admin"

    def on_start(self) -> None:
        accounts = TOKENS.get(self.role) or []
        if not accounts:
            raise RuntimeError(f"no {self.role} tokens in TT_TOKENS")
        self.account = accounts[next(_per_role.setdefault(self.role, itertools.count())) % len(accounts)]
        self.auth = {"Authorization": f"Bearer {self.account['token']}"}
        self.n = next(_serial)

    def post(self, path: str, body: dict, name: str | None = None, ok_codes: frozenset[str] | set[str] = frozenset()):
        with self.client.post(path, json=body, name=name or path, headers=self.auth, catch_response=True) as resp:
            if resp.status_code < 300 or _code(resp) in ok_codes:
                resp.success()
            else:
                resp.failure(f"{resp.status_code} {_code(resp)}")
            return resp


class Dispatcher(TraceTrackUser):
    """Opens a parent, scans up to 30 children with short pauses, looks bags up."""

    weight = 6
    role = "dispatcher"
    wait_time = between(2.0, 5.0) if REALISTIC else between(0.2, 0.8)

    def on_start(self) -> None:
        super().on_start()
        self.parent: str | None = None
        self.scanned: list[str] = []

    def open_new_parent(self) -> None:
        for _ in range(5):
            qr = f"{random.choice(['SB', 'M444-'])}{random.randint(50000, 99999):05d}"
            resp = self.post("/api/scans/parent", {"qr_id": qr}, ok_codes=RACE_CODES)
            if resp.status_code in (200, 201):
                body = resp.json()
                if body["child_count"] < body["capacity"] and body["bag"]["bill_id"] is None:
                    self.parent = qr
                    return

    @task(20)
    def scan_child(self) -> None:
        if self.parent is None:
            self.open_new_parent()
            if self.parent is None:
                return
        child = f"LT{RUN}-{self.n}-{len(self.scanned)}-{random.randint(0, 9999)}"
        resp = self.post("/api/scans/child", {"parent_qr": self.parent, "child_qr": child}, ok_codes=RACE_CODES)
        if resp.status_code == 200:
            self.scanned.append(child)
            if resp.json()["parent_status"] == "completed":
                self.parent = None
        elif _code(resp) in RACE_CODES:
            self.parent = None  # someone else filled or billed it: take another

    @task(3)
    def look_up(self) -> None:
        qr = random.choice(self.scanned) if self.scanned else (self.parent or "SB00001")
        with self.client.get(f"/api/bags/{qr}", name="/api/bags/{qr}", headers=self.auth, catch_response=True) as resp:
            if resp.status_code == 200 or _code(resp) in ("bag_not_found", "wrong_area"):
                resp.success()

    @task(1)
    def unlink_mistake(self) -> None:
        if len(self.scanned) > 3 and self.parent is not None:
            child = self.scanned.pop()
            self.post("/api/scans/unlink", {"child_qr": child}, ok_codes=RACE_CODES | {"child_not_linked"})


class Biller(TraceTrackUser):
    """Creates bills, adds finished parents, completes them."""

    weight = 3
    role = "biller"
    wait_time = between(5.0, 15.0) if REALISTIC else between(0.5, 2.0)

    def on_start(self) -> None:
        super().on_start()
        self.bill: str | None = None
        self.added = 0
        self.bills = 0

    @task
    def work_on_bill(self) -> None:
        if self.bill is None:
            self.bills += 1
            self.bill = f"LT{RUN}-{self.n}-{self.bills}"
            self.added = 0
            self.post("/api/bills", {"bill_no": self.bill, "capacity": 3, "destination": "load test"})
            return
        if self.added >= 3:
            self.post(f"/api/bills/{self.bill}/complete", {}, name="/api/bills/{bill_no}/complete")
            self.bill = None
            return
        resp = self.client.get(
            "/api/bags?type=parent&status=completed&billed=false&limit=20",
            name="/api/bags?type=parent&billed=false",
            headers=self.auth,
        )
        items = resp.json().get("items", []) if resp.status_code == 200 else []
        if not items:
            return
        parent = random.choice(items)["qr_id"]
        resp = self.post(
            f"/api/bills/{self.bill}/parents",
            {"parent_qr": parent},
            name="/api/bills/{bill_no}/parents",
            ok_codes=RACE_CODES,
        )
        if resp.status_code == 200 and resp.json()["result"] == "added":
            self.added += 1

    @task
    def list_bills(self) -> None:
        self.client.get("/api/bills?limit=20", name="/api/bills", headers=self.auth)


class Admin(TraceTrackUser):
    """Dashboard, lists, history, an export now and then."""

    weight = 1
    role = "admin"
    wait_time = between(5.0, 15.0) if REALISTIC else between(1.0, 3.0)

    @task(5)
    def dashboard(self) -> None:
        self.client.get("/api/dashboard/analytics", headers=self.auth)

    def on_start(self) -> None:
        super().on_start()
        self.seen: list[str] = []

    @task(3)
    def lists(self) -> None:
        resp = self.client.get("/api/bags?type=parent&limit=50", name="/api/bags", headers=self.auth)
        if resp.status_code == 200:
            self.seen = [b["qr_id"] for b in resp.json()["items"]] or self.seen
        self.client.get("/api/scans?limit=50", name="/api/scans", headers=self.auth)

    @task(2)
    def history(self) -> None:
        if self.seen:
            self.client.get(
                f"/api/bags/{random.choice(self.seen)}/history", name="/api/bags/{qr}/history", headers=self.auth
            )

    @task(1)
    def export(self, retried: bool = False) -> None:
        # At most 2 exports at once per server process: one refused with 429 and Retry-After is
        # the server's documented back-pressure, which a client honours (as the console's
        # people do: "retry shortly"). It is counted apart, under its own name, and retried once.
        url, name = "/api/exports/bills.csv?status=completed", "/api/exports/bills.csv"
        wait = None
        with self.client.get(url, name=name, headers=self.auth, catch_response=True) as resp:
            if resp.status_code == 429 and _code(resp) == "too_many_exports" and not retried:
                resp.request_meta["name"] = f"{name} (429 too_many_exports, retried)"
                resp.success()
                wait = min(float(resp.headers.get("Retry-After") or 1), 10)
            elif resp.status_code >= 400:
                resp.failure(f"{resp.status_code} {_code(resp)}")
        if wait is not None:
            time.sleep(wait)  # gevent's, under locust
            self.export(retried=True)
