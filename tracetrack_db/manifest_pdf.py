"""The manifest as an A4 PDF a driver carries (fpdf2): a header with the bill
number, destination, vehicle, dates and a QR code of the bill number; a
table of the parents with child counts and weights (its header repeated on
every page); the totals; signature lines for the driver, the dispatcher or
biller and the gate. Every page says "Page n of m".

The children's QRs are not listed (15,000 of them on a full bill would be
some 60 pages): the JSON and CSV manifests carry them.

The PDF's built-in fonts (no font file to ship or find) cover Latin-1 only:
free text beyond it (a destination in Devanagari, say) is shown with its
accents stripped where that helps, else as "?". Bill numbers, QRs and
usernames are ASCII by their rules.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .manifests import Manifest, ManifestParent, format_time

FONT = "Helvetica"
MARGIN = 10.0  # mm, all round
ROW_H = 5.5  # a table row, mm
QR_SIZE = 34.0  # the bill number's QR code, mm
PAD = 1.0  # text from a table cell's edges, mm (cell()'s own c_margin)
SIGNATURES = ("Driver", "Dispatcher / biller", "Security / gate")
# The parents' table: (heading, width in mm, alignment); 190 mm between the margins.
COLUMNS = (
    ("#", 10.0, "R"),
    ("Parent QR", 44.0, "L"),
    ("Area", 27.0, "L"),
    ("Status", 21.0, "L"),
    ("Children", 18.0, "R"),
    ("Weight kg", 22.0, "R"),
    ("Expected kg", 24.0, "R"),
    ("Difference kg", 24.0, "R"),
)


# Punctuation that word processors put into text, as Latin-1 can spell it.
_PUNCTUATION = {"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
_PUNCTUATION |= {"\u2026": "...", "\u2022": "*", "\u20ac": "EUR", "\u20b9": "Rs"}


def latin1(text: str) -> str:
    """`text` in the built-in fonts' Latin-1: common punctuation spelt in it,
    other letters without their accents when that makes them Latin-1 (NFKD),
    else "?"; white space becomes a space, control characters go."""
    out = []
    for ch in text:
        if ch.isspace():  # tabs, line breaks, no-break spaces
            out.append(" ")
        elif ch in _PUNCTUATION:
            out.append(_PUNCTUATION[ch])
        elif ch.isprintable() and ord(ch) < 256:
            out.append(ch)
        elif ch.isprintable():
            base = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256 and not unicodedata.combining(c)
            )
            out.append(base or "?")
    return "".join(out)


def kg(value: Decimal) -> str:
    return f"{value:,.3f}"


def signed_kg(value: Decimal) -> str:
    return f"{value:+,.3f}"


class _Document(FPDF):
    def __init__(self, m: Manifest, tz: ZoneInfo | None):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.m = m
        self.tz = tz
        self.in_table = False  # pages the table runs onto start with its header
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=MARGIN + 8)  # the footer's room
        self.set_title(f"Manifest {m.bill.bill_no}")
        self.set_creator("TraceTrack")
        self.set_creation_date(m.generated_at)

    # every page ----------------------------------------------------------------
    def header(self) -> None:
        if self.page_no() == 1:
            return  # the first page has the full header (front)
        self.set_font(FONT, "B", 10)
        self.cell(0, 6, f"Manifest {self.m.bill.bill_no} (continued)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)
        if self.in_table:
            self.table_header()

    def footer(self) -> None:
        self.set_y(-MARGIN - 5)
        self.set_font(FONT, "", 8)
        self.set_text_color(90)
        printed = format_time(self.m.generated_at, self.tz)
        self.cell(120, 5, f"Manifest {self.m.bill.bill_no} - printed {printed}")
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")  # {nb}: fpdf2 puts in the page count
        self.set_text_color(0)

    # the first page's header -------------------------------------------------------
    def front(self) -> None:
        b = self.m.bill
        self.add_page()
        self.qr_code(b.bill_no, self.w - MARGIN - QR_SIZE, MARGIN, QR_SIZE)
        text_w = self.w - 2 * MARGIN - QR_SIZE - 4
        self.set_font(FONT, "B", 16)
        self.cell(text_w, 8, "DISPATCH MANIFEST", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "B", 13)
        self.cell(text_w, 7, f"Bill {b.bill_no}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)
        completed = (
            f"{format_time(b.completed_at, self.tz)} by {b.completed_by_username or '-'}"
            if b.completed_at
            else "not completed"
        )
        facts = (
            ("Destination", latin1(b.destination) or "-"),
            ("Vehicle", latin1(b.vehicle_number) or "-"),
            ("Date", format_time(self.m.generated_at, self.tz)),
            ("Status", b.status),
            ("Created", f"{format_time(b.created_at, self.tz)} by {b.created_by_username or '-'}"),
            ("Completed", completed),
        )
        for label, value in facts:
            self.set_font(FONT, "B", 10)
            self.cell(26, 5.5, f"{label}:")
            self.set_font(FONT, "", 10)
            self.cell(text_w - 26, 5.5, self.fit(value, text_w - 26), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(self.get_y(), MARGIN + QR_SIZE) + 2)
        if b.description:
            self.set_font(FONT, "", 9)
            self.multi_cell(0, 4.5, "Notes: " + latin1(b.description)[:600], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(1)
        t = self.m.totals
        self.set_font(FONT, "", 10)
        self.cell(
            0,
            6,
            f"{t.parents} of {b.capacity} parents, {t.children:,} children, {kg(t.weight_kg)} kg "
            f"(expected {kg(t.expected_weight_kg)} kg, difference {signed_kg(t.difference_kg)} kg)",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.ln(2)

    def qr_code(self, data: str, x: float, y: float, size: float) -> None:
        """The QR code of `data` as filled rectangles (vector: sharp when
        printed), one per run of dark modules in a row, quiet zone included."""
        qr = segno.make(data, error="m", micro=False)
        matrix = list(qr.matrix_iter(scale=1, border=4))
        module = size / len(matrix)
        self.set_fill_color(0)
        for row, bits in enumerate(matrix):
            start = None
            for col, dark in enumerate([*bits, False]):
                if dark and start is None:
                    start = col
                elif not dark and start is not None:
                    self.rect(x + start * module, y + row * module, (col - start) * module, module, style="F")
                    start = None

    def text_width(self, text: str) -> float:
        """`text`'s width in mm in the current (built-in) font: what
        get_string_width answers, without its text shaping (ten times faster)."""
        assert self.current_font is not None  # set_font() came first
        return self.current_font.get_text_width(text, self.font_size_pt, None)[1] / self.k

    def fit(self, text: str, width: float) -> str:
        """`text` cut (with "...") to fit `width` mm in the current font."""
        if self.text_width(text) <= width - 2 * PAD:
            return text
        while text and self.text_width(text + "...") > width - 2 * PAD:
            text = text[:-1]
        return text + "..."

    # the table -----------------------------------------------------------------
    def table_header(self) -> None:
        self.set_font(FONT, "B", 9)
        self.set_fill_color(225)
        for heading, width, align in COLUMNS:
            self.cell(width, ROW_H + 0.5, heading, border=1, align=align, fill=True)
        self.ln(ROW_H + 0.5)
        self.set_font(FONT, "", 9)

    def parents_table(self) -> None:
        self.in_table = True
        self.table_header()
        for number, parent in enumerate(self.m.parents, 1):
            if self.will_page_break(ROW_H):
                self.add_page()  # header() repeats the table's header
            self.row(number, parent)
        if not self.m.parents:
            self.set_font(FONT, "I", 9)
            self.cell(0, ROW_H, "No parents on this bill.", border=1, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.in_table = False
        t = self.m.totals
        if self.will_page_break(ROW_H):
            self.add_page()
        self.set_font(FONT, "B", 9)
        widths = [w for _, w, _ in COLUMNS]
        self.cell(sum(widths[:4]), ROW_H + 0.5, f"Total: {t.parents} parents", border=1)
        for value, width in zip(
            (f"{t.children:,}", kg(t.weight_kg), kg(t.expected_weight_kg), signed_kg(t.difference_kg)),
            widths[4:],
            strict=True,
        ):
            self.cell(width, ROW_H + 0.5, value, border=1, align="R")
        self.ln(ROW_H + 0.5)

    def row(self, number: int, p: ManifestParent) -> None:
        """One parent's row. Drawn with rect() and text(), not cell(): cell()
        shapes every string (about 40 us each), which made a 500-parent
        manifest take a quarter of a second."""
        cells = (
            str(number),
            p.qr_id,
            p.dispatch_area,
            p.status.replace("_", " "),
            f"{p.child_count}/{p.capacity}",
            kg(p.weight_kg),
            kg(p.expected_weight_kg),
            signed_kg(p.difference_kg),
        )
        x, y = MARGIN, self.get_y()
        baseline = y + 0.5 * ROW_H + 0.3 * self.font_size  # where cell() puts it
        for text, (_, width, align) in zip(cells, COLUMNS, strict=True):
            self.rect(x, y, width, ROW_H)
            text = self.fit(text, width)
            left = x + width - PAD - self.text_width(text) if align == "R" else x + PAD
            self.text(left, baseline, text)
            x += width
        self.set_y(y + ROW_H)

    # signatures ------------------------------------------------------------------
    def signatures(self) -> None:
        height = 42.0
        if self.will_page_break(height + 6):
            self.add_page()
        self.ln(6)
        self.set_font(FONT, "B", 10)
        self.cell(0, 6, "Signatures", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        top = self.get_y()
        width = (self.w - 2 * MARGIN) / len(SIGNATURES)
        for i, role in enumerate(SIGNATURES):
            x = MARGIN + i * width
            self.set_xy(x, top)
            self.set_font(FONT, "B", 9)
            self.cell(width - 4, 6, role)
            self.set_font(FONT, "", 8)
            for j, line in enumerate(("Name", "Signature", "Date / time")):
                y = top + 14 + j * 10
                self.set_xy(x, y - 4)
                self.cell(20, 4, line)
                self.line(x + 20, y, x + width - 6, y)
        self.set_y(top + height)


def manifest_pdf(m: Manifest, *, tz: ZoneInfo | None = None) -> bytes:
    """The manifest as an A4 PDF; times in `tz` (UTC when None)."""
    doc = _Document(m, tz)
    doc.front()
    doc.parents_table()
    doc.signatures()
    return bytes(doc.output())
