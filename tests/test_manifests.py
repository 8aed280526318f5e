"""Truck manifests (issue 11, points 8 and 9): GET /api/bills/{bill_no}/manifest
as JSON, CSV and PDF; the PDF read back with poppler's pdftotext and rendered
with pdftoppm; the library's manifest() with a site time zone."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tracetrack_db import Settings, bills, scans
from tracetrack_db.manifest_pdf import latin1
from tracetrack_db.manifests import CSV_COLUMNS, format_time, manifest, manifest_csv

from .api_helpers import *  # noqa: F403
from .conftest import service_missing

PATHS = ("/api/bills/{}/manifest", "/api/bills/{}/manifest.csv", "/api/bills/{}/manifest.pdf")


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        service_missing(f"{tool} is not installed (Debian: apt-get install poppler-utils)")
    return found


def pdf_text(data: bytes, tmp_path: Path) -> str:
    pdf = tmp_path / "manifest.pdf"
    pdf.write_bytes(data)
    done = subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, check=True)
    return done.stdout.decode()


def three_parents(api: Api):
    """A bill of three parents made through the API by one biller and
    completed by another: SB00001 (3 children), SB00002 (full, 30),
    M444-00001 (1). Both formats expect 30 kg; a child weighs 1 kg."""
    admin, maker, closer = api.admin(), api.biller(), api.biller()
    api.parent_with_children(admin, "SB00001", 3, area="lucknow")
    api.parent_with_children(admin, "SB00002", 30, area="jaipur")
    api.parent_with_children(admin, "M444-00001", 1, area="lucknow")
    api.bill(maker, "MF-1", capacity=3, destination="Jaipur mandi, gate 3", vehicle_number="RJ14 GA 1234")
    for parent in ("SB00002", "M444-00001", "SB00001"):
        assert api.add_parent(maker, "MF-1", parent).status_code == 200
    done = api.post("/api/bills/MF-1/complete", closer)
    assert done.status_code == 200, done.text
    return maker, closer, done.json


def test_manifest_json_has_the_bill_its_parents_children_weights_and_totals(api):
    maker, closer, completed = three_parents(api)
    result = api.get("/api/bills/mf-1/manifest", maker)  # the number as any case
    assert result.status_code == 200, result.text
    assert_schema(result, "GET", "/api/bills/{bill_no}/manifest")
    m = result.json
    bill = m["bill"]
    assert (bill["bill_no"], bill["status"], bill["capacity"]) == ("MF-1", "completed", 3)
    assert (bill["destination"], bill["vehicle_number"]) == ("Jaipur mandi, gate 3", "RJ14 GA 1234")
    assert (bill["created_by"], bill["created_by_username"]) == (maker.id, maker.username)
    assert (bill["completed_by"], bill["completed_by_username"]) == (closer.id, closer.username)
    assert datetime.fromisoformat(bill["completed_at"]) == datetime.fromisoformat(completed["completed_at"])
    assert datetime.fromisoformat(bill["completed_at"]).utcoffset() is not None  # times carry their offset
    assert datetime.fromisoformat(m["generated_at"]) >= datetime.fromisoformat(bill["completed_at"])
    # the parents by QR, each with its children's QRs in order
    parents = {p["qr_id"]: p for p in m["parents"]}
    assert [p["qr_id"] for p in m["parents"]] == ["M444-00001", "SB00001", "SB00002"]
    assert parents["SB00001"]["child_qrs"] == ["SB00001-C000", "SB00001-C001", "SB00001-C002"]
    assert parents["SB00002"]["child_qrs"] == [f"SB00002-C{i:03d}" for i in range(30)]
    assert parents["M444-00001"]["child_qrs"] == ["M444-00001-C000"]
    expected = {  # qr: (children, status, area, weight, expected, difference)
        "SB00001": (3, "in_progress", "lucknow", 3, 30, -27),
        "SB00002": (30, "completed", "jaipur", 30, 30, 0),
        "M444-00001": (1, "in_progress", "lucknow", 1, 30, -29),
    }
    for qr, (children, status, area, weight, expect, difference) in expected.items():
        p = parents[qr]
        assert (p["child_count"], p["capacity"], p["status"], p["dispatch_area"]) == (children, 30, status, area)
        assert (p["weight_kg"], p["expected_weight_kg"], p["difference_kg"]) == (weight, expect, difference)
    assert m["totals"] == {
        "parents": 3,
        "children": 34,
        "weight_kg": 34,
        "expected_weight_kg": 90,
        "difference_kg": -56,
    }
    # the totals agree with the bill's own counters
    got = api.get("/api/bills/MF-1", maker).json["bill"]
    assert (got["total_child_count"], got["total_weight_kg"], got["expected_weight_kg"]) == (34, 34, 90)

    # reopened: nobody has completed it any more
    assert api.post("/api/bills/MF-1/reopen", maker).status_code == 200
    reopened = api.get("/api/bills/MF-1/manifest", maker).json["bill"]
    assert reopened["status"] == "processing"
    assert reopened["completed_at"] is reopened["completed_by"] is reopened["completed_by_username"] is None


def test_qrs_a_spreadsheet_would_compute_are_quoted_in_every_csv(api):
    """-A1-A2 is a valid QR; in a cell a spreadsheet would show -A1 minus A2."""
    admin = api.admin()
    api.open_parent(admin, "SB00001", area="lucknow")
    assert api.post("/api/scans/child", admin, json={"parent_qr": "SB00001", "child_qr": "-A1-A2"}).status_code == 200
    api.bill(admin, "QR-1", capacity=1)
    assert api.add_parent(admin, "QR-1", "SB00001").status_code == 200
    rows = list(csv.DictReader(io.StringIO(api.get("/api/bills/QR-1/manifest.csv", admin).text)))
    assert rows[0]["child_qrs"] == "'-A1-A2"
    job = api.post(
        "/api/imports",
        admin,
        body=b"parent_qr,child_qr\nSB00002,-B1-B2\n",
        params={"layout": "links", "dispatch_area": "lucknow"},
    ).json
    results = list(csv.DictReader(io.StringIO(api.get(f"/api/imports/{job['id']}/results.csv", admin).text)))
    assert [(r["qr"], r["verdict"]) for r in results] == [("'-B1-B2", "ok")]


def test_manifest_csv_is_a_row_per_parent_and_a_total_row_with_formulas_neutralised(api):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 2, area="lucknow")
    api.parent_with_children(admin, "SB00002", 1, area="lucknow")
    api.bill(admin, "CSV-1", capacity=2, destination='=HYPERLINK("http://x")', vehicle_number="+91 RJ14")
    assert api.add_parent(admin, "CSV-1", "SB00002").status_code == 200
    assert api.add_parent(admin, "CSV-1", "SB00001").status_code == 200
    result = api.get("/api/bills/CSV-1/manifest.csv", admin)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/csv")
    assert result.headers["content-disposition"] == 'attachment; filename="manifest-CSV-1.csv"'
    rows = list(csv.reader(io.StringIO(result.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [(r["line"], r["parent_qr"]) for r in records] == [
        ("parent", "SB00001"),
        ("parent", "SB00002"),
        ("total", ""),
    ]
    first, second, total = records
    assert first["child_qrs"].split(" ") == ["SB00001-C000", "SB00001-C001"]
    assert (first["child_count"], first["capacity"], first["weight_kg"]) == ("2", "30", "2.000")
    assert (first["expected_weight_kg"], first["difference_kg"]) == ("30.000", "-28.000")  # numbers stay numbers
    assert (second["child_count"], second["difference_kg"], second["child_qrs"]) == ("1", "-29.000", "SB00002-C000")
    assert (total["child_count"], total["weight_kg"], total["expected_weight_kg"], total["difference_kg"]) == (
        "3",
        "3.000",
        "60.000",
        "-57.000",
    )
    for record in records:  # the bill on every row; free text a spreadsheet would run is quoted
        assert record["bill_no"] == "CSV-1"
        assert record["destination"] == '\'=HYPERLINK("http://x")'
        assert record["vehicle_number"] == "'+91 RJ14"
        assert (record["bill_status"], record["created_by"], record["completed_by"]) == (
            "processing",
            admin.username,
            "",
        )
        assert datetime.fromisoformat(record["created_at"]).utcoffset() is not None
        assert record["completed_at"] == ""


def test_manifests_are_for_billers_and_admins(api):
    admin, biller = api.admin(), api.biller()
    dispatcher = api.dispatcher()
    api.bill(admin, "ROLE-1", capacity=1)
    for path in PATHS:
        url = path.format("ROLE-1")
        assert_error(api.get(url), 401, "unauthenticated")
        assert_error(api.get(url, dispatcher), 403, "forbidden")
        for caller in (admin, biller):
            assert api.get(url, caller).status_code == 200, (url, caller.role)


def test_an_unknown_or_malformed_bill_number(api):
    biller = api.biller()
    for path in PATHS:
        assert_error(api.get(path.format("NO-SUCH-BILL"), biller), 404, "bill_not_found")
        assert_error(api.get(path.format("bad%20bill"), biller), 400, "validation_error", "bill_no")


def test_a_bill_with_no_parents(api, tmp_path):
    biller = api.biller()
    api.bill(biller, "EMPTY-1", capacity=5, destination="Hisar")
    m = api.get("/api/bills/EMPTY-1/manifest", biller).json
    assert (m["bill"]["bill_no"], m["bill"]["status"], m["parents"]) == ("EMPTY-1", "new", [])
    assert m["totals"] == {"parents": 0, "children": 0, "weight_kg": 0, "expected_weight_kg": 0, "difference_kg": 0}
    rows = list(csv.reader(io.StringIO(api.get("/api/bills/EMPTY-1/manifest.csv", biller).text)))
    assert len(rows) == 2 and rows[1][0] == "total" and rows[1][1] == "EMPTY-1"
    text = pdf_text(api.get("/api/bills/EMPTY-1/manifest.pdf", biller).content, tmp_path)
    assert "Bill EMPTY-1" in text and "No parents on this bill." in text and "Page 1 of 1" in text


def test_a_bill_number_with_slashes(api, tmp_path):
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.bill(admin, "LC/2026/001", capacity=1)
    assert api.add_parent(admin, "LC/2026/001", "SB00001").status_code == 200
    m = api.get("/api/bills/lc%2F2026%2F001/manifest", admin).json
    assert (m["bill"]["bill_no"], [p["qr_id"] for p in m["parents"]]) == ("LC/2026/001", ["SB00001"])
    csv_answer = api.get("/api/bills/LC%2F2026%2F001/manifest.csv", admin)
    assert csv_answer.headers["content-disposition"] == 'attachment; filename="manifest-LC-2026-001.csv"'
    assert "LC/2026/001,,,processing" in csv_answer.text
    pdf = api.get("/api/bills/LC%2F2026%2F001/manifest.pdf", admin)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'inline; filename="manifest-LC-2026-001.pdf"'
    assert "Bill LC/2026/001" in pdf_text(pdf.content, tmp_path)


def test_the_pdf_holds_the_bill_every_parent_the_totals_and_signature_lines(api, tmp_path):
    maker, closer, _ = three_parents(api)
    result = api.get("/api/bills/MF-1/manifest.pdf", maker)
    assert result.status_code == 200, result.text
    assert result.content.startswith(b"%PDF-")
    text = pdf_text(result.content, tmp_path)
    for needle in (
        "DISPATCH MANIFEST",
        "Bill MF-1",
        "Jaipur mandi, gate 3",
        "RJ14 GA 1234",
        "completed",
        f"by {maker.username}",
        f"by {closer.username}",
        "SB00001",
        "SB00002",
        "M444-00001",
        "Total: 3 parents",
        "3 of 3 parents, 34 children, 34.000 kg (expected 90.000 kg, difference -56.000 kg)",
        "Driver",
        "Dispatcher / biller",
        "Security / gate",
        "Page 1 of 1",
    ):
        assert needle in text, needle
    totals = next(line for line in text.splitlines() if "Total: 3 parents" in line).split()
    assert totals[-4:] == ["34", "34.000", "90.000", "-56.000"]
    row = next(line for line in text.splitlines() if " SB00001 " in line).split()
    assert row[-4:] == ["3/30", "3.000", "30.000", "-27.000"]


def test_the_pdfs_first_page_is_not_blank(api, tmp_path):
    pil_image = require_module("PIL.Image")
    three_parents(api)
    pdf = tmp_path / "manifest.pdf"
    pdf.write_bytes(api.get("/api/bills/MF-1/manifest.pdf", api.admin()).content)
    subprocess.run(
        [poppler("pdftoppm"), "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True
    )
    (png,) = tmp_path.glob("page*.png")
    with pil_image.open(png) as image:
        gray = image.convert("L")
        width, height = gray.size
        assert abs(width - 413) <= 1 and abs(height - 585) <= 1  # A4 at 50 dpi
        dark = sum(gray.histogram()[:200])
        # the QR code in the top right corner (34 mm square, from 10 mm) is drawn
        corner = gray.crop((int(width * 0.81), int(height * 0.06), int(width * 0.93), int(height * 0.13)))
        corner_dark = sum(corner.histogram()[:128])
    assert 0.02 < dark / (width * height) < 0.5, dark / (width * height)
    assert 0.25 < corner_dark / (corner.size[0] * corner.size[1]) < 0.75


def test_a_manifest_over_several_pages_lists_every_parent(api, tmp_path):
    admin = api.admin()
    db = api.db
    bills.create_bill(db, "BIG-120", 120, destination="Raipur", user_id=admin.id)
    qrs = [f"SB{i:05d}" for i in range(1, 121)]
    for n, qr in enumerate(qrs):
        scans.open_parent(db, qr, dispatch_area="raipur", user_id=admin.id)
        scans.link_children(db, qr, [f"{qr}-C{j}" for j in range(1 + n % 3)], user_id=admin.id)
        bills.add_parent(db, "BIG-120", qr, user_id=admin.id)
    text = pdf_text(api.get("/api/bills/BIG-120/manifest.pdf", admin).content, tmp_path)
    pages = text.split("\f")[:-1]  # pdftotext ends every page with a form feed
    assert len(pages) >= 3
    row = re.compile(r"^ *(\d+) +(SB\d{5}) ", re.MULTILINE)
    for n, page in enumerate(pages, 1):
        assert f"Page {n} of {len(pages)}" in page
        if row.search(page):  # the table's header on every page it runs onto
            assert "Parent QR" in page and "Expected kg" in page, n
    assert "(continued)" in pages[1]
    assert [m[2] for m in row.finditer(text)] == qrs  # every parent, once, in order
    assert [int(m[1]) for m in row.finditer(text)] == list(range(1, 121))
    assert "Total: 120 parents" in text and "Signatures" in pages[-1]
    children = sum(1 + n % 3 for n in range(120))
    totals = next(line for line in text.splitlines() if "Total: 120 parents" in line).split()
    assert totals[-4:] == [str(children), f"{children:,}.000", "3,600.000", f"{children - 3600:+,}.000"]
    m = api.get("/api/bills/BIG-120/manifest", admin).json
    assert [p["qr_id"] for p in m["parents"]] == qrs
    assert (m["totals"]["parents"], m["totals"]["children"]) == (120, children)


def test_the_library_shows_times_in_the_site_time_zone(db):
    """manifest() and manifest_csv() without HTTP: a `tz` turns every time into that zone, with its offset."""
    scans.open_parent(db, "SB00001", dispatch_area="lucknow")
    scans.link_children(db, "SB00001", ["SB00001-C1"])
    bills.create_bill(db, "TZ-1", 1, destination="Akola")
    bills.add_parent(db, "tz-1", "SB00001")
    bills.complete_bill(db, "TZ-1")
    kolkata = ZoneInfo("Asia/Kolkata")
    utc, local = manifest(db, "TZ-1"), manifest(db, "TZ-1", tz=kolkata)
    assert local.bill.completed_at is not None and utc.bill.completed_at is not None
    assert local.bill.completed_at == utc.bill.completed_at  # the same instant ...
    assert local.bill.completed_at.utcoffset() == kolkata.utcoffset(local.bill.completed_at)  # ... shown locally
    assert format_time(utc.bill.completed_at).endswith("+00:00")
    assert format_time(utc.bill.completed_at, kolkata).endswith("+05:30")
    assert format_time(None) == ""
    assert local.totals.weight_kg == Decimal("1.000") and local.bill.completed_by is None  # no user given
    rows = list(csv.reader(io.StringIO(manifest_csv(local, tz=kolkata).decode())))
    assert rows[1][CSV_COLUMNS.index("completed_at")].endswith("+05:30")


def test_the_api_shows_times_in_the_sites_time_zone(db, tmp_path):
    """TRACETRACK_TIMEZONE=Asia/Kolkata: the JSON, CSV and PDF manifests give every time at +05:30."""
    api = Api(db, api_settings(db=Settings(timezone="Asia/Kolkata")))
    admin = api.admin()
    api.parent_with_children(admin, "SB00001", 1, area="lucknow")
    api.bill(admin, "IST-1", capacity=1)
    assert api.add_parent(admin, "IST-1", "SB00001").status_code == 200
    assert api.post("/api/bills/IST-1/complete", admin).status_code == 200
    m = api.get("/api/bills/IST-1/manifest", admin).json
    for moment in (m["generated_at"], m["bill"]["created_at"], m["bill"]["updated_at"], m["bill"]["completed_at"]):
        assert moment.endswith("+05:30"), moment
    rows = list(csv.reader(io.StringIO(api.get("/api/bills/IST-1/manifest.csv", admin).text)))
    assert rows[1][CSV_COLUMNS.index("created_at")].endswith("+05:30")
    assert rows[1][CSV_COLUMNS.index("completed_at")] == m["bill"]["completed_at"][:19] + "+05:30"
    text = pdf_text(api.get("/api/bills/IST-1/manifest.pdf", admin).content, tmp_path)
    assert f"{m['bill']['completed_at'][:19]}+05:30 by {admin.username}" in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [("Jaipur – gate\u00a03", "Jaipur - gate 3"), ("naïve “x”", 'naïve "x"'), ("हिंदी", "?????"), ("a\tb\x07", "a b")],
)
def test_free_text_in_the_pdf_is_latin1(text, shown):
    assert latin1(text) == shown
