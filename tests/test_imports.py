"""Bulk import through the library (as the service role): every layout, the
extraction rules, dry run against commit, a failing block among passing
ones, re-import, all_or_nothing, and concurrent import and scanning."""

from __future__ import annotations

import contextlib
import io
import threading

import psycopg
import pytest

from tracetrack_db import errors, extraction, imports, scans

from .api_helpers import count_events, count_rows, sql_value
from .factories import check_counters


def rows_of(db, job) -> dict[int, tuple]:
    """{row_no: (verdict, code)} of a job, read back from its results CSV."""
    import csv

    text = b"".join(imports.results_csv(db, job)).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["row_no", "input", "qr", "block", "verdict", "code", "message"]
    return {int(r["row_no"]): (r["verdict"], r["code"] or None) for r in reader}


def links_csv(pairs: list[tuple[str, str]]) -> bytes:
    return ("parent_qr,child_qr\n" + "".join(f"{p},{c}\n" for p, c in pairs)).encode()


def test_links_import_applies_each_block_and_records_the_job(db, sql_conn):
    pairs = [(f"SB{p:05d}", f"IMP-{p}-{c}") for p in (1, 2) for c in range(3)]
    job = imports.run_import(db, links_csv(pairs), layout="links", dispatch_area="lucknow", file_name="a.csv")
    assert (job.status, job.rows, job.blocks, job.failed_blocks) == ("done", 6, 2, 0)
    assert job.verdicts == {"ok": 6, "already_done": 0, "error": 0, "skipped": 0}
    assert (job.file_name, job.layout, job.file_format, len(job.file_sha256)) == ("a.csv", "links", "csv", 64)
    assert sql_value(sql_conn, "SELECT child_count FROM bag WHERE qr_id = 'SB00002'") == 3
    # events say they came from this import
    assert count_rows(sql_conn, "event", "kind = 'link' AND (details->>'import_id')::bigint = %s", (job.id,)) == 6
    assert count_rows(sql_conn, "event", "kind = 'parent_scan' AND details->>'created' = 'true'") == 2
    check_counters(sql_conn)


def test_reimport_changes_nothing_and_says_already_done(db, sql_conn):
    data = links_csv([("SB00001", "IMP-A1"), ("SB00001", "IMP-A2"), ("SB00002", "IMP-B1")])
    imports.run_import(db, data, layout="links", dispatch_area="lucknow")
    events = count_events(sql_conn)
    again = imports.run_import(db, data, layout="links", dispatch_area="lucknow")
    assert again.verdicts == {"ok": 0, "already_done": 3, "error": 0, "skipped": 0}
    assert set(rows_of(db, again).values()) == {("already_done", "already_linked")}
    assert count_events(sql_conn) == events


def test_a_failing_block_changes_nothing_and_the_others_apply(db, sql_conn):
    scans.open_parent(db, "SB00009", dispatch_area="lucknow")
    scans.link_child(db, "SB00009", "TAKEN-1")
    data = links_csv([("SB00001", "FINE-1"), ("SB00002", "NEW-2"), ("SB00002", "TAKEN-1"), ("SB00003", "FINE-3")])
    job = imports.run_import(db, data, layout="links", dispatch_area="lucknow")
    got = rows_of(db, job)
    assert got == {
        2: ("ok", None),
        3: ("skipped", "block_failed"),
        4: ("error", "child_in_other_parent"),
        5: ("ok", None),
    }
    assert (job.blocks, job.failed_blocks) == (3, 1)
    # the failed block's parent was new: it was not created, nor NEW-2
    assert count_rows(sql_conn, "bag", "qr_id IN ('SB00002', 'NEW-2')") == 0
    assert sql_value(sql_conn, "SELECT parent_id IS NOT NULL FROM bag WHERE qr_id = 'FINE-3'") is True
    check_counters(sql_conn)


def test_all_or_nothing_applies_nothing_when_a_row_fails(db, sql_conn):
    data = links_csv([("SB00001", "AON-1"), ("SB00002", "AON-2"), ("SB00002", "SB00001")])
    events = count_events(sql_conn)
    job = imports.run_import(db, data, layout="links", dispatch_area="lucknow", all_or_nothing=True)
    assert rows_of(db, job) == {
        2: ("skipped", "import_failed"),
        3: ("skipped", "block_failed"),
        4: ("error", "not_a_child"),
    }
    assert count_rows(sql_conn, "bag") == 0 and count_events(sql_conn) == events
    assert "nothing applied" in job.message


def test_dry_run_gives_the_commit_verdicts_and_changes_nothing(db, sql_conn):
    scans.open_parent(db, "SB00005", dispatch_area="lucknow")
    scans.link_children(db, "SB00005", [f"FULL-{i:02d}" for i in range(29)])
    data = links_csv(
        [("SB00005", "FULL-29"), ("SB00005", "FULL-30")]  # one place left: the second is parent_full
        + [("SB00006", "DRY-1"), ("SB00006", "DRY-1"), ("XB-NOT-PARENT", "DRY-2")]
        + [("SB00007", "DRY-3")]
    )
    before = (count_rows(sql_conn, "bag"), count_events(sql_conn))
    dry = imports.run_import(db, data, layout="links", dispatch_area="lucknow", dry_run=True)
    assert (count_rows(sql_conn, "bag"), count_events(sql_conn)) == before
    assert dry.dry_run and count_rows(sql_conn, "import_row", "job_id = %s", (dry.id,)) == 6
    real = imports.run_import(db, data, layout="links", dispatch_area="lucknow")
    assert rows_of(db, dry) == rows_of(db, real)
    assert rows_of(db, real) == {
        2: ("skipped", "block_failed"),
        3: ("error", "parent_full"),
        4: ("ok", None),
        5: ("already_done", "duplicate_row"),
        6: ("error", "not_a_parent"),
        7: ("ok", None),
    }
    check_counters(sql_conn)


def test_an_import_that_stops_midway_says_so_and_keeps_what_it_applied(db, sql_conn, monkeypatch):
    """Past its checks an import can still meet a failing database; here a
    constraint the owner adds refuses the results of row 20. The chunks before
    are committed and stay; the job is 'failed', with the error and their rows."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 6)  # two blocks of three rows a chunk
    sql_conn.execute("ALTER TABLE import_row ADD CONSTRAINT not_row_20 CHECK (row_no <> 20)")
    pairs = [(f"SB{p:05d}", f"STOP-{p}-{c}") for p in range(1, 11) for c in range(3)]
    with pytest.raises(psycopg.errors.CheckViolation):  # not the client's doing: a 500 through the API
        imports.run_import(db, links_csv(pairs), layout="links", dispatch_area="lucknow", workers=1)
    status, rows, message = sql_conn.execute("SELECT status, rows, message FROM import_job").fetchone()
    assert status == "failed" and "not_row_20" in message
    assert rows == count_rows(sql_conn, "import_row") == 18  # rows 2-19: three chunks
    assert count_rows(sql_conn, "event", "kind = 'link'") == 18
    check_counters(sql_conn)


def test_codes_a_scan_would_give(db, sql_conn):
    scans.open_parent(db, "SB00001", dispatch_area="indore")
    scans.open_parent(db, "SB00002", dispatch_area="lucknow")
    data = links_csv([("SB00001", "AREA-1"), ("SB00003", "bad qr!"), ("SB00004", "SB00002")])
    job = imports.run_import(db, data, layout="links", dispatch_area="lucknow")
    assert rows_of(db, job) == {
        2: ("error", "wrong_area"),
        3: ("error", "invalid_qr"),
        4: ("error", "not_a_child"),
    }
    no_area = imports.run_import(db, links_csv([("SB00008", "NOAREA-1")]), layout="links")
    assert rows_of(db, no_area) == {2: ("error", "dispatch_area_required")}


def test_blocks_layout_with_an_extraction_rule(db, sql_conn):
    labels = [
        "LABEL NO.0016586 LOT NO.:A12",
        "LABEL NO.0016587 LOT NO.:A12",
        "LABEL NO.SB00010",
        "LABEL NO.0016588",
        "LABEL NO.M444-00001",
        "LOT NO.:A12",
        "LABEL NO.0016589",
    ]
    data = ("label\n" + "\n".join(labels) + "\n").encode()
    job = imports.run_import(db, data, layout="blocks", rule="label_no", dispatch_area="lucknow")
    assert (job.rule, job.rule_pattern) == ("label_no", extraction.get_rule(db, "label_no").pattern)
    assert rows_of(db, job) == {
        2: ("ok", None),
        3: ("ok", None),
        4: ("ok", "created"),
        5: ("ok", None),
        6: ("ok", "created"),
        7: ("error", "label_unmatched"),
        8: ("error", "no_parent"),
    }
    children = sql_conn.execute(
        "SELECT c.qr_id, p.qr_id FROM bag c JOIN bag p ON p.id = c.parent_id ORDER BY c.qr_id"
    ).fetchall()
    assert children == [("0016586", "SB00010"), ("0016587", "SB00010"), ("0016588", "M444-00001")]


def test_bills_layout_creates_bills_and_adds_parents(db, sql_conn):
    for n in (1, 2, 3):
        scans.open_parent(db, f"SB0000{n}", dispatch_area="lucknow")
        scans.link_child(db, f"SB0000{n}", f"BILLED-{n}")
    scans.open_parent(db, "SB00004", dispatch_area="lucknow")  # empty
    data = (
        b"bill_no,parent_qr,capacity,destination,vehicle_number,description\n"
        b"INV/1,SB00001,2,Delhi,UP32 AB 1,rice\n"
        b"inv/1,SB00002,,,,\n"
        b"INV-2,SB00003,1,,,\n"
        b"INV-3,SB00004,5,,,\n"
        b"INV-4,SB00001,5,,,\n"
        b"INV-5,SB00099,5,,,\n"
        b"INV-6,SB00002,,,,\n"
    )
    job = imports.run_import(db, data, layout="bills")
    assert rows_of(db, job) == {
        2: ("ok", None),
        3: ("ok", None),
        4: ("ok", None),
        5: ("error", "parent_empty"),
        6: ("error", "parent_on_other_bill"),
        7: ("error", "bag_not_found"),
        8: ("error", "parent_on_other_bill"),
    }
    bill = sql_conn.execute(
        "SELECT bill_no, capacity, destination, vehicle_number, description, linked_parent_count, "
        "total_child_count, status FROM bill WHERE lower(bill_no) = 'inv/1'"
    ).fetchone()
    assert bill == ("INV/1", 2, "Delhi", "UP32 AB 1", "rice", 2, 2, "processing")
    assert count_rows(sql_conn, "bill", "bill_no = 'INV-3'") == 0  # its block failed: not created
    again = imports.run_import(db, data, layout="bills")
    assert again.verdicts["ok"] == 0 and again.verdicts["already_done"] == 3
    check_counters(sql_conn)


def test_bags_layout(db, sql_conn):
    data = (
        b"qr_id,type,dispatch_area\n"
        b"SB00020,parent,indore\n"
        b"BAG-0001,child,indore\n"
        b"BAG-0001,child,indore\n"
        b"BAG-0001,parent,indore\n"
        b"XX00,parent,indore\n"
        b"BAG-0002,child,atlantis\n"
        b"BAG-0003,box,indore\n"
    )
    job = imports.run_import(db, data, layout="bags")
    assert rows_of(db, job) == {
        2: ("ok", None),
        3: ("ok", None),
        4: ("already_done", "duplicate_row"),
        5: ("error", "qr_taken"),
        6: ("error", "not_a_parent"),
        7: ("error", "unknown_area"),
        8: ("error", "validation_error"),
    }
    assert sql_conn.execute("SELECT type, dispatch_area FROM bag WHERE qr_id = 'SB00020'").fetchone() == (
        "parent",
        "indore",
    )
    assert count_rows(sql_conn, "event", "kind = 'bag_created' AND details ? 'import_id'") == 2


def test_xlsx_file(db, sql_conn):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Parent_QR", "child_qr", "note"])
    sheet.append(["SB00001", "XL-0001", "first"])
    sheet.append(["sb00001", 16586, None])  # a code typed as a number, a parent in lower case
    out = io.BytesIO()
    book.save(out)
    job = imports.run_import(db, out.getvalue(), layout="links", dispatch_area="lucknow")
    assert (job.file_format, job.verdicts["ok"]) == ("xlsx", 2)
    assert sql_value(sql_conn, "SELECT child_count FROM bag WHERE qr_id = 'SB00001'") == 2
    assert count_rows(sql_conn, "bag", "qr_id = '16586'") == 1


def test_extraction_rules_are_checked(db):
    with pytest.raises(errors.InvalidRule, match="named group qr"):
        extraction.add_rule(db, "no_group", r"LABEL (\d+)")
    with pytest.raises(errors.InvalidRule, match="missing \\)"):
        extraction.add_rule(db, "broken", r"(?P<qr>\d+")
    # what RE2 cannot run in linear time is refused (Python's re would backtrack)
    for pattern in (r"(?<=LOT)(?P<qr>\d+)", r"(\w)\1(?P<qr>x)", r"(?>LABEL )(?P<qr>\d+)", r"(?P<qr>x)(?(qr)a|b)"):
        with pytest.raises(errors.InvalidRule, match="RE2"):
            extraction.add_rule(db, "unsafe", pattern)
    with pytest.raises(errors.InvalidRule, match="empty"):
        extraction.add_rule(db, "empty", r"(?P<qr>\d*)")
    rule = extraction.add_rule(db, "lot_code", r"CODE:(?P<qr>[A-Z0-9-]+)", "code after CODE:")
    assert [r.name for r in extraction.list_rules(db)] == ["label_no", "lot_code"]
    with pytest.raises(errors.RuleExists):
        extraction.add_rule(db, "lot_code", r"(?P<qr>X\d+)")
    # patterns that made Python's re take seconds on one cell are plain to RE2
    slow = extraction.add_rule(db, "nested", r"\d*\d*\d*(?P<qr>Z)")
    assert extraction.extract(extraction.compiled(slow.pattern), "1" * 1000) is None
    assert extraction.extract(extraction.compiled(slow.pattern), "1" * 998 + "Z") == "Z"
    # RE2's \w \d \s are ASCII; a rule means what Python means, on NFKC-normalised text
    label_no = extraction.compiled(extraction.get_rule(db, "label_no").pattern)
    assert extraction.extract(label_no, "LABEL\xa0NO.\u20020016586 LOT") == "0016586"  # no-break, en spaces
    word = extraction.compiled(r"(?P<qr>\w+-\d+)")
    assert extraction.extract(word, "LOT ÄB12-0042") == "ÄB12-0042"  # not B12-0042: invalid_qr, not a wrong QR
    assert extraction.extract(extraction.compiled(r"(?P<qr>\d+)"), "LOT １２３") == "123"
    with pytest.raises(errors.InvalidRule, match="counted repeat"):
        extraction.add_rule(db, "long_count", r"(?P<qr>[ab]*a[ab]{60}c)")
    changed = extraction.change_rule(db, "lot_code", pattern=r"KODE:(?P<qr>[A-Z0-9-]+)")
    assert (changed.id, changed.pattern) == (rule.id, r"KODE:(?P<qr>[A-Z0-9-]+)")
    with pytest.raises(errors.RuleNotFound):
        extraction.change_rule(db, "nope", description="x")
    with pytest.raises(errors.RuleNotFound):
        imports.run_import(db, links_csv([("SB00001", "R-1")]), layout="links", rule="nope")


def test_two_imports_sharing_new_parents_in_opposite_orders_do_not_deadlock(db, sql_conn, monkeypatch):
    """Each file names 40 new parents the other names too, in reverse order. In
    file order the two chunk transactions took their parents' locks in opposite
    orders and deadlocked once per shared parent (one block lost as `conflict`
    each time, a second of deadlock_timeout apiece); in key order they queue."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 60)  # several parents a chunk
    shared = [f"SB{n:05d}" for n in range(1, 41)]
    first = links_csv([(p, f"DL-A-{p}-{c}") for p in shared for c in range(2)])
    second = links_csv([(p, f"DL-B-{p}-{c}") for p in reversed(shared) for c in range(2)])
    jobs: list = []
    failures: list[BaseException] = []

    def run(data: bytes) -> None:
        try:
            jobs.append(imports.run_import(db, data, layout="links", dispatch_area="lucknow", workers=1))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(data,)) for data in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    codes = [rows_of(db, job) for job in jobs]
    assert all(code != "conflict" for rows in codes for _, code in rows.values()), codes
    assert sorted(job.verdicts["ok"] for job in jobs) == [80, 80]
    assert sql_value(sql_conn, "SELECT count(*) FROM bag WHERE type = 'parent'") == 40
    check_counters(sql_conn)


def test_concurrent_import_and_scanning_keep_the_invariants(db, sql_conn):
    """An import and dispatchers scanning the same parents and children at
    once: whatever wins, no parent over capacity, no child in two parents,
    counters equal to the real counts, and every import row has one verdict."""
    parents = [f"SB{n:05d}" for n in range(1, 21)]
    for p in parents:
        scans.open_parent(db, p, dispatch_area="lucknow")
    pairs = [(p, f"RACE-{i:03d}-{j:02d}") for i, p in enumerate(parents) for j in range(30)]
    errors_seen: list[BaseException] = []

    def scanner(offset: int) -> None:
        try:
            for i, _p in enumerate(parents):
                # children of this parent and, crossing over, of the next one
                for j in range(offset, 30, 3):
                    target = parents[(i + offset) % len(parents)]
                    with contextlib.suppress(errors.Conflict, errors.WrongBagType):
                        scans.link_child(db, target, f"RACE-{i:03d}-{j:02d}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors_seen.append(exc)

    threads = [threading.Thread(target=scanner, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    job = imports.run_import(db, links_csv(pairs), layout="links", dispatch_area="lucknow")
    for t in threads:
        t.join()
    assert errors_seen == []
    got = rows_of(db, job)
    assert len(got) == len(pairs) and sum(job.verdicts.values()) == len(pairs)
    check_counters(sql_conn)
    assert sql_value(sql_conn, "SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL") == 0
