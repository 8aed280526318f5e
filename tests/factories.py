"""Small helpers that build users and bags for tests through the library."""

from __future__ import annotations

import itertools

from tracetrack_db import Database, scans, users

_n = itertools.count(1)


def make_user(db: Database, role: str = "dispatcher", area: str | None = "lucknow", *,
              username: str | None = None, password: str = "password123"):
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
