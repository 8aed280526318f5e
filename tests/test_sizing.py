"""Worker, thread and pool sizes for `tracetrack serve`."""

from tracetrack_ops.sizing import default_sizing


def test_one_worker_per_cpu_and_a_pool_per_thread():
    sizing = default_sizing(max_connections=100, cpus=2)
    assert (sizing.workers, sizing.threads, sizing.pool_size) == (2, 6, 6)
    assert sizing.connections == 16  # each worker's pool, refresher and user-change listener


def test_pools_shrink_to_stay_below_max_connections():
    sizing = default_sizing(max_connections=100, cpus=16)
    assert sizing.workers == 16
    assert sizing.connections <= 100 - 10  # room kept for admin, migrations and the metrics listener
    assert sizing.pool_size == 3


def test_explicit_workers_and_threads_win():
    sizing = default_sizing(max_connections=100, cpus=2, workers=3, threads=4)
    assert (sizing.workers, sizing.threads, sizing.pool_size) == (3, 4, 4)


def test_a_replica_counts_each_workers_poller_connection():
    assert default_sizing(max_connections=100, cpus=2, replica=True).connections == 18
    sizing = default_sizing(max_connections=100, cpus=16, replica=True)
    assert sizing.connections <= 100 - 10 and sizing.pool_size == 2
