"""QR normalisation and Unicode (issue 9, finding 11): one documented way, NFKC then
the alphabet A-Z a-z 0-9 _ - /, and anything else refuses the QR instead of being
deleted, so two different scans never become one QR by accident."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracetrack_api import console
from tracetrack_db import errors, normalize_qr, qr

from .conftest import service_missing

DROP = re.compile(f"[{qr.IGNORABLE}]")
PATTERN = re.compile(qr.input_pattern())


def accepted(text: str) -> bool:
    try:
        normalize_qr(text)
        return True
    except errors.InvalidQr:
        return False


def documented(text: str) -> bool:
    return PATTERN.fullmatch(text) is not None


def whole_string(text: str) -> str | None:
    """The rule as documented, on the whole string: ignorables dropped, NFKC, one
    character out for each one in, all of the alphabet, the grammar; then uppercased."""
    kept = DROP.sub("", text)
    nfkc = unicodedata.normalize("NFKC", kept)
    if (
        len(text) > qr.MAX_INPUT_LENGTH
        or any(ord(c) > 0xFFFF for c in kept)
        or len(nfkc) != len(kept)
        or not 4 <= len(nfkc) <= 100
        or not re.fullmatch(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*", nfkc)
    ):
        return None
    out = nfkc.upper()
    return None if out.rsplit("/", 1)[-1] in qr.RESERVED_LAST_SEGMENTS and "/" in out else out


def normalised(text: str) -> str | None:
    try:
        return normalize_qr(text)
    except errors.InvalidQr:
        return None


# --- the finding's examples -------------------------------------------------


def test_long_s_is_nfkc_s():
    assert normalize_qr("ſb90102") == "SB90102"


def test_sharp_s_is_refused_not_expanded_to_ss():
    with pytest.raises(errors.InvalidQr, match="U\\+00DF"):
        normalize_qr("ß90105")


def test_ff_ligature_is_refused_not_expanded():
    for raw in ("\ufb00", "\ufb00\ufb00", "AB\ufb00C", "\u338f1234"):  # ff, ff ff, kg sign
        with pytest.raises(errors.InvalidQr):
            normalize_qr(raw)


def test_fullwidth_is_accepted_as_its_ascii():
    assert normalize_qr("ＳＢ９０１０１") == "SB90101"
    assert normalize_qr("ｓｂ９０１０１") == "SB90101"
    assert normalize_qr("ＬＯＴ／２０２６＿７－Ａ") == "LOT/2026_7-A"


def test_kelvin_sign_is_k():
    assert normalize_qr("\u212a9999") == "K9999"
    assert normalize_qr("\u212a9999") == normalize_qr("k9999")


def test_private_use_is_refused_not_deleted():
    with pytest.raises(errors.InvalidQr, match="U\\+E000"):
        normalize_qr("SB9\ue0000101")


def test_unassigned_is_refused_not_deleted():
    with pytest.raises(errors.InvalidQr, match="U\\+0380"):
        normalize_qr("SB9\u03800101")


def test_outside_the_bmp_is_refused_even_where_nfkc_maps_into_the_alphabet():
    assert unicodedata.normalize("NFKC", "\U0001d400") == "A"  # mathematical bold A
    for raw in ("\U0001d400BCD", "ABC\U0001f600", "ABCD\U000e0041"):
        with pytest.raises(errors.InvalidQr):
            normalize_qr(raw)


def test_reserved_last_segment_is_found_through_nfkc():
    for raw in ("X／ＨＩＳＴＯＲＹ", "X/ⒽⒾⓈⓉⓄⓇⓎ", "x/hiſtory"):
        with pytest.raises(errors.InvalidQr, match="HISTORY"):
            normalize_qr(raw)
    assert normalize_qr("ＨＩＳＴＯＲＹ") == "HISTORY"


# --- per code point NFKC is the documented whole-string rule -----------------


def test_every_bmp_code_point_is_mapped_or_refused_never_deleted():
    """Exhaustive over the BMP: a non-ignorable character either becomes the one
    character NFKC makes of it (uppercased) or refuses the QR."""
    for code in range(0x10000):
        char = chr(code)
        if DROP.fullmatch(char):
            assert normalised("ABC" + char + "D") == "ABCD"
            continue
        nfkc = unicodedata.normalize("NFKC", char)
        out = normalised("AB" + char + "12")
        if len(nfkc) == 1 and nfkc in qr.ALPHABET:  # "/" too: "AB/12" is two segments
            assert out == "AB" + nfkc.upper() + "12", hex(code)
        else:
            assert out is None, hex(code)


def test_per_code_point_nfkc_agrees_with_whole_string_nfkc_on_the_bmp():
    """Exhaustive over the BMP, in contexts where composition or reordering could act
    (after a letter, before combining marks): per-character acceptance is the rule
    stated on the whole string."""
    for code in range(0x10000):
        char = chr(code)
        for text in ("AB" + char + "12", "AB" + char + "\u0301" + "1", "A" + char + "\u0338\u0327BC"):
            assert normalised(text) == whole_string(text), (hex(code), text)


AWKWARD = (
    "AbZz09-_/ ＳｂＫ９／－＿\u212aſⒽⓘ\u00b2\u2160\u2161\u00df\ufb00\u338f\ue000\u0380\u0301\u0327\u0338"
    "\u1100\u1161\u11a8\u3131\u00e9\u0065\u00c5\u212b\u0131\u0130\u00a0\u200b\ufeff\x01\x00.\ud800"
    "\U0001d400\U0001f600"
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(st.sampled_from(AWKWARD), min_size=3, max_size=14))
def test_per_code_point_nfkc_agrees_with_whole_string_nfkc(text):
    assert normalised(text) == whole_string(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.text(st.sampled_from(AWKWARD), min_size=4, max_size=10),
    st.text(st.sampled_from(AWKWARD), min_size=4, max_size=10),
)
def test_two_scans_become_one_qr_only_through_the_documented_rules(a, b):
    """Same QR only if the same after dropping ignorables, NFKC and uppercasing."""
    qa, qb = normalised(a), normalised(b)
    if qa is not None and qa == qb:

        def fold(t):
            return unicodedata.normalize("NFKC", DROP.sub("", t)).upper()

        assert fold(a) == fold(b) == qa


# --- the OpenAPI pattern ----------------------------------------------------


def test_pattern_is_exact_on_every_bmp_code_point():
    for code in range(0x10000):
        for text in ("AB" + chr(code) + "12", "ABC/" + chr(code) + "ISTORY"):
            assert documented(text) == accepted(text), (hex(code), text)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.text(st.sampled_from(AWKWARD), max_size=16),
        st.builds(
            lambda a, w: a + w,
            st.text(st.sampled_from(AWKWARD), min_size=1, max_size=8),
            st.sampled_from(
                [
                    "/history",
                    "／ＨＩＳＴＯＲＹ",
                    "/ｈｉｓ\u200bｔｏｒｙ",
                    "/ⒽⒾⓈⓉⓄⓇⓎ",
                    "/hiſtory",
                    "/HISTOR",
                    "/HISTORYS",
                ]
            ),
        ),
    )
)
def test_pattern_is_exact_on_awkward_text(text):
    assert documented(text) == accepted(text)


def test_pattern_uses_only_bmp_escapes():
    """Read alike by Python and ECMAScript without the u flag: ASCII source, no \\U or \\u{...}."""
    pattern = qr.input_pattern()
    assert pattern.isascii()
    assert "\\U" not in pattern and "\\u{" not in pattern and "\\p" not in pattern


def test_ecmascript_reads_the_pattern_as_python_does():
    """The pattern as ECMAScript (no u flag) reads it, on every BMP code point in
    context plus awkward strings: astral characters arrive as surrogate pairs."""
    if shutil.which("node") is None:
        service_missing("node is not installed (apt-get install nodejs)")
    samples = [f"AB{chr(code)}12" for code in range(0x10000)]
    samples += ["ABC/" + chr(code) + "ISTORY" for code in range(0x10000)]
    samples += [
        "ＳＢ９０１０１",
        "ſb90102",
        "ß90105",
        "\ufb00\ufb00",
        "\u212aAB1",
        "AB\ue000CD",
        "AB\u0380CD",
        "X／ｈｉｓｔｏｒｙ",
        "X/ⒽⒾⓈⓉⓄⓇⓎ",
        "\U0001d400BCD",
        "ABC\U0001d400",
        "A\U0001d400\U0001d400B",
        "abcd\n",
        "a" * 100 + "Ａ",
        "Ａ" * 100,
        " a/b ",
        "ab/\u200b/cd",
    ]
    script = (
        "const p = new RegExp(process.argv[1]); let d = '';"
        "process.stdin.on('data', c => d += c);"
        "process.stdin.on('end', () => process.stdout.write(JSON.stringify(JSON.parse(d).map(s => p.test(s)))));"
    )
    result = subprocess.run(
        ["node", "-e", script, qr.input_pattern()],
        input=json.dumps(samples),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ecmascript = json.loads(result.stdout)
    mismatches = [(s, e) for s, e in zip(samples, ecmascript, strict=True) if e != accepted(s)]
    assert mismatches == []


def test_the_consoles_qr_rule_is_the_servers():
    """tracetrack_api/console/qr.js, run by node on the same samples: the QR it keeps
    is normalize_qr's, and it refuses exactly what the server refuses (a refused QR in
    an offline queue would make the server refuse the whole sync list)."""
    if shutil.which("node") is None:
        service_missing("node is not installed (apt-get install nodejs)")
    module = (Path(console.__file__).parent / "qr.js").read_text()
    ignorable = re.search(r"const IGNORABLE = /\[(.*)\]\+/g;", module)
    assert ignorable and ignorable.group(1) == qr.IGNORABLE  # the same characters dropped
    samples = [f"AB{chr(code)}12" for code in range(0x10000)]
    samples += ["ABC/" + chr(code) + "ISTORY" for code in range(0x10000)]
    samples += ["ＳＢ９０１０１", "ſb90102", "ß90105", "\ufb00\ufb00", "\u212aAB1", "X／ｈｉｓｔｏｒｙ", "sb00001"]
    samples += ["\U0001d400BCD", "a" * 100 + "Ａ", "a" * 101, " a/b ", "ab//cd", "/abcd", "abcd/", "ab\x1dcd\r\n"]
    samples += ["\x00abcd", "x" * 201, " " * 150 + "abcd", "ab\u202ecd", "AB\u3000CD", "abc/history", "abc/historyx"]
    script = (
        "const m = await import('data:text/javascript;base64,' + process.argv[1]); let d = '';"
        "process.stdin.on('data', c => d += c);"
        "process.stdin.on('end', () => process.stdout.write(JSON.stringify(JSON.parse(d).map(m.normalize))));"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script, base64.b64encode(module.encode()).decode()],
        input=json.dumps(samples),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    def server(text: str) -> str | None:
        try:
            return normalize_qr(text)
        except errors.InvalidQr:
            return None

    def newer(text: str) -> bool:  # a character the server's Unicode (14.0 on 3.11) has not assigned yet
        return any(unicodedata.category(c) == "Cn" for c in text)

    browser = json.loads(result.stdout)
    mismatches = [(s, b) for s, b in zip(samples, browser, strict=True) if b != server(s) and not newer(s)]
    assert mismatches[:20] == []
    assert sum(1 for s in samples if server(s)) > 100  # both accept as well as refuse
