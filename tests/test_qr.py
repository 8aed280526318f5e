"""QR normalisation: the pure function, and the same rules applied by the
operations (scan, register, lookup), plus the parent-format rules."""

from __future__ import annotations

import pytest

from tracetrack_db import areas, bags, errors, normalize_qr, scans
from tracetrack_db.qr import normalize_qr as qr_module_normalize

# --- the pure function ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SB00001", "SB00001"),
        ("sb00001", "SB00001"),
        ("  SB00001  ", "SB00001"),
        ("SB 000 01", "SB00001"),
        ("\tSB00001\n", "SB00001"),
        ("SB00001\r\n", "SB00001"),
        ("\u200bSB00001", "SB00001"),  # zero-width space
        ("SB\u200b00001", "SB00001"),
        ("\ufeffSB00001", "SB00001"),  # BOM / zero-width no-break space
        ("SB00001\u200d\u200c", "SB00001"),  # zero-width joiner / non-joiner
        ("\u00a0SB00001\u2003", "SB00001"),  # no-break space, em space
        ("SB00001\u2028", "SB00001"),  # line separator
        ("m444-00001", "M444-00001"),
        ("child_a/b-1", "CHILD_A/B-1"),
        ("abcd", "ABCD"),  # 4 characters: the minimum
        ("x" * 100, "X" * 100),  # 100 characters: the maximum
        (" a b c d ", "ABCD"),
        ("ＳＢ００００１", "SB00001"),  # full-width characters: NFKC
        ("ſb00001", "SB00001"),  # long s: NFKC is s
        ("\u212aab1", "KAB1"),  # Kelvin sign: NFKC is K
        ("ab／cd", "AB/CD"),  # full-width solidus: NFKC is /
    ],
)
def test_normalize_accepts_and_cleans(raw, expected):
    assert normalize_qr(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",  # too short
        "AB\u200bC",  # 3 characters once the zero-width one is gone
        " a b c ",  # 3 after stripping spaces
        "x" * 101,  # too long
        "SB00001!",
        "SB.00001",
        "SB00001%",
        "SB\\0001",
        "ÉCOLE1",  # non-ASCII letter
        "e\u0301tui",  # combining accent
        "stra\u00dfe",  # sharp s: NFKC leaves it, not a QR character (never SS)
        "\ufb00ab1",  # ff ligature: NFKC is two characters
        "AB\ue000CD",  # private use: refused, never deleted
        "AB\u0380CD",  # unassigned: refused, never deleted
        "\U0001d400BCD",  # mathematical bold A: outside the BMP
        "A\x00BCD",  # NUL is refused, not dropped
        "\u0131abc",  # dotless i: its upper case is I, but it is no QR character
        "/ABCD",
        "ABCD/",
        "AB//CD",
        "/",  # QRs travel in URL paths: segments joined by single "/"
        "ABC/HISTORY",
        "abc/history",
        "A/B/His tory",  # /api/bags/{qr}/history would swallow them
        "x" * 201,  # more than 200 characters as sent, whatever they are
        " " * 197 + "ABCD",
    ],
)
def test_normalize_rejects_bad_qr(raw):
    with pytest.raises(errors.InvalidQr) as info:
        normalize_qr(raw)
    assert info.value.code == "invalid_qr"
    assert info.value.status == 400
    assert info.value.field == "qr_id"


@pytest.mark.parametrize("raw", [None, 12345678, b"SB00001", ["SB00001"]])
def test_normalize_rejects_non_strings(raw):
    with pytest.raises(errors.InvalidQr):
        normalize_qr(raw)


def test_history_is_a_qr_only_as_a_whole():
    assert normalize_qr("history") == "HISTORY"
    assert normalize_qr("HISTORY/A") == "HISTORY/A"


def test_the_documented_pattern_accepts_exactly_what_normalize_accepts():
    """The OpenAPI document states qr.input_pattern(); schemathesis generates from it, so it must
    match exactly the strings normalize_qr accepts: checked here on strings drawn from the pattern
    and on arbitrary text."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from .test_qr_unicode import accepted, documented

    alphabet = st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0189-_/ \t\n\u200b\ufeff\u00a0\x01\x00.!\u0131"
        "ＳＢｈ９／－＿\u212aſⒽⓘ\u00b2\u00df\ufb00\u338f\ue000\u0380\u0301\U0001d400\ud800"
    )
    noise = st.text(st.sampled_from(" \t\n\u200b\u200d\ufeff\u00a0\u2028\x01\x7f"), max_size=2)
    segment = st.lists(
        st.tuples(st.sampled_from("AbZ09-_ＡｚſＫ\u212a⑨\ufe4d\ufe63"), noise), min_size=1, max_size=40
    ).map(lambda chars: "".join(c + n for c, n in chars))
    qr_like = st.builds(
        lambda head, segs, slash, tail: head + slash.join(segs) + tail,
        noise,
        st.lists(segment, min_size=1, max_size=4),
        st.sampled_from("/／"),
        noise,
    )

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            qr_like,
            st.text(alphabet, max_size=40),
            st.text(max_size=12),
            st.builds(
                lambda w, s: w + s,
                qr_like,
                st.sampled_from(
                    [
                        "/history",
                        "/HISTORY",
                        "/his\u200btory",
                        "/",
                        "//x",
                        "／ＨＩＳＴＯＲＹ",
                        "/ｈｉｓｔｏｒｙ",
                        "/ⒽⒾⓈⓉⓄⓇⓎ",
                        "/hiſtory",
                        "/HISTOR\u0178",
                        "/histor\uff59\u0301",
                    ]
                ),
            ),
        )
    )
    def agree(text):
        assert documented(text) == accepted(text), repr(text)

    agree()
    for text in (
        "SB00001",
        " sb0000\u200b1\n",
        "A/B/C/D",
        "abc/history",
        "X/HISTORY\t",
        "AB//CD",
        "abc",
        "ＳＢ９０１０１",
        "ſb90102",
        "ß90105",
        "\ufb00\ufb00",
        "\u212aAB1",
        "AB\ue000CD",
        "AB\u0380CD",
        "X／ｈｉｓｔｏｒｙ",
        "X/ⒽⒾⓈⓉⓄⓇⓎ",
        "X／ＨＩＳＴＯＲ",
        "\U0001d400BCD",
        "a" * 99 + "Ａ",
        "a" * 100 + "Ａ",
    ):
        assert documented(text) == accepted(text), text


def test_normalize_reports_the_given_field():
    with pytest.raises(errors.InvalidQr) as info:
        normalize_qr("no", field="child_qr")
    assert info.value.field == "child_qr"


def test_normalize_is_idempotent():
    once = normalize_qr(" \u200bsb00042\n")
    assert normalize_qr(once) == once == "SB00042"
    assert qr_module_normalize is normalize_qr


def test_invalid_qr_is_a_validation_error():
    assert issubclass(errors.InvalidQr, errors.ValidationError)


# --- through the operations -------------------------------------------------


def test_scans_and_lookups_normalise_every_qr(db):
    opened = scans.open_parent(db, "\ufeff sb\u200b00001\t\n", dispatch_area="lucknow")
    assert opened.created is True
    assert opened.bag.qr_id == "SB00001"
    again = scans.open_parent(db, "SB00001")
    assert (again.created, again.bag.id) == (False, opened.bag.id)
    res = scans.link_child(db, " sb00001 ", "\u200bchild-0001\n")
    assert res.result == "linked"
    child = bags.get_bag(db, "CHILD-0001")
    assert (child.qr_id, child.parent_qr) == ("CHILD-0001", "SB00001")
    # the same child, spelt differently, is recognised as already linked
    assert scans.link_child(db, "SB00001", "Child-0001").result == "already_linked"
    batch = scans.link_children(db, "sb00001", ["child-0001", " CHILD-0001\u200b", "child-0002"])
    assert [(i.child_qr, i.result) for i in batch.items] == [
        ("CHILD-0001", "already_linked"),
        ("CHILD-0001", "already_linked"),
        ("CHILD-0002", "linked"),
    ]
    assert bags.get_bag(db, "\ufeffchild-0001 ").id == child.id
    assert bags.get_bag(db, "sb00001").child_count == 2
    assert scans.unlink_child(db, "\tchild-0002").child_qr == "CHILD-0002"


def test_register_bag_normalises_and_then_detects_the_duplicate(db):
    bag = bags.register_bag(db, "  bag-0001 ", "child", "lucknow")
    assert bag.qr_id == "BAG-0001"
    assert bags.get_bag(db, "\u200bBag-0001").id == bag.id
    with pytest.raises(errors.QrTaken):
        bags.register_bag(db, "bag\u200b-0001\n", "child", "lucknow")


INVALID_QR_CALLS = [
    lambda db: scans.open_parent(db, "SB0!", dispatch_area="lucknow"),
    lambda db: scans.link_child(db, "SB00001", "c"),
    lambda db: scans.link_child(db, "S", "CHILD-0001"),
    lambda db: scans.link_children(db, "SB00001", ["CHILD-0001", "bad qr!"]),
    lambda db: scans.unlink_child(db, "x" * 101),
    lambda db: bags.register_bag(db, "ab", "child", "lucknow"),
    lambda db: bags.get_bag(db, "a"),
    lambda db: bags.get_bag_detail_json(db, "a b"),
    lambda db: bags.delete_bag(db, "a#b#c"),
]


def test_operations_reject_invalid_qr_before_writing(db, sql_conn):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    before = sql_conn.execute("SELECT (SELECT count(*) FROM bag), (SELECT count(*) FROM event)").fetchone()
    for call in INVALID_QR_CALLS:
        with pytest.raises(errors.InvalidQr):
            call(db)
    after = sql_conn.execute("SELECT (SELECT count(*) FROM bag), (SELECT count(*) FROM event)").fetchone()
    assert after == before
    # the error names the field that was wrong
    for call, field in [
        (lambda: scans.link_children(db, "SB00001", ["CHILD-0001", "??"]), "child_qrs"),
        (lambda: scans.link_child(db, "SB00001", "no"), "child_qr"),
        (lambda: scans.link_child(db, "no", "CHILD-0001"), "parent_qr"),
        (lambda: scans.unlink_child(db, "no"), "child_qr"),
        (lambda: bags.get_bag(db, "no"), "qr_id"),
    ]:
        with pytest.raises(errors.InvalidQr) as info:
            call()
        assert info.value.field == field


# --- parent formats ---------------------------------------------------------


def test_default_parent_formats_open_as_parents(db):
    formats = {f.name: f for f in areas.list_parent_formats(db)}
    assert set(formats) == {"SB", "M444"}
    assert all(f.capacity == 30 and f.expected_weight_kg == 30 for f in formats.values())
    for qr in ["SB00001", "M444-12345", "sb99999", "m444-00000"]:
        opened = scans.open_parent(db, qr, dispatch_area="lucknow")
        assert opened.created and opened.bag.type == "parent"
        assert (opened.capacity, opened.bag.status, opened.child_count) == (30, "pending", 0)


def test_other_qrs_are_not_parents(db, sql_conn):
    for qr in ["SB0001", "SB000001", "SBX0001", "XSB00001", "M444-1234", "M44400001", "CHILD-0001"]:
        with pytest.raises(errors.NotAParent) as info:
            scans.open_parent(db, qr, dispatch_area="lucknow")
        assert (info.value.code, info.value.status) == ("not_a_parent", 422)
    assert sql_conn.execute("SELECT count(*) FROM bag").fetchone()[0] == 0
    # and they are children
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    batch = scans.link_children(db, "SB00001", ["SB0001", "SB000001", "XSB00001", "M44400001"])
    assert [i.result for i in batch.items] == ["linked"] * 4


def test_a_new_format_sets_capacity_and_expected_weight(owner_db, db):
    fmt = areas.create_parent_format(owner_db, "tiny", "^TINY[0-9]{3}$", capacity=2, expected_weight_kg=2.5)
    assert (fmt.name, fmt.capacity) == ("tiny", 2)
    opened = scans.open_parent(db, "tiny001", dispatch_area="indore")
    assert opened.capacity == 2
    scans.link_child(db, "TINY001", "T-CHILD-1")
    res = scans.link_child(db, "TINY001", "T-CHILD-2")
    assert (res.child_count, res.capacity, res.parent_status) == (2, 2, "completed")
    with pytest.raises(errors.ParentFull):
        scans.link_child(db, "TINY001", "T-CHILD-3")


def test_a_known_child_never_becomes_a_parent_even_if_a_format_matches_later(owner_db, db):
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_child(db, "SB00001", "LATE12345")
    areas.create_parent_format(owner_db, "late", "^LATE[0-9]{5}$")
    with pytest.raises(errors.NotAParent):
        scans.open_parent(db, "LATE12345", dispatch_area="lucknow")
    assert bags.get_bag(db, "LATE12345").type == "child"
    # a new QR of that format is a parent now
    assert scans.open_parent(db, "LATE00001", dispatch_area="lucknow").bag.type == "parent"


def test_parent_format_validation(owner_db, db):
    with pytest.raises(errors.ValidationError) as info:
        areas.create_parent_format(owner_db, "loose", "XY[0-9]+")
    assert info.value.field == "pattern"
    with pytest.raises(errors.ValidationError) as info:
        areas.create_parent_format(owner_db, "zero", "^Z[0-9]{3}$", capacity=0)
    assert info.value.field == "capacity"
    with pytest.raises(errors.ValidationError):
        areas.create_parent_format(owner_db, "huge", "^H[0-9]{3}$", capacity=1001)
    with pytest.raises(errors.Conflict) as info:
        areas.create_parent_format(owner_db, "SB", "^SBX[0-9]{5}$")
    assert info.value.field == "name"
    assert len(areas.list_parent_formats(db)) == 2


def test_malformed_parent_pattern_is_refused_and_does_not_break_scanning(owner_db, db):
    with pytest.raises(errors.ValidationError) as info:
        areas.create_parent_format(owner_db, "broken", "^BR[0-9$")
    assert info.value.field == "pattern"
    assert [f.name for f in areas.list_parent_formats(db)] == ["SB", "M444"]
    assert scans.open_parent(db, "SB00001", dispatch_area="lucknow").created is True
    assert scans.link_child(db, "SB00001", "CHILD-0001").result == "linked"
