"""Resolve where PostgreSQL is (DATABASE_URL or the embedded server),
migrate, bootstrap an admin, open the pools."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import migrations, users
from .database import Database
from .embedded import EmbeddedPostgres
from .settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded server's URL for as long as the block runs."""
    if settings.database_url:
        yield settings.database_url
        return
    with EmbeddedPostgres(settings.data_dir) as url:
        yield url


@dataclass(frozen=True)
class MigrateReport:
    applied: list[migrations.Migration]
    admin_created: str | None


def migrate_and_bootstrap(settings: Settings, url: str,
                          progress: Callable[[str], None] | None = None) -> MigrateReport:
    """Apply migrations, then create the bootstrap admin from
    TRACETRACK_ADMIN_USERNAME / TRACETRACK_ADMIN_PASSWORD if it is missing."""
    applied = migrations.migrate(url, progress=progress)
    created = None
    if settings.admin_username and settings.admin_password:
        with Database(url, min_size=1, max_size=1) as db:
            if users.ensure_admin(db, settings.admin_username, settings.admin_password):
                created = settings.admin_username
    return MigrateReport(applied, created)
