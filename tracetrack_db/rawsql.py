"""Small reads on a plain connection (migrations, privileges, commands), where
the named queries of `Database` are not at hand."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


def value(conn: psycopg.Connection, query: str | bytes | sql.SQL | sql.Composed, params: Any = None) -> Any:
    """The first column of the first row; a statement that returns no row is a bug here."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row[0]


def behind_pooler(conn: psycopg.Connection) -> bool:
    """Whether a pooler (PgBouncer) stands between this connection and PostgreSQL:
    PgBouncer gives its clients a made-up backend key, so the pid the connection
    was told differs from the server's own. What needs a session (a session-level
    advisory lock, LISTEN) cannot rely on one there (transaction pooling)."""
    return conn.info.backend_pid != value(conn, "SELECT pg_backend_pid()")
