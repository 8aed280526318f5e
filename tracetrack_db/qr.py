"""QR normalisation: every QR entering the system goes through `normalize_qr`."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidQr

_VALID = re.compile(r"[A-Z0-9_/-]{4,100}")


def normalize_qr(raw: object, field: str = "qr_id") -> str:
    """Strip whitespace, control and zero-width characters, uppercase, validate."""
    if not isinstance(raw, str):
        raise InvalidQr("a QR code must be a string", field=field)
    # Cc: controls (incl. tab, newline), Cf: format chars (zero-width space,
    # joiners, BOM, direction marks), Z*: every kind of space.
    kept = "".join(ch for ch in raw if unicodedata.category(ch)[0] not in "CZ")
    qr = kept.upper()
    if not _VALID.fullmatch(qr):
        raise InvalidQr(
            f"invalid QR code {raw!r}: 4-100 characters of A-Z 0-9 - _ / after normalisation",
            field=field,
        )
    return qr
