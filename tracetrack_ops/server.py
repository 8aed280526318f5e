"""Run the API under granian (WSGI, one process per worker)."""

from __future__ import annotations

import os

from .sizing import Sizing


def run_granian(host: str, port: int, sizing: Sizing, env: dict[str, str]) -> None:
    """Serve until interrupted. Workers import `tracetrack_api.wsgi:create`
    and read their settings (DATABASE_URL, pool size, secret) from `env`."""
    from granian import Granian
    from granian.constants import Interfaces

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
        log_access=False,
        respawn_failed_workers=True,
    ).serve()
