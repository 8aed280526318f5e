"""QR codes: every QR entering the system goes through `normalize_qr`.

A QR is 4-100 characters of A-Z 0-9 - _ /, in one or more non-empty segments
joined by single "/". Scanners and people add noise, so whitespace, control
and zero-width characters are dropped wherever they appear and letters are
uppercased. QRs travel in URL paths, where a WSGI server hands over "%2F" as
"/": hence no leading, trailing or doubled "/", and no QR ends with a word
the route table puts after a QR (GET /api/bags/{qr}/history).
"""

from __future__ import annotations

import re

from .errors import InvalidQr

# Dropped wherever they appear: ASCII and C1 controls and spaces (not NUL,
# which is refused), soft hyphen, the Unicode spaces, zero-width characters,
# direction marks and embeddings, word joiners and the BOM. Regex source that
# Python and ECMAScript read alike (it goes into the OpenAPI document).
IGNORABLE = r"\x01-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff"
RESERVED_LAST_SEGMENTS = ("HISTORY",)  # /api/bags/{qr}/history
MAX_INPUT_LENGTH = 200

_DROP = re.compile(f"[{IGNORABLE}]+")
_QR = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
_CANONICAL = re.compile(r"[A-Z0-9_-]{4,100}")  # most scans: nothing to drop, to uppercase or to split


def normalize_qr(raw: object, field: str = "qr_id") -> str:
    """The canonical QR of `raw`, or InvalidQr naming `field`."""
    if isinstance(raw, str) and _CANONICAL.fullmatch(raw):
        return raw
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        raise InvalidQr(f"a QR code is a string of at most {MAX_INPUT_LENGTH} characters", field=field)
    qr = _DROP.sub("", raw)
    if not 4 <= len(qr) <= 100 or not _QR.fullmatch(qr):
        raise InvalidQr(f"invalid QR code {raw!r}: 4-100 characters of A-Z 0-9 - _ / after normalisation, "
                        "in segments joined by single '/'", field=field)
    qr = qr.upper()
    if "/" in qr and qr.rsplit("/", 1)[1] in RESERVED_LAST_SEGMENTS:
        raise InvalidQr(f"invalid QR code {raw!r}: it may not end with /{qr.rsplit('/', 1)[1]}", field=field)
    return qr


def _any_case(word: str, gap: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]{gap}" for c in word)


def input_pattern() -> str:
    """A regular expression (Python and ECMAScript) matching exactly the strings
    `normalize_qr` accepts, for the OpenAPI document."""
    i = f"[{IGNORABLE}]*"
    seg = f"[A-Za-z0-9_-](?:{i}[A-Za-z0-9_-])*"
    length = f"(?=(?:{i}[A-Za-z0-9_/-]){{4,100}}{i}$)"
    reserved = "|".join(_any_case(w, i) for w in RESERVED_LAST_SEGMENTS)
    not_reserved = rf"(?![\s\S]*/{i}(?:{reserved})$)"
    return f"^{length}{not_reserved}{i}{seg}(?:{i}/{i}{seg})*{i}$"
