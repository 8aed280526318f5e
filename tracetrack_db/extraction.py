"""Label extraction rules: how a printed label's text becomes a QR.

A label often carries more than the code (`LABEL NO.0016586 LOT NO.:A12`).
A rule is data, like a parent format: a name and a regular expression with a
named group `qr`; an import that names a rule takes the first match's `qr`
group from each QR cell, then normalises it as every QR is.

Rules run on RE2 (google-re2), whose matching takes time linear in the text
whatever the pattern: with Python's backtracking `re`, patterns as plain as
`\\d*\\d*\\d*(?P<qr>Z)` or `(?:\\d|\\d\\d)+` took seconds to minutes on one
1,000-character cell, and no check of a pattern's shape catches them all.
RE2's syntax is Python's without backreferences, lookaround, atomic groups
and conditionals; a pattern using them is refused. Where RE2 and Python
differ otherwise, the rule means what Python means: `\\w \\d \\s` (and `\\W \\D
\\S` outside a class) are rewritten to their Unicode classes (RE2's are ASCII:
`\\w+` took `B12` out of `ÄB12`, a different, valid QR) and `\\Z` to `\\z`; `\\b`
stays ASCII. A cell is NFKC-normalised before the rule runs (as every QR is
after it), so a no-break space or full-width digits in a pasted label match
`\\s` and `\\d`. A rule is checked before it is stored: it compiles, has the
group `qr`, matches no empty text and counts no repeat past MAX_REPEAT
(`[ab]{60}` or `\\pL{0,60}` made RE2 leave its fast matcher: 1.5 ms a cell).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import re2
from psycopg import Connection

from . import audit, errors
from .audit import LIBRARY, Origin
from .database import Database

MAX_PATTERN = 500
MAX_REPEAT = 20
_COUNTED = re.compile(r"(?<!\\)\{(\d*),?(\d*)\}")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's answer, not a line on stderr


@dataclass(frozen=True)
class ExtractionRule:
    id: int
    name: str
    pattern: str
    description: str
    created_at: datetime
    updated_at: datetime


def check_pattern(pattern: object) -> Any:
    """The compiled pattern (RE2), or InvalidRule saying what is wrong with it."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise errors.InvalidRule("a rule's pattern is a non-empty regular expression", field="pattern")
    if len(pattern) > MAX_PATTERN:
        raise errors.InvalidRule(f"a rule's pattern has at most {MAX_PATTERN} characters", field="pattern")
    try:
        compiled = re2.compile(python_meaning(pattern), options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise errors.InvalidRule(
            f"not a regular expression RE2 runs ({reason}): no backreferences, lookaround, atomic groups "
            "or conditionals",
            field="pattern",
        ) from None
    if "qr" not in compiled.groupindex:
        raise errors.InvalidRule("the pattern needs a named group qr, as in LABEL NO\\.(?P<qr>\\d+)", field="pattern")
    if compiled.search("") is not None:
        raise errors.InvalidRule("the pattern matches an empty text: it would find a code in anything", field="pattern")
    for low, high in _COUNTED.findall(pattern):
        if max(int(low or 0), int(high or 0)) > MAX_REPEAT:
            raise errors.InvalidRule(
                f"a counted repeat may go up to {MAX_REPEAT} ({{{low},{high}}} is more): RE2 leaves its fast "
                "matcher for larger ones",
                field="pattern",
            )
    return compiled


# Python's (Unicode) meaning of the class escapes, outside and inside a [...] class.
_OUTSIDE = {
    "w": r"[\p{L}\p{N}_]",
    "W": r"[^\p{L}\p{N}_]",
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "s": r"[\s\p{Z}]",
    "S": r"[^\s\p{Z}]",
    "Z": r"\z",
}
_INSIDE = {"w": r"\p{L}\p{N}_", "d": r"\p{Nd}", "s": r"\s\p{Z}"}


def python_meaning(pattern: str) -> str:
    """`pattern` with the escapes RE2 reads otherwise than Python rewritten."""
    out: list[str] = []
    i, in_class, class_start = 0, False, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            out.append((_INSIDE if in_class else _OUTSIDE).get(escape, c + escape))
            i += 2
            class_start = False
            continue
        if in_class:
            if c == "]" and not class_start:
                in_class = False
            class_start = class_start and c == "^"
        elif c == "[":
            in_class, class_start = True, True
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=64)
def compiled(pattern: str) -> Any:
    return check_pattern(pattern)


def extract(pattern: Any, text: str) -> str | None:
    """The `qr` group of the first match in `text` (NFKC-normalised first), or None."""
    found = pattern.search(unicodedata.normalize("NFKC", text))
    return found.group("qr") if found else None


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
    origin: Origin = LIBRARY,
    conn: Connection | None = None,
) -> ExtractionRule:
    """Store a new rule (RuleExists when the name is taken, InvalidRule for a
    bad pattern); logged as rule_added in the same transaction."""
    check_pattern(pattern)
    params = {"name": name, "pattern": pattern, "description": description, "user_id": user_id}
    with db.transaction(conn) as tx:
        rule = db.one("add_rule", params, row=ExtractionRule, conn=tx)
        audit.record(db, "rule_added", origin, details=_details(rule), conn=tx)
        return rule


def _details(rule: ExtractionRule, changed: list[str] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": rule.name, "pattern": rule.pattern, "description": rule.description}
    if changed is not None:
        details["changed"] = changed
    return details


def change_rule(
    db: Database,
    name: str,
    *,
    pattern: str | None = None,
    description: str | None = None,
    origin: Origin = LIBRARY,
    conn: Connection | None = None,
) -> ExtractionRule:
    """Change a rule's pattern or description (imports already done keep the
    pattern they used: their job records it); logged as rule_changed in the
    same transaction."""
    if pattern is not None:
        check_pattern(pattern)
    params = {"name": name, "pattern": pattern, "description": description}
    with db.transaction(conn) as tx:
        rule = db.one("change_rule", params, row=ExtractionRule, conn=tx)
        if rule is None:
            raise errors.RuleNotFound(f"no extraction rule named {name!r}", field="name")
        given = [k for k in ("pattern", "description") if params[k] is not None]
        audit.record(db, "rule_changed", origin, details=_details(rule, given), conn=tx)
        return rule
