"""Maintenance: ANALYZE, index usage, table statistics, EXPLAIN of a named query."""

from __future__ import annotations

import re
from typing import Any

from psycopg import sql

from .database import Database

TABLES = ("app_user", "dispatch_area", "parent_format", "bag", "bill", "event", "idempotency_key")


def analyze(db: Database) -> list[str]:
    with db.connection() as conn:
        for table in TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return list(TABLES)


def vacuum_analyze(db: Database) -> list[str]:
    """VACUUM (ANALYZE) after a bulk load: statistics, and a visibility map
    so index-only scans work at once."""
    with db.connection() as conn:
        for table in TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return list(TABLES)


def index_usage(db: Database) -> list[dict[str, Any]]:
    return db.many("index_usage", row=dict)


def table_stats(db: Database) -> list[dict[str, Any]]:
    return db.many("table_stats", row=dict)


def sample_params(db: Database) -> dict[str, Any]:
    """Plausible values for every parameter name used by the named queries,
    taken from the data where there is any."""
    with db.connection(read=True) as conn:
        parent = conn.execute("SELECT qr_id, id FROM bag WHERE type = 'parent' ORDER BY id DESC LIMIT 1").fetchone()
        child = conn.execute("SELECT qr_id FROM bag WHERE type = 'child' ORDER BY id DESC LIMIT 1").fetchone()
        bill = conn.execute("SELECT bill_no, id FROM bill ORDER BY id DESC LIMIT 1").fetchone()
        user = conn.execute("SELECT id, username FROM app_user ORDER BY id LIMIT 1").fetchone()
    return {
        "qr_id": parent[0] if parent else "SB00001", "id": parent[1] if parent else 1,
        "parent_qr": parent[0] if parent else "SB00001", "parent_id": parent[1] if parent else 1,
        "child_qr": child[0] if child else "CHILD-0001", "child_qrs": [child[0] if child else "CHILD-0001"],
        "bill_no": bill[0] if bill else "BILL-1", "bill_id": bill[1] if bill else 1,
        "user_id": user[0] if user else None, "username": user[1] if user else "admin",
        "area": None, "dispatch_area": "lucknow", "restrict_area": None, "idempotency_key": None,
        "limit": 50, "after_id": 0, "type": "child", "status": "pending", "capacity": 10,
        "description": None, "destination": None, "vehicle_number": None, "key": "k", "fingerprint": "f",
        "response": b"", "hours": 24, "view_name": "mv_bag_totals", "duration_ms": 0.0,
        "max_failures": 5, "lock_seconds": 900, "password_hash": None, "role": None, "clear_area": False,
        "is_active": None, "name": "x", "label": "x", "pattern": "^X$", "expected_weight_kg": 1,
    }


def explain(db: Database, name: str, *, analyze: bool = False) -> str:
    """The plan of a named query with sample parameters. With `analyze`, the
    query really runs (inside a transaction that is rolled back)."""
    query = db.queries[name]
    params = {k: v for k, v in sample_params(db).items() if k in query.params}
    options = "ANALYZE, BUFFERS, " if analyze else ""
    text = re.sub(r"^\s*", "", query.sql)
    with db.connection() as conn:
        with conn.transaction(force_rollback=True):
            rows = conn.execute(f"EXPLAIN ({options}COSTS) {text}", params).fetchall()  # noqa: S608 - shipped SQL
    return "\n".join(r[0] for r in rows)
