"""The connector: connection pools and the three verbs that run named queries."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import class_row, dict_row, tuple_row
from psycopg_pool import ConnectionPool

from . import errors
from .queries import Queries, Query, load
from .rawsql import behind_pooler
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    ):
        self.conninfo = conninfo
        self.queries = queries or load()
        self.timeout = timeout
        self._prepare_threshold = prepare_threshold
        kwargs = {"autocommit": True, "prepare_threshold": prepare_threshold}

        def make(dsn: str, suffix: str) -> ConnectionPool:
            return ConnectionPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs=kwargs,
                # no `check`: it costs a round trip per checkout (measured 86 us);
                # a connection that breaks mid-query is discarded when returned
                open=False,
                name=f"{name}-{suffix}",
                configure=self._configure,
            )

        self.pool = make(conninfo, "write")
        self.read_pool = make(read_conninfo, "read") if read_conninfo else self.pool

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
        conn.execute("SET application_name = 'tracetrack'")
        if threshold is not None:
            if behind_pooler(conn):
                _warn_pooler_once()
            else:
                conn.prepare_threshold = threshold

    # lifecycle -------------------------------------------------------------
    def open(self, wait: bool = True) -> Database:
        """Open the pools; with `wait`, fail at once with a clear message on a bad DSN."""
        for pool, dsn in {
            id(self.pool): (self.pool, self.conninfo),
            id(self.read_pool): (self.read_pool, str(self.read_pool.conninfo)),
        }.values():
            if wait:  # one direct attempt first: a wrong DSN fails now, not after the pool's retries
                problem = self._probe(dsn)
                if problem:
                    raise errors.DatabaseUnavailable(
                        f"cannot connect to PostgreSQL at {describe_target(dsn)}: {problem}"
                    )
            pool.open()
            if wait:
                try:
                    pool.wait(timeout=max(self.timeout, 5.0))
                except Exception as exc:  # PoolTimeout: the server went away in between
                    pool.close()
                    raise errors.DatabaseUnavailable(
                        f"cannot connect to PostgreSQL at {describe_target(dsn)}: the pool did not fill in time"
                    ) from exc
        return self

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
        """A pooled connection, or `conn` itself when the caller already holds one."""
        if conn is not None:
            with errors.wrap_errors():
                yield conn
            return
        with errors.wrap_errors(), (self.read_pool if read else self.pool).connection() as own:
            yield own

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
        if query.kind not in verb:
            raise TypeError(f"query {name} ({query.source}) is :{query.kind}, not :{verb[0]}")
        self._check_params(query, params)
        if conn is not None:
            with errors.wrap_errors():
                return self._fetch(conn, query, params, row)
        with self.connection(read=read) as own:
            return self._fetch(own, query, params, row)

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
        with self.connection(read=read) as own:
            return go(own)
