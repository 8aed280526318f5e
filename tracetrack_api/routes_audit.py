"""Route table rows: the security log (issue 12, items 10 and 11), admins only.

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from tracetrack_db import Page, audit

from .handlers import audit as handlers
from .schema import PAGE, DateTime, Enum, Int, Param, query
from .table import CSV, Operation

FILTERS = {
    "from": Param(DateTime(), description="rows at or after this time"),
    "to": Param(DateTime(), description="rows before this time"),
    "user": Param(Int(1), description="a user id: rows where that user acted or was the one concerned"),
    "kind": Param(Enum(audit.KINDS)),
}
WHAT = (
    "Logins (succeeded, failed with the reason code answered), lockouts, logouts, password changes "
    "and resets, user creation and role, area and active changes, token revocations, parent-format "
    "and extraction-rule changes: who (actor_id, actor: a username, cli:<OS user>), whom (user_id, "
    "username), when, the client address (a trusted proxy's X-Real-IP or X-Forwarded-For, else the "
    "peer's) and user agent. Append-only: the service's database role cannot change or delete a row."
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "list_security_log",
        "GET",
        "/api/audit",
        handlers.list_log,
        "The security log, newest first",
        "audit",
        ("admin",),
        Page[audit.SecurityEvent],
        query=query(**FILTERS, **PAGE),
        errors=("invalid_cursor",),
        description=WHAT,
    ),
    Operation(
        "export_security_log",
        "GET",
        "/api/audit.csv",
        handlers.export_log,
        "The security log as CSV, oldest first (streamed; the columns of SecurityEvent)",
        "audit",
        ("admin",),
        CSV,
        query=query(**FILTERS),
        errors=("too_many_exports",),
        description=WHAT,
    ),
)
