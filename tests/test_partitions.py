"""The event log partitioned by month (sql/migrations/0021): the conversion of a
log that holds events, rows landing in their months, months made ahead by the
refresher, strays moved out of the default partition, append-only on every
partition, the archive to gzip CSV files, and the history's retained_from."""

from __future__ import annotations

import csv
import gzip
import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tracetrack_db import events, migrations, partitions, scans, views

from .conftest import SERVICE_ROLE, as_service, with_dbname
from .factories import full_parent

MONTH_STATEMENTS = (
    "UPDATE {} SET kind = 'unlink'",
    "UPDATE {} SET user_id = 1 WHERE false",
    "DELETE FROM {}",
    "TRUNCATE {}",
)


def month_start(months_ago: int) -> datetime:
    """The first moment of the UTC month `months_ago` before this one."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 - months_ago
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_of(conn: psycopg.Connection, event_id: int) -> str:
    return conn.execute("SELECT tableoid::regclass::text FROM event WHERE id = %s", (event_id,)).fetchone()[0]


def insert_event(conn: psycopg.Connection, occurred_at: datetime, **values) -> int:
    """An event written by the owner with a server time of the past (as the
    seed does); returns its id."""
    columns = {"kind": "bag_created", "occurred_at": occurred_at, **values}
    return conn.execute(
        sql.SQL("INSERT INTO event ({}) VALUES ({}) RETURNING id").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(sql.Placeholder() * len(columns))
        ),
        list(columns.values()),
    ).fetchone()[0]


@pytest.fixture
def fresh_url(pg_server_url, template_db):
    """A database of its own, not migrated (the service role exists on the server)."""
    name = f"tt_part_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_conversion_keeps_every_event_and_writes_go_on_into_months(fresh_url):
    shipped = migrations.discover()
    migrations.migrate(fresh_url, migrations=[m for m in shipped if m.version < 21])
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("INSERT INTO service_role (role_name) VALUES (%s)", (SERVICE_ROLE,))
        ids = [insert_event(conn, month_start(m) + timedelta(days=3), qr_id=f"OLD{m}") for m in (14, 2, 0)]
        before = conn.execute("SELECT id, occurred_at, kind, qr_id FROM event ORDER BY id").fetchall()
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'event'::regclass").fetchone()[0] == "r"

    applied = migrations.migrate(fresh_url)
    assert [m.version for m in applied] == [21]

    with psycopg.connect(fresh_url, autocommit=True) as conn:
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'event'::regclass").fetchone()[0] == "p"
        assert conn.execute("SELECT id, occurred_at, kind, qr_id FROM event ORDER BY id").fetchall() == before
        assert {partition_of(conn, i) for i in ids} == {"event_legacy"}
        # event_row and the dashboard's views read the partitioned table, not the old one by OID
        readers = conn.execute(
            "SELECT DISTINCT r.ev_class::regclass::text FROM pg_rewrite r JOIN pg_depend d "
            "ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid WHERE d.refobjid = 'event'::regclass"
        ).fetchall()
        assert {"event_row", "mv_recent_scans", "mv_hourly_scans", "mv_user_activity"} <= {r[0] for r in readers}
        assert conn.execute("SELECT count(*) FROM event_row").fetchone()[0] == 3
        # the parent's own statistics (autovacuum never makes them): joins over event are planned on them
        assert conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'event' AND inherited").fetchone()[0] > 0
        # the identity goes on past the old ids, into the legacy partition until its bound
        new_id = insert_event(conn, datetime.now(UTC))
        assert new_id > max(ids)
        assert partition_of(conn, new_id) == "event_legacy"
        bound = conn.execute(
            "SELECT range_to FROM tt_event_partitions() WHERE partition = 'event_legacy'::regclass"
        ).fetchone()[0]
        assert bound.day == 1 and bound > datetime.now(UTC) + timedelta(days=7)
        after_bound = insert_event(conn, bound + timedelta(hours=1))
        assert partition_of(conn, after_bound) == f"event_{bound.astimezone(UTC):%Y_%m}"
        for statement in MONTH_STATEMENTS:
            with pytest.raises(psycopg.Error) as info:
                conn.execute(statement.format("event_legacy"))
            assert info.value.sqlstate == "TT409", statement
    with psycopg.connect(as_service(fresh_url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM event").fetchone()[0] == 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM event_legacy")
    assert migrations.migrate(fresh_url) == []


def test_events_land_in_their_month_and_strays_leave_the_default(db, sql_conn):
    now_id = insert_event(sql_conn, datetime.now(UTC))
    assert partition_of(sql_conn, now_id) == f"event_{datetime.now(UTC):%Y_%m}"
    old = month_start(5) + timedelta(days=10)
    strays = [insert_event(sql_conn, old + timedelta(hours=h), qr_id=f"STRAY{h}") for h in range(3)]
    assert {partition_of(sql_conn, i) for i in strays} == {"event_default"}
    rows = sql_conn.execute("SELECT id, occurred_at, qr_id FROM event ORDER BY id").fetchall()

    assert partitions.maintain(db) == 1  # as the service (the refresher's way): the stray month's partition

    assert {partition_of(sql_conn, i) for i in strays} == {f"event_{old:%Y_%m}"}
    assert sql_conn.execute("SELECT count(*) FROM event_default").fetchone()[0] == 0
    assert sql_conn.execute("SELECT id, occurred_at, qr_id FROM event ORDER BY id").fetchall() == rows
    for statement in MONTH_STATEMENTS:  # the remade default and the new month are append-only too
        for table in ("event_default", f"event_{old:%Y_%m}"):
            with pytest.raises(psycopg.Error) as info:
                sql_conn.execute(statement.format(table))
            assert info.value.sqlstate == "TT409", (statement, table)
    assert partitions.maintain(db) == 0


def test_strays_of_several_months_are_moved_in_batches_into_their_months(db, sql_conn):
    months = (month_start(6), month_start(5))
    strays = [insert_event(sql_conn, m + timedelta(days=d), qr_id=f"S{d}") for m in months for d in range(3)]
    rows = sql_conn.execute("SELECT id, occurred_at, qr_id FROM event ORDER BY id").fetchall()
    assert sql_conn.execute("SELECT tt_event_partitions_ahead(3)").fetchone()[0] == 0
    seen = "SELECT count(*) FROM event WHERE id = ANY(%s)"
    assert sql_conn.execute(seen, (strays,)).fetchone()[0] == 0  # set aside: unseen until put back
    assert sql_conn.execute("SELECT tt_event_strays_move(4)").fetchone()[0] == 4  # a batch, its own transaction
    assert sql_conn.execute("SELECT count(*) FROM event_strays").fetchone()[0] == 2

    assert partitions.maintain(db) == 0  # both months were made by the batch above

    assert [partition_of(sql_conn, i) for i in strays] == [f"event_{m:%Y_%m}" for m in months for _ in range(3)]
    assert sql_conn.execute("SELECT id, occurred_at, qr_id FROM event ORDER BY id").fetchall() == rows
    assert sql_conn.execute("SELECT to_regclass('event_strays')").fetchone()[0] is None
    for statement in MONTH_STATEMENTS:
        with pytest.raises(psycopg.Error) as info:
            sql_conn.execute(statement.format(f"event_{months[0]:%Y_%m}"))
        assert info.value.sqlstate == "TT409", statement


def test_the_refresher_makes_the_months_ahead(db, sql_conn):
    ahead = month_start(-partitions.MONTHS_AHEAD)
    name = f"event_{ahead:%Y_%m}"
    sql_conn.execute(f"ALTER TABLE event DETACH PARTITION {name}")
    sql_conn.execute(f"DROP TABLE {name}")
    refresher = views.Refresher(db, interval=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while sql_conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
            assert time.monotonic() < deadline, "the refresher did not make the partition"
            time.sleep(0.1)
    finally:
        refresher.stop()
    bounds = sql_conn.execute(
        "SELECT range_from, range_to FROM tt_event_partitions() WHERE partition = %s::regclass", (name,)
    ).fetchone()
    assert bounds == (ahead, month_start(-partitions.MONTHS_AHEAD - 1))


def test_the_service_role_may_not_change_a_partition_directly(db, service_url, sql_conn):
    full_parent(db, 1, children=2)
    month = f"event_{datetime.now(UTC):%Y_%m}"
    with psycopg.connect(service_url, autocommit=True) as conn:
        for table in (month, "event_default"):
            for statement in (*MONTH_STATEMENTS, "ALTER TABLE {} DISABLE TRIGGER USER", "DROP TABLE {}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement.format(table))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"ALTER TABLE event DETACH PARTITION {month}")
    assert sql_conn.execute(f"SELECT count(*) FROM {month}").fetchone()[0] == 3


def _read_csv(path) -> list[dict]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_archive_writes_every_row_then_drops_the_months(db, db_url, sql_conn, tmp_path):
    first, second = month_start(3), month_start(2)
    kept = [insert_event(sql_conn, month_start(1) + timedelta(days=1))]
    written = {
        first: [insert_event(sql_conn, first + timedelta(days=d), qr_id=f"A{d}", bill_no='a,\n"b"') for d in (0, 9)],
        second: [insert_event(sql_conn, second + timedelta(days=2), qr_id="B")],
    }
    partitions.maintain(db)
    sql_conn.execute("SELECT tt_roll_up_events(%s)", (first,))  # written in the past: a recount counts them
    counted = sql_conn.execute(
        "SELECT sum(events) FROM event_rollup WHERE time_zone = '' AND period_start >= %s AND period_start < %s",
        (first, month_start(1)),
    ).fetchone()[0]
    assert counted == 3

    done = partitions.archive(db_url, month_start(1), tmp_path)

    assert [(a.partition, a.rows) for a in done] == [(f"event_{first:%Y_%m}", 2), (f"event_{second:%Y_%m}", 1)]
    for a in done:
        rows = _read_csv(a.file)
        assert [int(r["id"]) for r in rows] == written[a.range_from]
        assert list(rows[0]) == [d.name for d in sql_conn.execute("SELECT * FROM event LIMIT 0").description]
        assert hashlib.sha256(a.file.read_bytes()).hexdigest() == a.sha256
        assert sql_conn.execute("SELECT to_regclass(%s)", (a.partition,)).fetchone()[0] is None
    assert _read_csv(done[0].file)[0]["bill_no"] == 'a,\n"b"'  # quoted, read back whole
    recorded = sql_conn.execute("SELECT partition_name, rows, sha256, file FROM event_archive ORDER BY range_from")
    assert recorded.fetchall() == [(a.partition, a.rows, a.sha256, str(a.file.resolve())) for a in done]
    assert [r[0] for r in sql_conn.execute("SELECT id FROM event ORDER BY id")] == kept
    # the reports keep the archived months' counts, even through a recount from before them
    sql_conn.execute("SELECT tt_roll_up_events(%s)", (first - timedelta(days=40),))
    assert (
        sql_conn.execute(
            "SELECT sum(events) FROM event_rollup WHERE time_zone = '' AND period_start >= %s AND period_start < %s",
            (first, month_start(1)),
        ).fetchone()[0]
        == 3
    )

    files = {a.file: a.file.read_bytes() for a in done}
    assert partitions.archive(db_url, month_start(1), tmp_path) == []  # a rerun: nothing left to do
    assert {f: f.read_bytes() for f in files} == files


@pytest.mark.parametrize("months_ahead", [-1, -2])
def test_archive_refuses_this_month_or_later(db, db_url, sql_conn, tmp_path, months_ahead):
    insert_event(sql_conn, datetime.now(UTC))
    with pytest.raises(partitions.ArchiveRefused) as info:
        partitions.archive(db_url, month_start(months_ahead), tmp_path)
    assert info.value.code == "archive_refused"
    assert list(tmp_path.iterdir()) == []
    assert sql_conn.execute("SELECT count(*) FROM event").fetchone()[0] == 1


def test_archive_refuses_a_malformed_month():
    with pytest.raises(partitions.ArchiveRefused):
        partitions.parse_month("2026-13")


def test_the_history_says_where_it_was_cut(db, db_url, sql_conn, tmp_path):
    old_parent = full_parent(db, 1, children=1)
    new_parent = full_parent(db, 2, children=1)
    # the first bag existed three months ago: its creation, archived below, was then
    created = month_start(3) + timedelta(days=1)
    sql_conn.execute("UPDATE bag SET created_at = %s WHERE qr_id = %s", (created, old_parent))
    bag_id = sql_conn.execute("SELECT id FROM bag WHERE qr_id = %s", (old_parent,)).fetchone()[0]
    insert_event(sql_conn, created, bag_id=bag_id, qr_id=old_parent)
    assert events.bag_history(db, old_parent).retained_from is None  # nothing archived yet
    partitions.maintain(db)

    partitions.archive(db_url, month_start(1), tmp_path)

    history = events.bag_history(db, old_parent)
    assert history.retained_from == month_start(2)
    assert "bag_created" not in [e.kind for e in history.items if e.qr_id == old_parent]
    assert events.bag_history(db, new_parent).retained_from is None
    scans.unlink_child(db, f"C{2:05d}-00")  # still appended to, read through the parent
    assert events.bag_history(db, new_parent).items[-1].kind == "unlink"


def test_only_the_owner_makes_a_partition_of_its_choosing(service_url, sql_conn):
    with psycopg.connect(service_url, autocommit=True) as conn:
        for call in ("tt_event_partition_make(now() + interval '2 years')", "tt_event_protect_partition('event')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT {call}")
    assert sql_conn.execute("SELECT count(*) FROM tt_event_partitions()").fetchone()[0] == partitions.MONTHS_AHEAD + 2


def test_the_archive_and_maintain_commands(db_url, sql_conn, tmp_path):
    from .test_cli import run

    env = {"DATABASE_URL": db_url}
    old = insert_event(sql_conn, month_start(2) + timedelta(days=1))
    made = run(["db", "maintain", "--months", "4"], env)
    assert made.returncode == 0, made.stderr
    assert "made 2 partitions" in made.stdout  # the stray's month and the fourth month ahead
    assert partition_of(sql_conn, old) == f"event_{month_start(2):%Y_%m}"

    later = run(["db", "archive", "--before", f"{month_start(-1):%Y-%m}", "--to", str(tmp_path)], env)
    assert later.returncode == 1 and "archive_refused" in later.stderr
    bad = run(["db", "archive", "--before", "2026-13", "--to", str(tmp_path)], env)
    assert bad.returncode == 1 and "archive_refused" in bad.stderr
    assert list(tmp_path.iterdir()) == []

    done = run(["db", "archive", "--before", f"{month_start(1):%Y-%m}", "--to", str(tmp_path)], env)
    assert done.returncode == 0, done.stderr
    assert f"event_{month_start(2):%Y_%m}: 1 rows" in done.stdout
    assert [r["id"] for r in _read_csv(tmp_path / f"event_{month_start(2):%Y-%m}.csv.gz")] == [str(old)]
    again = run(["db", "archive", "--before", f"{month_start(1):%Y-%m}", "--to", str(tmp_path)], env)
    assert again.returncode == 0 and "nothing to archive" in again.stdout

    as_service_env = {"DATABASE_URL": as_service(db_url)}
    refused = run(
        ["db", "archive", "--before", f"{month_start(1):%Y-%m}", "--to", str(tmp_path / "svc")], as_service_env
    )
    assert refused.returncode == 1 and "archive_refused" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "svc").exists()  # refused before anything was written
    no_dir = run(["db", "archive", "--before", f"{month_start(1):%Y-%m}"], env)
    assert no_dir.returncode == 2 and "--to" in no_dir.stderr  # no default: a systemd unit's is /


def test_a_late_row_in_an_archived_month_stays_in_the_default_and_its_file_is_kept(db, db_url, sql_conn, tmp_path):
    """A row for an already archived month (a transaction begun before the month ended
    and committed after the archive, a restore, the owner's seed) stays in the default:
    the month is never made again, so never archived again over its file."""
    month = month_start(3)
    first = insert_event(sql_conn, month + timedelta(days=1), qr_id="FIRST")
    partitions.maintain(db)
    (done,) = partitions.archive(db_url, month_start(2), tmp_path)
    original = done.file.read_bytes()

    late = insert_event(sql_conn, month + timedelta(days=5), qr_id="LATE")  # into event_default
    partitions.maintain(db)
    assert partitions.archive(db_url, month_start(2), tmp_path) == []
    assert partition_of(sql_conn, late) == "event_default"
    assert done.file.read_bytes() == original
    assert hashlib.sha256(original).hexdigest() == done.sha256
    assert [int(r["id"]) for r in _read_csv(done.file)] == [first]
    with pytest.raises(partitions.ArchiveRefused, match="exists"):  # a file of the name is never replaced
        (tmp_path / f"event_{month_start(2):%Y-%m}.csv.gz").write_bytes(b"someone's")
        insert_event(sql_conn, month_start(2) + timedelta(days=1))
        partitions.maintain(db)
        partitions.archive(db_url, month_start(1), tmp_path)
    assert (tmp_path / f"event_{month_start(2):%Y-%m}.csv.gz").read_bytes() == b"someone's"
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_the_archive_does_not_write_through_a_symlink_it_did_not_make(db, db_url, sql_conn, tmp_path):
    """Its work file is a new name of its own (O_EXCL|O_NOFOLLOW): a symlink planted
    at the old DIR/event_YYYY-MM.csv.gz.partial is left alone, and so is its target."""
    month = month_start(3)
    insert_event(sql_conn, month + timedelta(days=1))
    partitions.maintain(db)
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    (archive_dir / f"event_{month:%Y-%m}.csv.gz.partial").symlink_to(victim)
    (done,) = partitions.archive(db_url, month_start(2), archive_dir)
    assert victim.read_bytes() == b"not yours\n"
    assert hashlib.sha256(done.file.read_bytes()).hexdigest() == done.sha256


def test_a_parents_history_cut_by_the_archive_says_so(db, db_url, sql_conn, tmp_path):
    """retained_from is set when a child the parent's history draws on was made
    before the cut, though the parent itself was made after it."""
    parent = full_parent(db, 7, children=1)
    child = "C00007-00"
    created = month_start(3) + timedelta(days=1)
    sql_conn.execute("UPDATE bag SET created_at = %s WHERE qr_id = %s", (created, child))
    child_id = sql_conn.execute("SELECT id FROM bag WHERE qr_id = %s", (child,)).fetchone()[0]
    insert_event(sql_conn, created, bag_id=child_id, qr_id=child)
    partitions.maintain(db)
    assert any(e.occurred_at == created for e in events.bag_history(db, parent).items)

    partitions.archive(db_url, month_start(1), tmp_path)

    history = events.bag_history(db, parent)
    assert not any(e.occurred_at == created for e in history.items)  # the child's creation: archived
    assert history.retained_from == month_start(2)  # the end of the archived month


def test_moving_strays_holds_the_event_log_only_a_moment(db, db_url, sql_conn):
    """The default is swapped for an empty one in one short transaction; the strays are
    moved back in batches, each its own transaction: a reader with a 1 s lock_timeout,
    started while 250,000 strays are moved, is served."""
    old = month_start(4)
    sql_conn.execute(
        "INSERT INTO event (kind, occurred_at, qr_id, bag_id, user_id) "
        "SELECT 'bag_created', %s + g * interval '1 second', 'S' || g, g, 1 FROM generate_series(1, 250000) g",
        (old,),
    )
    assert sql_conn.execute("SELECT count(*) FROM event_default").fetchone()[0] == 250000
    started = threading.Event()

    def move() -> None:
        started.set()
        partitions.maintain(db)

    mover = threading.Thread(target=move)
    mover.start()
    started.wait()
    time.sleep(0.3)  # the strays are being moved
    with psycopg.connect(db_url, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '1s'")
        reader.execute("SELECT id FROM event WHERE id = 1")  # LockNotAvailable if the move held event
    mover.join()
    assert sql_conn.execute("SELECT count(*) FROM event_default").fetchone()[0] == 0
    assert (
        sql_conn.execute("SELECT count(*) FROM event WHERE occurred_at < %s", (old + timedelta(days=4),)).fetchone()[0]
        == 250000
    )
    assert sql_conn.execute("SELECT to_regclass('event_strays')").fetchone()[0] is None


def test_0021_reruns_after_its_concurrent_index_build_failed(fresh_url):
    """A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index of the name:
    the rerun drops it and builds it again, and the swap goes through."""
    shipped = migrations.discover()
    migrations.migrate(fresh_url, migrations=[m for m in shipped if m.version < 21])
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("INSERT INTO service_role (role_name) VALUES (%s)", (SERVICE_ROLE,))
        insert_event(conn, month_start(2))
        # the state a failed concurrent build leaves (superuser: mark it as PostgreSQL does)
        conn.execute("CREATE UNIQUE INDEX event_legacy_id_occurred_at ON event (id, occurred_at)")
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'event_legacy_id_occurred_at'::regclass"
        )
    migrations.migrate(fresh_url)
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'event'::regclass").fetchone()[0] == "p"
        assert conn.execute("SELECT to_regclass('event_legacy_id_occurred_at_invalid')").fetchone()[0] is None


def test_the_archive_file_and_its_name_are_fsynced_before_the_drop(db, db_url, sql_conn, tmp_path, monkeypatch):
    """The file, then its directory (the new name): durable before the partition goes.
    (os.fsync observed by a spy that calls the real one: a crash is not simulated.)"""
    import os

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    insert_event(sql_conn, month_start(3) + timedelta(days=1))
    partitions.maintain(db)
    partitions.archive(db_url, month_start(2), tmp_path)
    assert str(tmp_path) in synced, f"fsynced only {synced}"


def test_a_second_archive_at_once_is_refused_and_the_file_matches_its_record(db, db_url, sql_conn, tmp_path):
    """A session advisory lock keeps a second `db archive` (a timer and an operator)
    out for the whole run: it is refused, and the first's file matches event_archive."""
    month = month_start(3)
    insert_event(sql_conn, month + timedelta(days=1))
    partitions.maintain(db)
    b_failed: list[BaseException] = []

    def run_b() -> None:
        try:
            partitions.archive(db_url, month_start(2), tmp_path)
        except BaseException as exc:  # noqa: BLE001
            b_failed.append(exc)

    def a_progress(message: str) -> None:
        if "written and read back" in message:
            b = threading.Thread(target=run_b)
            b.start()
            b.join(30)

    (done,) = partitions.archive(db_url, month_start(2), tmp_path, progress=a_progress)
    assert [str(e) for e in b_failed] == ["another archive is running"]
    recorded = sql_conn.execute("SELECT sha256 FROM event_archive WHERE partition_name = %s", (done.partition,))
    assert hashlib.sha256(done.file.read_bytes()).hexdigest() == recorded.fetchone()[0]
