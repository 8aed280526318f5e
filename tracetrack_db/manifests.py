"""Truck manifests: a bill with every parent on it and each parent's children,
weights against what the parent formats expect, and totals; as row types
(JSON through orjson), as CSV, and (tracetrack_db.manifest_pdf) as an A4 PDF.

The manifest is read by one statement (sql/queries/manifests.sql), so its
rows and its totals come from one snapshot. Times are shown in the site's
time zone when a `tz` is given (else UTC), always with their offset, through
`format_time`: the one place a manifest turns a time into text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from . import errors
from .bills import normalize_bill_no
from .database import Database
from .exports import spreadsheet_text


@dataclass(frozen=True, slots=True)
class ManifestBill:
    """The bill a manifest is for, with the usernames of who created and who
    completed it (the last completion of a completed bill; null otherwise)."""

    id: int
    bill_no: str
    capacity: int
    description: str
    destination: str
    vehicle_number: str
    status: str
    created_by: int | None
    created_by_username: str | None
    created_at: datetime
    updated_at: datetime
    completed_by: int | None
    completed_by_username: str | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ManifestParent:
    """A parent on the bill with its children's QRs; difference_kg is
    weight_kg - expected_weight_kg (negative: lighter than expected)."""

    qr_id: str
    status: str
    dispatch_area: str
    capacity: int
    child_count: int
    weight_kg: Decimal
    expected_weight_kg: Decimal
    difference_kg: Decimal
    child_qrs: list[str]


@dataclass(frozen=True, slots=True)
class ManifestTotals:
    parents: int
    children: int
    weight_kg: Decimal
    expected_weight_kg: Decimal
    difference_kg: Decimal


@dataclass(frozen=True, slots=True)
class Manifest:
    """A truck's manifest: the bill, its parents by QR, and their totals, as of generated_at."""

    bill: ManifestBill
    parents: list[ManifestParent]
    totals: ManifestTotals
    generated_at: datetime


UTC = UTC


def local_time(moment: datetime, tz: ZoneInfo | None = None) -> datetime:
    """`moment` in the site's time zone (UTC when none is given)."""
    return moment.astimezone(tz or UTC)


def format_time(moment: datetime | None, tz: ZoneInfo | None = None) -> str:
    """A time as a manifest shows it: ISO 8601 to the second, with its offset,
    in the site's time zone (UTC when none is given); "" for no time."""
    if moment is None:
        return ""
    return local_time(moment, tz).isoformat(timespec="seconds")


def manifest(db: Database, bill_no: str, *, tz: ZoneInfo | None = None) -> Manifest:
    """The manifest of a bill (its number case-insensitive); times in `tz`
    (UTC when None). Raises BillNotFound, ValidationError for a malformed number."""
    number = normalize_bill_no(bill_no)
    rows = db.many("manifest", {"bill_no": number}, row=dict, read=True)
    if not rows:
        raise errors.BillNotFound(f"bill {number} not found")
    first = rows[0]

    def when(moment: datetime | None) -> datetime | None:
        return None if moment is None else local_time(moment, tz)

    bill = ManifestBill(
        id=first["bill_id"],
        bill_no=first["bill_no"],
        capacity=first["bill_capacity"],
        description=first["description"],
        destination=first["destination"],
        vehicle_number=first["vehicle_number"],
        status=first["bill_status"],
        created_by=first["created_by"],
        created_by_username=first["created_by_username"],
        created_at=local_time(first["created_at"], tz),
        updated_at=local_time(first["updated_at"], tz),
        completed_by=first["completed_by"],
        completed_by_username=first["completed_by_username"],
        completed_at=when(first["completed_at"]),
    )
    parents = [
        ManifestParent(
            qr_id=r["parent_qr"],
            status=r["parent_status"],
            dispatch_area=r["dispatch_area"],
            capacity=r["parent_capacity"],
            child_count=r["child_count"],
            weight_kg=r["weight_kg"],
            expected_weight_kg=r["expected_weight_kg"],
            difference_kg=r["weight_kg"] - r["expected_weight_kg"],
            child_qrs=r["child_qrs"],
        )
        for r in rows
        if r["parent_qr"] is not None  # a bill with no parent: one row without one
    ]
    weight = sum((p.weight_kg for p in parents), Decimal("0.000"))
    expected = sum((p.expected_weight_kg for p in parents), Decimal("0.000"))
    totals = ManifestTotals(
        parents=len(parents),
        children=sum(p.child_count for p in parents),
        weight_kg=weight,
        expected_weight_kg=expected,
        difference_kg=weight - expected,
    )
    return Manifest(bill=bill, parents=parents, totals=totals, generated_at=local_time(first["generated_at"], tz))


# CSV --------------------------------------------------------------------------
# One row per parent (what the office checks: counts and weights, which a
# spreadsheet's SUM adds up), its children's QRs in the last column joined by
# spaces (no QR holds one), and a last row `total`. The bill's columns are on
# every row, so a sheet stands alone and sheets of several bills can be
# stacked; a bill with no parent is its total row alone.
CSV_COLUMNS = (
    "line",  # parent | total
    "bill_no",
    "destination",
    "vehicle_number",
    "bill_status",
    "created_by",
    "created_at",
    "completed_by",
    "completed_at",
    "parent_qr",
    "dispatch_area",
    "parent_status",
    "capacity",
    "child_count",
    "weight_kg",
    "expected_weight_kg",
    "difference_kg",
    "child_qrs",
)


def manifest_csv(m: Manifest, *, tz: ZoneInfo | None = None) -> bytes:
    """The manifest as CSV (UTF-8, CRLF line ends, a header row): CSV_COLUMNS."""
    b = m.bill
    bill_cells = [
        b.bill_no,  # A-Z a-z 0-9 _ . - / only, never a formula
        spreadsheet_text(b.destination),
        spreadsheet_text(b.vehicle_number),
        b.status,
        spreadsheet_text(b.created_by_username),
        format_time(b.created_at, tz),
        spreadsheet_text(b.completed_by_username),
        format_time(b.completed_at, tz),
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(
        [
            "parent",
            *bill_cells,
            spreadsheet_text(p.qr_id),  # a QR may start with "-": -A1-A2 would be computed
            p.dispatch_area,
            p.status,
            p.capacity,
            p.child_count,
            p.weight_kg,
            p.expected_weight_kg,
            p.difference_kg,
            spreadsheet_text(" ".join(p.child_qrs)),
        ]
        for p in m.parents
    )
    t = m.totals
    writer.writerow(
        ["total", *bill_cells, "", "", "", "", t.children, t.weight_kg, t.expected_weight_kg, t.difference_kg, ""]
    )
    return out.getvalue().encode()


def download_name(m: Manifest, extension: str) -> str:
    """A file name for the manifest: its bill number with "/" (and anything a
    quoted header value should not hold) turned into "-"."""
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in m.bill.bill_no)
    return f"manifest-{safe}.{extension}"
