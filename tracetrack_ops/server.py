"""Run the API under granian (WSGI, one process per worker)."""

from __future__ import annotations

import os
import sys

from .sizing import Sizing


def serve_argv(port: int, *options: str, workers: int | None = None, threads: int | None = None) -> list[str]:
    """`tracetrack serve` on 127.0.0.1:`port` as a child process of this interpreter
    (verify, the benchmarks), with `options` after the port."""
    argv = [sys.executable, "-m", "tracetrack_api", "serve", "--port", str(port)]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    return argv + list(options)


def run_granian(
    host: str, port: int, sizing: Sizing, env: dict[str, str], log_level: str = "info", log_format: str = "text"
) -> None:
    """Serve until interrupted. Workers import `tracetrack_api.wsgi:create`
    and read their settings (DATABASE_URL, pool size, secret, logging) from
    `env`; granian's own lines go through the same log format."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from tracetrack_api.logs import dict_config

    os.environ.update(env)
    Granian(
        "tracetrack_api.wsgi:create",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=sizing.workers,
        blocking_threads=sizing.threads,
        backlog=2048,
        log_access=False,  # the app writes the access line (route template, request id, user)
        log_level=LogLevels(log_level),
        log_dictconfig=dict_config(log_level, log_format),
        respawn_failed_workers=True,
    ).serve()
