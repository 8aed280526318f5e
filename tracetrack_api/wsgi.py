"""WSGI entry points.

`create()` is a factory (granian --factory, gunicorn "tracetrack_api.wsgi:create()"):
each worker process opens its own pool at start-up, never at import time.
"""

from __future__ import annotations

import atexit
import logging

import falcon

from tracetrack_db import Database
from tracetrack_db.views import Refresher

from .app import create_app
from .auth import UserChangeListener, UserDirectory
from .config import ApiSettings


def create() -> falcon.App:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ApiSettings.from_env()
    if not settings.db.database_url:
        raise SystemExit("DATABASE_URL is not set (`tracetrack serve` sets it for its workers)")
    db = Database.from_settings(settings.db).open()
    atexit.register(db.close)
    if settings.refresh_interval > 0:
        # its own single connection: a refresh never takes one from a request
        refresh_db = Database.from_settings(settings.db, min_size=1, max_size=1, read_conninfo=None).open()
        refresher = Refresher(refresh_db, settings.refresh_interval).start()
        atexit.register(refresh_db.close)
        atexit.register(refresher.stop)
    directory = UserDirectory(db, settings.user_refresh_seconds)
    listener = UserChangeListener(settings.db.database_url, directory).start()
    atexit.register(listener.stop)
    return create_app(db, settings, directory=directory)
