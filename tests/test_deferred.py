"""deferred.py: what requests leave for later is handed over once each, in order,
in bounded memory, by a thread that survives its handler's errors and forks, and
when a process ends the way granian's workers end (os._exit after
multiprocessing's finalizers)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tracetrack_api import deferred
from tracetrack_api.deferred import INTERVAL, Deferred


def eventually(check, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not handed over in time"
        time.sleep(INTERVAL / 4)


def wait_child(pid: int, seconds: float = 10) -> int | None:
    """The forked child's exit code, or None (and the child killed) when it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_every_item_once_in_each_adders_order():
    handled: list = []
    queue = Deferred(handled.extend, "test")

    def adder(n: int) -> None:
        for i in range(500):
            queue.add((n, i))

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    eventually(lambda: len(handled) == 2000)  # by its thread, without a flush
    assert sorted(handled) == [(n, i) for n in range(4) for i in range(500)]
    for n in range(4):
        assert [i for m, i in handled if m == n] == list(range(500))


def test_a_stalled_handler_holds_requests_back_instead_of_growing_without_bound():
    release, handled = threading.Event(), []

    def slow(batch: list) -> None:
        release.wait()  # a log stream nobody reads
        handled.extend(batch)

    queue = Deferred(slow, "test", capacity=50)
    queue.add(0)
    eventually(lambda: not queue.items)  # its thread took item 0 and is stuck in the handler
    done = threading.Event()

    def requests() -> None:
        for i in range(1, 200):
            queue.add(i)
        done.set()

    threading.Thread(target=requests, daemon=True).start()
    time.sleep(3 * INTERVAL)
    assert not done.is_set()  # held back, as when each request wrote its own line
    assert len(queue.items) <= 51
    release.set()
    assert done.wait(10)
    deferred.flush_all()
    assert handled == list(range(200))


def test_the_thread_outlives_its_handlers_errors(caplog):
    handled: list = []
    failures = iter([True])

    def flaky(batch: list) -> None:
        if next(failures, False):
            raise RuntimeError("a bug in a handler")
        handled.extend(batch)

    queue = Deferred(flaky, "test")
    queue.add("lost with the failed batch")
    eventually(lambda: "a bug in a handler" in caplog.text)
    queue.add("after")
    eventually(lambda: handled == ["after"])


def _add_and_return(path: str) -> None:
    def append(batch: list) -> None:
        with Path(path).open("a") as out:
            out.write("".join(f"{i}\n" for i in batch))

    queue = Deferred(append, "test")
    for i in range(100):
        queue.add(i)
    # returns at once: multiprocessing ends the process with os._exit, as granian's workers end


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_process_that_ends_hands_over_what_it_kept(tmp_path, method):
    out = tmp_path / "handled"
    process = multiprocessing.get_context(method).Process(target=_add_and_return, args=(str(out),))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert out.read_text().split() == [str(i) for i in range(100)]


def test_a_forked_child_runs_a_thread_of_its_own(tmp_path):
    queue = Deferred(lambda batch: None, "test")
    queue.add("the parent's thread runs")
    out = tmp_path / "child"
    pid = os.fork()
    if pid == 0:  # the child: no thread survived the fork
        try:
            child = Deferred(lambda batch: out.write_text(json.dumps(batch)), "test")
            child.add("from the child")
            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(INTERVAL / 4)
        finally:
            os._exit(0 if out.exists() else 1)
    assert wait_child(pid) == 0
    assert json.loads(out.read_text()) == ["from the child"]


def test_a_queue_that_cannot_hand_over_never_fails_the_request(monkeypatch, caplog):
    handled: list = []
    queue = Deferred(handled.extend, "test", capacity=2)
    real_start = threading.Thread.start

    def no_threads(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    for i in range(5):
        queue.add(i)  # no thread, then over capacity: handed over here, never raised
    assert "can't start new thread" in caplog.text
    monkeypatch.setattr(threading.Thread, "start", real_start)
    queue.add(5)  # the thread is tried again
    eventually(lambda: handled == [0, 1, 2, 3, 4, 5])

    def broken(batch: list) -> None:
        raise OSError(28, "No space left on device")  # a full PROMETHEUS_MULTIPROC_DIR

    failing = Deferred(broken, "test", capacity=1)
    for i in range(3):
        failing.add(i)  # over capacity, the hand-over fails: logged, not raised
    assert "No space left on device" in caplog.text


def test_a_fork_while_a_batch_is_handed_over_neither_hangs_nor_repeats(tmp_path):
    inside, release = threading.Event(), threading.Event()
    seen: list = []

    def slow(batch: list) -> None:
        inside.set()
        release.wait()
        seen.extend(batch)

    queue = Deferred(slow, "test")
    queue.add("parent-1")
    assert inside.wait(10)  # the parent's thread holds the queue's lock, in the handler
    queue.add("parent-2")  # pending in the parent
    out = tmp_path / "child"
    pid = os.fork()
    if pid == 0:
        try:
            queue.handle = lambda batch: out.write_text(json.dumps(batch))
            queue.add("child-1")
            queue.flush()  # would wait forever on the lock the parent's thread held at the fork
        finally:
            os._exit(0)
    status = wait_child(pid)
    release.set()
    deferred.flush_all()
    assert status == 0, "the child hung on the lock held at the fork"
    assert json.loads(out.read_text()) == ["child-1"]  # not the parent's parent-2 again
    assert seen == ["parent-1", "parent-2"]
