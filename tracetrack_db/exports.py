"""CSV exports streamed with COPY … TO STDOUT: every matching row, constant memory.

The columns are those of bag_row and bill_row, the library's Bag and Bill,
in the same order. A text cell a spreadsheet would run as a formula (it
starts with = + - @, a tab or a CR) gets a leading apostrophe (tt_csv_text).

An export holds a read connection, a COPY and its snapshot (which keeps
vacuum from removing dead rows) for as long as its reader takes, so it is
bounded two ways: the COPY runs under a statement timeout (`timeout`), and
a reader that takes no chunk for `stall` seconds has its export aborted by a
watchdog thread, which ends the export's session (pg_terminate_backend: a
server blocked sending to a client that does not read notices nothing else)
and shuts its socket (for a pooler in between): the snapshot goes, and the
pool replaces the connection once the export is closed. Iterating an
aborted export raises ExportAborted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import typing
from collections.abc import Callable, Iterator
from functools import cache

import psycopg
from psycopg import sql

from .bags import bag_filters
from .bills import bill_filters
from .database import Database
from .errors import TraceTrackError
from .listing import where_sql
from .models import Bag, Bill
from .settings import EXPORT_STALL, EXPORT_TIMEOUT  # the longest a COPY may run / a reader may leave a chunk untaken

CHUNK = 64 * 1024

log = logging.getLogger(__name__)


class ExportAborted(TraceTrackError):
    code, status = "export_aborted", 503

_COPY = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)")


@cache
def _columns(row: type) -> sql.Composable:
    """The row type's columns of `r`, in order; text ones through tt_csv_text."""
    hints = typing.get_type_hints(row)
    out = []
    for f in dataclasses.fields(row):
        column = sql.Identifier(f.name)
        if str in (hints[f.name], *typing.get_args(hints[f.name])):
            out.append(sql.SQL("tt_csv_text(r.{0}) AS {0}").format(column))
        else:
            out.append(sql.SQL("r.{}").format(column))
    return sql.SQL(", ").join(out)


def bags_query(**filters) -> tuple[sql.Composed, dict]:
    """The SELECT that `bags_csv` copies (also for `tracetrack db explain export_bags`)."""
    where = bag_filters(**filters)
    return sql.SQL("SELECT {} FROM bag_row r {} ORDER BY r.id").format(_columns(Bag), where_sql(where)), where.params


def bills_query(status: str | None = None, q: str | None = None) -> tuple[sql.Composed, dict]:
    """The SELECT that `bills_csv` copies (also for `tracetrack db explain export_bills`)."""
    where = bill_filters(status, q)
    query = sql.SQL("SELECT {} FROM bill_row r {} ORDER BY r.id").format(_columns(Bill), where_sql(where))
    return query, where.params


class _Watch:
    """One export under the watchdog: since when its chunk waits for the reader."""

    __slots__ = ("conn", "conninfo", "on_abort", "waiting_since", "aborted")

    def __init__(self, conn: psycopg.Connection, conninfo: str, on_abort: Callable[[], None] | None):
        self.conn = conn
        self.conninfo = conninfo  # to reach the server from the watchdog's own connection
        self.on_abort = on_abort  # e.g. give back the caller's export slot
        self.waiting_since: float | None = None
        self.aborted = False

    def abort(self) -> None:
        """End the export's session from the watchdog's thread (the export's own
        thread is stuck in the server, handing a chunk to a reader that does not
        take it). PostgreSQL, blocked sending to a client that does not read,
        only notices a termination (pg_terminate_backend: allowed on one's own
        role's sessions); a pooler in between (PgBouncer, whose backend pid is
        not the server's) notices its client's socket shut down. Both are done;
        neither touches libpq's state from this thread."""
        self.aborted = True
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (self.conn.info.backend_pid,))
        except psycopg.Error as exc:
            log.warning("export abort: cannot terminate its session: %s", exc)
        try:
            with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # already closed
            log.debug("export socket shutdown: %s", exc)
        if self.on_abort is not None:
            self.on_abort()


class _Watchdog:
    """One daemon thread per process, started with the first export."""

    def __init__(self) -> None:
        self._active: set[_Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, conn: psycopg.Connection, conninfo: str,
              on_abort: Callable[[], None] | None = None) -> _Watch:
        watch = _Watch(conn, conninfo, on_abort)
        with self._lock:
            self._active.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tracetrack-export-watchdog", daemon=True)
                self._thread.start()
        return watch

    def forget(self, watch: _Watch) -> None:
        with self._lock:
            self._active.discard(watch)

    def check(self, stall: float, now: float | None = None) -> int:
        """Abort every export whose reader has left a chunk untaken over `stall` s."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stalled = [w for w in self._active if w.waiting_since is not None and now - w.waiting_since > stall]
            for watch in stalled:
                self._active.discard(watch)
        for watch in stalled:
            log.warning("export aborted: its reader took no data for %.0f s", now - watch.waiting_since)
            watch.abort()
        return len(stalled)

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            try:
                self.check(stall_seconds())
            except Exception:  # noqa: BLE001 - the watchdog must outlive any one failure
                log.exception("export watchdog")


_watchdog = _Watchdog()


def stall_seconds() -> float:
    return float(EXPORT_STALL.get())


def timeout_seconds() -> float:
    return float(EXPORT_TIMEOUT.get())


def _chunks(copy: psycopg.Copy) -> Iterator[bytes]:
    buffer = bytearray()
    for data in copy:
        buffer += data
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _stream(db: Database, select: sql.Composable, params: dict,
            on_abort: Callable[[], None] | None) -> Iterator[bytes]:
    # Holds one read connection for the whole export; the generator's close
    # (client gone) returns it to the pool.
    closing = False
    with db.connection(read=True) as conn:
        watch = _watchdog.watch(conn, db.read_pool.conninfo, on_abort)
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout_seconds() * 1000:.0f}",))
                with cur.copy(_COPY.format(select), params) as copy:
                    for chunk in _chunks(copy):
                        watch.waiting_since = time.monotonic()
                        try:
                            yield chunk
                        except GeneratorExit:
                            closing = True
                            raise
                        watch.waiting_since = None
        except psycopg.Error:
            if closing:  # the reader left; the rollback found the socket shut: nothing to tell anyone
                return
            if watch.aborted:  # the watchdog shut the socket: say so, not "connection lost"
                raise ExportAborted("the export was aborted: its reader took no data for too long") from None
            raise
        finally:
            _watchdog.forget(watch)


def bags_csv(db: Database, *, on_abort: Callable[[], None] | None = None, **filters) -> Iterator[bytes]:
    """Every bag matching the filters of `bags.list_bags`, oldest first, as CSV.
    `on_abort` runs (on the watchdog's thread) if the export is aborted."""
    return _stream(db, *bags_query(**filters), on_abort)


def bills_csv(db: Database, status: str | None = None, q: str | None = None, *,
              on_abort: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Every bill matching the filters of `bills.list_bills`, oldest first, as CSV."""
    return _stream(db, *bills_query(status, q), on_abort)
