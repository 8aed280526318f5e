"""Bulk import: a CSV or XLSX file of scanned batches applied (or checked) as a job.

Layouts (the columns a header row names; other columns are ignored):

- links:  parent_qr, child_qr, one link per row; a parent's rows form its block
  wherever they are in the file;
- blocks: label, one scanned label per row in scanning order; each run of
  child labels is closed by the label of the parent they go into (a label
  matching a parent format); children after the last parent are refused;
- bills:  bill_no, parent_qr, plus capacity, destination, vehicle_number,
  description read from a bill's first row (used to create it when it does
  not exist); a bill's rows form its block;
- bags:   qr_id, type, dispatch_area; every row is its own block.

Each block applies atomically with the checks, locks and events of scans
(0011_imports.sql); a failed block changes nothing and the others go on,
unless `all_or_nothing`. Every row gets one verdict: ok (applied, or would
be in a dry run), already_done (nothing to do: a re-import answers this for
every row), error (with the code a scan would get), skipped (its block or,
with all_or_nothing, the import failed). The job and its rows are recorded
(import_job, import_row), dry runs too.

Speed: rows are checked here in Python (QR rules, duplicates across blocks),
then sent a chunk of blocks (about CHUNK_ROWS rows) per round trip and
transaction; the results go back with COPY. The progress callback hears
after each chunk.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import psycopg
from psycopg import Connection, sql

from . import areas, errors, extraction
from .bills import MAX_CAPACITY, MIN_CAPACITY, normalize_bill_no
from .cursor import check_limit, paginate
from .database import Database
from .importfiles import DEFAULT_MAX_BYTES, Upload, read_table, spool
from .listing import Where, newest_first
from .models import Page
from .qr import normalize_qr

LAYOUTS: dict[str, tuple[str, ...]] = {
    "links": ("parent_qr", "child_qr"),
    "blocks": ("label",),
    "bills": ("bill_no", "parent_qr"),
    "bags": ("qr_id", "type", "dispatch_area"),
}
BILL_FIELDS = ("capacity", "destination", "vehicle_number", "description")
BILL_FIELD_LIMITS = {"destination": 200, "vehicle_number": 50, "description": 1000}
VERDICTS = ("ok", "already_done", "error", "skipped")
CHUNK_ROWS = 5000
# chunks applied at once on their own connections: two keep both cores of a small
# server busy (an import is PostgreSQL-bound); measured in bench/RESULTS.md
DEFAULT_WORKERS = 2
MAX_FILE_NAME = 255
Progress = Callable[[int, int], None]  # (rows done, rows in all)


@dataclass(frozen=True)
class ImportJob:
    id: int
    created_by: int | None
    created_by_username: str | None
    created_at: datetime
    finished_at: datetime | None
    file_name: str
    file_sha256: str
    file_bytes: int
    file_format: str
    layout: str
    rule: str | None
    rule_pattern: str | None
    dry_run: bool
    all_or_nothing: bool
    dispatch_area: str | None
    status: str
    rows: int
    blocks: int
    failed_blocks: int
    verdicts: dict[str, int]
    codes: dict[str, int]
    message: str


@dataclass(frozen=True)
class ImportRow:
    row_no: int
    input: str
    qr: str | None
    block: str | None
    verdict: str
    code: str | None
    message: str | None


@dataclass(frozen=True)
class ImportDetail:
    """A job and the first rows that were not applied (all of them: results.csv)."""

    job: ImportJob
    problems: list[ImportRow]


@dataclass
class _Row:
    row_no: int
    input: str
    qr: str | None = None
    block: str | None = None
    verdict: str | None = None
    code: str | None = None
    message: str | None = None

    def fail(self, code: str, message: str) -> None:
        self.verdict, self.code, self.message = "error", code, message


@dataclass
class _Block:
    key: str  # the parent QR, the bill number (as written), the bag's QR
    rows: list[_Row] = field(default_factory=list)
    head: _Row | None = None  # the parent's own label (blocks layout)
    extra: dict[str, Any] = field(default_factory=dict)  # bills: capacity and the descriptive fields

    def all_rows(self) -> list[_Row]:
        return self.rows + ([self.head] if self.head else [])

    def failed(self) -> bool:
        return any(r.verdict == "error" for r in self.all_rows())


class _Reader:
    """Turns cells into QRs: the rule (if any), then the usual normalisation."""

    def __init__(self, rule: extraction.ExtractionRule | None):
        self.rule = rule
        self.pattern = extraction.compiled(rule.pattern) if rule else None

    def qr(self, row: _Row, text: str, what: str) -> str | None:
        if self.pattern is not None:
            found = extraction.extract(self.pattern, text)
            if found is None:
                row.fail("label_unmatched", f"the rule {self.rule.name if self.rule else ''} finds no code in {text!r}")
                return None
            text = found
        try:
            return normalize_qr(text, what)
        except errors.InvalidQr as exc:
            row.fail(exc.code, exc.message)
            return None


def _columns(header: list[str], layout: str) -> dict[str, int]:
    needed = LAYOUTS[layout]
    missing = [c for c in needed if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "none"
        raise errors.MissingColumn(
            f"the {layout} layout needs the columns {', '.join(needed)}; missing {', '.join(missing)} (found {found})",
            field="file",
        )
    wanted = needed + (BILL_FIELDS if layout == "bills" else ())
    return {name: header.index(name) for name in wanted if name in header}


def _cells(cells: list[str], where: dict[str, int]) -> dict[str, str]:
    return {name: (cells[i].strip() if i < len(cells) else "") for name, i in where.items()}


def _blocks_of_links(rows: Iterator[tuple[int, list[str]]], where: dict[str, int], read: _Reader) -> list[_Block]:
    blocks: dict[str, _Block] = {}
    broken: list[_Block] = []  # rows whose parent cell is unreadable: each its own failed block
    for row_no, cells in rows:
        c = _cells(cells, where)
        row = _Row(row_no, f"{c['parent_qr']}, {c['child_qr']}")
        parent = read.qr(row, c["parent_qr"], "parent_qr")
        row.qr = read.qr(row, c["child_qr"], "child_qr") if row.verdict is None else None
        if parent is None:
            broken.append(_Block(c["parent_qr"], [row]))
            continue
        row.block = parent
        blocks.setdefault(parent, _Block(parent)).rows.append(row)
    return list(blocks.values()) + broken


def _blocks_of_labels(
    db: Database, rows: Iterator[tuple[int, list[str]]], where: dict[str, int], read: _Reader
) -> list[_Block]:
    scanned: list[_Row] = []
    for row_no, cells in rows:
        label = _cells(cells, where)["label"]
        row = _Row(row_no, label)
        row.qr = read.qr(row, label, "label")
        scanned.append(row)
    known = {q for q in {r.qr for r in scanned if r.qr}}
    parents = {r[0] for r in db.many("parent_qrs", {"qrs": sorted(known)}, read=True)} if known else set()
    blocks: dict[str, _Block] = {}
    run: list[_Row] = []
    for row in scanned:
        if row.qr is not None and row.qr in parents:
            block = blocks.setdefault(row.qr, _Block(row.qr))
            for child in run:
                child.block = row.qr
            block.rows.extend(run)
            run = []
            if block.head is None:
                row.block = row.qr
                block.head = row
            else:  # the same parent closes a second run: one block, this label adds nothing
                row.block, row.verdict, row.code = row.qr, "already_done", "duplicate_row"
                row.message = f"{row.qr} closed an earlier run too (row {block.head.row_no})"
        else:
            run.append(row)
    tail = _Block("")
    for row in run:
        if row.verdict is None:
            row.fail("no_parent", "no parent label follows this child: scan its parent after it")
        tail.rows.append(row)
    return list(blocks.values()) + ([tail] if tail.rows else [])


def _blocks_of_bills(rows: Iterator[tuple[int, list[str]]], where: dict[str, int], read: _Reader) -> list[_Block]:
    blocks: dict[str, _Block] = {}
    broken: list[_Block] = []
    for row_no, cells in rows:
        c = _cells(cells, where)
        row = _Row(row_no, ", ".join(c[name] for name in where).rstrip(", "))
        try:
            bill_no = normalize_bill_no(c["bill_no"])
        except errors.ValidationError as exc:
            row.fail("invalid_bill_no", exc.message)
            broken.append(_Block(c["bill_no"], [row]))
            continue
        row.block = bill_no
        row.qr = read.qr(row, c["parent_qr"], "parent_qr")
        block = blocks.get(bill_no.lower())
        if block is None:
            block = blocks[bill_no.lower()] = _Block(bill_no)
            block.extra = _bill_fields(row, c)
        block.rows.append(row)
    return list(blocks.values()) + broken


def _bill_fields(row: _Row, c: dict[str, str]) -> dict[str, Any]:
    """A bill's capacity and descriptive fields from its first row."""
    out: dict[str, Any] = {"capacity": None}
    text = c.get("capacity", "")
    if text:
        try:
            capacity = int(float(text)) if float(text).is_integer() else None
        except ValueError:
            capacity = None
        if capacity is None or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
            row.fail("validation_error", f"capacity must be a whole number from {MIN_CAPACITY} to {MAX_CAPACITY}")
        out["capacity"] = capacity
    for name, limit in BILL_FIELD_LIMITS.items():
        value = c.get(name, "")
        if len(value) > limit:
            row.fail("validation_error", f"{name} is too long ({limit} at most)")
        out[name] = value or None
    return out


def _blocks_of_bags(rows: Iterator[tuple[int, list[str]]], where: dict[str, int], read: _Reader) -> list[_Block]:
    blocks: list[_Block] = []
    for row_no, cells in rows:
        c = _cells(cells, where)
        row = _Row(row_no, f"{c['qr_id']}, {c['type']}, {c['dispatch_area']}")
        row.qr = read.qr(row, c["qr_id"], "qr_id")
        kind, area = c["type"].lower(), c["dispatch_area"].lower()
        if row.verdict is None and kind not in ("parent", "child"):
            row.fail("validation_error", f"type is parent or child, not {c['type']!r}")
        if row.verdict is None and not area:
            row.fail("dispatch_area_required", "a dispatch area is required for a new bag")
        row.block = row.qr
        blocks.append(_Block(row.qr or c["qr_id"], [row], extra={"type": kind, "area": area}))
    return blocks


def _mark_repeats(layout: str, blocks: list[_Block]) -> None:
    """A QR that a block of this file already took: refused in the later block
    (the same answer the database would give once the earlier block applied)."""
    first: dict[str, tuple[_Block, _Row]] = {}
    for block in blocks:
        for row in block.rows:
            if row.qr is None or row.verdict is not None:
                continue
            seen = first.get(row.qr)
            if seen is None:
                first[row.qr] = (block, row)
            elif seen[0] is block:
                continue  # within a block: the database says duplicate_row
            elif layout == "bills":
                row.fail("parent_on_other_bill", f"{row.qr} is on bill {seen[0].key} in row {seen[1].row_no}")
            elif layout == "bags":
                if seen[0].extra == block.extra:
                    row.verdict, row.code = "already_done", "duplicate_row"
                    row.message = f"{row.qr} appears in row {seen[1].row_no} too"
                else:
                    row.fail("qr_taken", f"{row.qr} is registered differently in row {seen[1].row_no}")
            else:
                row.fail("child_in_other_parent", f"{row.qr} goes into {seen[0].key} in row {seen[1].row_no}")


def _chunks(blocks: list[_Block]) -> Iterator[list[_Block]]:
    chunk: list[_Block] = []
    size = 0
    for block in blocks:
        chunk.append(block)
        size += len(block.rows) + 1
        if size >= CHUNK_ROWS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _apply(
    db: Database,
    conn: Connection,
    layout: str,
    job_id: int,
    user_id: int | None,
    area: str | None,
    blocks: list[_Block],
) -> None:
    """Send one chunk of blocks (those that passed the checks here) and take the verdicts back."""
    rows = [r for b in blocks for r in b.rows]
    ends: list[int] = []
    for b in blocks:
        ends.append((ends[-1] if ends else 0) + len(b.rows))
    params: dict[str, Any] = {"job_id": job_id, "user_id": user_id}
    if layout in ("links", "blocks"):
        name = "import_links"
        params |= {
            "dispatch_area": area,
            "parents": [b.key for b in blocks],
            "parent_rows": [b.head.row_no if b.head else None for b in blocks],
            "ends": ends,
            "rows": [r.row_no for r in rows],
            "qrs": [r.qr for r in rows],
        }
    elif layout == "bills":
        name = "import_bills"
        params |= {
            "bills": [b.key for b in blocks],
            "capacities": [b.extra.get("capacity") for b in blocks],
            "destinations": [b.extra.get("destination") for b in blocks],
            "vehicles": [b.extra.get("vehicle_number") for b in blocks],
            "descriptions": [b.extra.get("description") for b in blocks],
            "ends": ends,
            "rows": [r.row_no for r in rows],
            "qrs": [r.qr for r in rows],
        }
    else:
        name = "import_bags"
        params |= {
            "rows": [r.row_no for r in rows],
            "qrs": [r.qr for r in rows],
            "types": [b.extra["type"] for b in blocks],
            "areas": [b.extra["area"] for b in blocks],
        }
    by_no = {r.row_no: r for b in blocks for r in b.all_rows()}
    for row_no, verdict, code, message in db.many(name, params, conn=conn):
        row = by_no[row_no]
        row.verdict, row.code, row.message = verdict, code, message


def _skip_failed_blocks(blocks: list[_Block]) -> list[_Block]:
    """Blocks with a row refused here never reach the database: their other rows are skipped."""
    sendable = []
    for block in blocks:
        if block.failed():
            for row in block.all_rows():
                if row.verdict is None:
                    row.verdict, row.code = "skipped", "block_failed"
                    row.message = "not applied: another row of its block failed"
        elif any(r.verdict is None for r in block.all_rows()):
            sendable.append(block)
    return sendable


def _write_rows(db: Database, conn: Connection, job_id: int, rows: list[_Row]) -> None:
    with errors.wrap_errors(), conn.cursor() as cur, cur.copy(db.queries["copy_import_rows"].sql) as copy:
        for r in rows:
            copy.write_row((job_id, r.row_no, r.input, r.qr, r.block, r.verdict, r.code, r.message))


def _finish(db: Database, conn: Connection, job_id: int, blocks: list[_Block], rows: list[_Row], message: str) -> None:
    verdicts = Counter(r.verdict for r in rows)
    codes = Counter(r.code for r in rows if r.verdict in ("error", "skipped") and r.code)
    db.execute(
        "finish_import",
        {
            "job_id": job_id,
            "status": "done",
            "rows": len(rows),
            "blocks": len(blocks),
            "failed_blocks": sum(1 for b in blocks if b.failed()),
            "verdicts": json.dumps({v: verdicts.get(v, 0) for v in VERDICTS}),
            "codes": json.dumps(dict(sorted(codes.items()))),
            "message": message,
        },
        conn=conn,
    )


def _apply_chunks(
    db: Database, chunks: list[list[_Block]], workers: int, apply: Callable[[Connection, list[_Block]], None]
) -> None:
    """Chunks on `workers` connections at once, each chunk its own transaction.
    Chunks share no row: every parent (bill, bag) is in one block, and a QR two
    blocks of the file name was refused in the later one before anything was
    sent, so they never wait for each other (nor deadlock)."""
    pending = iter(chunks)
    taking = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        with db.connection() as conn:
            while not failures:
                with taking:
                    chunk = next(pending, None)
                if chunk is None:
                    return
                try:
                    apply(conn, chunk)
                except BaseException as exc:  # noqa: BLE001 (re-raised below, in the caller's thread)
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(workers, len(chunks))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def run_import(
    db: Database,
    source: IO[bytes] | bytes | Upload,
    *,
    layout: str,
    file_name: str = "",
    rule: str | None = None,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    dispatch_area: str | None = None,
    encoding: str = "utf-8",
    user_id: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
    workers: int = DEFAULT_WORKERS,
) -> ImportJob:
    """Import (or with `dry_run` check) a file; the recorded job.

    `dispatch_area`: the area of new parents (links, blocks); when given,
    bags of another area are refused (wrong_area). A file refused whole
    (ImportFileError, MissingColumn, ...) records nothing. `workers`: chunks
    applied at once, each on its own pooled connection (all_or_nothing: one)."""
    if layout not in LAYOUTS:
        raise errors.ValidationError(f"layout is one of {', '.join(LAYOUTS)}", field="layout")
    if len(file_name) > MAX_FILE_NAME:
        raise errors.ValidationError(f"file_name has at most {MAX_FILE_NAME} characters", field="file_name")
    upload = source if isinstance(source, Upload) else spool(source, max_bytes)
    try:
        chosen = extraction.get_rule(db, rule) if rule else None
        table = read_table(upload, encoding)
        where = _columns(table.header, layout)
        read = _Reader(chosen)
        if layout == "links":
            blocks = _blocks_of_links(table.rows, where, read)
        elif layout == "blocks":
            blocks = _blocks_of_labels(db, table.rows, where, read)
        elif layout == "bills":
            blocks = _blocks_of_bills(table.rows, where, read)
        else:
            blocks = _blocks_of_bags(table.rows, where, read)
    finally:
        upload.close()
    rows = sorted((r for b in blocks for r in b.all_rows()), key=lambda r: r.row_no)
    if not rows:
        raise errors.EmptyFile("the file has a header but no rows", field="file")
    if dispatch_area is not None:  # a whole-request answer, before anything is recorded
        areas.require_area(db, dispatch_area)
    _mark_repeats(layout, blocks)
    # Blocks go to the database in key order (parent QR, bill number, bag QR), not
    # the file's: each chunk's transaction then takes its parents' (bills') locks in
    # ascending order, as every other import does, so two imports sharing new
    # parents in opposite orders wait for each other instead of deadlocking once
    # per shared parent (a second of deadlock_timeout each; it looked like a hang).
    sendable = sorted(_skip_failed_blocks(blocks), key=lambda b: b.key.lower())
    job_id = db.scalar(
        "start_import",
        {
            "user_id": user_id,
            "file_name": file_name,
            "file_sha256": upload.sha256,
            "file_bytes": upload.size,
            "file_format": table.format,
            "layout": layout,
            "rule": chosen.name if chosen else None,
            "rule_pattern": chosen.pattern if chosen else None,
            "dry_run": dry_run,
            "all_or_nothing": all_or_nothing,
            "dispatch_area": dispatch_area,
        },
    )
    try:
        total, done = len(rows), len(rows) - sum(len(b.all_rows()) for b in sendable)
        if progress:
            progress(done, total)

        counting = threading.Lock()

        def apply_chunk(conn: Connection, chunk: list[_Block], write: bool = False) -> None:
            """One chunk in the caller's transaction (all_or_nothing) or, with
            `write`, in its own, with its rows' results."""
            nonlocal done
            with conn.transaction() if write else nullcontext():
                db.scalar("import_analyze", conn=conn)  # plans from current statistics (see 0011_imports.sql)
                if dry_run:  # the same writers, undone: a savepoint rolled back (its row locks go with it)
                    with conn.transaction(force_rollback=True):
                        _apply(db, conn, layout, job_id, user_id, dispatch_area, chunk)
                else:
                    _apply(db, conn, layout, job_id, user_id, dispatch_area, chunk)
                if write:
                    _write_rows(db, conn, job_id, [r for b in chunk for r in b.all_rows()])
            with counting:
                done += sum(len(b.all_rows()) for b in chunk)
                if progress:
                    progress(done, total)

        message = ""
        if all_or_nothing:
            with db.connection() as conn:
                with conn.transaction() as tx:  # one transaction: any failed row undoes every block
                    for chunk in _chunks(sendable):
                        apply_chunk(conn, chunk)
                    if any(r.verdict == "error" for r in rows):
                        raise psycopg.Rollback(tx)
                    _write_rows(db, conn, job_id, rows)
                    _finish(db, conn, job_id, blocks, rows, message)
                if any(r.verdict == "error" for r in rows):
                    message = "nothing applied: all_or_nothing and some rows failed"
                    for r in rows:
                        if r.verdict == "ok":
                            r.verdict, r.code, r.message = "skipped", "import_failed", message
                    with conn.transaction():
                        _write_rows(db, conn, job_id, rows)
                        _finish(db, conn, job_id, blocks, rows, message)
        else:
            # no connection held here meanwhile: the workers take theirs from the pool
            _apply_chunks(db, list(_chunks(sendable)), workers, lambda conn, chunk: apply_chunk(conn, chunk, True))
            with db.transaction() as conn:
                sent = {id(b) for b in sendable}
                _write_rows(db, conn, job_id, [r for b in blocks if id(b) not in sent for r in b.all_rows()])
                _finish(db, conn, job_id, blocks, rows, message)
    except BaseException as exc:
        # Checked input cannot fail here; the database can (gone, a pool timeout). The
        # job says so, and how far it got: chunks already committed stay applied.
        _record_failure(db, job_id, exc)
        raise
    return get_import(db, job_id)


def _record_failure(db: Database, job_id: int, exc: BaseException) -> None:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # if the database is what failed, the job stays 'running', as the log of this error says
    with suppress(Exception):  # never hide the error that stopped the import behind this one
        db.execute("fail_import", {"job_id": job_id, "message": f"stopped: {text}"[:1000]})


def get_import(db: Database, job_id: int, *, conn: Connection | None = None) -> ImportJob:
    job = db.one("get_import", {"job_id": job_id}, row=ImportJob, conn=conn)
    if job is None:
        raise errors.ImportNotFound(f"import {job_id} not found")
    return job


def import_detail(db: Database, job: ImportJob, *, problems: int = 20) -> ImportDetail:
    """A job (as get_import or run_import gave it) with its first `problems` rows that were not applied."""
    rows = db.many("import_problems", {"job_id": job.id, "limit": problems}, row=ImportRow)
    return ImportDetail(job, rows)


_LIST = (
    "SELECT r.id, r.created_by, u.username AS created_by_username, r.created_at, r.finished_at, r.file_name, "
    "r.file_sha256, r.file_bytes, r.file_format, r.layout, r.rule, r.rule_pattern, r.dry_run, r.all_or_nothing, "
    "r.dispatch_area, r.status, r.rows, r.blocks, r.failed_blocks, r.verdicts, r.codes, r.message "
    "FROM import_job r LEFT JOIN app_user u ON u.id = r.created_by"
)


def list_imports(
    db: Database, *, created_by: int | None = None, limit: int = 50, cursor: str | None = None
) -> Page[ImportJob]:
    """Import jobs, newest first; `created_by` keeps one user's."""
    where = Where()
    if created_by is not None:
        where.add("r.created_by = %(created_by)s", created_by=created_by)
    query, params = newest_first(_LIST, where, cursor=cursor, limit=limit)
    return paginate(db.run_sql(query, params, row=ImportJob), check_limit(limit))


_RESULTS = sql.SQL(
    "SELECT row_no, tt_csv_text(input) AS input, tt_csv_text(qr) AS qr, tt_csv_text(block) AS block, verdict, code, "
    "tt_csv_text(message) AS message FROM import_row WHERE job_id = %(job_id)s ORDER BY row_no"
)


def results_csv(db: Database, job: ImportJob) -> Iterator[bytes]:
    """A job's (as get_import gave it) per-row results as CSV (row_no, input, qr,
    block, verdict, code, message); text a spreadsheet would read as a formula is quoted."""
    from .exports import stream_csv

    return stream_csv(db, _RESULTS, {"job_id": job.id})
