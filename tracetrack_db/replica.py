"""Where a read goes when DATABASE_READ_URL names a hot standby: the replica,
unless it is down, lags past a bound, or has not yet replayed what the
caller itself wrote.

One `Replica` per Database (per process) keeps what it knows of the standby
fresh with a background thread: every POLL seconds it asks the primary how far
its WAL is flushed and the standby how far it has replayed. From those it
knows the lag (seconds since the oldest primary position the standby has not
replayed yet, which stays 0 on an idle primary) and whether the standby
answers at all. A read then costs no round trip to decide.

Read-your-writes: a caller that wrote gets the primary's WAL insert position
after its commit (`Database.write_position`); its later reads, in
`Database.reads_after(position)`, go to the standby once it has replayed that
far, wait for it up to TRACETRACK_REPLICA_WAIT, and else go to the primary.

A failed replica read (the standby stopped, mid-query or not; a query the
standby cannot run, SQLSTATE class 42, as a missing migration gives) opens a
breaker for TRACETRACK_REPLICA_RETRY seconds: reads go to the primary without
trying the standby, until the poller reaches it again. While the standby is
down the poller dials it once per TRACETRACK_REPLICA_RETRY, not every poll.

The read server must be a standby of the primary's cluster that has replayed
the primary's migrations: the poller checks each connection it makes
(`pg_control_system().system_identifier`, the head of `schema_migrations`),
and a read server that is not in recovery (a standby promoted behind the
service's back) is down, unless it is the primary itself (the same server
through another address: same identifier and start time).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar

import psycopg

log = logging.getLogger(__name__)

POLL = 0.05  # seconds between polls when nobody waits
FAST_POLL = 0.002  # ... and while a read waits for the standby to catch up
STALE = 1.0  # a poll older than this: the poller is stuck, so is what it knows
MAX_SAMPLES = 4096

# The WAL position the reads of this context must see (0: none), or one of the
# reasons to read the primary whatever the replica knows
# a retry after a failed replica read; a read inside a write; a caller whose last write is not known
PRIMARY = {"failed": -1, "write": -2, "unknown": -3}
_PRIMARY_REASONS = {v: k for k, v in PRIMARY.items()}
wanted: ContextVar[int] = ContextVar("tracetrack_read_after", default=0)


class NotTheStandby(Exception):
    """The read server answers but is not a standby the reads may go to."""


IDENTITY = (
    "SELECT system_identifier::text, pg_postmaster_start_time()::text, "
    "coalesce(has_table_privilege(to_regclass('schema_migrations'), 'SELECT'), false) FROM pg_control_system()"
)


def _identity(conn: psycopg.Connection) -> tuple[str, str, int | None]:
    """(cluster identifier, start time, migration head or None: no migrations, or
    none this role may see) of the server `conn` is on."""
    row = conn.execute(IDENTITY).fetchone()
    assert row is not None
    head = None
    if row[2]:
        head = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]  # type: ignore[index]
    return row[0], row[1], head


def lsn_to_int(text: str) -> int:
    """'16/B374D848' (pg_lsn as text) -> its byte position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Replica:
    """What this process knows of the standby, and the routing of reads."""

    def __init__(
        self,
        primary_conninfo: str,
        replica_conninfo: str,
        *,
        wait: float,
        max_lag: float,
        retry: float,
        on_pool_recovered: Callable[[], None] = lambda: None,
    ):
        self.primary_conninfo = primary_conninfo
        self.replica_conninfo = replica_conninfo
        self.wait = wait
        self.max_lag = max_lag
        self.retry = retry
        self._on_pool_recovered = on_pool_recovered
        # where reads went and why (server, reason) -> count; `on_route` (the HTTP
        # service's Prometheus counter) is called as well
        self.routed: dict[tuple[str, str], int] = {}
        self.on_route: Callable[[str, str], None] | None = None
        self.replayed = 0  # the standby's replay position, as last polled
        self.primary_flushed = 0  # the primary's flush position, as last polled
        self.polled_at = 0.0  # monotonic time of the last good poll of the standby
        self.down_until = 0.0  # the breaker: no replica reads before this (0: closed)
        self.error: str | None = "not polled yet"
        self._samples: deque[tuple[float, int]] = deque()  # (when, primary position) not yet replayed
        self._cond = threading.Condition()
        self._waiters = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conns: dict[str, psycopg.Connection | None] = {"primary": None, "replica": None}
        self._primary_identity: tuple[str, str, int | None] | None = None
        self._same_server = False  # the read server is the primary itself (not in recovery, rightly)
        self._primary_polled = 0.0

    # what it knows ------------------------------------------------------------
    def lag_seconds(self, now: float | None = None) -> float:
        """Seconds since the oldest primary position the standby has not replayed (0: caught up)."""
        try:
            oldest = self._samples[0][0]
        except IndexError:  # none (or the poller took the last one meanwhile)
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - oldest)

    def lag_bytes(self) -> int:
        return max(0, self.primary_flushed - self.replayed)

    def up(self, now: float | None = None) -> bool:
        """The breaker is closed (only the poller closes it, once the standby answers
        and the read pool's broken connections are gone) and the last poll is recent."""
        return not self.down_until and (time.monotonic() if now is None else now) - self.polled_at < STALE

    def status(self) -> dict:
        """For /health and the metrics: up, lag, positions, the last error."""
        return {
            "up": self.up(),
            "lag_seconds": round(self.lag_seconds(), 3),
            "lag_bytes": self.lag_bytes(),
            "replayed": self.replayed,
            "error": None if self.up() else self.error,
            "reads": {f"{server}:{reason}": n for (server, reason), n in sorted(self.routed.items())},
        }

    # routing ------------------------------------------------------------------
    def _count(self, server: str, reason: str) -> None:
        key = (server, reason)
        self.routed[key] = self.routed.get(key, 0) + 1  # per-process statistics: a lost increment is harmless
        if self.on_route is not None:
            self.on_route(server, reason)

    def choose(self) -> bool:
        """Whether this read goes to the standby (True) or the primary; may wait
        up to `wait` seconds for the standby to replay the caller's own write."""
        after = wanted.get()
        if after < 0:
            self._count("primary", _PRIMARY_REASONS[after])
            return False
        now = time.monotonic()
        if not self.up(now):
            self._count("primary", "down")
            return False
        if self.lag_seconds(now) > self.max_lag:
            self._count("primary", "lag")
            return False
        if after <= self.replayed:
            self._count("replica", "current")
            return True
        if self._wait_for(after, now + self.wait):
            self._count("replica", "waited")
            return True
        self._count("primary", "own_write")
        return False

    def _wait_for(self, position: int, deadline: float) -> bool:
        with self._cond:
            self._waiters += 1
            try:
                while self.replayed < position:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self.up():
                        return False
                    self._wake.set()
                    self._cond.wait(left)
                return True
            finally:
                self._waiters -= 1

    def busy(self) -> None:
        """Every read connection was busy: this read goes to the primary, the
        standby is not the worse for it (no breaker)."""
        self._count("primary", "busy")

    def _down(self, reason: str) -> None:
        """The poller found the standby unusable: reads go to the primary; said once per reason."""
        if self.error != reason:
            log.warning("replica down (reads go to the primary): %s", reason)
        self.error = reason
        self.down_until = time.monotonic() + self.retry

    def failed(self, exc: BaseException) -> None:
        """A replica read failed as a server that is gone fails: open the breaker."""
        self.down_until = time.monotonic() + self.retry
        self.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.warning("replica read failed (reads go to the primary for %g s): %s", self.retry, self.error)
        self._wake.set()

    # the poller ---------------------------------------------------------------
    def start(self) -> Replica:
        self._thread = threading.Thread(target=self._run, name="tracetrack-replica", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for name, conn in self._conns.items():
            if conn is not None:
                conn.close()
            self._conns[name] = None

    def _connect(self, name: str) -> psycopg.Connection:
        dsn = self.primary_conninfo if name == "primary" else self.replica_conninfo
        # never prepared: either DSN may go through PgBouncer in transaction pooling
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            prepare_threshold=None,
            connect_timeout=2,
            application_name="tracetrack-replica-poller",
        )
        try:
            identity = _identity(conn)
        except psycopg.Error:
            conn.close()
            raise
        if name == "primary":
            self._primary_identity = identity
            return conn
        if self._primary_identity is None:  # not known yet: ask the primary now
            with contextlib.suppress(psycopg.Error):
                self._query("primary", "SELECT 1")
        problem = self._not_the_standby(identity)
        if problem:
            conn.close()
            raise NotTheStandby(problem)
        self._same_server = identity[:2] == self._primary_identity[:2]  # type: ignore[index]
        return conn

    def _not_the_standby(self, identity: tuple[str, str, int | None]) -> str | None:
        primary = self._primary_identity
        if primary is None:
            return "the primary does not answer, so the standby cannot be checked against it"
        if identity[0] != primary[0]:
            return (
                f"not a standby of the primary's cluster (system identifier {identity[0]}, the primary's {primary[0]})"
            )
        # the primary's head as of its connection: a later migration there may be ahead of it
        if primary[2] is not None and (identity[2] is None or identity[2] < primary[2]):
            return (
                f"its schema is at migration {identity[2]}, the primary's at {primary[2]} "
                "(the wrong database, or a migration not replayed yet)"
            )
        return None

    def _close(self, name: str) -> None:
        conn, self._conns[name] = self._conns[name], None
        if conn is not None:
            conn.close()

    def _query(self, name: str, sql: str) -> tuple:
        conn = self._conns[name]
        if conn is None or conn.closed:
            conn = self._conns[name] = self._connect(name)
        try:
            row = conn.execute(sql).fetchone()
        except psycopg.Error:
            conn.close()
            self._conns[name] = None
            raise
        assert row is not None
        return row

    def poll(self) -> None:
        """One poll: the primary's flush position (while a read waits, only every
        POLL seconds: the standby's replay is what it waits for, but a standby
        that froze must still be seen lagging), then the standby's replay position."""
        now = time.monotonic()
        if not self._waiters or now - self._primary_polled >= POLL:
            self._primary_polled = now
            try:
                (flushed,) = self._query("primary", "SELECT pg_current_wal_flush_lsn()::text")
                self.primary_flushed = lsn_to_int(flushed)
                if self.primary_flushed > self.replayed and (
                    not self._samples or self._samples[-1][1] < self.primary_flushed
                ):
                    self._samples.append((now, self.primary_flushed))
                    if len(self._samples) > MAX_SAMPLES:  # a standby stuck for long: merge, keeping the oldest time
                        first = self._samples.popleft()
                        self._samples[0] = (first[0], self._samples[0][1])
            except psycopg.Error as exc:  # the primary's trouble is the write path's to report
                log.debug("replica poller: primary: %s", exc)
        if self._conns["replica"] is None and self.down_until and time.monotonic() < self.down_until:
            return  # down: dial it again once per retry, not every poll
        try:
            replayed, recovering = self._query("replica", "SELECT pg_last_wal_replay_lsn()::text, pg_is_in_recovery()")
        except psycopg.Error as exc:
            text = str(exc).strip()
            self._down(f"unreachable: {text.splitlines()[0] if text else type(exc).__name__}")
            return
        except NotTheStandby as exc:
            self._down(str(exc))
            return
        if not recovering and not self._same_server:
            # promoted (a failover tool, a mistaken pg_promote): it never sees a write
            # of the primary again. The connection goes, so the next dial (once per
            # retry) checks it again (the primary restarted since: a new start time)
            self._down("not in recovery: a promoted standby, not a replica of the primary")
            self._close("replica")
            return
        # not in recovery and the primary itself (through another address, say):
        # what it answers is current by definition
        position = lsn_to_int(replayed) if recovering and replayed else (1 << 64) - 1
        with self._cond:
            self.replayed = position
            while self._samples and self._samples[0][1] <= position:
                self._samples.popleft()
            self._cond.notify_all()
        now = time.monotonic()
        if self.down_until and now >= self.down_until:  # the breaker was open: the standby answers again
            self._on_pool_recovered()  # broken pooled connections go before reads come back
            self.down_until = 0.0
            log.info("replica reachable again: reads go to it")
        if not self.down_until:
            self.error = None
        self.polled_at = now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the poller must outlive any surprise; the next poll tries again
                log.exception("replica poller")
            self._wake.wait(FAST_POLL if self._waiters else POLL)
            self._wake.clear()
