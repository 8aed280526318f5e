"""Test fixtures: a real PostgreSQL (TRACETRACK_TEST_DATABASE_URL, else the
embedded server), a template database migrated once per session, and a fresh
clone of it for every test that asks for `db` or `db_url`.

Two roles, as in production: `db_url` (and `sql_conn`) connect as the
owner of the tables; `db` and `service_url` as SERVICE_ROLE, granted only
what the service needs, so every library test also proves the grants."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tracetrack_db import Database, migrations, privileges

REQUIRE_SERVICES = os.environ.get("TRACETRACK_REQUIRE_SERVICES") == "1"
SERVICE_ROLE, SERVICE_PASSWORD = "tt_test_service", "tt-test-service-password"


def service_missing(reason: str) -> NoReturn:
    """Skip, or fail when TRACETRACK_REQUIRE_SERVICES=1 (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str):
    """Import a test dependency; a missing one skips, or fails under TRACETRACK_REQUIRE_SERVICES=1."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        service_missing(f"{name} is not installed ({exc}): pip install -e '.[test]'")


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A maintenance URL of a real PostgreSQL server."""
    url = os.environ.get("TRACETRACK_TEST_DATABASE_URL")
    if url:
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            service_missing(f"TRACETRACK_TEST_DATABASE_URL unreachable: {exc}")
        yield url
        return
    from tracetrack_db.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("embedded")))
    try:
        yield server.start()
    finally:
        server.stop()


def make_service_role(server_url: str) -> None:
    """SERVICE_ROLE on the server of `server_url` (roles belong to the server:
    made once, shared by every database of it)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(SERVICE_ROLE), sql.Literal(SERVICE_PASSWORD)
                )
            )
        except psycopg.errors.DuplicateObject:
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                    sql.Identifier(SERVICE_ROLE), sql.Literal(SERVICE_PASSWORD)
                )
            )


def make_database(server_url: str, name: str) -> str:
    """Database `name` made on the server of `server_url` (a maintenance URL of
    the owner), migrated, with SERVICE_ROLE (made once per server) granted what
    the service needs; its owner URL. The template below, and a test's own
    cluster (tests/pgcluster.py), are made so."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(server_url, name)
    migrations.migrate(url)
    make_service_role(server_url)
    privileges.grant_service(url, SERVICE_ROLE)  # clones inherit the grants
    return url


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A database migrated once, cloned by every test."""
    name = f"tt_template_{uuid.uuid4().hex[:8]}"
    make_database(pg_server_url, name)
    yield name
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


_clone_numbers = itertools.count()


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    name = f"{template_db}_t{next(_clone_numbers)}_{os.getpid()}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    yield with_dbname(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def as_service(url: str) -> str:
    """The same database as the service role."""
    return privileges.with_user(url, SERVICE_ROLE, SERVICE_PASSWORD)


@pytest.fixture
def service_url(db_url: str) -> str:
    return as_service(db_url)


@pytest.fixture
def db(service_url: str) -> Iterator[Database]:
    database = Database(service_url, min_size=1, max_size=24, timeout=10)
    with database:
        yield database


@pytest.fixture
def owner_db(db_url: str) -> Iterator[Database]:
    """The library as the tables' owner: for what operators do (parent formats, seeding)."""
    with Database(db_url, min_size=1, max_size=2, timeout=10) as database:
        yield database


@pytest.fixture
def sql_conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection for checking state behind the library's back."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def redis_url() -> str:
    import redis

    url = os.environ.get("REDIS_URL")
    if not url:
        service_missing("REDIS_URL is not set")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {url} unreachable: {exc}")
    return url
