"""WSGI entry points.

`create()` is a factory (granian --factory, gunicorn "tracetrack_api.wsgi:create()"):
each worker process opens its own pool at start-up, never at import time.
Logging follows TRACETRACK_LOG_LEVEL, TRACETRACK_LOG_FORMAT (text|json) and
TRACETRACK_ACCESS_LOG (1|0), which `tracetrack serve` sets from its flags.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from tracetrack_db import Database, errors
from tracetrack_db.views import Refresher

from . import logs
from .app import App, create_app
from .auth import UserChangeListener, UserDirectory
from .config import ApiSettings

log = logging.getLogger("tracetrack_api")


def open_pools(settings: ApiSettings, **overrides: Any) -> Database:
    """A worker's pools, open. When the database cannot be reached, the worker
    starts anyway, its pools connecting in the background (503 with Retry-After
    until then): a worker respawned during a database restart that exited
    instead would die again at once, and granian (a respawned worker dying
    within 5.5 s) or gunicorn (a worker failing to boot) would stop the whole
    server. `tracetrack serve` has connected and migrated before any worker starts."""
    try:
        return Database.from_settings(settings.db, **overrides).open()
    except errors.DatabaseUnavailable as exc:
        log.warning("%s; starting anyway: requests get 503 until it is reachable", exc)
        return Database.from_settings(settings.db, **overrides).open(wait=False)


def create() -> App:
    level, fmt, access_log = logs.settings_from_env()  # TRACETRACK_LOG_LEVEL, _LOG_FORMAT, _ACCESS_LOG
    logs.configure(level, fmt)
    settings = ApiSettings.from_env()
    if not settings.db.database_url:
        raise SystemExit("DATABASE_URL is not set (`tracetrack serve` sets it for its workers)")
    db = open_pools(settings)
    atexit.register(db.close)
    if settings.refresh_interval > 0:
        # its own single connection: a refresh never takes one from a request
        refresh_db = open_pools(settings, min_size=1, max_size=1, read_conninfo=None)
        refresher = Refresher(
            refresh_db, settings.refresh_interval, sync_max_behind_seconds=settings.sync_max_behind_seconds
        ).start()
        atexit.register(refresh_db.close)
        atexit.register(refresher.stop)
    directory = UserDirectory(db, settings.user_refresh_seconds)
    listener = UserChangeListener(settings.listen_url or settings.db.database_url, directory).start()
    atexit.register(listener.stop)
    return create_app(db, settings, directory=directory, access_log=access_log)
