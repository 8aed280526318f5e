"""Forward-only migrations: `sql/migrations/NNNN_<name>.sql`, then the
re-runnable view files in `sql/views/`.

Each migration runs in its own transaction and is recorded with a checksum.
Concurrent runners serialise on an advisory lock. An applied migration whose
file has changed since is an error, never silently re-applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from . import privileges

from .sqlfiles import sql_files

FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
LOCK_KEY = 7_314_027_001  # pg_advisory_lock key shared by every runner

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


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
        return hashlib.sha256(self.sql.encode()).hexdigest()


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
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
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


def migrate(conninfo: str, migrations: list[Migration] | None = None,
            views: list[tuple[str, str]] | None = None,
            progress: Callable[[str], None] | None = None) -> list[Migration]:
    """Apply pending migrations, then (re)create the views; returns what was applied.

    Raises MigrationError when an applied migration's file changed.
    """
    migrations = discover() if migrations is None else migrations
    views = sql_files("views") if views is None else views
    done: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
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
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum))
                done.append(m)
            for filename, text in views:
                if progress:
                    progress(f"views: {filename}")
                with conn.transaction():
                    conn.execute(text.encode())
            with conn.transaction():  # the views were re-created: grant the service roles again
                privileges.apply(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done
