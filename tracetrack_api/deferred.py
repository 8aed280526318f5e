"""Work a request leaves for later, done in bulk by one thread of the process.

The access line costs the hot read ~25 us of CPU inside the request (a
LogRecord, the logging handlers' lock, a write), and more through the server,
where the request's own code and data are evicted from the CPU's caches in
between; one after another in a batch the same lines cost ~6 us each
(RESULTS, "Issue 13 item 8"). So a request appends a tuple (a deque's
append: thread-safe, no lock) and a thread hands the tuples over every
INTERVAL seconds, at exit, and whenever `flush_all()` is called (tests, the
in-process /metrics). The price: an access line appears up to INTERVAL late
(its time is the request's own), and a worker killed with SIGKILL loses at
most that much of them; what requests did in the database is not affected.
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
from typing import Any

INTERVAL = 0.2
log = logging.getLogger(__name__)
_queues: weakref.WeakSet[Deferred] = weakref.WeakSet()
_start_lock = threading.Lock()
_running_in = 0  # the pid whose flushing thread runs (threads do not survive a fork)


class Deferred:
    """Items added by any thread, handed to `handle` in order, in batches."""

    def __init__(self, handle: Callable[[list[Any]], None]):
        self.handle = handle
        self.items: deque[Any] = deque()
        self._lock = threading.Lock()  # one batch at a time, so the order holds
        _queues.add(self)

    def add(self, item: Any) -> None:
        self.items.append(item)
        if _running_in != os.getpid():
            _start()

    def flush(self) -> None:
        with self._lock:
            batch, take = [], self.items.popleft
            while True:
                try:
                    batch.append(take())
                except IndexError:
                    break
            if batch:
                self.handle(batch)


def flush_all() -> None:
    for queue in list(_queues):
        try:
            queue.flush()
        except Exception:  # a handler's bug must not stop the others, nor the thread
            log.exception("handing over deferred work failed")


def _start() -> None:
    global _running_in
    with _start_lock:
        if _running_in == os.getpid():
            return
        _running_in = os.getpid()
        threading.Thread(target=_flush_forever, name="tracetrack-deferred", daemon=True).start()
        atexit.register(flush_all)


def _flush_forever() -> None:
    while True:
        time.sleep(INTERVAL)
        flush_all()
