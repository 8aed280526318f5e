"""Opaque keyset cursors: the last row's sort key, url-safe base64 encoded."""

from __future__ import annotations

import base64
import binascii

from .errors import InvalidCursor, ValidationError


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = raw.partition(":")
        if version != "v1":
            raise ValueError(version)
        last_id = int(value)
        if last_id < 0:
            raise ValueError(value)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor: pass back next_cursor unchanged", field="cursor") from None


MAX_LIMIT = 1000


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
