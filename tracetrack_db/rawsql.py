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
