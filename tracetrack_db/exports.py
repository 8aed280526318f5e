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
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from functools import cache
from typing import LiteralString

import psycopg
from psycopg import generators, pq, sql

from .audit import SecurityEvent, log_filters
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


# The bag export looks bag_row's two computed columns up by LATERAL joins, not
# through the view: there they are scalar subqueries, and tt_csv_text names
# its argument three times, so a child's parent_qr was looked up three times
# per row. Joined, each lookup runs once per row, and PostgreSQL 14+ memoizes
# it (the children of one parent are neighbours in id order): a full export
# of bag_row runs about 3x faster (bench/RESULTS.md, Issue 10). `OFFSET 0`
# keeps each lookup a per-row index probe (as in the view): merged into a
# plain join, a narrow export would hash the whole bill table. Same rows and
# cells as bag_row (tests/test_exports.py compares them with the list).
_BAG_FROM = sql.SQL(
    "bag r LEFT JOIN LATERAL (SELECT p.qr_id FROM bag p WHERE p.id = r.parent_id OFFSET 0) p ON true"
    " LEFT JOIN LATERAL (SELECT x.bill_no FROM bill x WHERE x.id = r.bill_id OFFSET 0) x ON true"
)
_BAG_JOINED = (("parent_qr", "p.qr_id"), ("bill_no", "x.bill_no"))


@cache
def _columns(row: type, joined: tuple[tuple[str, LiteralString], ...] = ()) -> sql.Composable:
    """The row type's columns, in order: `r.<field>`, or the expression `joined`
    gives for it; text ones through tt_csv_text (each cell computed once)."""
    hints = typing.get_type_hints(row)
    source = {name: sql.SQL(expression) for name, expression in joined}
    out = []
    for f in dataclasses.fields(row):
        column = sql.Identifier(f.name)
        value = source.get(f.name, sql.SQL("r.{}").format(column))
        if str in (hints[f.name], *typing.get_args(hints[f.name])):
            out.append(sql.SQL("tt_csv_text({}) AS {}").format(value, column))
        else:
            out.append(sql.SQL("{} AS {}").format(value, column))
    return sql.SQL(", ").join(out)


def bags_query(**filters) -> tuple[sql.Composed, dict]:
    """The SELECT that `bags_csv` copies (also for `tracetrack db explain export_bags`):
    the rows of bag_row, by joins (above). The filters are on columns of `bag r`."""
    where = bag_filters(**filters)
    query = sql.SQL("SELECT {} FROM {} {} ORDER BY r.id").format(
        _columns(Bag, _BAG_JOINED), _BAG_FROM, where_sql(where)
    )
    return query, where.params


def bills_query(status: str | None = None, q: str | None = None) -> tuple[sql.Composed, dict]:
    """The SELECT that `bills_csv` copies (also for `tracetrack db explain export_bills`)."""
    where = bill_filters(status, q)
    query = sql.SQL("SELECT {} FROM bill_row r {} ORDER BY r.id").format(_columns(Bill), where_sql(where))
    return query, where.params


def security_log_query(**filters) -> tuple[sql.Composed, dict]:
    """The SELECT that `security_log_csv` copies (also for `tracetrack db explain
    export_security_log`): the rows of the security log list, oldest first.
    The user agent and the names are the client's text: a would-be formula is
    shown as text, like every text cell."""
    where = log_filters(**filters)
    query = sql.SQL("SELECT {} FROM security_log r {} ORDER BY r.id").format(_columns(SecurityEvent), where_sql(where))
    return query, where.params


class _Watch:
    """One export under the watchdog: since when its chunk waits for the reader."""

    __slots__ = ("conn", "conninfo", "on_abort", "waiting_since", "aborted", "server_pid", "started", "done", "lock")

    def __init__(self, conn: psycopg.Connection, conninfo: str, on_abort: Callable[[], None] | None):
        self.conn = conn
        # the server's pid of its session, read in the export's transaction: through
        # PgBouncer the pid the connection was told is made up
        self.server_pid: int | None = None
        self.started: datetime | None = None  # its transaction's start: the pid alone may be another's by then
        self.done = False  # the export left its transaction: its connection may be anyone's now
        self.lock = threading.Lock()
        self.conninfo = conninfo  # to reach the server from the watchdog's own connection
        self.on_abort = on_abort  # e.g. give back the caller's export slot
        self.waiting_since: float | None = None
        self.aborted = False

    def abort(self) -> None:
        """End the export's session from the watchdog's thread (the export's own
        thread is stuck in the server, handing a chunk to a reader that does not
        take it). PostgreSQL, blocked sending to a client that does not read,
        only notices a termination (pg_terminate_backend: allowed on one's own
        role's sessions: the one its transaction runs on, PgBouncer's too); a
        pooler in between also notices its client's socket shut down. Both are
        done; neither touches libpq's state from this thread."""
        with self.lock:  # the export cannot leave its transaction (and give its connection back) meanwhile
            if self.done:
                return
            self.aborted = True
            if self.server_pid is not None:
                try:
                    with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as other:
                        # only while that process still runs the export's transaction: behind a
                        # pooler the server process serves other clients once the export ends
                        other.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND xact_start = %s",
                            (self.server_pid, self.started),
                        )
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

    def watch(self, conn: psycopg.Connection, conninfo: str, on_abort: Callable[[], None] | None = None) -> _Watch:
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
            log.warning("export aborted: its reader took no data for %.0f s", now - (watch.waiting_since or now))
            watch.abort()
        return len(stalled)

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            try:
                self.check(stall_seconds())
            except Exception:
                log.exception("export watchdog")


_watchdog = _Watchdog()


def stall_seconds() -> float:
    return float(EXPORT_STALL.get())


def timeout_seconds() -> float:
    return float(EXPORT_TIMEOUT.get())


def _chunks(copy: psycopg.Copy) -> Iterator[bytes]:
    """The COPY's rows joined into chunks of about CHUNK bytes.

    PostgreSQL sends one message per row (~150 bytes of CSV). Taken through
    `Copy.read()`, each costs a trip through psycopg's generator and wait
    machinery (~2 µs of Python per row: 2/3 of the throughput of psql on the
    same COPY). Here a row libpq already holds is taken straight from it
    (`get_copy_data` without waiting); only when none is there does psycopg
    wait for the socket (with the GIL released) and read on. The end of the
    COPY is finished as psycopg's own `Copy.read()` does (its final result:
    a row count, or the error, e.g. the statement timeout)."""
    if not hasattr(copy, "_finished"):  # a psycopg whose Copy works otherwise: the plain loop
        yield from _chunks_by_row(copy)
        return
    conn = copy.connection
    pgconn = conn.pgconn
    take = pgconn.get_copy_data
    buffer = bytearray()
    while True:
        nbytes, data = take(1)  # 1: never block
        if nbytes > 0:
            buffer += data
            if len(buffer) >= CHUNK:
                yield bytes(buffer)
                buffer.clear()
        elif nbytes == 0:  # nothing received yet: wait through psycopg
            row = copy.read()
            if not row:
                break
            buffer += row
        else:  # -1: the COPY ended; its result (or error) follows
            copy._finished = True  # what Copy.read() records, so that leaving `with cur.copy()` reads no more
            result = conn.wait(generators.fetch_many(pgconn))[-1]
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
            break
    if buffer:
        yield bytes(buffer)


def _chunks_by_row(copy: psycopg.Copy) -> Iterator[bytes]:
    buffer = bytearray()
    for data in copy:
        buffer += data
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _stream(
    db: Database, select: sql.Composable, params: dict, on_abort: Callable[[], None] | None
) -> Generator[bytes, None, None]:
    # Holds one read connection for the whole export; the generator's close
    # (client gone) returns it to the pool.
    closing = False
    with db.connection(read=True) as conn:
        watch = _watchdog.watch(conn, db.conninfo_of(conn), on_abort)
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, true), pg_backend_pid(), now()",
                    (f"{timeout_seconds() * 1000:.0f}",),
                )
                _, watch.server_pid, watch.started = cur.fetchone()  # type: ignore[misc]
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
            with watch.lock:  # an abort under way finishes first; none starts after this
                watch.done = True
            _watchdog.forget(watch)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str | None) -> str:
    """A free-text cell a spreadsheet will not run as a formula: one starting
    with = + - @, a tab or a CR gets a leading apostrophe (tt_csv_text in SQL)."""
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def stream_csv(
    db: Database, select: sql.Composable, params: dict, *, on_abort: Callable[[], None] | None = None
) -> Generator[bytes, None, None]:
    """Any query's rows as CSV with a header, streamed under the exports' timeout and watchdog."""
    return _stream(db, select, params, on_abort)


def bags_csv(db: Database, *, on_abort: Callable[[], None] | None = None, **filters) -> Generator[bytes, None, None]:
    """Every bag matching the filters of `bags.list_bags`, oldest first, as CSV.
    `on_abort` runs (on the watchdog's thread) if the export is aborted."""
    return _stream(db, *bags_query(**filters), on_abort)


def bills_csv(
    db: Database, status: str | None = None, q: str | None = None, *, on_abort: Callable[[], None] | None = None
) -> Generator[bytes, None, None]:
    """Every bill matching the filters of `bills.list_bills`, oldest first, as CSV."""
    return _stream(db, *bills_query(status, q), on_abort)


def security_log_csv(
    db: Database, *, on_abort: Callable[[], None] | None = None, **filters
) -> Generator[bytes, None, None]:
    """Every security log row matching the filters of `audit.list_log`, oldest first, as CSV."""
    return _stream(db, *security_log_query(**filters), on_abort)
