"""Dispatch areas and parent QR formats: reference data kept in tables."""

from __future__ import annotations

import re
from decimal import Decimal

from psycopg import Connection

from . import errors
from .database import Database
from .models import Area, ParentFormat

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,49}$"  # the dispatch_area_name_check constraint
_NAME = re.compile(r"[a-z][a-z0-9_]{1,49}")


def check_name(name: object, field: str = "dispatch_area") -> str:
    """A well-formed area name (whether it exists is the database's to say)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise errors.UnknownArea(f"unknown dispatch area {name!r}", field=field)
    return name


def require_area(db: Database, name: str, field: str = "dispatch_area") -> str:
    """`name`, if such a dispatch area exists; else UnknownArea."""
    if not db.scalar("area_exists", {"name": check_name(name, field)}, read=True):
        raise errors.UnknownArea(f"unknown dispatch area {name!r}", field=field)
    return name


def list_areas(db: Database) -> list[Area]:
    return db.many("list_areas", row=Area, read=True)


def create_area(db: Database, name: str, label: str | None = None, *, conn: Connection | None = None) -> Area:
    """Add a dispatch area (lowercase name). Raises AreaExists."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise errors.ValidationError("an area name is 2-50 characters of a-z 0-9 _", field="name")
    return db.one("create_area", {"name": name, "label": label or name.replace("_", " ").title()}, row=Area, conn=conn)


def list_parent_formats(db: Database) -> list[ParentFormat]:
    return db.many("list_parent_formats", row=ParentFormat, read=True)


def create_parent_format(
    db: Database, name: str, pattern: str, capacity: int = 30, expected_weight_kg: Decimal | float = 30
) -> ParentFormat:
    """Add a parent format; `pattern` is an anchored POSIX regular expression."""
    if not pattern.startswith("^") or not pattern.endswith("$"):
        raise errors.ValidationError("pattern must be anchored with ^ and $", field="pattern")
    return db.one(
        "create_parent_format",
        {"name": name, "pattern": pattern, "capacity": capacity, "expected_weight_kg": expected_weight_kg},
        row=ParentFormat,
    )
