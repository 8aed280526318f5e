"""Worker, thread and pool sizes from the CPU count and the server's limits."""

from __future__ import annotations

import os
from dataclasses import dataclass

# besides its pool, each worker holds two connections of its own: the view
# refresher's and the user-change listener's; with a replica, a third: its poller's
PER_WORKER_EXTRA = 2


@dataclass(frozen=True)
class Sizing:
    workers: int
    threads: int
    pool_size: int
    extra: int = PER_WORKER_EXTRA

    @property
    def connections(self) -> int:
        return self.workers * (self.pool_size + self.extra)


def default_sizing(
    max_connections: int,
    cpus: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    reserved: int = 10,
    replica: bool = False,
) -> Sizing:
    """One worker per CPU, 6 blocking threads each (measured best 4-8 on granian),
    a pool as large as the thread count, and workers x (pool + their own two)
    kept below the server's max_connections minus `reserved` (admin,
    migrations, the metrics listener)."""
    cpus = cpus or os.cpu_count() or 1
    workers = workers or cpus
    threads = threads or 6
    extra = PER_WORKER_EXTRA + replica
    budget = max(max_connections - reserved, workers)
    pool = max(1, min(threads, budget // workers - extra))
    return Sizing(workers=workers, threads=threads, pool_size=pool, extra=extra)
