"""The embedded PostgreSQL used when DATABASE_URL is unset (pgserver)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A real PostgreSQL from the `pgserver` wheel, data under `data_dir/pgdata`.

    The data directory persists between runs. The server is stopped when the
    last process holding it calls `stop()` or exits.
    """

    def __init__(self, data_dir: Path):
        self.pgdata = Path(data_dir) / "pgdata"
        self._server: Any = None  # pgserver.PostgresServer once started

    def start(self) -> str:
        """Start (or join) the server and return a connection URI."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); /tmp is fine.
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError:
                from .errors import DatabaseUnavailable

                raise DatabaseUnavailable(
                    "cannot connect: DATABASE_URL is not set and the embedded PostgreSQL is not installed "
                    "(set DATABASE_URL, or pip install 'tracetrack[server]')"
                ) from None

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        uri = self._server.get_uri()
        log.info("embedded PostgreSQL at %s", self.pgdata)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
