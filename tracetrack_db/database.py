"""The connector: connection pools and the three verbs that run named queries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import class_row, dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from . import errors
from .queries import Queries, Query, load
from .rawsql import behind_pooler
from .replica import PRIMARY, Replica, lsn_to_int, wanted
from .settings import Settings
from .textvalue import TextQuery, fetch

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long the pool keeps retrying one lost connection (its delays double: 1, 2,
# 4, 8 s ...) before it gives the attempt up and the next request that waits
# starts a new one at once. psycopg_pool's default (300 s) let the delays grow
# with the outage: the service came back up to an outage's length after the
# database did (the drills, tests/test_drills.py); now within about 2 s.
RECONNECT_TIMEOUT = 5.0


def describe_target(conninfo: str) -> str:
    """host:port/dbname of a DSN, without the password, for messages."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparseable DATABASE_URL>"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


@cache
def _factory(row: Any) -> Any:
    """The row factory for `row` (None: tuples, dict, or a dataclass), built once:
    class_row inspects the class's signature, too slow to repeat per query."""
    return tuple_row if row is None else dict_row if row is dict else class_row(row)


_pooler_warned = False


def _warn_pooler_once() -> None:
    global _pooler_warned
    if not _pooler_warned:
        _pooler_warned = True
        log.warning(
            "the database connection goes through a pooler (PgBouncer): statements are not prepared "
            "(TRACETRACK_PREPARE_THRESHOLD=none is what this means; set it to silence this warning)"
        )


# A pooled connection idle longer than this is pinged before it is handed out: the
# last-in, first-out order below leaves a burst's extra connections idle for as long as
# traffic stays low, long enough for an idle timeout outside the app to end them
# (PostgreSQL's idle_session_timeout, a proxy's, a NAT's); one round trip for those, none
# for the connections in steady use.
IDLE_CHECK = 30.0
_IDLE_SINCE = "_tt_idle_since"  # the attribute of a connection: when it was last given back


class HotFirstPool(ConnectionPool):
    """psycopg_pool's pool, handing out the connection given back last (LIFO) instead of
    the one idle longest (FIFO).

    FIFO sends every request to the next backend in the ring: under the bench's eight
    clients each of a worker's six backends woke for one query in six, to caches the
    others had since filled. LIFO keeps the fewest backends busy, with warm caches; a
    burst's extra connections sit idle at the far end, the end the pool closes first
    when it shrinks (max_idle). Such a connection, idle past `idle_check` seconds, is
    pinged when it is next taken, and replaced if it was ended meanwhile. Measured in
    RESULTS ("Issue 13 item 8: a last-in, first-out pool"); SQLAlchemy's pool_use_lifo
    and Rails' pool do the same. tests/test_pool.py checks the order, so a psycopg_pool
    release that changes the internals used here fails there.
    """

    def __init__(
        self,
        *args: Any,
        idle_check: float = IDLE_CHECK,
        configure: Callable[[Connection], None] | None = None,
        **kwargs: Any,
    ):
        self.idle_check = idle_check

        def configured(conn: Connection) -> None:
            if configure is not None:
                configure(conn)
            setattr(conn, _IDLE_SINCE, monotonic())  # idle from now until first taken

        super().__init__(*args, check=self._check_if_idle, configure=configured, **kwargs)

    def _get_ready_connection(self, timeout: float | None) -> Connection | None:
        # Under the pool's lock. The base class takes from the left of its deque and puts
        # connections given back on the right: rotate(1) brings the newest to the left.
        # (check() takes them all out and puts them back in reverse order: the coldest then
        # comes first, and is pinged once if it was idle past the bound.)
        self._pool.rotate(1)
        try:
            return super()._get_ready_connection(timeout)
        except BaseException:  # it raised before taking one: the order as it was
            self._pool.rotate(-1)
            raise

    def putconn(self, conn: Connection) -> None:
        # (not the pool's `reset` callback: with one, every connection given back goes
        # through the pool's worker thread, a thread hand-off per request)
        setattr(conn, _IDLE_SINCE, monotonic())
        super().putconn(conn)

    def _check_if_idle(self, conn: Connection) -> None:
        since = getattr(conn, _IDLE_SINCE, None)  # when it was made or last given back
        if since is None or monotonic() - since > self.idle_check:
            try:
                self.check_connection(conn)
            except Exception:
                # the pool takes another, at once the first time but a second later the
                # next (its backoff, since psycopg-pool 3.2.1): the others idle as long are
                # likely gone too, so every idle connection is checked now, in this request
                self.purge()
                raise

    def purge(self) -> None:
        """Drop the idle connections that are broken (a round trip to each). The pool
        pings a connection on checkout only when it was idle past idle_check (a round
        trip per request otherwise), so after a database restart each recently used
        connection would fail the request that took it, and with nobody to retry,
        /health would say the database is down when it is back. For failure paths only."""
        try:
            self.check()
        except Exception:  # a check that fails is no reason to hide the request's own error
            log.warning("checking the pool's connections failed", exc_info=True)


class Database:
    """A write pool, an optional read pool (replica), and the named queries.

    Connections are in autocommit mode: a single query is its own transaction
    and costs one round trip; `transaction()` groups several.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        read_conninfo: str | None = None,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 2.0,
        prepare_threshold: int | None = 5,
        queries: Queries | None = None,
        name: str = "tracetrack",
        replica_wait: float = 0.1,
        replica_max_lag: float = 5.0,
        replica_retry: float = 5.0,
        idle_check: float = IDLE_CHECK,
    ):
        self.conninfo = conninfo
        self.queries = queries or load()
        self._text_queries: dict[tuple[str, bool], TextQuery] = {}  # text(): each query in libpq's form, made once
        self.timeout = timeout
        self._prepare_threshold = prepare_threshold
        kwargs = {"autocommit": True, "prepare_threshold": prepare_threshold}

        def make(dsn: str, suffix: str) -> HotFirstPool:
            return HotFirstPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs=kwargs,
                # no round trip per checkout (measured 86 us): only a connection idle
                # past idle_check is pinged (HotFirstPool); one that breaks mid-query
                # is discarded when returned
                idle_check=idle_check,
                open=False,
                reconnect_timeout=RECONNECT_TIMEOUT,
                name=f"{name}-{suffix}",
                configure=self._configure,
            )

        self._make_pool = make
        self.pool = make(conninfo, "write")
        self.read_pool = make(read_conninfo, "read") if read_conninfo else self.pool
        # with a read DSN, what routes each read (replica.py); None: every read on the primary
        self.replica = (
            Replica(
                conninfo,
                read_conninfo,
                wait=replica_wait,
                max_lag=replica_max_lag,
                retry=replica_retry,
                on_pool_recovered=lambda: self.read_pool.check(),  # the read pool of now (open() may replace it)
            )
            if read_conninfo
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Database:
        if not settings.database_url:
            raise ValueError("settings.database_url is not set (start the embedded server first)")
        options: dict[str, Any] = dict(
            read_conninfo=settings.database_read_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            prepare_threshold=settings.prepare_threshold,
            replica_wait=settings.replica_wait,
            replica_max_lag=settings.replica_max_lag,
            replica_retry=settings.replica_retry,
        )
        options.update(overrides)
        return cls(settings.database_url, **options)

    @staticmethod
    def _configure(conn: Connection) -> None:
        # Behind a pooler in transaction mode (PgBouncer < 1.21), a statement psycopg
        # prepared on one server connection is missing on the next, or worse: another
        # client's statement of the same name (_pg3_0 ...) runs with these parameters.
        # So a pooled connection never prepares, whatever TRACETRACK_PREPARE_THRESHOLD
        # says; nothing here is prepared until that is known.
        threshold, conn.prepare_threshold = conn.prepare_threshold, None
        # UTF8 whatever the DSN's options say: text() hands PostgreSQL's bytes on as UTF-8
        conn.execute(
            "SELECT set_config('application_name', 'tracetrack', false), set_config('client_encoding', 'UTF8', false)"
        )
        if threshold is not None:
            if behind_pooler(conn):
                _warn_pooler_once()
            else:
                conn.prepare_threshold = threshold

    # lifecycle -------------------------------------------------------------
    def open(self, wait: bool = True) -> Database:
        """Open the pools; with `wait`, fail at once with a clear message on a bad DSN.
        A replica that does not answer is no reason not to start: reads go to
        the primary until it does (and a warning says so)."""
        self._open(self.pool, self.conninfo, wait)
        if self.replica is not None:
            try:
                self._open(self.read_pool, self.replica.replica_conninfo, wait)
            except errors.DatabaseUnavailable as exc:
                log.warning("replica: %s; reads go to the primary until it answers", exc.message)
                # a fresh pool, filling in the background: one that did not fill in time
                # is closed, and a pool once closed cannot be opened again
                self.read_pool = self._make_pool(self.replica.replica_conninfo, "read")
                self.read_pool.open(wait=False)
            self.replica.poll()  # know it before the first read
            self.replica.start()
        return self

    def _open(self, pool: ConnectionPool, dsn: str, wait: bool) -> None:
        if wait:  # one direct attempt first: a wrong DSN fails now, not after the pool's retries
            problem = self._probe(dsn)
            if problem:
                raise errors.DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe_target(dsn)}: {problem}")
        pool.open()
        if wait:
            try:
                pool.wait(timeout=max(self.timeout, 5.0))
            except Exception as exc:  # PoolTimeout: the server went away in between, or is full
                pool.close()
                raise errors.DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {describe_target(dsn)}: the pool did not fill in time"
                ) from exc

    @staticmethod
    def _probe(conninfo: str) -> str | None:
        """Why a direct connection fails, or None when it works."""
        try:
            psycopg.connect(conninfo, connect_timeout=5).close()
        except psycopg.Error as exc:
            text = str(exc).strip()
            return text.splitlines()[0] if text else type(exc).__name__
        return None

    def close(self) -> None:
        if self.replica is not None:
            self.replica.stop()
        self.pool.close()
        if self.read_pool is not self.pool:
            self.read_pool.close()

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, dict[str, int]]:
        out = {"write": self.pool.get_stats()}
        if self.read_pool is not self.pool:
            out["read"] = self.read_pool.get_stats()
        return out

    # connections -----------------------------------------------------------
    @contextmanager
    def connection(self, *, read: bool = False, conn: Connection | None = None) -> Iterator[Connection]:
        """A pooled connection, or `conn` itself when the caller already holds one.
        `read`: a lag-tolerant read, on the replica when it may take it (see
        replica.py); one that fails there as a gone server fails raises
        ReplicaUnavailable, which a caller may answer by running the read
        again (it then goes to the primary; the verbs below do so themselves)."""
        if conn is not None:
            with errors.wrap_errors():
                yield conn
            return
        if not (read and self.replica is not None and self.replica.choose()):
            # getconn/putconn, not pool.connection() (~8 us a request less): its `with conn`
            # commits or rolls back, which an autocommit connection outside transaction()
            # never needs; one a raw BEGIN left in a transaction is rolled back by putconn
            # (with a warning), not committed, and the pool's usage_ms stat is not kept
            with errors.wrap_errors():
                own = self.pool.getconn()
                try:
                    yield own
                except Exception:
                    if own.broken:  # the server went away (a restart): so did the others in the pool, likely
                        self.pool.purge()
                    raise
                finally:
                    self.pool.putconn(own)
            return
        try:
            own = self.read_pool.getconn()
        except Exception as exc:  # noqa: BLE001 - nothing ran yet, so the primary
            if isinstance(exc, PoolTimeout):  # every read connection busy: this read only
                self.replica.busy()  # (a standby that is gone, the poller sees)
            else:
                self.replica.failed(exc)
            with errors.wrap_errors(), self.pool.connection() as own:
                yield own
            return
        try:
            with errors.wrap_errors(), own:  # the connection's block, as pool.connection() runs it
                yield own
        except (errors.DatabaseUnavailable, errors.Conflict, psycopg.Error) as exc:
            cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
            if not _replica_gone(cause):
                raise
            self.replica.failed(cause)  # type: ignore[arg-type]
            raise errors.ReplicaUnavailable(f"the replica failed: {cause}") from cause
        finally:
            self.read_pool.putconn(own)

    @contextmanager
    def reads_after(self, position: int | None) -> Iterator[None]:
        """Reads in this block see the writes up to `position` (write_position()
        after them): the replica once it has replayed that far, within
        TRACETRACK_REPLICA_WAIT, else the primary."""
        with _wanting(position or 0):
            yield

    @contextmanager
    def reads_on_primary(self, reason: str = "failed") -> Iterator[None]:
        """Every read in this block on the primary: `failed`, a retry after
        ReplicaUnavailable; `write`, the reads a write makes (they must see
        the current state, not a replica's)."""
        with _wanting(PRIMARY[reason]):
            yield

    def write_position(self) -> int | None:
        """The primary's WAL insert position now: past the commit of every write
        that has returned (None without a replica: nothing needs it)."""
        if self.replica is None:
            return None
        with self.connection() as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        return lsn_to_int(row[0]) if row else None

    def conninfo_of(self, conn: Connection) -> str:
        """The DSN of the server `conn` is on (the watchdog of an export reaches it with its own)."""
        return str(self.read_pool.conninfo) if getattr(conn, "_pool", None) is self.read_pool else self.conninfo

    @contextmanager
    def transaction(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A transaction on the caller's connection, or on one from the pool."""
        if conn is not None:
            with errors.wrap_errors(), conn.transaction():
                yield conn
            return
        with self.connection() as own, own.transaction():
            yield own

    # the verbs -------------------------------------------------------------
    def _run(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        row: Any,
        conn: Connection | None,
        read: bool,
        verb: tuple[str, ...],
    ) -> Any:
        query = self.queries[name]
        return self._on_connection(query, params, conn, read, verb, lambda c: self._fetch(c, query, params, row))

    def _on_connection(
        self,
        query: Query,
        params: Mapping[str, Any] | None,
        conn: Connection | None,
        read: bool,
        verb: tuple[str, ...],
        go: Callable[[Connection], Any],
    ) -> Any:
        """`go` on the caller's connection, a pooled one, or (a read with a replica)
        the one routing chose, once the query's kind and parameters are checked."""
        if query.kind not in verb:
            raise TypeError(f"query {query.name} ({query.source}) is :{query.kind}, not :{verb[0]}")
        self._check_params(query, params)
        if conn is not None:
            with errors.wrap_errors():
                return go(conn)
        if self.replica is None or not read:  # the path without a replica: as it was
            with self.connection() as own:
                return go(own)
        return self._read_once(go, read)

    def _read_once(self, go: Callable[[Connection], Any], read: bool) -> Any:
        """`go` on a connection; a read the replica failed runs once more, on the primary."""
        try:
            with self.connection(read=read) as own:
                return go(own)
        except errors.ReplicaUnavailable:
            with self.reads_on_primary(), self.connection(read=read) as own:
                return go(own)

    @staticmethod
    def _check_params(query: Query, params: Mapping[str, Any] | None) -> None:
        missing = query.params - (params.keys() if params else set())
        if missing:
            raise TypeError(f"query {query.name} ({query.source}) needs parameters {sorted(missing)}")

    @staticmethod
    def _fetch(conn: Connection, query: Query, params: Any, row: Any) -> Any:
        with conn.cursor(row_factory=_factory(row)) as cur:
            cur.execute(query.sql, params)
            kind = query.kind
            if kind == "one":
                return cur.fetchone()
            if kind == "many":
                return cur.fetchall()
            if kind == "scalar":
                first = cur.fetchone()
                return None if first is None else first[0]
            return cur.rowcount

    def one(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        row: Any = None,
        conn: Connection | None = None,
        read: bool = False,
    ) -> Any:
        """The first row of a named query, or None."""
        return self._run(name, params, row, conn, read, ("one",))

    def many(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        row: Any = None,
        conn: Connection | None = None,
        read: bool = False,
    ) -> list[Any]:
        return self._run(name, params, row, conn, read, ("many",))

    def scalar(
        self, name: str, params: Mapping[str, Any] | None = None, *, conn: Connection | None = None, read: bool = False
    ) -> Any:
        return self._run(name, params, None, conn, read, ("scalar",))

    def text(
        self, name: str, params: Mapping[str, Any] | None = None, *, conn: Connection | None = None, read: bool = False
    ) -> bytes | None:
        """The one text column of a :scalar query's first row as the bytes PostgreSQL
        sent, or None: for values PostgreSQL renders whole (JSON), straight from
        libpq, without a cursor's Python (textvalue.py). Parameters: str or None."""
        query = self.queries[name]
        key = (name, params is not None)  # psycopg reads %% as % only when there are parameters
        text_query = self._text_queries.get(key)
        if text_query is None:
            text_query = self._text_queries[key] = TextQuery.of(name, query.sql, params is not None)
        return self._on_connection(query, params, conn, read, ("scalar",), lambda c: fetch(c, text_query, params))

    def execute(self, name: str, params: Mapping[str, Any] | None = None, *, conn: Connection | None = None) -> int:
        """Run a named query for its effect; returns the affected row count."""
        return self._run(name, params, None, conn, False, ("execrows", "exec"))

    def run_sql(
        self, sql: Any, params: Any = None, *, row: Any = None, read: bool = True, conn: Connection | None = None
    ) -> list[Any]:
        """Run composed SQL (psycopg.sql, list filters) and return all rows."""
        factory = _factory(row)

        def go(c: Connection) -> list[Any]:
            with c.cursor(row_factory=factory) as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        if conn is not None:
            with errors.wrap_errors():
                return go(conn)
        return self._read_once(go, read)


@contextmanager
def _wanting(position: int) -> Iterator[None]:
    """The position the reads of this block must see (replica.wanted), restored after."""
    token = wanted.set(position)
    try:
        yield
    finally:
        wanted.reset(token)


def _replica_gone(exc: BaseException | None) -> bool:
    """Whether a replica read failed as a standby that is gone or replaying
    fails (connection lost, admin shutdown, a conflict with recovery), or as
    only a replica would (SQLSTATE class 42: a table or column the standby has
    not replayed yet, a read URL naming the wrong database or a role without
    the grants; a write sent there by mistake), so the primary can answer it:
    not a query that times out. (A query that is wrong everywhere fails on the
    primary as well, after costing the replica's breaker a RETRY.)"""
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.ReadOnlySqlTransaction):
        return True  # canceled by a conflict with recovery; a write on a standby
    if isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("42"):
        return True
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable
    )
