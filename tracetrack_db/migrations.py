"""Forward-only migrations: `sql/migrations/NNNN_<name>.sql`, then the
re-runnable view files in `sql/views/`.

Each migration runs in its own transaction and is recorded with a checksum,
unless its first line is `-- tracetrack: no-transaction`: then its statements
run one by one outside any transaction (what `CREATE INDEX CONCURRENTLY`
needs), so each must be safe to run again after a failure part-way.
Concurrent runners serialise on an advisory lock. An applied migration whose
file has changed since is an error, never silently re-applied.

A views file is re-run only when its text changed (or one of its views is
gone): it is built into a scratch schema while readers keep the old views,
then swapped in by one short transaction (drop old, move new, grant).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from . import privileges
from .rawsql import behind_pooler, value
from .sqlfiles import sql_files

FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
NO_TRANSACTION = "-- tracetrack: no-transaction"
LOCK_KEY = 7_314_027_001  # pg_advisory_lock key shared by every runner
REFRESH_LOCK_KEY = 7_314_027_002  # the view refresher's (sql/queries/dashboard.sql try_refresh_lock)
BUILD_SCHEMA = "tt_views_build"
SWAP_LOCK_TIMEOUT = "2s"  # a swap waiting longer for a reader gives way and tries again
SWAP_TRIES = 10
LOCK_RETRY_SECONDS = 0.2

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS schema_views (
    filename    text PRIMARY KEY,
    checksum    text NOT NULL,
    objects     text[] NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


def sha256_of(text: str) -> str:
    """The checksum recorded for a migration or a views file."""
    return hashlib.sha256(text.encode()).hexdigest()


class MigrationError(RuntimeError):
    """A migration file is misnamed, out of order, or changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return sha256_of(self.sql)

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION)


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    state: str  # applied | pending | changed | missing_file
    applied_at: datetime | None


def discover(files: list[tuple[str, str]] | None = None) -> list[Migration]:
    """The migrations shipped with the library, checked for names and gaps."""
    migrations = []
    for filename, text in files if files is not None else sql_files("migrations"):
        match = FILENAME.match(filename)
        if not match:
            raise MigrationError(f"bad migration file name {filename!r}: expected NNNN_name.sql")
        migrations.append(Migration(int(match["version"]), match["name"], filename, text))
    migrations.sort(key=lambda m: m.version)
    for expected, migration in enumerate(migrations, 1):
        if migration.version != expected:
            raise MigrationError(f"migration {migration.filename}: expected version {expected:04d}")
    return migrations


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, str, datetime]]:
    exists = value(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations").fetchall()
    return {v: (n, c, at) for v, n, c, at in rows}


def status(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[MigrationStatus]:
    migrations = discover() if migrations is None else migrations
    applied = _applied(conn)
    out = []
    for m in migrations:
        if m.version not in applied:
            out.append(MigrationStatus(m.version, m.name, "pending", None))
        else:
            _, checksum, at = applied[m.version]
            out.append(MigrationStatus(m.version, m.name, "applied" if checksum == m.checksum else "changed", at))
    known = {m.version for m in migrations}
    for version, (name, _, at) in sorted(applied.items()):
        if version not in known:
            out.append(MigrationStatus(version, name, "missing_file", at))
    return out


def views_status(
    conn: psycopg.Connection, views: list[tuple[str, str]] | None = None
) -> list[tuple[str, str, datetime | None]]:
    """(filename, current | changed | pending, applied_at) of each views file."""
    views = sql_files("views") if views is None else views
    exists = value(conn, "SELECT to_regclass('schema_views') IS NOT NULL")
    recorded = (
        {f: (c, at) for f, c, at in conn.execute("SELECT filename, checksum, applied_at FROM schema_views").fetchall()}
        if exists
        else {}
    )
    out = []
    for filename, text in views:
        recorded_sum, at = recorded.get(filename, (None, None))
        state = "pending" if recorded_sum is None else ("current" if recorded_sum == sha256_of(text) else "changed")
        out.append((filename, state, at))
    return out


def migrate(
    conninfo: str,
    migrations: list[Migration] | None = None,
    views: list[tuple[str, str]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Migration]:
    """Apply pending migrations, then the views files that changed; returns what was applied.

    Raises MigrationError when an applied migration's file changed.
    """
    migrations = discover() if migrations is None else migrations
    views = sql_files("views") if views is None else views
    done: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if behind_pooler(conn):
            # the lock below is held across transactions: under transaction pooling its
            # unlock may reach another server connection, leaving it held for good
            raise MigrationError(
                "migrations need a session of their own (an advisory lock held across transactions), "
                "which a pooler such as PgBouncer does not keep: point TRACETRACK_OWNER_URL at "
                "PostgreSQL itself"
            )
        conn.execute("SET client_min_messages = warning")
        _lock(conn, progress)
        try:
            conn.execute(_CREATE_TABLE)
            changed = [s for s in status(conn, migrations) if s.state in ("changed", "missing_file")]
            if changed:
                names = ", ".join(f"{s.version:04d}_{s.name} ({s.state})" for s in changed)
                raise MigrationError(f"applied migrations differ from the files: {names}")
            applied = _applied(conn)
            for m in migrations:
                if m.version in applied:
                    continue
                if progress:
                    progress(f"applying {m.filename}")
                _apply(conn, m)
                done.append(m)
            rebuilt = [filename for filename, text in views if _refresh_views_file(conn, filename, text, progress)]
            if done and not rebuilt:  # a migration may have replaced what the service is granted
                with conn.transaction():
                    privileges.apply(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done


def _lock(conn: psycopg.Connection, progress: Callable[[str], None] | None) -> None:
    """The runners' advisory lock, asked for again and again rather than waited
    on: a session blocked in pg_advisory_lock holds a snapshot, which another
    runner's CREATE INDEX CONCURRENTLY would wait for while holding the lock (a
    deadlock PostgreSQL breaks by killing the build)."""
    said = False
    while not value(conn, "SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)):
        if progress and not said:
            progress("waiting for another migration runner")
            said = True
        time.sleep(LOCK_RETRY_SECONDS)


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    record = (
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (m.version, m.name, m.checksum),
    )
    if m.transactional:
        with conn.transaction():
            conn.execute(m.sql.encode())
            conn.execute(*record)
        return
    for statement in split_statements(m.sql):  # autocommit: each statement on its own
        conn.execute(statement.encode())
    conn.execute(*record)


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(text: str) -> list[str]:
    """The statements of a script, split at the semicolons that end them (not
    those inside quotes, E'' strings, dollar quotes or nested comments)."""
    statements: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i + 1
        elif text.startswith("/*", i):
            i = _comment_end(text, i)
        elif ch in "'\"":
            # E'...' (not the end of a word like "name'"): a backslash escapes the next character
            escapes = ch == "'" and text[i - 1 : i] in ("e", "E") and not _word_char(text[i - 2 : i - 1])
            i += 1
            while i < n and text[i] != ch:
                i += 2 if escapes and text[i] == "\\" else 1
            i += 1  # a doubled quote is two quoted runs back to back: same result
        elif ch == "$" and (tag := _DOLLAR_TAG.match(text, i)) and not _word_char(text[i - 1 : i]):
            end = text.find(tag.group(), tag.end())
            i = n if end < 0 else end + len(tag.group())
        elif ch == ";":
            statements.append(text[start:i])
            start = i = i + 1
        else:
            i += 1
    statements.append(text[start:])
    # a piece holding nothing but comments and blank space is no statement
    return [s.strip() for s in statements if _without_comments(s).strip()]


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _comment_end(text: str, i: int) -> int:
    """Just past the /* comment */ starting at i (PostgreSQL's nest)."""
    depth, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _without_comments(piece: str) -> str:
    out, i, n = [], 0, len(piece)
    while i < n:
        if piece.startswith("--", i):
            end = piece.find("\n", i)
            i = n if end < 0 else end
        elif piece.startswith("/*", i):
            i = _comment_end(piece, i)
        else:
            out.append(piece[i])
            i += 1
    return "".join(out)


def _refresh_views_file(
    conn: psycopg.Connection, filename: str, text: str, progress: Callable[[str], None] | None
) -> bool:
    """Build a changed views file beside the live views and swap it in; False when unchanged."""
    if re.search(r"\bDROP\b", re.sub(r"--[^\n]*", "", text), re.I):
        raise MigrationError(
            f"views file {filename}: no DROP statements (the runner replaces what the file creates, by swapping it in)"
        )
    checksum = sha256_of(text)
    schema = value(conn, "SELECT current_schema()")
    row = conn.execute("SELECT checksum, objects FROM schema_views WHERE filename = %s", (filename,)).fetchone()
    if (
        row
        and row[0] == checksum
        and all(value(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{name}",)) for name in row[1])
    ):
        return False
    if progress:
        progress(f"views: building {filename}")
    build = sql.Identifier(BUILD_SCHEMA)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(build))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(build))
    try:
        with conn.transaction():  # the long part: readers go on reading the old views meanwhile
            conn.execute(sql.SQL("SET LOCAL search_path = {}, {}").format(build, sql.Identifier(schema)))
            conn.execute(text.encode())
        made = [
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind IN ('r', 'v', 'm') "
                "ORDER BY oid",  # the order the file made them: a view after those it reads
                (BUILD_SCHEMA,),
            )
        ]
        _swap(conn, schema, made, filename, checksum, progress)
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(build))
    return True


def _swap(
    conn: psycopg.Connection,
    schema: str,
    names: list[str],
    filename: str,
    checksum: str,
    progress: Callable[[str], None] | None,
) -> None:
    """One short transaction: drop the old objects, move the new ones in, grant them.
    Waiting on a long reader is bounded (lock_timeout), then tried again: a queued
    DROP would make every new reader wait behind it."""
    kinds = {"r": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}
    for attempt in range(1, SWAP_TRIES + 1):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (REFRESH_LOCK_KEY,))  # not mid-refresh
                # the old objects newest first (a view goes before the views it reads),
                # then the new ones in, in the order the file made them
                old = conn.execute(
                    "SELECT relname, relkind FROM pg_class WHERE relnamespace = %s::regnamespace "
                    "AND relname = ANY (%s) AND relkind IN ('r', 'v', 'm') ORDER BY oid DESC",
                    (schema, names),
                ).fetchall()
                for name, kind in old:
                    conn.execute(
                        sql.SQL("DROP {} {}.{}").format(
                            sql.SQL(kinds[kind]), sql.Identifier(schema), sql.Identifier(name)
                        )
                    )
                for name in names:
                    new_kind = value(
                        conn, "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (f"{BUILD_SCHEMA}.{name}",)
                    )
                    conn.execute(
                        sql.SQL("ALTER {} {}.{} SET SCHEMA {}").format(
                            sql.SQL(kinds[new_kind]),
                            sql.Identifier(BUILD_SCHEMA),
                            sql.Identifier(name),
                            sql.Identifier(schema),
                        )
                    )
                conn.execute(
                    "INSERT INTO schema_views (filename, checksum, objects) VALUES (%s, %s, %s) "
                    "ON CONFLICT (filename) DO UPDATE SET checksum = excluded.checksum, "
                    "objects = excluded.objects, applied_at = now()",
                    (filename, checksum, names),
                )
                privileges.apply(conn)  # in the same transaction: no reader finds a view it may not read
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == SWAP_TRIES:
                raise
            if progress:
                progress(f"views: {filename} waits for a long reader (try {attempt} of {SWAP_TRIES})")
            time.sleep(min(attempt, 5))
