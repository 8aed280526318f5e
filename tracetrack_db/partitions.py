"""The event log's monthly partitions (sql/migrations/0021): made ahead, and
old ones archived to gzip-compressed CSV files and dropped.

`maintain` runs as the service (tt_event_partitions_ahead is SECURITY
DEFINER); `archive` needs the tables' owner (only the owner detaches and drops
partitions).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from .database import Database
from .errors import ValidationError

MONTHS_AHEAD = 3
DETACH_LOCK_TIMEOUT = "5s"  # the detach waits this long for readers of event, then gives up (data stays)


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
    moved to their months; returns how many partitions were made."""
    return int(db.scalar("event_partitions_ahead", {"months": months}))


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
    the partition in place; a rerun writes its file again. The reports' roll-up
    is brought up to date first: archived months are counted from event_rollup.
    """
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if before > this_month:
        raise ArchiveRefused(f"--before {before:%Y-%m} would archive this month or later: at most {this_month:%Y-%m}")
    directory.mkdir(parents=True, exist_ok=True)
    done: list[Archived] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute("SELECT tt_event_partitions_ahead(%s)", (MONTHS_AHEAD,))  # strays into their months
        conn.execute("SELECT tt_roll_up_events()")
        due = conn.execute(
            "SELECT partition::text, nullif(range_from, '-infinity'), range_to FROM tt_event_partitions() "
            "WHERE NOT is_default AND range_to <= %s ORDER BY range_from",
            (before,),
        ).fetchall()
        for name, range_from, range_to in due:
            # event_legacy (the log 0021 converted) begins with MINVALUE: range_from None
            stem = f"event_before_{range_to:%Y-%m}" if range_from is None else f"event_{range_from:%Y-%m}"
            if progress:
                progress(f"archiving {name} to {directory / stem}.csv.gz")
            done.append(_archive_one(conn, name, range_from, range_to, directory / f"{stem}.csv.gz", progress))
    return done


def _archive_one(
    conn: psycopg.Connection,
    name: str,
    range_from: datetime | None,
    range_to: datetime,
    path: Path,
    progress: Callable[[str], None] | None,
) -> Archived:
    table = sql.Identifier(name)
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wb") as out, conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} TO STDOUT (FORMAT csv, HEADER)").format(table)) as copy:
            for chunk in copy:
                out.write(chunk)
        written = cur.rowcount
    read_back = _csv_rows(partial)
    if read_back != written:
        partial.unlink()
        raise RuntimeError(f"{partial}: {read_back} rows read back, {written} written; {name} kept")
    with open(partial, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        os.fsync(f.fileno())
    os.replace(partial, path)
    if progress:
        progress(f"{name}: {written} rows written and read back; detaching and dropping it")
    with conn.transaction():
        # no row may arrive after the copy (a past month's rows arrive only as strays the
        # maintenance moves): SHARE keeps writers of this partition out, not readers
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        if rows is None or rows[0] != written:
            raise RuntimeError(f"{name} holds {rows and rows[0]} rows, {written} were written to {path}; kept")
        conn.execute(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
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


def _csv_rows(path: Path) -> int:
    """Data rows of a gzip CSV with a header (fields may hold newlines: parsed, not counted by line)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1
