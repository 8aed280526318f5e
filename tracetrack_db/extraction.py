"""Label extraction rules: how a printed label's text becomes a QR.

A label often carries more than the code (`LABEL NO.0016586 LOT NO.:A12`).
A rule is data, like a parent format: a name and a Python regular
expression with a named group `qr`; an import that names a rule takes the
first match's `qr` group from each QR cell, then normalises it as every QR
is. A rule is checked before it is stored: it compiles, has the group `qr`,
matches no empty text, and has no repeat inside a repeat (`(a+)+`), the
shape that makes a regular expression take exponential time on a crafted
cell. Cells are at most importfiles.MAX_CELL characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from re import _parser as _sre_parse  # the parser re.compile uses (3.11+)
from typing import Any

from psycopg import Connection

from . import errors
from .database import Database

MAX_PATTERN = 500


@dataclass(frozen=True)
class ExtractionRule:
    id: int
    name: str
    pattern: str
    description: str
    created_at: datetime
    updated_at: datetime


def _nested_repeat(items: Any, inside_repeat: bool = False) -> bool:
    """Whether a parsed pattern has an unbounded repeat inside another repeat."""
    for op, arg in items:
        name = str(op)
        inner, repeats = [], inside_repeat
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            unbounded = high is _sre_parse.MAXREPEAT or high != low  # {2} is fixed; + * ? {1,3} vary
            if inside_repeat and unbounded:
                return True
            inner, repeats = [sub], inside_repeat or unbounded
        elif name == "SUBPATTERN":
            inner = [arg[-1]]
        elif name == "BRANCH":
            inner = list(arg[1])
        elif name in ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP"):
            inner = [arg[-1]]
        if any(_nested_repeat(sub, repeats) for sub in inner):
            return True
    return False


def check_pattern(pattern: object) -> re.Pattern[str]:
    """The compiled pattern, or InvalidRule saying what is wrong with it."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise errors.InvalidRule("a rule's pattern is a non-empty regular expression", field="pattern")
    if len(pattern) > MAX_PATTERN:
        raise errors.InvalidRule(f"a rule's pattern has at most {MAX_PATTERN} characters", field="pattern")
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise errors.InvalidRule(f"not a valid regular expression: {exc}", field="pattern") from None
    if "qr" not in compiled.groupindex:
        raise errors.InvalidRule("the pattern needs a named group qr, as in LABEL NO\\.(?P<qr>\\d+)", field="pattern")
    if compiled.search("") is not None:
        raise errors.InvalidRule("the pattern matches an empty text: it would find a code in anything", field="pattern")
    if _nested_repeat(_sre_parse.parse(pattern)):
        raise errors.InvalidRule(
            "the pattern repeats a group that itself repeats (like (a+)+): such a pattern can take "
            "exponential time on one cell; write it without the nesting",
            field="pattern",
        )
    return compiled


@lru_cache(maxsize=64)
def compiled(pattern: str) -> re.Pattern[str]:
    return check_pattern(pattern)


def extract(pattern: re.Pattern[str], text: str) -> str | None:
    """The `qr` group of the first match in `text`, or None."""
    found = pattern.search(text)
    return found["qr"] if found else None


def list_rules(db: Database, *, conn: Connection | None = None) -> list[ExtractionRule]:
    return db.many("list_rules", row=ExtractionRule, conn=conn, read=True)


def get_rule(db: Database, name: str, *, conn: Connection | None = None) -> ExtractionRule:
    rule = db.one("get_rule", {"name": name}, row=ExtractionRule, conn=conn)
    if rule is None:
        raise errors.RuleNotFound(f"no extraction rule named {name!r}", field="rule")
    return rule


def add_rule(
    db: Database,
    name: str,
    pattern: str,
    description: str = "",
    *,
    user_id: int | None = None,
    conn: Connection | None = None,
) -> ExtractionRule:
    """Store a new rule (RuleExists when the name is taken, InvalidRule for a bad pattern)."""
    check_pattern(pattern)
    params = {"name": name, "pattern": pattern, "description": description, "user_id": user_id}
    return db.one("add_rule", params, row=ExtractionRule, conn=conn)


def change_rule(
    db: Database,
    name: str,
    *,
    pattern: str | None = None,
    description: str | None = None,
    conn: Connection | None = None,
) -> ExtractionRule:
    """Change a rule's pattern or description (imports already done keep the
    pattern they used: their job records it)."""
    if pattern is not None:
        check_pattern(pattern)
    rule = db.one(
        "change_rule", {"name": name, "pattern": pattern, "description": description}, row=ExtractionRule, conn=conn
    )
    if rule is None:
        raise errors.RuleNotFound(f"no extraction rule named {name!r}", field="name")
    return rule
