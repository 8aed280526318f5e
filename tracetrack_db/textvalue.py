"""One text value straight from libpq: the hot read's path (`Database.text`).

A psycopg cursor costs ~90 us of Python per query on this machine (query
conversion, adaptation, the prepared-statement manager, row objects, a str
decoded from the wire and encoded again for the HTTP answer); PQexecPrepared
with text parameters and the value's bytes taken as they came costs ~35 us
(RESULTS, "Issue 13 item 8"). For a query whose one column PostgreSQL has
already rendered (JSON text), that is the whole difference, with nothing
given up:

- the same statement, prepared once per connection under its own name
  (``tt_<query>``, apart from psycopg's ``_pg3_N``), or sent unprepared
  where psycopg would not prepare either (`prepare_threshold` None: behind
  PgBouncer); a statement the server lost (a ``DISCARD ALL``) is prepared
  again and run once more;
- libpq releases the GIL while it waits, as psycopg does;
- a failed query raises the psycopg error a cursor would (its class from
  the SQLSTATE), and a connection lost mid-query raises OperationalError, so
  `errors.wrap_errors`, the pool's discarding of broken connections and the
  replica's routing see exactly what they see for a cursor;
- parameters are str or None only, checked: a NUL character is refused as
  psycopg refuses it (libpq would cut the text there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection, pq

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_PREPARED = "_tt_prepared"  # the attribute of a connection: names it has prepared


@dataclass(frozen=True)
class TextQuery:
    """A named query in libpq's form: $n placeholders, the parameters' names in order."""

    statement: bytes  # the server-side name
    sql: bytes
    names: tuple[str, ...]

    @classmethod
    def of(cls, name: str, sql: str) -> TextQuery:
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            if match.group(1) is None:
                raise ValueError(f"query {name}: a lone % (write %% for a literal one)")
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        return cls(f"tt_{name}".encode(), _PLACEHOLDER.sub(placeholder, sql).encode(), tuple(names))

    def values(self, params: Mapping[str, Any] | None) -> list[bytes | None]:
        out: list[bytes | None] = []
        for name in self.names:
            value = params[name] if params else None
            if value is None:
                out.append(None)
            elif type(value) is str:
                if "\x00" in value:
                    raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
                out.append(value.encode())
            else:
                kind = type(value).__name__
                raise TypeError(f"parameter {name} of {self.statement.decode()}: str or None, not {kind}")
        return out


def fetch(conn: Connection, query: TextQuery, params: Mapping[str, Any] | None) -> bytes | None:
    """Run `query` on `conn` (autocommit, not in a transaction block of psycopg's)."""
    values = query.values(params)
    pgconn = conn.pgconn
    if conn.prepare_threshold is None:  # behind a pooler: nothing is prepared
        return _value(conn, pgconn.exec_params(query.sql, values))
    prepared: set[bytes] | None = getattr(conn, _PREPARED, None)
    if prepared is None:
        prepared = set()
        setattr(conn, _PREPARED, prepared)
    if query.statement not in prepared:
        _value(conn, pgconn.prepare(query.statement, query.sql), pq.ExecStatus.COMMAND_OK)
        prepared.add(query.statement)
    # (psycopg's stub says no None; libpq takes NULL for SQL NULL, as psycopg itself sends it)
    try:
        return _value(conn, pgconn.exec_prepared(query.statement, values))  # type: ignore[arg-type]
    except psycopg.errors.InvalidSqlStatementName:  # the server forgot it (DISCARD ALL, DEALLOCATE)
        prepared.discard(query.statement)
        _value(conn, pgconn.prepare(query.statement, query.sql), pq.ExecStatus.COMMAND_OK)
        prepared.add(query.statement)
        return _value(conn, pgconn.exec_prepared(query.statement, values))  # type: ignore[arg-type]


def _value(conn: Connection, result: pq.abc.PGresult, expected: pq.ExecStatus = pq.ExecStatus.TUPLES_OK) -> Any:
    if result.status != expected:
        encoding = conn.info.encoding
        if conn.pgconn.status != pq.ConnStatus.OK or not result.error_field(pq.DiagnosticField.SQLSTATE):
            # the connection went away mid-query: what psycopg's wait raises then
            raise psycopg.OperationalError(pq.error_message(result, encoding=encoding) or "the connection was lost")
        raise psycopg.errors.error_from_result(result, encoding=encoding)
    if expected != pq.ExecStatus.TUPLES_OK or not result.ntuples:
        return None
    return result.get_value(0, 0)
