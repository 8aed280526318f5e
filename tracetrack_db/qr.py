"""QR codes: every QR entering the system goes through `normalize_qr`.

A QR is 4-100 characters of A-Z 0-9 - _ /, in one or more non-empty segments
joined by single "/". Scanners and people add noise, so the normalisation is,
in this order:

1. whitespace, control and zero-width characters (`IGNORABLE`) are dropped
   wherever they appear;
2. every other character goes through Unicode NFKC (compatibility) normalisation
   and must come out as exactly one character of A-Z a-z 0-9 _ - /: fullwidth
   "ＳＢ９０１０１" is "SB90101", the long s "ſ" is "s", the Kelvin sign is "K",
   the fullwidth solidus is "/". Anything else refuses the whole QR (never
   deleted, so two different scans never become one QR): a character NFKC
   expands to several ("ﬀ", "㎏") or maps outside the alphabet ("ß", "é",
   combining marks, private-use and unassigned code points);
3. letters are uppercased (ASCII only: nothing else is left by then).

NFKC is applied one code point at a time. For what is accepted this is NFKC of
the whole string: composition only ever yields non-ASCII characters, which are
refused anyway, and each accepted input character gives exactly one output
character (which is also what lets `input_pattern` count the length).

Characters outside the Basic Multilingual Plane (above U+FFFF, e.g. the
mathematical bold letters) are refused even where NFKC maps them into the
alphabet: the OpenAPI pattern is read by ECMAScript without the u flag, where
such a character is two UTF-16 code units, so the pattern stays exact only if
no accepted character needs them. The mapping is that of the running Python's
`unicodedata` (Unicode 14.0 on Python 3.11), built once at import (~10 ms).

QRs travel in URL paths, where a WSGI server hands over "%2F" as "/": hence no
leading, trailing or doubled "/", and no QR ends with a word the route table
puts after a QR (GET /api/bags/{qr}/history).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from .errors import InvalidQr

# Dropped wherever they appear: ASCII and C1 controls and spaces (not NUL,
# which is refused), soft hyphen, the Unicode spaces, zero-width characters,
# direction marks and embeddings, word joiners and the BOM. Regex source that
# Python and ECMAScript read alike (it goes into the OpenAPI document).
IGNORABLE = r"\x01-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-/"  # after NFKC, before uppercasing
RESERVED_LAST_SEGMENTS = ("HISTORY",)  # /api/bags/{qr}/history
MAX_INPUT_LENGTH = 200

_DROP = re.compile(f"[{IGNORABLE}]+")
_QR = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
_CANONICAL = re.compile(r"[A-Z0-9_-]{4,100}")  # most scans: nothing to drop, to uppercase or to split


def _nfkc_into_alphabet() -> dict[int, str]:
    """Every non-ASCII, non-ignorable BMP code point whose NFKC form is one
    character of ALPHABET, with that character (a str.translate table; ~10 ms)."""
    alphabet, ignorable = frozenset(ALPHABET), re.compile(f"[{IGNORABLE}]")
    table = {}
    for code in range(0x80, 0x10000):
        char = chr(code)
        mapped = unicodedata.normalize("NFKC", char)
        if mapped in alphabet and not ignorable.match(char):
            table[code] = mapped
    return table


_TO_ALPHABET = _nfkc_into_alphabet()


def normalize_qr(raw: object, field: str = "qr_id") -> str:
    """The canonical QR of `raw`, or InvalidQr naming `field`."""
    if isinstance(raw, str) and _CANONICAL.fullmatch(raw):
        return raw
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        raise InvalidQr(f"a QR code is a string of at most {MAX_INPUT_LENGTH} characters", field=field)
    qr = _DROP.sub("", raw)
    if not qr.isascii():
        qr = qr.translate(_TO_ALPHABET)  # what is left outside ASCII is refused just below
    if not 4 <= len(qr) <= 100 or not _QR.fullmatch(qr):
        bad = next((c for c in qr if c not in ALPHABET), None)
        why = f"{bad!r} (U+{ord(bad):04X}) is not allowed; " if bad is not None else ""
        raise InvalidQr(
            f"invalid QR code {raw!r}: {why}4-100 characters of A-Z 0-9 - _ / after normalisation "
            "(NFKC), in segments joined by single '/'",
            field=field,
        )
    qr = qr.upper()
    if "/" in qr and qr.rsplit("/", 1)[1] in RESERVED_LAST_SEGMENTS:
        raise InvalidQr(f"invalid QR code {raw!r}: it may not end with /{qr.rsplit('/', 1)[1]}", field=field)
    return qr


def _char_class(codes: set[int]) -> str:
    """A character class of `codes` (BMP), ranges compressed, \\uXXXX escapes but for A-Z a-z 0-9."""

    def one(code: int) -> str:
        return chr(code) if chr(code).isascii() and chr(code).isalnum() else f"\\u{code:04x}"

    parts, ordered = [], sorted(codes)
    start = prev = ordered[0]
    for code in [*ordered[1:], None]:
        if code is not None and code == prev + 1:
            prev = code
            continue
        parts.append(
            one(start)
            if start == prev
            else f"{one(start)}{one(prev)}"
            if prev == start + 1
            else f"{one(start)}-{one(prev)}"
        )
        if code is not None:
            start = prev = code
    return f"[{''.join(parts)}]"


def _inputs_for(chars: str) -> set[int]:
    """The code points normalize_qr reads as one of `chars` (letters in either case)."""
    wanted = set(chars.upper() + chars.lower())
    return {ord(c) for c in wanted} | {code for code, mapped in _TO_ALPHABET.items() if mapped in wanted}


@functools.cache
def input_pattern() -> str:
    """A regular expression matching exactly the strings `normalize_qr` accepts, for
    the OpenAPI document: Python `re` and ECMAScript (without the u flag) read it alike."""
    i = f"[{IGNORABLE}]*"
    char = _char_class(_inputs_for(ALPHABET.replace("/", "")))
    slash = _char_class(_inputs_for("/"))
    any_char = _char_class(_inputs_for(ALPHABET))
    seg = f"{char}(?:{i}{char})*"
    length = f"(?=(?:{i}{any_char}){{4,100}}{i}$)"  # one character out for each one in, ignorables aside
    reserved = "|".join("".join(f"{_char_class(_inputs_for(c))}{i}" for c in w) for w in RESERVED_LAST_SEGMENTS)
    not_reserved = rf"(?![\s\S]*{slash}{i}(?:{reserved})$)"
    return f"^{length}{not_reserved}{i}{seg}(?:{i}{slash}{i}{seg})*{i}$"
