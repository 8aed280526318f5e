"""Route table rows: Dispatch documents: bill manifests as JSON, CSV and PDF (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from tracetrack_db.manifests import Manifest

from .handlers import documents
from .table import BILLERS, CSV, Operation

PDF = "application/pdf"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get_bill_manifest",
        "GET",
        "/api/bills/{bill_no}/manifest",
        documents.manifest,
        "A bill's manifest: its parents with their children's QRs, weights against expected, totals",
        "bills",
        BILLERS,
        Manifest,
        errors=("bill_not_found",),
        description="Read in one statement, so the totals always add up to the parents listed. "
        "difference_kg is weight_kg - expected_weight_kg (negative: lighter than expected). "
        "completed_by is whoever completed the bill last (null unless it is completed).",
    ),
    Operation(
        "get_bill_manifest_csv",
        "GET",
        "/api/bills/{bill_no}/manifest.csv",
        documents.manifest_csv,
        "A bill's manifest as CSV: a row per parent (its children's QRs space-separated) and a total row",
        "bills",
        BILLERS,
        CSV,
        errors=("bill_not_found",),
        description="Columns: line (parent or total), bill_no, destination, vehicle_number, bill_status, "
        "created_by, created_at, completed_by, completed_at, parent_qr, dispatch_area, parent_status, "
        "capacity, child_count, weight_kg, expected_weight_kg, difference_kg, child_qrs. Free-text "
        "cells that a spreadsheet would run as a formula start with an apostrophe.",
    ),
    Operation(
        "get_bill_manifest_pdf",
        "GET",
        "/api/bills/{bill_no}/manifest.pdf",
        documents.manifest_pdf_document,
        "A bill's manifest as an A4 PDF for the driver: header and QR code, parents table, totals, signatures",
        "bills",
        BILLERS,
        PDF,
        errors=("bill_not_found",),
        description="The children's QRs are in the JSON and CSV manifests, not in the PDF.",
    ),
)
