"""Keyset cursors and list helpers.

A cursor is the last row's id in lowercase hex (1-16 digits): opaque to
clients (pass `next_cursor` back unchanged), but with a format the OpenAPI
document can state exactly, so any string of that format is accepted.
"""

from __future__ import annotations

import re

from .errors import InvalidCursor, ValidationError

CURSOR_PATTERN = r"^[0-9a-f]{1,16}$"  # for the OpenAPI document
_CURSOR = re.compile(r"[0-9a-f]{1,16}")
_MAX_ID = 2**63 - 1
MAX_LIMIT = 1000


def encode_cursor(last_id: int) -> str:
    return format(last_id, "x")


def decode_cursor(cursor: str) -> int:
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise InvalidCursor("invalid cursor: pass back next_cursor unchanged", field="cursor")
    return min(int(cursor, 16), _MAX_ID)  # a bigint, so the comparison stays on the index


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return limit


def paginate(rows: list, limit: int):
    """A Page of the first `limit` rows (fetched as limit + 1) and the cursor after them."""
    from .models import Page

    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more else None)


def like_prefix(value: str) -> str:
    """A LIKE pattern matching values that start with `value` (wildcards escaped)."""
    return value.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
