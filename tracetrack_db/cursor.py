"""Opaque keyset cursors: the last row's sort key, url-safe base64 encoded."""

from __future__ import annotations

import base64
import binascii

from .errors import InvalidCursor


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
