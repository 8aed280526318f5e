"""Small helpers that build users and bags for tests through the library."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from tracetrack_db import Database, scans, users

_n = itertools.count(1)


def make_user(
    db: Database,
    role: str = "dispatcher",
    area: str | None = "lucknow",
    *,
    username: str | None = None,
    password: str = "correct-horse-9-staple",
):
    name = username or f"{role}{next(_n)}"
    return users.create_user(db, name, password, role, area if role == "dispatcher" else None)


def parent_qr(n: int) -> str:
    return f"SB{n:05d}"


def child_qr(n: int) -> str:
    return f"CHILD-{n:06d}"


def full_parent(db: Database, n: int, area: str = "lucknow", children: int = 30) -> str:
    """A parent holding `children` new children; returns its QR."""
    qr = parent_qr(n)
    scans.open_parent(db, qr, dispatch_area=area)
    scans.link_children(db, qr, [f"C{n:05d}-{i:02d}" for i in range(children)])
    return qr


def fill(
    db: Database, parent: str, n: int, prefix: str, area: str = "lucknow", user_id: int | None = None
) -> list[str]:
    """Open `parent` and link n new children PREFIX-00, PREFIX-01 ... (by `user_id`)."""
    scans.open_parent(db, parent, dispatch_area=area, user_id=user_id)
    children = [f"{prefix}-{i:02d}" for i in range(n)]
    if children:
        scans.link_children(db, parent, children, user_id=user_id)
    return children


def run_together(*work: Callable[[], object]) -> list[BaseException]:
    """Run each callable in its own thread, started at one moment; what they raised."""
    failures: list[BaseException] = []
    start = threading.Barrier(len(work))

    def guarded(job: Callable[[], object]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:  # noqa: BLE001 (returned)
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def check_counters(sql_conn) -> None:
    """Every counter equals the real count, nothing exceeds its capacity, and a
    parent is completed exactly when it is full or closed short."""
    bad_parents = sql_conn.execute("""
        SELECT p.qr_id, p.child_count, count(c.id), p.weight_kg, coalesce(sum(c.weight_kg), 0)
        FROM bag p LEFT JOIN bag c ON c.parent_id = p.id
        WHERE p.type = 'parent'
        GROUP BY p.id
        HAVING p.child_count <> count(c.id) OR p.weight_kg <> coalesce(sum(c.weight_kg), 0)
            OR p.child_count > p.capacity
            OR (p.status = 'completed')
               <> (p.child_count = p.capacity OR p.closed_short_reason IS NOT NULL)""").fetchall()
    assert bad_parents == []
    bad_bills = sql_conn.execute("""
        SELECT bl.bill_no FROM bill bl LEFT JOIN bag p ON p.bill_id = bl.id
        GROUP BY bl.id
        HAVING bl.linked_parent_count <> count(p.id)
            OR bl.total_child_count <> coalesce(sum(p.child_count), 0)
            OR bl.total_weight_kg <> coalesce(sum(p.weight_kg), 0)
            OR bl.linked_parent_count > bl.capacity""").fetchall()
    assert bad_bills == []
