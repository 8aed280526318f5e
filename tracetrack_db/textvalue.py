"""One text value straight from libpq: the hot read's path (`Database.text`).

A psycopg cursor costs ~90 us of Python per query on this machine (query
conversion, adaptation, the prepared-statement manager, row objects, a str
decoded from the wire and encoded again for the HTTP answer); libpq's
PQexecPrepared with text parameters and the value's bytes taken as they
came cost ~35 us (RESULTS, "Issue 13 item 8, continued"). For a query
whose one column PostgreSQL has already rendered (JSON text), that is the
whole difference, with nothing given up:

- the same statement, prepared once per connection under its own name
  (``tt_<query>``, apart from psycopg's ``_pg3_N``), or sent unprepared
  where psycopg would not prepare either (`prepare_threshold` None: behind
  PgBouncer); a statement the server lost (a ``DISCARD ALL``) is prepared
  again and run once more;
- libpq's blocking call releases the GIL while it waits, and where gevent
  has patched the process the statement is sent and waited for as psycopg
  waits (`Connection.wait`), so a gevent worker's other greenlets run
  meanwhile; the connection's lock is held as a cursor holds it;
- a failed query raises the psycopg error a cursor would (its class from
  the SQLSTATE), and a lost connection OperationalError (the blocking call
  reports the closed connection where a cursor may report the FATAL message
  the server sent before closing it, e.g. AdminShutdown, a subclass), so
  `errors.wrap_errors` (DatabaseUnavailable), the pool's discarding of
  broken connections and the replica's routing treat both alike;
- parameters are str or None only, checked: a NUL character is refused as
  psycopg refuses it (libpq would cut the text there); the SQL is read as
  psycopg reads it (%% is a literal % when parameters are given);
- the connection speaks UTF8 (`Database` sets client_encoding on each one it
  opens, whatever the DSN's options say), so the bytes are UTF-8 as the
  cursor's str would be; on another connection the call is refused.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection, generators, pq

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_PREPARED = "_tt_prepared"  # the attribute of a connection: names it has prepared


@dataclass(frozen=True)
class TextQuery:
    """A named query in libpq's form: $n placeholders, the parameters' names in order."""

    statement: bytes  # the server-side name
    sql: bytes
    names: tuple[str, ...]

    @classmethod
    def of(cls, name: str, sql: str, params: bool = True) -> TextQuery:
        """As psycopg reads it: with parameters (`params`, even none), %(name)s
        placeholders and %% for a literal %; without (params=None), the text as it is."""
        if not params:
            return cls(f"tt_{name}.plain".encode(), sql.encode(), ())
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

    def values(self, params: Mapping[str, Any]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for name in self.names:
            value = params[name]
            if value is None:
                out.append(None)
            elif isinstance(value, str):
                if "\x00" in value:
                    raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
                out.append(value.encode())
            else:
                kind = type(value).__name__
                raise TypeError(f"parameter {name} of {self.statement.decode()}: str or None, not {kind}")
        return out


def fetch(conn: Connection, query: TextQuery, params: Mapping[str, Any] | None) -> bytes | None:
    """Run `query` on `conn` (an autocommit connection, or one inside a transaction()),
    whose client_encoding is UTF8 (Database sets it on every connection it opens)."""
    pgconn = conn.pgconn
    if pgconn.parameter_status(b"client_encoding") != b"UTF8":
        raise psycopg.NotSupportedError("Database.text needs a connection whose client_encoding is UTF8")
    values = query.values(params or {})
    with conn.lock:  # as a cursor: one statement at a time on a connection
        if conn.prepare_threshold is None:  # behind a pooler: nothing is prepared
            result = _run(
                conn,
                lambda: pgconn.exec_params(query.sql, values),
                lambda: pgconn.send_query_params(query.sql, values),
            )
            return _value(conn, result)
        prepared: set[bytes] | None = getattr(conn, _PREPARED, None)
        if prepared is None:
            prepared = set()
            setattr(conn, _PREPARED, prepared)
        for attempt in (1, 2):
            if query.statement not in prepared:
                result = _run(
                    conn,
                    lambda: pgconn.prepare(query.statement, query.sql),
                    lambda: pgconn.send_prepare(query.statement, query.sql),
                )
                _value(conn, result, pq.ExecStatus.COMMAND_OK)
                prepared.add(query.statement)
            result = _run(
                conn,
                # (psycopg's stub says no None; libpq takes NULL for SQL NULL, as psycopg itself sends it)
                lambda: pgconn.exec_prepared(query.statement, values),  # type: ignore[arg-type]
                lambda: pgconn.send_query_prepared(query.statement, values),
            )
            try:
                return _value(conn, result)
            except psycopg.errors.InvalidSqlStatementName:  # the server forgot it (DISCARD ALL, DEALLOCATE)
                prepared.discard(query.statement)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _run(conn: Connection, block: Callable[[], pq.abc.PGresult], send: Callable[[], None]) -> pq.abc.PGresult:
    """The statement's one result. In a thread, libpq's blocking call (the GIL released
    once while it waits); where gevent has patched the process (gunicorn's gevent
    worker), sent and waited for as psycopg waits, so the worker's other greenlets run
    meanwhile. psycopg's wait costs the hot read ~35 us more CPU through the threaded
    server (a GIL hand-off at each of its steps: RESULTS, "Issue 13 item 8, continued")."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("select"):
        send()
        return conn.wait(generators.execute(conn.pgconn))[-1]
    return block()


def _value(conn: Connection, result: pq.abc.PGresult, expected: pq.ExecStatus = pq.ExecStatus.TUPLES_OK) -> Any:
    if result.status != expected:
        encoding = conn.info.encoding
        if not result.error_field(pq.DiagnosticField.SQLSTATE):  # libpq's own: the connection went away
            raise psycopg.OperationalError(pq.error_message(result, encoding=encoding) or "the connection was lost")
        raise psycopg.errors.error_from_result(result, encoding=encoding)  # the class of its SQLSTATE
    if expected != pq.ExecStatus.TUPLES_OK or not result.ntuples:
        return None
    return result.get_value(0, 0)
