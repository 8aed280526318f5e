"""The event log's monthly partitions (sql/migrations/0021): made ahead, and
old ones archived to gzip-compressed CSV files and dropped.

`maintain` runs as whoever calls it: the service (the refresher) or the owner
(`tracetrack db maintain`); its functions are SECURITY DEFINER. `archive` needs
the tables' owner (only the owner detaches and drops partitions).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from . import privileges
from .database import Database
from .errors import ValidationError

MONTHS_AHEAD = 3
DETACH_LOCK_TIMEOUT = "5s"  # the archive's locks wait this long for readers of event, then give up (data stays)
ARCHIVE_LOCK = 0x7474_6172_6368  # pg_try_advisory_lock key: one `db archive` at a time
STRAYS_BATCH = 10_000  # strays moved back per transaction (tt_event_strays_move)


class ArchiveRefused(ValidationError):
    code = "archive_refused"


@dataclass(frozen=True, slots=True)
class Archived:
    partition: str
    range_from: datetime | None  # None: event_legacy, from the beginning
    range_to: datetime
    file: Path
    rows: int
    sha256: str


def maintain(db: Database, months: int = MONTHS_AHEAD) -> int:
    """Partitions for this month and `months` ahead, strays in the default partition
    put back into their months (the default swapped for an empty one in a short
    transaction, then the strays attached as their month's partition, or moved in
    batches of STRAYS_BATCH, each its own transaction; unseen by reads until then);
    returns how many partitions were made."""
    made = int(db.scalar("event_partitions_ahead", {"months": months}))
    before = int(db.scalar("event_partition_count"))
    # each call its own transaction (autocommit): event is never locked for the whole move
    while db.scalar("event_strays_move", {"rows": STRAYS_BATCH}):
        pass
    return made + int(db.scalar("event_partition_count")) - before  # and the strays' months


def partitions(db: Database) -> list[dict]:
    """Every partition (name, range_from, range_to, is_default, estimated_rows) and
    every archived range (archived true), oldest first."""
    return db.many("event_partitions", row=dict, read=True)


def parse_month(text: str) -> datetime:
    """'YYYY-MM' as the first moment of that UTC month; ArchiveRefused if malformed."""
    try:
        month = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ArchiveRefused(f"not a month: {text!r} (expected YYYY-MM)") from None
    return month.replace(tzinfo=UTC)


def archive(
    owner_url: str, before: datetime, directory: Path, progress: Callable[[str], None] | None = None
) -> list[Archived]:
    """Archive every month partition that ends by `before` (a UTC month start, no
    later than this month's): write it to `directory` as CSV with a header,
    gzip-compressed, read the file back and count its rows, then detach and drop
    the partition and record the file in event_archive, in one transaction that
    checks the partition still holds exactly the rows written. Any failure leaves
    the partition in place; a rerun writes its file again. An existing file is
    never replaced (a rerun refuses a month whose file exists). One archive at a
    time (a session advisory lock). The reports' roll-up is brought up to date
    first: archived months are counted from event_rollup.
    """
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if before > this_month:
        raise ArchiveRefused(f"--before {before:%Y-%m} would archive this month or later: at most {this_month:%Y-%m}")
    done: list[Archived] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if not privileges.is_owner(conn):
            raise ArchiveRefused("archiving needs the tables' owner (TRACETRACK_OWNER_URL), not the service")
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE_LOCK,)).fetchone()[0]:  # type: ignore[index]
            raise ArchiveRefused("another archive is running")
        directory.mkdir(parents=True, exist_ok=True)
        conn.execute("SET timezone = 'UTC'")
        _make_ahead(conn, MONTHS_AHEAD)  # strays into their months
        rolled_to = conn.execute("SELECT tt_roll_up_events()").fetchone()[0]  # type: ignore[index]
        due = conn.execute(
            "SELECT partition::text, nullif(range_from, '-infinity'), range_to FROM tt_event_partitions() "
            "WHERE NOT is_default AND range_to <= %s ORDER BY range_from",
            (before,),
        ).fetchall()
        for name, range_from, range_to in due:
            if rolled_to < range_to:  # its last quarters' counts would be lost with its rows
                raise ArchiveRefused(f"the reports' roll-up reaches {rolled_to}, not the end of {name}: later")
            # event_legacy (the log 0021 converted) begins with MINVALUE: range_from None
            stem = f"event_before_{range_to:%Y-%m}" if range_from is None else f"event_{range_from:%Y-%m}"
            path = directory / f"{stem}.csv.gz"
            archived = conn.execute(
                "SELECT file FROM event_archive WHERE range_from < %s AND range_to > coalesce(%s, '-infinity')",
                (range_to, range_from),
            ).fetchone()
            if archived is not None:  # a partition remade for late rows (tt_event_partition_make refuses now)
                raise ArchiveRefused(f"{name}: its months are archived already, to {archived[0]}; kept")
            if path.exists() or path.is_symlink():
                raise ArchiveRefused(f"{path} exists: never replaced; {name} kept")
            if progress:
                progress(f"archiving {name} to {path}")
            done.append(_archive_one(conn, name, range_from, range_to, path, progress))
    return done


def _make_ahead(conn: psycopg.Connection, months: int) -> int:
    """tt_event_partitions_ahead, then the strays it set aside moved back in batches."""
    made = int(conn.execute("SELECT tt_event_partitions_ahead(%s)", (months,)).fetchone()[0])  # type: ignore[index]
    while conn.execute("SELECT tt_event_strays_move(%s)", (STRAYS_BATCH,)).fetchone()[0]:  # type: ignore[index]
        pass
    return made


def _archive_one(
    conn: psycopg.Connection,
    name: str,
    range_from: datetime | None,
    range_to: datetime,
    path: Path,
    progress: Callable[[str], None] | None,
) -> Archived:
    table = sql.Identifier(name)
    # a name of our own, made here (O_EXCL) and never through a symlink (O_NOFOLLOW)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with open(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out, conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} TO STDOUT (FORMAT csv, HEADER)").format(table)) as copy:
                for chunk in copy:
                    out.write(chunk)
            written = cur.rowcount
        read_back = _csv_rows(partial)
        if read_back != written:
            raise RuntimeError(f"{partial}: {read_back} rows read back, {written} written; {name} kept")
        with open(partial, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            os.fsync(f.fileno())
        os.link(partial, path)  # never over an existing file: FileExistsError
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(path.parent)  # the new name is durable before the partition goes
    with open(path, "rb") as f:  # the file that stays is the one recorded
        if hashlib.file_digest(f, "sha256").hexdigest() != digest:
            raise RuntimeError(f"{path} changed after it was written; {name} kept")
    if progress:
        progress(f"{name}: {written} rows written and read back; detaching and dropping it")
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
        # no row may arrive after the copy (a past month's rows arrive only as strays the
        # maintenance moves): SHARE keeps writers of this partition out, not readers
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        if rows is None or rows[0] != written:
            raise RuntimeError(f"{name} holds {rows and rows[0]} rows, {written} were written to {path}; kept")
        # not CONCURRENTLY: PostgreSQL refuses that while a default partition exists. A moment's
        # ACCESS EXCLUSIVE on event, held to the commit just below.
        conn.execute(sql.SQL("ALTER TABLE event DETACH PARTITION {}").format(table))
        conn.execute(
            "INSERT INTO event_archive (range_from, range_to, partition_name, file, rows, sha256) "
            "VALUES (coalesce(%s, '-infinity'), %s, %s, %s, %s, %s)",
            (range_from, range_to, name, str(path.resolve()), written, digest),
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    if progress:
        progress(f"{name}: dropped")
    return Archived(name, range_from, range_to, path, written, digest)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _csv_rows(path: Path) -> int:
    """Data rows of a gzip CSV with a header (fields may hold newlines: parsed, not counted by line)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1
