"""Migration runner: order, checksums, the advisory lock, file names."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from tracetrack_db import migrations
from tracetrack_db.migrations import FILENAME, Migration, MigrationError, discover

from .conftest import with_dbname


@pytest.fixture
def empty_url(pg_server_url):
    import uuid

    name = f"tt_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_shipped_migration_files_are_named_and_numbered():
    shipped = discover()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    for m in shipped:
        assert FILENAME.match(m.filename)


@pytest.mark.parametrize(
    "files, message",
    [
        ([("1_x.sql", "")], "bad migration file name"),
        ([("0001_a.sql", ""), ("0003_c.sql", "")], "expected version 0002"),
        ([("0001_Upper.sql", "")], "bad migration file name"),
    ],
)
def test_bad_file_sets_are_refused(files, message):
    with pytest.raises(MigrationError, match=message):
        discover(files)


def test_migrate_applies_in_order_records_checksums_and_is_idempotent(empty_url):
    applied = migrations.migrate(empty_url)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert migrations.migrate(empty_url) == []
    with psycopg.connect(empty_url) as conn:
        rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
        assert rows == [(m.version, m.checksum) for m in discover()]
        assert {s.state for s in migrations.status(conn)} == {"applied"}
        # the ten default areas and two parent formats
        assert conn.execute("SELECT count(*) FROM dispatch_area").fetchone()[0] == 10
        assert conn.execute("SELECT array_agg(name ORDER BY id) FROM parent_format").fetchone()[0] == ["SB", "M444"]


def test_a_changed_applied_migration_is_an_error(empty_url):
    files = [("0001_one.sql", "CREATE TABLE one (id int);")]
    migrations.migrate(empty_url, discover(files), views=[])
    changed = [("0001_one.sql", "CREATE TABLE one (id bigint);")]
    with pytest.raises(MigrationError, match="0001_one \\(changed\\)"):
        migrations.migrate(empty_url, discover(changed), views=[])
    with psycopg.connect(empty_url) as conn:
        assert [s.state for s in migrations.status(conn, discover(changed))] == ["changed"]


def test_a_failing_migration_rolls_back_alone(empty_url):
    files = [("0001_ok.sql", "CREATE TABLE ok (id int);"), ("0002_bad.sql", "CREATE TABLE bad (id int); SELECT 1/0;")]
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrations.migrate(empty_url, discover(files), views=[])
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT to_regclass('ok') IS NOT NULL, to_regclass('bad') IS NULL").fetchone() == (
            True,
            True,
        )
        assert [s.state for s in migrations.status(conn, discover(files))] == ["applied", "pending"]


def test_concurrent_runners_serialise_on_the_advisory_lock(empty_url):
    """Two runners at once: each migration is applied exactly once."""
    files = [
        ("0001_slow.sql", "SELECT pg_sleep(0.3); CREATE TABLE slow (id int);"),
        ("0002_next.sql", "CREATE TABLE next_one (id int);"),
    ]
    results, failures = [], []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        try:
            results.append([m.version for m in migrations.migrate(empty_url, discover(files), views=[])])
        except Exception as exc:  # noqa: BLE001 - any failure is the test's failure
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(results) == [[], [], [], [1, 2]]


def test_migration_checksum_is_of_the_text():
    a = Migration(1, "a", "0001_a.sql", "SELECT 1")
    assert a.checksum != Migration(1, "a", "0001_a.sql", "SELECT 2").checksum
