"""Maintenance: ping, ANALYZE, index usage, table statistics, EXPLAIN of a
named query or of a composed list or export statement."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from . import audit, bags, bills, errors, events, exports, migrations
from .database import Database

# The statements composed from filters (see listing.py), by the name
# `tracetrack db explain` and the benchmarks know them by.
COMPOSED: dict[str, Callable[..., tuple[sql.Composed, dict]]] = {
    "list_bags": lambda db, **filters: bags.list_query(**filters),
    "list_bills": lambda db, **filters: bills.list_query(**filters),
    "list_events": lambda db, **filters: events.list_query(db, **filters),
    "export_bags": lambda db, **filters: exports.bags_query(**filters),
    "export_bills": lambda db, **filters: exports.bills_query(**filters),
    "list_security_log": lambda db, **filters: audit.list_query(**filters),
    "export_security_log": lambda db, **filters: exports.security_log_query(**filters),
}


def ping(db: Database) -> float:
    """Milliseconds for a round trip to the database (DatabaseUnavailable if it is down)."""
    start = time.perf_counter()
    try:
        db.scalar("ping")
    except errors.DatabaseUnavailable as exc:
        cause = exc.__cause__
        if not isinstance(cause, psycopg.OperationalError) or isinstance(cause, psycopg_pool.PoolTimeout):
            raise  # no connection in time (PoolTimeout): down indeed
        # a connection kept across a database restart fails once, and the pool drops
        # it and its broken siblings (Database.connection): a health check asks again
        start = time.perf_counter()
        db.scalar("ping")
    return (time.perf_counter() - start) * 1000


def unapplied_migrations(db: Database, shipped: list[migrations.Migration] | None = None) -> list[str]:
    """The migrations this version ships that the database has not applied as
    shipped ("0008_name (pending)", "0003_name (changed)"): while any is left,
    a server of this version is not ready (/readyz). Migrations the database
    has and this version does not know (a newer version migrated it, say in a
    rolling deploy) do not count: forward-only migrations keep old code working.
    DatabaseUnavailable when the database cannot be reached."""
    with db.connection() as conn:
        return [
            f"{s.version:04d}_{s.name} ({s.state})"
            for s in migrations.status(conn, shipped)
            if s.state in ("pending", "changed")
        ]


def max_connections(db: Database) -> int:
    return db.scalar("max_connections")


def unaddressable_identifiers(db: Database) -> list[tuple[str, str]]:
    """(bag|bill, identifier) written before the path rules of 0005 that no URL
    path can name (at most 20 of each); a full scan, for checks, not requests."""
    return [(r[0], r[1]) for r in db.many("unaddressable_identifiers", read=True)]


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
        "qr_id": parent[0] if parent else "SB00001",
        "id": parent[1] if parent else 1,
        "parent_qr": parent[0] if parent else "SB00001",
        "parent_id": parent[1] if parent else 1,
        "child_qr": child[0] if child else "CHILD-0001",
        "child_qrs": [child[0] if child else "CHILD-0001"],
        "bill_no": bill[0] if bill else "BILL-1",
        "bill_id": bill[1] if bill else 1,
        "user_id": user[0] if user else None,
        "username": user[1] if user else "admin",
        "area": None,
        "dispatch_area": "lucknow",
        "restrict_area": None,
        "idempotency_key": None,
        "limit": 50,
        "after_id": 0,
        "type": "child",
        "status": "pending",
        "capacity": 10,
        "description": None,
        "destination": None,
        "vehicle_number": None,
        "key": "k",
        "fingerprint": "f",
        "response": b"",
        "hours": 24,
        "months": 3,
        "view_name": "mv_bag_totals",
        "duration_ms": 0.0,
        "max_failures": 5,
        "lock_seconds": 900,
        "password_hash": None,
        "role": None,
        "clear_area": False,
        "is_active": None,
        "name": "x",
        "label": "x",
        "pattern": "^X$",
        "expected_weight_kg": 1,
        "kind": "login_failed",
        "actor_id": None,
        "actor": "",
        "reason": None,
        "address": None,
        "user_agent": None,
        "details": None,
    }


def explainable() -> list[str]:
    """Every name `explain` takes: the named queries and the composed statements."""
    from .queries import load

    return sorted([q.name for q in load()] + list(COMPOSED))


def explain(db: Database, name: str, *, analyze: bool = False, filters: dict[str, Any] | None = None) -> str:
    """The plan of a named query (with sample parameters taken from the data) or
    of a composed statement (list_bags, export_bills ..., with `filters`). With
    `analyze`, it really runs, inside a transaction that is rolled back."""
    options = sql.SQL("ANALYZE, BUFFERS, " if analyze else "")
    if name in COMPOSED:
        query, params = COMPOSED[name](db, **(filters or {}))
        statement = sql.SQL("EXPLAIN ({}COSTS) {}").format(options, query)
    else:
        named = db.queries[name]
        params = {k: v for k, v in sample_params(db).items() if k in named.params}
        statement = sql.SQL("EXPLAIN ({}COSTS) {}").format(options, sql.SQL(re.sub(r"^\s*", "", named.sql)))
    with db.connection() as conn, conn.transaction(force_rollback=True):
        rows = conn.execute(statement, params).fetchall()
    return "\n".join(r[0] for r in rows)
