"""The two database roles: the owner (migrations, seeding, ANALYZE) and the
service role the API connects as (sql/migrations/0007_least_privilege.sql
says what it may do).

`grant_service` records a role as a service role and grants it; `migrate`
re-applies the grants of every recorded role each time it runs. Everything
here runs as the owner.
"""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .rawsql import value

EMBEDDED_SERVICE_ROLE = "tracetrack_service"


def apply(conn: psycopg.Connection) -> None:
    """Re-apply the privileges (after migrations and views); a no-op before 0007."""
    if value(conn, "SELECT to_regprocedure('tt_apply_privileges()') IS NOT NULL"):
        conn.execute("SELECT tt_apply_privileges()")


def grant_service(owner_url: str, role: str, *, create: bool = False, password: str | None = None) -> str | None:
    """Record `role` as a service role and grant it what the service needs.

    With `create`, make the role first when it does not exist (LOGIN, with
    `password` or a generated one, returned; None when it existed). Needs
    CREATEROLE for that; the grants need only the tables' owner.
    """
    made = None
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            if not create:
                raise ValueError(f"role {role!r} does not exist (create it, or pass create=True)")
            made = password or secrets.token_urlsafe(24)
            try:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(made))
                )
            except psycopg.errors.DuplicateObject:  # created concurrently (say, two test sessions)
                made = None
        owner = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if owner and owner[0]:
            raise ValueError(f"role {role!r} is a superuser: a service role must not be")
        with conn.transaction():
            conn.execute("INSERT INTO service_role (role_name) VALUES (%s) ON CONFLICT DO NOTHING", (role,))
            apply(conn)
    return made


def with_user(url: str, user: str, password: str | None = None) -> str:
    """`url` with another user (and password, or none)."""
    params = conninfo_to_dict(url)
    params["user"] = user
    params.pop("password", None)
    if password:
        params["password"] = password
    return make_conninfo("", **params)


def is_owner(conn: psycopg.Connection) -> bool:
    """Whether this connection's role owns the tables (or is a superuser): a
    service that connects so could alter or drop them, or disable a trigger."""
    return bool(
        value(
            conn,
            "SELECT rolsuper OR pg_has_role(current_user, (SELECT relowner FROM pg_class "
            "WHERE oid = to_regclass('event')), 'MEMBER') FROM pg_roles WHERE rolname = current_user",
        )
    )
