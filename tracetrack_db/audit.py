"""The security log (migration 0019): who logged in, failed to, was locked
out, logged out, changed or reset a password, changed a user, ended tokens,
changed a parent format or an extraction rule; when, from which client
address and with which user agent.

Append-only: the service's database role may insert rows and read them,
never change or delete one, and a trigger refuses that to the owner too.

The library functions that change something take an `Origin` (who asks, from
where) and write their row in the transaction of the change, so a change that
fails leaves no row. A caller with no request (a script, the CLI) passes
`cli_origin()` or leaves the default `LIBRARY`.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from .cursor import paginate
from .database import Database
from .listing import Where, newest_first
from .models import Page

KINDS = (
    "login_succeeded",
    "login_failed",
    "lockout",
    "logout",
    "tokens_revoked",
    "password_changed",
    "password_change_failed",
    "password_reset",
    "user_created",
    "role_changed",
    "area_changed",
    "active_changed",
    "format_added",
    "format_changed",
    "format_removed",
    "rule_added",
    "rule_changed",
)  # the security_log_kind_check constraint


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asks for a change and from where: the security log's who, client
    address and user agent. `actor` names the actor: a username, or
    `cli:<OS user>`, or `library` when there is no one to name."""

    actor_id: int | None = None
    actor: str = "library"
    address: str | None = None
    user_agent: str | None = None


LIBRARY = Origin()


def cli_origin() -> Origin:
    """The origin of a change made with the `tracetrack` command: the OS user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        who = "unknown"
    return Origin(actor=f"cli:{who}", user_agent="tracetrack-cli")


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One row of the security log."""

    id: int
    occurred_at: datetime
    kind: str
    actor_id: int | None  # who (NULL: nobody logged in: a login, the CLI, a library caller)
    actor: str  # who, by name
    user_id: int | None  # the account concerned
    username: str | None  # its name (for a failed login: the name typed)
    reason: str | None  # why a login failed or tokens ended
    client_address: str | None
    user_agent: str | None
    details: dict[str, Any] | None


def record(
    db: Database,
    kind: str,
    origin: Origin = LIBRARY,
    *,
    user_id: int | None = None,
    username: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    conn: Connection | None = None,
) -> None:
    """Append a row (in `conn`'s transaction when given). Without `user_id`, the
    user named `username` (login form) is looked up, if there is one."""
    if kind not in KINDS:
        raise ValueError(f"not a security log kind: {kind!r}")
    db.execute(
        "record_security_event",
        {
            "kind": kind,
            "actor_id": origin.actor_id,
            "actor": origin.actor,
            "user_id": user_id,
            "username": username,
            "reason": reason,
            "address": origin.address,
            "user_agent": origin.user_agent,
            "details": Jsonb(dict(details)) if details else None,
        },
        conn=conn,
    )


def log_filters(
    *,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
    user_id: int | None = None,
    kind: str | None = None,
) -> Where:
    """The list's filters on `security_log r`: from (included) to (excluded),
    a user as actor or as the one concerned, a kind."""
    where = Where()
    if occurred_from is not None:
        where.add("r.occurred_at >= %(occurred_from)s", occurred_from=occurred_from)
    if occurred_to is not None:
        where.add("r.occurred_at < %(occurred_to)s", occurred_to=occurred_to)
    if user_id is not None:
        where.add("(r.actor_id = %(user_id)s OR r.user_id = %(user_id)s)", user_id=user_id)
    if kind is not None:
        where.add("r.kind = %(kind)s", kind=kind)
    return where


_SELECT = (
    "SELECT r.id, r.occurred_at, r.kind, r.actor_id, r.actor, r.user_id, r.username, r.reason, "
    "r.client_address, r.user_agent, r.details FROM security_log r"
)


def list_query(*, limit: int = 50, cursor: str | None = None, **filters: Any):
    """The statement of `list_log` (also for `tracetrack db explain list_security_log`)."""
    return newest_first(_SELECT, log_filters(**filters), cursor=cursor, limit=limit)


def list_log(db: Database, *, limit: int = 50, cursor: str | None = None, **filters: Any) -> Page[SecurityEvent]:
    """The security log newest first, keyset by id; filters as `log_filters`."""
    query, params = list_query(limit=limit, cursor=cursor, **filters)
    return paginate(db.run_sql(query, params, row=SecurityEvent), limit)
