"""Review of the event log's partitioning (issue 13 item 1): failing tests, one per
finding. Each states the behaviour the contract (an append-only, auditable
history) or the README promises."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from datetime import timedelta

import psycopg

from tracetrack_db import events, migrations, partitions

from .conftest import SERVICE_ROLE
from .factories import full_parent
from .test_partitions import _read_csv, fresh_url, insert_event, month_start  # noqa: F401


def test_a_late_row_in_an_archived_month_never_overwrites_its_archive_file(db, db_url, sql_conn, tmp_path):
    """A row for an already archived month (a transaction begun before the month ended
    and committed after the archive, a restore, the owner's seed) lands in the default;
    the next archive run remakes the month's partition, writes the same file name and
    os.replace()s it over the archived file, then fails on event_archive's primary key:
    the month's archived rows are then in no file and no table."""
    month = month_start(3)
    first = insert_event(sql_conn, month + timedelta(days=1), qr_id="FIRST")
    partitions.maintain(db)
    (done,) = partitions.archive(db_url, month_start(2), tmp_path)
    original = done.file.read_bytes()

    insert_event(sql_conn, month + timedelta(days=5), qr_id="LATE")  # into event_default
    with contextlib.suppress(Exception):  # refusing is fine; destroying the first file is not
        partitions.archive(db_url, month_start(2), tmp_path)

    assert hashlib.sha256(done.file.read_bytes()).hexdigest() == done.sha256, "the archived file was replaced"
    assert done.file.read_bytes() == original
    assert [int(r["id"]) for r in _read_csv(done.file)] == [first]


def test_the_archive_does_not_write_through_a_symlink_it_did_not_make(db, db_url, sql_conn, tmp_path):
    """The work file DIR/event_YYYY-MM.csv.gz.partial is opened with gzip.open(..., 'wb'):
    O_CREAT|O_TRUNC, following a symlink someone planted there, clobbering its target."""
    month = month_start(3)
    insert_event(sql_conn, month + timedelta(days=1))
    partitions.maintain(db)
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    (archive_dir / f"event_{month:%Y-%m}.csv.gz.partial").symlink_to(victim)
    with contextlib.suppress(Exception):
        partitions.archive(db_url, month_start(2), archive_dir)
    assert victim.read_bytes() == b"not yours\n", "the symlink's target was overwritten"


def test_a_parents_history_cut_by_the_archive_says_so(db, db_url, sql_conn, tmp_path):
    """retained_from is null ("the history is whole", models.BagHistory) whenever the bag
    itself was created after the cut, though its history also holds its children's and
    its bill's events: a child made before the cut loses its creation silently."""
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
    assert history.retained_from is not None, "events of the parent's history were archived, yet 'whole'"


def test_moving_strays_holds_the_event_log_only_a_moment(db, db_url, sql_conn):
    """README: strays are moved with "a moment's ACCESS EXCLUSIVE on event". The lock is
    taken by DETACH and held to the end of the function's transaction, i.e. across the
    INSERT of every stray (a month of events when the refresher was off): all reads and
    writes of the log wait for it. Here a reader with a 1 s lock_timeout, started while
    250,000 strays are re-inserted, is refused."""
    old = month_start(4)
    sql_conn.execute(
        "INSERT INTO event (kind, occurred_at, qr_id, bag_id, user_id) "
        "SELECT 'bag_created', %s + g * interval '1 second', 'S' || g, g, 1 FROM generate_series(1, 250000) g",
        (old,),
    )
    assert sql_conn.execute("SELECT count(*) FROM event_default").fetchone()[0] == 250000
    started = threading.Event()
    took: list[float] = []

    def move() -> None:
        t0 = time.monotonic()
        started.set()
        partitions.maintain(db)
        took.append(time.monotonic() - t0)

    mover = threading.Thread(target=move)
    mover.start()
    started.wait()
    time.sleep(0.3)  # the DETACH is done; the strays are being inserted again
    with psycopg.connect(db_url, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '1s'")
        try:
            reader.execute("SELECT id FROM event WHERE id = 1")
            refused = None
        except psycopg.errors.LockNotAvailable as exc:
            refused = exc
    mover.join()
    assert sql_conn.execute("SELECT count(*) FROM event_default").fetchone()[0] == 0
    assert refused is None, f"a reader of event waited over 1 s (the move took {took[0]:.1f} s)"


def test_0021_reruns_after_its_concurrent_index_build_failed(fresh_url):  # noqa: F811
    """The header: "each step re-runnable after a failure part-way". A failed (cancelled,
    deadlocked) CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index of that name;
    IF NOT EXISTS then skips it on the rerun and the swap's ADD CONSTRAINT ... USING INDEX
    refuses an invalid index, on every rerun, while the NOT VALID CHECK (occurred_at < B)
    already binds the old table: once B passes, every write of an event fails."""
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


def test_the_archive_file_survives_a_crash_after_the_drop(db, db_url, sql_conn, tmp_path, monkeypatch):
    """The file is fsynced, but its directory never is: neither the new name
    (os.replace) nor the file's creation is durable when the partition is dropped."""
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


def test_two_archives_at_once_leave_a_file_that_matches_its_record(db, db_url, sql_conn, tmp_path):
    """No lock keeps a second `tracetrack db archive` (a timer and an operator, two
    hosts) out: both write the same DIR/event_YYYY-MM.csv.gz.partial and os.replace
    it; here A records its sha256 and drops the partition, while the file on disk is
    B's (gzip's header carries the time: other bytes). event_archive then vouches for a
    file that fails its own checksum."""
    month = month_start(3)
    insert_event(sql_conn, month + timedelta(days=1))
    partitions.maintain(db)
    b_replaced, a_dropped = threading.Event(), threading.Event()
    b_failed: list[BaseException] = []

    def b_progress(message: str) -> None:
        if message.startswith("archiving"):
            time.sleep(1.1)  # another second in the gzip header
        if "written and read back" in message:
            b_replaced.set()
            a_dropped.wait(30)

    def run_b() -> None:
        try:
            partitions.archive(db_url, month_start(2), tmp_path, progress=b_progress)
        except BaseException as exc:  # noqa: BLE001
            b_failed.append(exc)

    b = threading.Thread(target=run_b)

    def a_progress(message: str) -> None:
        if "written and read back" in message:
            b.start()
            b_replaced.wait(30)
        if message.endswith("dropped"):
            a_dropped.set()

    (done,) = partitions.archive(db_url, month_start(2), tmp_path, progress=a_progress)
    b.join(30)
    recorded = sql_conn.execute("SELECT sha256 FROM event_archive WHERE partition_name = %s", (done.partition,))
    assert hashlib.sha256(done.file.read_bytes()).hexdigest() == recorded.fetchone()[0], (
        f"the file is the second run's (which failed: {b_failed!r}); the record is the first's"
    )
