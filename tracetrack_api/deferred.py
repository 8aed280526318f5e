"""Work a request leaves for later, done in batches by a thread of the process.

Written inside each request, the access line (a LogRecord, the logging
handler's lock, a write) and the request's metrics (prometheus-client's
locks and mmap writes) cost the hot read 53 us of CPU in process, the
request's own code and data evicted from the CPU's caches in between; one
after another in a batch they cost 17 us (RESULTS, "Issue 13 item 8,
continued"). So a request appends a tuple (a deque's append: thread-safe,
no lock) and each queue's thread hands its tuples over every INTERVAL
seconds, when the process ends (atexit, and multiprocessing's finalizers:
granian's workers are multiprocessing children, which end with os._exit and
skip atexit), and on `flush_all()` (tests, the in-process /metrics).

The price: an access line or a count appears up to INTERVAL late (the line
carries the request's own time), and a worker killed with SIGKILL loses at
most that much of them; what the requests did in the database is not
affected. A queue holds about CAPACITY items at most (plus one per request
thread): past that (its thread stalled on a log stream nobody reads) the
request hands them over itself, and waits as it did when every line was
written in the request.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing import util
from typing import Any

INTERVAL = 0.2
CAPACITY = 10_000
log = logging.getLogger(__name__)
_lock = threading.Lock()
_queues: weakref.WeakSet[Deferred] = weakref.WeakSet()
_pid = os.getpid()  # this process's (os.getpid is a system call: kept, and set again in a forked child)
_hooked = 0  # the pid whose exit flushes every queue


class Deferred:
    """Items added by any thread, handed to `handle` in order, in batches."""

    def __init__(self, handle: Callable[[list[Any]], None], name: str, capacity: int = CAPACITY):
        self.handle = handle
        self.name = name
        self.capacity = capacity
        self.items: deque[Any] = deque()
        self._flushing = threading.Lock()  # one batch at a time, so the order holds
        self._running_in = 0  # the pid its thread runs in (no thread survives a fork)
        with _lock:
            _queues.add(self)

    def add(self, item: Any) -> None:
        """Queue `item`; never raises into the request that was already answered."""
        items = self.items
        items.append(item)
        try:
            if self._running_in != _pid:
                self._start()  # a thread that cannot start now (a process limit) is tried again next time
            if len(items) > self.capacity:
                self.flush()
        except Exception:
            log.exception("handing over %s failed", self.name)

    def flush(self) -> None:
        with self._flushing:
            batch, take = [], self.items.popleft
            while True:
                try:
                    batch.append(take())
                except IndexError:
                    break
            if batch:
                self.handle(batch)

    def _start(self) -> None:
        global _hooked
        with _lock:
            if self._running_in == _pid:
                return
            thread = threading.Thread(target=self._flush_forever, name=f"tracetrack-{self.name}", daemon=True)
            thread.start()
            self._running_in = _pid  # only once it runs: a thread that could not start is tried again
            if _hooked != _pid:
                _hooked = _pid
                atexit.register(flush_all)
                util.Finalize(None, flush_all, exitpriority=100)

    def _flush_forever(self) -> None:
        ref = weakref.ref(self)
        del self  # the thread must not keep its queue alive
        while True:
            time.sleep(INTERVAL)
            queue = ref()
            if queue is None:
                return
            try:
                queue.flush()
            except Exception:  # a handler's bug must not stop the thread
                log.exception("handing over %s failed", queue.name)
            del queue


def flush_all() -> None:
    with _lock:
        queues = list(_queues)
    for queue in queues:
        try:
            queue.flush()
        except Exception:
            log.exception("handing over %s failed", queue.name)


def _forked() -> None:
    """In a forked child: its own pid, its own locks (a parent's thread may have held
    one at the fork, and none of its threads runs here), and none of the parent's
    queued items (the parent hands those over)."""
    global _pid, _lock
    _pid = os.getpid()
    _lock = threading.Lock()
    for queue in list(_queues):
        queue._flushing = threading.Lock()
        queue.items.clear()


os.register_at_fork(after_in_child=_forked)
