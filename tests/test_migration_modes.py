"""Views files re-run only when changed, and then swapped in without holding
readers; migrations that run outside a transaction (CREATE INDEX CONCURRENTLY)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tracetrack_db import migrations
from tracetrack_db.migrations import Migration, MigrationError, split_statements

from .test_migrations import empty_url  # noqa: F401 - the fixture
from .test_server import running_server

ONE = [("one.sql", "CREATE MATERIALIZED VIEW mv_one AS SELECT 1 AS x;\nCREATE UNIQUE INDEX mv_one_key ON mv_one (x);")]


def oid_of(url: str, name: str) -> int | None:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass(%s)::oid", (name,)).fetchone()[0]


def value_of(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT x FROM mv_one").fetchone()[0]


def test_an_unchanged_views_file_is_left_alone_and_a_changed_one_swapped_in(empty_url):  # noqa: F811
    migrations.migrate(empty_url, [], views=ONE)
    first = oid_of(empty_url, "mv_one")
    migrations.migrate(empty_url, [], views=ONE)
    assert oid_of(empty_url, "mv_one") == first  # not rebuilt
    changed = [("one.sql", ONE[0][1].replace("SELECT 1", "SELECT 2"))]
    migrations.migrate(empty_url, [], views=changed)
    assert oid_of(empty_url, "mv_one") not in (None, first) and value_of(empty_url) == 2
    assert oid_of(empty_url, "mv_one_key") is not None  # its index came along
    assert oid_of(empty_url, f"{migrations.BUILD_SCHEMA}.mv_one") is None
    with psycopg.connect(empty_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (migrations.BUILD_SCHEMA,)).fetchone()[
                0
            ]
            == 0
        )
        conn.execute("DROP MATERIALIZED VIEW mv_one")  # gone by hand: the next run puts it back
    migrations.migrate(empty_url, [], views=changed)
    assert value_of(empty_url) == 2


def test_a_view_built_on_another_of_its_file_is_swapped_in(empty_url):  # noqa: F811
    """mv_a is read by mv_b: the old mv_b must go before the old mv_a (dropped by
    name order, mv_a first, the swap failed: mv_b depends on it)."""
    text = (
        "CREATE MATERIALIZED VIEW mv_a AS SELECT 1 AS x;\n"
        "CREATE MATERIALIZED VIEW mv_b AS SELECT x + 1 AS y FROM mv_a;\n"
        "CREATE VIEW v_c AS SELECT y FROM mv_b;"
    )
    migrations.migrate(empty_url, [], views=[("ab.sql", text)])
    migrations.migrate(empty_url, [], views=[("ab.sql", text.replace("SELECT 1", "SELECT 41"))])
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT y FROM v_c").fetchone()[0] == 42


def test_a_views_file_may_not_drop_anything(empty_url):  # noqa: F811
    with pytest.raises(MigrationError, match="no DROP"):
        migrations.migrate(empty_url, [], views=[("v.sql", "DROP VIEW IF EXISTS v; CREATE VIEW v AS SELECT 1")])


def test_readers_keep_the_old_view_while_the_new_one_builds(empty_url):  # noqa: F811
    """The build (here made slow with pg_sleep) holds no lock readers wait for;
    each read below gives up after 300 ms, and none has to."""
    migrations.migrate(empty_url, [], views=ONE)
    slow = [("one.sql", ONE[0][1].replace("SELECT 1 AS x", "SELECT 2 AS x FROM pg_sleep(2)"))]
    builder = threading.Thread(target=migrations.migrate, args=(empty_url, []), kwargs={"views": slow})
    seen = []
    with psycopg.connect(empty_url, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '300ms'")
        builder.start()
        while builder.is_alive():
            seen.append(reader.execute("SELECT x FROM mv_one").fetchone()[0])
            time.sleep(0.05)
        builder.join()
        seen.append(reader.execute("SELECT x FROM mv_one").fetchone()[0])
    assert seen.count(1) > 10 and seen[-1] == 2  # the old view all through the build, then the new


def test_the_swap_gives_way_to_a_long_reader_and_tries_again(empty_url, monkeypatch):  # noqa: F811
    """A DROP queued behind a long reader would make every new reader queue too:
    the swap waits at most its lock timeout, steps back, and tries again."""
    monkeypatch.setattr(migrations, "SWAP_LOCK_TIMEOUT", "200ms")
    migrations.migrate(empty_url, [], views=ONE)
    changed = [("one.sql", ONE[0][1].replace("SELECT 1", "SELECT 3"))]
    messages: list[str] = []
    with psycopg.connect(empty_url) as long_reader:
        long_reader.execute("SELECT x FROM mv_one").fetchone()  # its transaction holds the view
        builder = threading.Thread(
            target=migrations.migrate, args=(empty_url, []), kwargs={"views": changed, "progress": messages.append}
        )
        builder.start()
        time.sleep(1.5)
        with psycopg.connect(empty_url, autocommit=True) as other:  # meanwhile others still read
            other.execute("SET lock_timeout = '1s'")
            assert other.execute("SELECT x FROM mv_one").fetchone()[0] == 1
        long_reader.commit()
    builder.join(30)
    assert not builder.is_alive() and value_of(empty_url) == 3
    assert any("waits for a long reader" in m for m in messages), messages


def test_second_serve_start_leaves_the_dashboard_views_untouched(db_url):
    names = ("mv_bag_totals", "mv_bill_totals", "mv_hourly_scans", "mv_user_activity", "mv_recent_scans")

    def snapshot():
        with psycopg.connect(db_url) as conn:
            return {
                n: (
                    conn.execute("SELECT to_regclass(%s)::oid", (n,)).fetchone()[0],
                    conn.execute(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {n} t").fetchone()[0],
                )
                for n in names
            }

    with running_server(db_url, "--no-demo"):
        pass
    before = snapshot()
    with running_server(db_url, "--no-demo"):
        pass
    assert snapshot() == before
    assert all(oid is not None for oid, _ in before.values())


def test_split_statements_keeps_quoted_and_dollar_quoted_semicolons():
    text = (
        "-- a; comment\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n"
        "SELECT 'a;b''c;'; /* x; */ SELECT \"we;ird\" FROM t;\n-- trailing; comment\n"
    )
    assert split_statements(text) == [
        "-- a; comment\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$",
        "SELECT 'a;b''c;'",
        '/* x; */ SELECT "we;ird" FROM t',
    ]


def test_split_statements_knows_tags_with_digits_e_strings_and_nested_comments():
    text = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn1$ SELECT 1; SELECT 2 $fn1$;\n"
        "SELECT E'it\\'s; x'; /* a /* b; */ still; */ SELECT $1; SELECT a$b$ FROM t;"
    )
    assert split_statements(text) == [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn1$ SELECT 1; SELECT 2 $fn1$",
        "SELECT E'it\\'s; x'",
        "/* a /* b; */ still; */ SELECT $1",
        "SELECT a$b$ FROM t",
    ]


CREATE_T = Migration(1, "t", "0001_t.sql", "CREATE TABLE t (x int)")
INDEX_SQL = "CREATE INDEX CONCURRENTLY t_x_idx ON t (x);"


def test_concurrently_needs_the_no_transaction_header(empty_url):  # noqa: F811
    with pytest.raises(psycopg.errors.ActiveSqlTransaction):
        migrations.migrate(empty_url, [CREATE_T, Migration(2, "idx", "0002_idx.sql", INDEX_SQL)], views=[])
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 1


def test_a_no_transaction_migration_builds_its_index_while_writes_go_on(empty_url):  # noqa: F811
    """CREATE INDEX CONCURRENTLY waits for older transactions; meanwhile an
    insert into the table goes through (a plain CREATE INDEX would block it)."""
    migrations.migrate(empty_url, [CREATE_T], views=[])
    index = Migration(2, "idx", "0002_idx.sql", f"{migrations.NO_TRANSACTION}\n-- why\n{INDEX_SQL}")
    assert not index.transactional
    with psycopg.connect(empty_url) as old_snapshot:
        old_snapshot.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        old_snapshot.execute("SELECT 1").fetchone()  # a snapshot held open: the build must wait for it
        builder = threading.Thread(target=migrations.migrate, args=(empty_url, [CREATE_T, index]), kwargs={"views": []})
        builder.start()
        with psycopg.connect(empty_url, autocommit=True) as writer:
            deadline = time.monotonic() + 20
            while not writer.execute("SELECT count(*) FROM pg_stat_progress_create_index").fetchone()[0]:
                assert time.monotonic() < deadline, "the build never started"
                time.sleep(0.05)
            writer.execute("SET lock_timeout = '1s'")
            writer.execute("INSERT INTO t VALUES (42)")  # not blocked by the build
            assert builder.is_alive()  # which is still waiting for old_snapshot
        old_snapshot.commit()
    builder.join(30)
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x_idx'::regclass").fetchone()[0]
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 2


def test_the_shipped_concurrent_index_is_built_and_valid(db_url):
    shipped = {m.filename: m for m in migrations.discover()}
    assert not shipped["0008_unlinked_children_index.sql"].transactional
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'bag_unlinked_child_idx'::regclass"
        ).fetchone()[0]


def test_a_runner_waiting_for_the_lock_does_not_deadlock_a_concurrent_build(empty_url):  # noqa: F811
    """A rolling restart: a second server's migrate() waits for the first's lock
    while the first builds an index CONCURRENTLY. Before, the waiter sat in
    pg_advisory_lock holding a snapshot the build waited for: PostgreSQL found
    the deadlock and killed the build, leaving an INVALID index."""
    index = Migration(2, "idx", "0002_idx.sql", f"{migrations.NO_TRANSACTION}\n{INDEX_SQL}")
    both = [CREATE_T, index]
    migrations.migrate(empty_url, [CREATE_T], views=[])
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            outcome["second"] = migrations.migrate(empty_url, both, views=[])
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcome["second"] = exc

    def progress(message: str) -> None:
        if "0002_idx" in message:  # the build is about to start: the other runner arrives now
            threading.Thread(target=second).start()
            time.sleep(1.5)  # past deadlock_timeout (1 s): the waiter is there when the build waits

    assert migrations.migrate(empty_url, both, views=[], progress=progress) == [index]
    deadline = time.monotonic() + 30
    while "second" not in outcome:
        assert time.monotonic() < deadline, "the second runner never finished"
        time.sleep(0.1)
    assert outcome["second"] == []  # it found everything applied
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x_idx'::regclass").fetchone()[0]
