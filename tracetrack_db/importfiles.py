"""Reading an import file: CSV or XLSX, streamed and bounded.

An upload is copied once into a spooled temporary file (memory up to
SPOOL_MEMORY, disk beyond) while its SHA-256 is taken, and refused past
`max_bytes` without reading further. Its first bytes say what it is: a zip
holding xl/workbook.xml is a workbook, readable text is CSV, anything else
(old .xls, PDF, images, UTF-16) is refused. Rows are then read one at a time:

- CSV: decoded strictly (UTF-8 with or without BOM, or Latin-1 when asked),
  one line at a time and never more than MAX_LINE characters of one, so a
  10 MB cell is refused after MAX_LINE characters, not after 10 MB.
- XLSX: the zip's declared sizes (which zipfile enforces while inflating)
  must add up to at most XLSX_MAX_EXPANDED before openpyxl opens it, in
  read-only mode (rows streamed from the sheet's XML; XML entities refused
  through defusedxml). A formula is refused: its value is whatever the
  spreadsheet last computed, if anything, not what was scanned.

Every cell is text here; the layouts (tracetrack_db.imports) give it meaning.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from . import errors

DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # TRACETRACK_IMPORT_MAX_BYTES for the API
MAX_ROWS = 200_000
MAX_LINES = 2 * MAX_ROWS  # rows read, blank ones included
MAX_CELL = 1_000  # characters of one cell
MAX_LINE = 10_000  # characters of one CSV line
MAX_COLUMNS = 50  # columns read from a sheet: the rest are ignored, never expanded
# A 100,000-row links workbook is 14 MB of sheet XML (inline strings), or 9 MB and 3 MB of shared strings.
XLSX_MAX_EXPANDED = 32 * 1024 * 1024
XLSX_MAX_SHARED_STRINGS = 8 * 1024 * 1024  # held whole in memory by openpyxl
XLSX_MAX_PART = 2 * 1024 * 1024  # any other part but the sheets (styles.xml is parsed whole too)
# openpyxl parses every cell element, also those past MAX_COLUMNS it then drops:
# about 130,000 a second here, so this many take some 8 s
XLSX_MAX_CELLS = 1_000_000
_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
SPOOL_MEMORY = 1024 * 1024
ENCODINGS = ("utf-8", "latin-1")
FORMATS = ("csv", "xlsx")
_READ = 64 * 1024


@dataclass
class Upload:
    """A file copied into a spool: its bytes, size and SHA-256."""

    file: IO[bytes]
    size: int
    sha256: str

    def close(self) -> None:
        self.file.close()


def spool(source: IO[bytes] | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """Copy `source` into a spooled file, refusing (FileTooLarge) more than
    `max_bytes` as soon as they arrive."""
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    out: IO[bytes] = SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (closed by Upload.close)
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_READ):
        size += len(chunk)
        if size > max_bytes:
            out.close()
            raise errors.FileTooLarge(
                f"the file is larger than {max_bytes} bytes, the most one import takes: split it", field="file"
            )
        digest.update(chunk)
        out.write(chunk)
    out.seek(0)
    return Upload(out, size, digest.hexdigest())


def detect_format(upload: Upload) -> str:
    """csv or xlsx, from the file's first bytes; UnsupportedFile otherwise."""
    head = upload.file.read(8192)
    upload.file.seek(0)
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise errors.EmptyFile("the file is empty", field="file")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(upload.file) as z:
                is_workbook = "xl/workbook.xml" in z.namelist()
        except zipfile.BadZipFile:
            is_workbook = False
        upload.file.seek(0)
        if not is_workbook:
            raise errors.UnsupportedFile("a zip file that is not an XLSX workbook", field="file")
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise errors.UnsupportedFile("an old Excel .xls file: save it as .xlsx or CSV", field="file")
    if b"\x00" in head:
        raise errors.UnsupportedFile(
            "not a CSV or XLSX file (binary data; a UTF-16 CSV must be saved as UTF-8)", field="file"
        )
    return "csv"


@dataclass
class Table:
    """A file's header (lower-cased, trimmed) and its rows as (row number, cells)."""

    format: str
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]


def read_table(upload: Upload, encoding: str = "utf-8") -> Table:
    """The header and a row iterator of `upload` (EmptyFile when there is no header)."""
    if encoding not in ENCODINGS:
        raise errors.ValidationError(f"encoding is one of {', '.join(ENCODINGS)}", field="encoding")
    fmt = detect_format(upload)
    rows = _xlsx_rows(upload.file) if fmt == "xlsx" else _csv_rows(upload.file, encoding)
    for row_no, cells in rows:
        if any(cells):
            header = [c.strip().lstrip("\ufeff").lower() for c in cells]
            return Table(fmt, header, _bounded(rows))
        if row_no > 100:
            break
    raise errors.EmptyFile("the file has no header row", field="file")


def _bounded(rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    count = 0
    for row_no, cells in rows:
        if row_no > MAX_LINES:
            raise errors.TooManyRows(f"the file has more than {MAX_LINES} lines or sheet rows: split it", field="file")
        if not any(c.strip() for c in cells):
            continue  # blank lines between or after the data
        count += 1
        if count > MAX_ROWS:
            raise errors.TooManyRows(f"the file has more than {MAX_ROWS} rows: split it", field="file")
        yield row_no, cells


def _check_cell(text: str, row_no: int) -> str:
    if len(text) > MAX_CELL:
        raise errors.CellTooLarge(f"row {row_no} has a cell longer than {MAX_CELL} characters", field="file")
    if "\x00" in text:  # no text PostgreSQL stores may hold it: refused before anything is recorded
        raise errors.UnsupportedFile(f"row {row_no} holds a NUL character: not a text file", field="file")
    return text


def _csv_rows(raw: IO[bytes], encoding: str) -> Iterator[tuple[int, list[str]]]:
    # utf-8-sig reads UTF-8 with or without a BOM; errors are strict: a stray
    # Latin-1 byte in a UTF-8 file is refused, not turned into U+FFFD
    text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
    line_no = 0

    def lines() -> Iterator[str]:
        nonlocal line_no
        while True:
            try:
                line = text.readline(MAX_LINE + 1)
            except UnicodeDecodeError as exc:
                raise errors.BadEncoding(
                    f"line {line_no + 1} is not valid {encoding} ({exc.reason}): a file in Latin-1 (Windows) "
                    "needs encoding=latin-1",
                    field="file",
                ) from None
            if not line:
                return
            line_no += 1
            if len(line) > MAX_LINE and not line.endswith("\n"):
                raise errors.CellTooLarge(f"line {line_no} is longer than {MAX_LINE} characters", field="file")
            yield line

    source = lines()
    first = next(source, "")
    dialect = _dialect(first)
    reader = csv.reader(_chain(first, source), dialect)
    try:
        for cells in reader:
            # reader.line_num counts physical lines: a quoted cell may hold line breaks
            yield reader.line_num, [_check_cell(c, reader.line_num) for c in cells]
    except csv.Error as exc:
        raise errors.UnsupportedFile(f"line {reader.line_num} is not valid CSV: {exc}", field="file") from None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _dialect(header_line: str) -> type[csv.Dialect]:
    """The delimiter the header line uses most: comma, semicolon (spreadsheets
    in many locales) or tab."""

    class Dialect(csv.excel):
        delimiter = max(",;\t", key=header_line.count) if header_line else ","

    return Dialect


def _xlsx_rows(raw: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    try:
        with zipfile.ZipFile(raw) as z:  # one look at the zip before openpyxl opens it
            _check_workbook(z)
    except zipfile.BadZipFile as exc:
        raise errors.UnsupportedFile(f"a damaged XLSX file: {exc}", field="file") from None
    raw.seek(0)
    import openpyxl  # imported here: a library user who never imports XLSX does not pay for it

    try:
        book = openpyxl.load_workbook(raw, read_only=True, data_only=False)
    except Exception as exc:  # noqa: BLE001 (openpyxl raises many kinds for a damaged file)
        raise errors.UnsupportedFile(f"a damaged XLSX file: {exc}", field="file") from None
    try:
        sheet = book.worksheets[0]
        try:
            # max_col: a row's cells past it are skipped, not padded out (a cell at column
            # XFD would otherwise make openpyxl yield 16,384 cells for that row)
            for row_no, row in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS), 1):
                yield row_no, [_xlsx_text(cell, row_no) for cell in row]
        except errors.TraceTrackError:
            raise
        except Exception as exc:  # noqa: BLE001 (a malformed sheet's XML, a bad shared-string index ...)
            raise errors.UnsupportedFile(f"a damaged XLSX sheet: {exc}", field="file") from None
    finally:
        book.close()


def _check_workbook(z: zipfile.ZipFile) -> None:
    """Refuse a workbook past the limits: the members' declared sizes (zipfile
    enforces them while inflating), then the cell elements of the sheets,
    counted in the inflated XML (a regular expression over bytes, about 10 ms a
    MB) before openpyxl parses any."""
    members = z.infolist()
    expanded = sum(i.file_size for i in members)
    strings = sum(i.file_size for i in members if i.filename.lower() == "xl/sharedstrings.xml")
    sheets = [i for i in members if i.filename.lower().startswith("xl/worksheets/")]
    other = max(
        (i.file_size for i in members if i not in sheets and i.filename.lower() != "xl/sharedstrings.xml"), default=0
    )
    if expanded > XLSX_MAX_EXPANDED or strings > XLSX_MAX_SHARED_STRINGS or other > XLSX_MAX_PART:
        raise errors.UnsupportedFile(
            f"the workbook expands to {expanded} bytes ({strings} of shared strings, {other} in its largest "
            f"other part), more than an import reads ({XLSX_MAX_EXPANDED}, {XLSX_MAX_SHARED_STRINGS}, "
            f"{XLSX_MAX_PART}): save its first sheet as CSV",
            field="file",
        )
    cells = 0
    for info in sheets:
        tail = b""
        with z.open(info) as part:
            while chunk := part.read(_READ * 16):
                data = tail + chunk
                # a match wholly inside the tail was counted with the chunk before
                cells += sum(1 for m in _CELL.finditer(data) if m.end() > len(tail))
                tail = data[-32:]
                if cells > XLSX_MAX_CELLS:
                    raise errors.UnsupportedFile(
                        f"the workbook has more than {XLSX_MAX_CELLS} cells, more than an import reads: "
                        "save the rows as CSV",
                        field="file",
                    )


def _xlsx_text(cell: Any, row_no: int) -> str:
    value = cell.value
    if value is None:
        return ""
    if getattr(cell, "data_type", None) == "f" or (isinstance(value, str) and value.startswith("=")):
        where = getattr(cell, "coordinate", f"row {row_no}")
        raise errors.FormulaCell(f"cell {where} holds a formula: paste it as values", field="file")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a code typed as a number: 16586.0 is 16586
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return _check_cell(str(value), row_no)
