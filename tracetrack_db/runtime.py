"""Resolve where PostgreSQL is (DATABASE_URL or the embedded server) and as
whom, migrate, bootstrap an admin.

Two roles: the owner of the tables migrates (TRACETRACK_OWNER_URL, else
DATABASE_URL) and the service connects as DATABASE_URL, a role granted only
what it needs (privileges.py). The embedded server sets up both by itself:
its superuser migrates, and the service connects as `tracetrack_service`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import migrations, privileges, users
from .database import Database
from .embedded import EmbeddedPostgres
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Urls:
    owner: str  # migrations, seeding, ANALYZE, operator commands
    service: str  # what the service connects as
    embedded: bool


@contextmanager
def database_urls(settings: Settings) -> Iterator[Urls]:
    """The owner's and the service's URLs, of DATABASE_URL or of the embedded
    server (running for as long as the block does)."""
    if settings.database_url:
        yield Urls(settings.owner_url or settings.database_url, settings.database_url, embedded=False)
        return
    with EmbeddedPostgres(settings.data_dir) as url:
        yield Urls(url, privileges.with_user(url, privileges.EMBEDDED_SERVICE_ROLE), embedded=True)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The owner's URL (operator commands): TRACETRACK_OWNER_URL, DATABASE_URL,
    or the embedded server's for as long as the block runs."""
    with database_urls(settings) as urls:
        yield urls.owner


@dataclass(frozen=True)
class MigrateReport:
    applied: list[migrations.Migration]
    admin_created: str | None


def migrate_and_bootstrap(settings: Settings, url: str, progress: Callable[[str], None] | None = None) -> MigrateReport:
    """Apply migrations (as the owner: `url`), then create the bootstrap admin from
    TRACETRACK_ADMIN_USERNAME / TRACETRACK_ADMIN_PASSWORD if it is missing. On
    the embedded server, also make its service role."""
    applied = migrations.migrate(url, progress=progress)
    if not settings.database_url:
        privileges.grant_service(url, privileges.EMBEDDED_SERVICE_ROLE, create=True)
    created = None
    if settings.admin_username and settings.admin_password:
        with Database(url, min_size=1, max_size=1) as db:
            if users.ensure_admin(db, settings.admin_username, settings.admin_password):
                created = settings.admin_username
    return MigrateReport(applied, created)
