"""Parent formats as data, managed by admins (issue 12, item 9).

A parent format is a name, an anchored PostgreSQL regular expression over
normalised QRs, the capacity (children) and expected weight a new parent of
that format gets. A QR matching a format opens as a parent; any other valid QR
is a child. The writes are SECURITY DEFINER functions (migration 0014): the
service role may read parent_format, never write it.

- In use: a parent bag's QR matches the pattern. A format in use cannot be
  removed (409 format_in_use) and its pattern cannot change; its capacity and
  expected weight can, and apply to parents created from then on (a parent
  keeps what it was created with).
- Formats must not share QRs: a pattern another format has, or that an
  existing parent matches, is refused (409 format_exists).
- A bag's type never changes: a child whose QR matches a format added later
  stays a child (it links as one; opening it as a parent is 422 not_a_parent).

Every change writes its security log row (format_added, format_changed,
format_removed, by `origin`) in its own transaction.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from psycopg import Connection

from . import audit, errors
from .audit import LIBRARY, Origin
from .database import Database
from .models import ParentFormat

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$"
NAME_RULE = "a format name is 1-50 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"
MAX_PATTERN = 200
MIN_CAPACITY, MAX_CAPACITY = 1, 1000
DEFAULT_CAPACITY = 30
DEFAULT_WEIGHT = Decimal(30)
MAX_WEIGHT = Decimal("999999999.999")  # numeric(12, 3)
_NAME = re.compile(NAME_PATTERN)

__all__ = [
    "ParentFormat",
    "add_format",
    "change_format",
    "check_pattern",
    "get_format",
    "list_formats",
    "remove_format",
]


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise errors.ValidationError(NAME_RULE, field=field)
    return name


def check_pattern(pattern: object) -> str:
    """The pattern's shape (PostgreSQL checks that it is a valid regular expression).

    Anchored: ^ first, $ last, and no | outside a group (^A|B$ would match any
    QR starting with A or ending with B): write ^(A|B)$.
    """
    if not isinstance(pattern, str) or not 3 <= len(pattern) <= MAX_PATTERN:
        raise errors.ValidationError(f"a pattern is 3-{MAX_PATTERN} characters", field="pattern")
    if "\x00" in pattern or not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
        raise errors.ValidationError("a pattern is anchored: ^ first and $ last, as in ^SB[0-9]{5}$", field="pattern")
    if _top_level_alternation(pattern):
        raise errors.ValidationError(
            "a | outside a group leaves the pattern unanchored: write ^(A|B)$, not ^A|B$", field="pattern"
        )
    return pattern


def _top_level_alternation(pattern: str) -> bool:
    depth = 0
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # a bracket expression: a ] right after [ or [^ is a member
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "[" and i + 1 < n and pattern[i + 1] in ":.=" else 1
            i += 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "|" and depth == 0:
            return True
        i += 1
    return False


def check_capacity(capacity: object) -> int:
    if not isinstance(capacity, int) or isinstance(capacity, bool) or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise errors.ValidationError(f"capacity must be from {MIN_CAPACITY} to {MAX_CAPACITY}", field="capacity")
    return capacity


def check_weight(weight: object) -> Decimal:
    problem = errors.ValidationError(
        f"expected_weight_kg must be a number from 0 to {MAX_WEIGHT}", field="expected_weight_kg"
    )
    if isinstance(weight, bool) or not isinstance(weight, int | float | Decimal | str):
        raise problem
    if isinstance(weight, float) and not math.isfinite(weight):
        raise problem
    try:
        value = Decimal(str(weight))
    except InvalidOperation:
        raise problem from None
    if not value.is_finite() or not 0 <= value <= MAX_WEIGHT:
        raise problem
    return value


def list_formats(db: Database, *, conn: Connection | None = None) -> list[ParentFormat]:
    """Every parent format, in matching order (the first match decides)."""
    return db.many("list_formats", row=ParentFormat, conn=conn, read=conn is None)


def get_format(db: Database, name: str, *, conn: Connection | None = None) -> ParentFormat:
    found = db.one("get_format", {"name": name}, row=ParentFormat, conn=conn) if _NAME.fullmatch(name) else None
    if found is None:
        raise errors.FormatNotFound(f"no parent format named {name!r}")
    return found


def add_format(
    db: Database,
    name: str,
    pattern: str,
    capacity: int = DEFAULT_CAPACITY,
    expected_weight_kg: Decimal | float | int | str = DEFAULT_WEIGHT,
    *,
    origin: Origin = LIBRARY,
    conn: Connection | None = None,
) -> ParentFormat:
    """Add a format. ValidationError (field name, pattern, capacity or
    expected_weight_kg) for a bad value; FormatExists for a taken name, a
    pattern another format has, or one an existing parent matches."""
    params = {
        "name": check_name(name),
        "pattern": check_pattern(pattern),
        "capacity": check_capacity(capacity),
        "expected_weight_kg": check_weight(expected_weight_kg),
    }
    with db.transaction(conn) as tx:
        added = db.one("add_format", params, row=ParentFormat, conn=tx)
        _log(db, "format_added", origin, added, tx)
        return added


def _log(
    db: Database, kind: str, origin: Origin, f: ParentFormat, conn: Connection, changed: list[str] | None = None
) -> None:
    details = {
        "name": f.name,
        "pattern": f.pattern,
        "capacity": f.capacity,
        "expected_weight_kg": str(f.expected_weight_kg),
    }
    if changed is not None:
        details["changed"] = changed
    audit.record(db, kind, origin, details=details, conn=conn)


def change_format(
    db: Database,
    name: str,
    *,
    pattern: str | None = None,
    capacity: int | None = None,
    expected_weight_kg: Decimal | float | int | str | None = None,
    origin: Origin = LIBRARY,
    conn: Connection | None = None,
) -> ParentFormat:
    """Change a format (None keeps a value). Capacity and expected weight apply
    to parents created from now on; existing parents keep theirs. The pattern
    changes only while no parent matches it (FormatInUse); FormatNotFound for
    an unknown name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise errors.FormatNotFound(f"no parent format named {name!r}")
    params = {
        "name": name,
        "pattern": None if pattern is None else check_pattern(pattern),
        "capacity": None if capacity is None else check_capacity(capacity),
        "expected_weight_kg": None if expected_weight_kg is None else check_weight(expected_weight_kg),
    }
    with db.transaction(conn) as tx:
        changed = db.one("change_format", params, row=ParentFormat, conn=tx)
        given = [k for k in ("pattern", "capacity", "expected_weight_kg") if params[k] is not None]
        _log(db, "format_changed", origin, changed, tx, given)
        return changed


def remove_format(db: Database, name: str, *, origin: Origin = LIBRARY, conn: Connection | None = None) -> ParentFormat:
    """Remove a format no parent uses (FormatInUse otherwise); answers the
    removed format. QRs it matched are child QRs from then on."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise errors.FormatNotFound(f"no parent format named {name!r}")
    with db.transaction(conn) as tx:
        removed = db.one("remove_format", {"name": name}, row=ParentFormat, conn=tx)
        _log(db, "format_removed", origin, removed, tx)
        return removed
