"""HTTP: POST /api/imports and friends, and every bad file refused whole
with a clear code and nothing recorded."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from .api_helpers import *  # noqa: F403

LINKS = b"parent_qr,child_qr\nSB00001,API-0001\nSB00001,API-0002\nSB00002,API-0003\n"


def post_file(api, caller, data: bytes, **params):
    params.setdefault("layout", "links")
    return api.post("/api/imports", caller, body=data, params=params, headers={"Content-Type": "text/csv"})


def test_import_job_list_detail_and_results(api, sql_conn):
    admin = api.admin()
    done = post_file(api, admin, LINKS, dispatch_area="lucknow", file_name="shed 4.csv")
    assert done.status_code == 201, done.text
    job = done.json
    assert done.headers["location"] == f"/api/imports/{job['id']}"
    assert (job["rows"], job["verdicts"]["ok"], job["file_name"], job["created_by_username"]) == (
        3,
        3,
        "shed 4.csv",
        admin.username,
    )
    assert_schema(done, "POST", "/api/imports")
    listed = api.get("/api/imports", admin)
    assert [j["id"] for j in listed.json["items"]] == [job["id"]]
    detail = api.get(f"/api/imports/{job['id']}", admin)
    assert detail.json["job"]["id"] == job["id"] and detail.json["problems"] == []
    results = api.get(f"/api/imports/{job['id']}/results.csv", admin)
    assert results.status_code == 200 and results.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(results.text)))
    assert [(r["row_no"], r["qr"], r["verdict"]) for r in rows] == [
        ("2", "API-0001", "ok"),
        ("3", "API-0002", "ok"),
        ("4", "API-0003", "ok"),
    ]
    dry = post_file(api, admin, LINKS, dispatch_area="lucknow", dry_run="true")
    assert dry.json["dry_run"] is True and dry.json["verdicts"]["already_done"] == 3
    assert_error(api.get("/api/imports/999999", admin), 404, "import_not_found")


def test_problem_rows_are_listed_and_results_csv_is_formula_safe(api):
    admin = api.admin()
    data = b"parent_qr,child_qr\nSB00001,=HYPERLINK(1)\nSB00001,GOOD-0001\n"
    job = post_file(api, admin, data, dispatch_area="lucknow").json
    detail = api.get(f"/api/imports/{job['id']}", admin).json
    assert [(p["row_no"], p["verdict"], p["code"]) for p in detail["problems"]] == [
        (2, "error", "invalid_qr"),
        (3, "skipped", "block_failed"),
    ]
    text = api.get(f"/api/imports/{job['id']}/results.csv", admin).text
    assert "'=HYPERLINK(1)" in text  # a spreadsheet shows it as text, never runs it


def test_roles(api):
    biller, dispatcher, admin = api.biller(), api.dispatcher(), api.admin()
    assert_error(post_file(api, dispatcher, LINKS), 403, "forbidden")
    assert_error(post_file(api, biller, LINKS), 403, "import_not_allowed", "layout")
    bills = b"bill_no,parent_qr,capacity\nB-1,SB00001,1\n"
    mine = post_file(api, biller, bills, layout="bills")
    assert mine.status_code == 201, mine.text
    other = post_file(api, admin, bills, layout="bills").json
    assert [j["id"] for j in api.get("/api/imports", biller).json["items"]] == [mine.json["id"]]
    assert_error(api.get(f"/api/imports/{other['id']}", biller), 404, "import_not_found")
    assert api.get(f"/api/imports/{other['id']}", admin).status_code == 200


def test_extraction_rules_over_http(api):
    admin, biller = api.admin(), api.biller()
    created = api.post(
        "/api/extraction-rules", admin, json={"name": "lot_code", "pattern": r"CODE:(?P<qr>\w+)"}, key="r1"
    )
    assert created.status_code == 201, created.text
    assert_error(
        api.post("/api/extraction-rules", admin, json={"name": "bad", "pattern": r"(\d+)"}), 400, "invalid_rule"
    )
    assert_error(
        api.post("/api/extraction-rules", biller, json={"name": "x1", "pattern": "(?P<qr>x)"}), 403, "forbidden"
    )
    changed = api.patch("/api/extraction-rules/lot_code", admin, json={"description": "after CODE:"})
    assert changed.json["description"] == "after CODE:"
    assert_error(api.patch("/api/extraction-rules/nope", admin, json={"description": "x"}), 404, "rule_not_found")
    assert [r["name"] for r in api.get("/api/extraction-rules", biller).json] == ["label_no", "lot_code"]
    data = b"parent_qr,child_qr\nCODE:SB00001 x,CODE:RULE-0001 y\n"
    job = post_file(api, admin, data, rule="lot_code", dispatch_area="lucknow").json
    assert job["verdicts"]["ok"] == 1 and job["rule"] == "lot_code"


def xlsx(rows: list[list]) -> bytes:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def zip_bomb() -> bytes:
    """A workbook-shaped zip whose sheet inflates to 1 GiB (about 1 MB on the wire)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            block = b" " * (1 << 20)
            for _ in range(1024):
                sheet.write(block)
    return out.getvalue()


BAD_FILES = {
    "empty": (b"", {}, 400, "empty_file"),
    "blank lines": (b"\n\n  \n", {}, 400, "empty_file"),
    "header only": (b"parent_qr,child_qr\n", {}, 400, "empty_file"),
    "missing column": (b"parent_qr,kid\nSB00001,C-0001\n", {}, 400, "missing_column"),
    "wrong layout": (LINKS, {"layout": "bags"}, 400, "missing_column"),
    "unknown layout": (LINKS, {"layout": "boxes"}, 400, "validation_error"),
    "pdf": (b"%PDF-1.7\n\x00\x01binary", {}, 400, "unsupported_file"),
    "old xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, {}, 400, "unsupported_file"),
    "a zip that is no workbook": (b"PK\x03\x04" + b"\x00" * 100, {}, 400, "unsupported_file"),
    "latin-1 sent as utf-8": ("parent_qr,child_qr\nSB00001,CAFÉ-01\n".encode("latin-1"), {}, 400, "bad_encoding"),
    "a 10 MB cell": (b"parent_qr,child_qr\nSB00001," + b"A" * (10 << 20) + b"\n", {}, 400, "cell_too_large"),
    "a 10 MB row without a line break": (b"parent_qr,child_qr\n" + b"A," * (5 << 20), {}, 400, "cell_too_large"),
    "bad rule": (LINKS, {"rule": "nope"}, 404, "rule_not_found"),
    "a NUL past the first 8 KiB": (
        b"qr_id,type,dispatch_area\n"
        + b"".join(b"NB-%04d,child,lucknow\n" % i for i in range(600))
        + b"NB-9999,child\x00,lucknow\n",
        {"layout": "bags"},
        400,
        "unsupported_file",
    ),
    "an unknown dispatch_area": (LINKS, {"dispatch_area": "atlantis"}, 400, "unknown_area"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_refused_whole_and_record_nothing(api, sql_conn, name):
    data, params, status, code = BAD_FILES[name]
    admin = api.admin()
    before = (count_rows(sql_conn, "import_job"), count_rows(sql_conn, "bag"), count_events(sql_conn))
    result = post_file(api, admin, data, **{"dispatch_area": "lucknow", **params})
    assert_error(result, status, code)
    assert (count_rows(sql_conn, "import_job"), count_rows(sql_conn, "bag"), count_events(sql_conn)) == before


def test_a_formula_cell_and_an_expanding_workbook_are_refused(api, sql_conn):
    admin = api.admin()
    formula = xlsx([["parent_qr", "child_qr"], ["SB00001", '=CONCAT("A","B")']])
    error = assert_error(post_file(api, admin, formula, dispatch_area="lucknow"), 400, "formula_cell")
    assert "B2" in error["message"]
    bomb = zip_bomb()
    assert len(bomb) < 5 << 20
    error = assert_error(post_file(api, admin, bomb), 400, "unsupported_file")
    assert "expands to" in error["message"]
    assert count_rows(sql_conn, "import_job") == 0


def test_encodings(api, sql_conn):
    admin = api.admin()
    bom = "\ufeffparent_qr,child_qr\nSB00001,BOM-0001\n".encode()
    assert post_file(api, admin, bom, dispatch_area="lucknow").json["verdicts"]["ok"] == 1
    latin = "parent_qr,child_qr,note\nSB00001,LAT-0001,café\n".encode("latin-1")
    done = post_file(api, admin, latin, dispatch_area="lucknow", encoding="latin-1")
    assert done.json["verdicts"]["ok"] == 1, done.text
    semicolons = b"parent_qr;child_qr\nSB00001;SEMI-0001\n"
    assert post_file(api, admin, semicolons, dispatch_area="lucknow").json["verdicts"]["ok"] == 1


def test_one_import_at_a_time_per_process(api, sql_conn):
    from tracetrack_api.handlers import imports as handlers

    admin = api.admin()
    assert handlers._import_slots.acquire(blocking=False)  # as a running import holds it
    try:
        busy = post_file(api, admin, LINKS, dispatch_area="lucknow")
        assert_error(busy, 429, "too_many_imports")
        assert int(busy.headers["retry-after"]) >= 1
        assert count_rows(sql_conn, "import_job") == 0
    finally:
        handlers._import_slots.release()
    assert post_file(api, admin, LINKS, dispatch_area="lucknow").status_code == 201
    assert post_file(api, admin, LINKS, dispatch_area="lucknow").status_code == 201  # the slot came back


def test_a_file_over_the_limit_is_413_before_it_is_read(db, sql_conn):
    small = make_api(db, import_max_bytes=1024)
    admin = small.admin()
    result = post_file(small, admin, b"parent_qr,child_qr\n" + b"SB00001,BIG-0001\n" * 200)
    error = assert_error(result, 413, "file_too_large")
    assert "1024" in error["message"]
    assert count_rows(sql_conn, "import_job") == 0


def test_a_wide_sheet_is_read_to_50_columns_and_big_shared_strings_are_refused():
    """A cell at column XFD made openpyxl yield 16,384 cells for its row (20 s
    for a 147 KB file); shared strings are held whole, so they have their own cap."""
    from tracetrack_db import errors, importfiles

    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["parent_qr", "child_qr"])
    for r in range(2, 502):
        sheet.cell(row=r, column=1, value="SB00001")
        sheet.cell(row=r, column=16384, value="far away")
    out = io.BytesIO()
    book.save(out)
    table = importfiles.read_table(importfiles.spool(out.getvalue()))
    widths = {len(cells) for _, cells in table.rows}
    assert widths == {importfiles.MAX_COLUMNS}
    # the same workbook with 9 MiB of shared strings: refused before openpyxl opens it
    padded = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as src, zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        strings = b"<si><t>a</t></si>" * (9 * 2**20 // 17)
        dst.writestr(
            "xl/sharedStrings.xml",
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + strings + b"</sst>",
        )
    with pytest.raises(errors.UnsupportedFile, match="shared strings"):
        importfiles.read_table(importfiles.spool(padded.getvalue()))


def test_cells_and_parts_beyond_the_budget_are_refused_before_openpyxl_parses():
    """openpyxl parses every cell element (empty ones too, and those past the 50
    columns it hands back) and every style: 1,000,000 cells and 2 MiB per other
    part bound the seconds a small file can cost."""
    from tracetrack_db import errors, importfiles

    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["parent_qr", "child_qr"])
    plain = io.BytesIO()
    book.save(plain)

    def replaced(name: str, data: bytes) -> bytes:
        out = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(plain.getvalue())) as src,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
        ):
            for item in src.infolist():
                dst.writestr(item, data if item.filename == name else src.read(item.filename))
        return out.getvalue()

    empty_cells = b"".join(b'<row r="%d">' % r + b"<c/>" * 50 + b"</row>" for r in range(1, 20_002))
    sheet = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    too_many = replaced("xl/worksheets/sheet1.xml", sheet + empty_cells + b"</sheetData></worksheet>")
    with pytest.raises(errors.UnsupportedFile, match="cells"):
        importfiles.read_table(importfiles.spool(too_many))
    styles = b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + b" " * (3 << 20)
    with pytest.raises(errors.UnsupportedFile, match="largest other part"):
        importfiles.read_table(importfiles.spool(replaced("xl/styles.xml", styles + b"</styleSheet>")))
    assert importfiles.read_table(importfiles.spool(plain.getvalue())).header[:2] == ["parent_qr", "child_qr"]
