"""idempotency.run_once: the first outcome of a key is stored (as JSON) and
replayed; a repeat runs nothing; a failed write leaves no key behind."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from tests.factories import full_parent, make_user
from tracetrack_db import bags, errors, idempotency, passwords, scans


def state(sql_conn) -> tuple:
    """Everything a write could change, to compare before and after."""
    return (
        sql_conn.execute(
            "SELECT id, qr_id, parent_id, child_count, weight_kg, status, bill_id, updated_at FROM bag ORDER BY id"
        ).fetchall(),
        sql_conn.execute("SELECT count(*), max(id) FROM event").fetchone(),
        sql_conn.execute(
            "SELECT user_id, key, fingerprint, status, response FROM idempotency_key ORDER BY user_id, key"
        ).fetchall(),
    )


class LinkWrite:
    """A write callable that links a child on the connection it is given, counting its calls."""

    def __init__(self, db, parent: str, child: str, user_id: int, key: str):
        self.db, self.parent, self.child, self.user_id, self.key = db, parent, child, user_id, key
        self.calls = 0

    def __call__(self, conn):
        self.calls += 1
        res = scans.link_child(
            self.db, self.parent, self.child, user_id=self.user_id, idempotency_key=self.key, conn=conn
        )
        return 201, {"result": res.result, "child_count": res.child_count}


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """Users here only own keys: hash their passwords cheaply."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def user(db):
    return make_user(db, "dispatcher", "lucknow")


@pytest.fixture
def parent(db):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    return "SB00001"


def test_a_repeat_returns_the_first_answer_and_runs_nothing(db, sql_conn, user, parent):
    fp = idempotency.fingerprint("POST", "/api/scans/child", b'{"child_qr":"KID-1"}')
    write = LinkWrite(db, parent, "KID-1", user.id, "key-1")
    first = idempotency.run_once(db, user.id, "key-1", fp, write)
    assert (first.code, first.replayed, write.calls) == (201, False, 1)
    assert json.loads(first.body) == {"result": "linked", "child_count": 1}
    rows = sql_conn.execute("SELECT user_id, key, fingerprint, status, response FROM idempotency_key").fetchall()
    assert rows == [(user.id, "key-1", fp, 201, first.body)]
    assert sql_conn.execute("SELECT kind, idempotency_key FROM event WHERE kind = 'link'").fetchall() == [
        ("link", "key-1")
    ]
    before = state(sql_conn)
    # the repeat's write would link another child if it ran
    repeat_write = LinkWrite(db, parent, "KID-2", user.id, "key-1")
    for _ in range(2):
        again = idempotency.run_once(db, user.id, "key-1", fp, repeat_write)
        assert (again.code, again.body, again.replayed) == (first.code, first.body, True)
    assert repeat_write.calls == 0
    assert state(sql_conn) == before
    assert bags.get_bag(db, parent).child_count == 1
    with pytest.raises(errors.BagNotFound):
        bags.get_bag(db, "KID-2")


def test_a_different_request_with_the_same_key_is_refused(db, sql_conn, user, parent):
    fp1 = idempotency.fingerprint("POST", "/api/scans/child", b'{"child_qr":"KID-1"}')
    fp2 = idempotency.fingerprint("POST", "/api/scans/child", b'{"child_qr":"KID-2"}')
    idempotency.run_once(db, user.id, "key-1", fp1, LinkWrite(db, parent, "KID-1", user.id, "key-1"))
    before = state(sql_conn)
    other = LinkWrite(db, parent, "KID-2", user.id, "key-1")
    with pytest.raises(errors.IdempotencyKeyReused) as info:
        idempotency.run_once(db, user.id, "key-1", fp2, other)
    assert (info.value.code, info.value.status) == ("idempotency_key_reused", 409)
    assert other.calls == 0
    assert state(sql_conn) == before


def test_keys_belong_to_their_user(db, sql_conn, user, parent):
    other_user = make_user(db, "dispatcher", "lucknow")
    fp = idempotency.fingerprint("POST", "/x")
    a = idempotency.run_once(db, user.id, "shared", fp, LinkWrite(db, parent, "KID-1", user.id, "shared"))
    b = idempotency.run_once(db, other_user.id, "shared", fp, LinkWrite(db, parent, "KID-2", other_user.id, "shared"))
    assert (a.replayed, b.replayed) == (False, False)
    assert json.loads(b.body) == {"result": "linked", "child_count": 2}
    assert sql_conn.execute("SELECT count(*) FROM idempotency_key").fetchone()[0] == 2


@pytest.mark.parametrize("failure", ["domain", "python"])
def test_a_write_that_raises_leaves_no_key_and_no_partial_write(db, sql_conn, user, failure):
    full = full_parent(db, 1)
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    before = state(sql_conn)
    calls = []

    def write(conn):
        calls.append(1)
        scans.link_child(db, "SB00002", "KID-1", user_id=user.id, idempotency_key="key-1", conn=conn)
        if failure == "domain":
            scans.link_child(db, full, "KID-2", user_id=user.id, conn=conn)  # parent_full
        raise RuntimeError("crash after the first write")

    expected = errors.ParentFull if failure == "domain" else RuntimeError
    with pytest.raises(expected):
        idempotency.run_once(db, user.id, "key-1", "fp", write)
    assert calls == [1]
    assert state(sql_conn) == before  # no key, no link, no event
    # the same key may be used again, and this time it runs
    retry = idempotency.run_once(db, user.id, "key-1", "fp", LinkWrite(db, "SB00002", "KID-1", user.id, "key-1"))
    assert retry.replayed is False
    assert bags.get_bag(db, "SB00002").child_count == 1


def test_key_length_and_characters_are_checked(db, sql_conn, user, parent):
    for key in ["", "k" * (idempotency.MAX_KEY_LENGTH + 1), "\u00e9t\u00e9", "with space", "tab\tkey", "\x00"]:
        with pytest.raises(errors.ValidationError) as info:
            idempotency.run_once(db, user.id, key, "fp", LinkWrite(db, parent, "KID-1", user.id, key))
        assert info.value.field == "Idempotency-Key"
        assert "visible ASCII" in info.value.message
    assert sql_conn.execute("SELECT count(*) FROM idempotency_key").fetchone()[0] == 0
    longest = "k" * idempotency.MAX_KEY_LENGTH
    assert (
        idempotency.run_once(db, user.id, longest, "fp", LinkWrite(db, parent, "KID-1", user.id, longest)).replayed
        is False
    )


def test_results_are_stored_as_json_of_the_library_rows(db, sql_conn, user, parent):
    stored = idempotency.run_once(
        db,
        user.id,
        "rows",
        "fp",
        lambda conn: (200, scans.link_child(db, parent, "KID-7", user_id=user.id, idempotency_key="rows", conn=conn)),
    )
    assert json.loads(stored.body) == {
        "result": "linked",
        "child_count": 1,
        "capacity": 30,
        "parent_status": "in_progress",
        "weight_kg": 1.0,
    }
    again = idempotency.run_once(db, user.id, "rows", "fp", lambda conn: (200, None))
    assert (again.replayed, again.body) == (True, stored.body)


def test_fingerprint():
    fp = idempotency.fingerprint("POST", "/api/bills", b'{"a":1}')
    assert fp == idempotency.fingerprint("POST", "/api/bills", '{"a":1}')
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp != idempotency.fingerprint("POST", "/api/bills", b'{"a":2}')
    assert fp != idempotency.fingerprint("PUT", "/api/bills", b'{"a":1}')
    assert idempotency.fingerprint("ab", "c") != idempotency.fingerprint("a", "bc")


def test_a_concurrent_repeat_waits_for_the_first_and_replays_it(db, sql_conn, user, parent):
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_write(conn):
        calls.append(1)
        res = scans.link_child(db, parent, "KID-1", user_id=user.id, idempotency_key="key-1", conn=conn)
        started.set()
        assert release.wait(30)
        return 201, {"child_count": res.child_count}

    def waiting_for_lock() -> bool:
        return (
            sql_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            > 0
        )

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(idempotency.run_once, db, user.id, "key-1", "fp", slow_write)
        assert started.wait(30)
        second = pool.submit(idempotency.run_once, db, user.id, "key-1", "fp", slow_write)
        # wait (on a condition, not a clock) until the repeat is blocked on the first one's key
        blocked = False
        for _ in range(3000):
            blocked = waiting_for_lock()
            if blocked or second.done():
                break
            threading.Event().wait(0.01)
        release.set()
        assert blocked, "the repeat should wait for the first request's key"
        a, b = first.result(timeout=30), second.result(timeout=30)
    assert calls == [1]
    assert (a.replayed, b.replayed) == (False, True)
    assert a.body == b.body and json.loads(a.body) == {"child_count": 1}
    assert bags.get_bag(db, parent).child_count == 1
