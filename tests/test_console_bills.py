"""The console's bill desk (#/bills) and bag lookup (#/lookup) in a real Chromium against the
real server: a bill built from the form and the scanner, completed and its manifest PDF opened;
the error banners changing nothing; a bag's state and timeline; a 360 px phone."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .conftest import require_module
from .console_browser import *  # noqa: F403
from .console_browser import Console

BANNER = "#banner:not([hidden])"


def _admin_api(console: Console) -> Any:
    """POST to the server's API as the demo admin: data the test needs made the way a scanner would make it."""
    token = console.token("admin")
    return lambda path, body: console.api(token, "POST", f"/{path}", body)


def _full_parent(console: Console, qr: str) -> None:
    post = _admin_api(console)
    post("api/scans/parent", {"qr_id": qr, "dispatch_area": "lucknow"})
    children = [f"{qr}-C{i:02}" for i in range(30)]
    post("api/scans/batch", {"parent_qr": qr, "child_qrs": children})
    assert console.query("SELECT status, child_count FROM bag WHERE qr_id = %s", qr) == [("completed", 30)]


def _bill(console: Console, bill_no: str) -> tuple[Any, ...]:
    rows = console.query(
        "SELECT status, linked_parent_count, capacity, completed_at IS NOT NULL FROM bill WHERE bill_no = %s",
        bill_no,
    )
    return rows[0] if rows else ()


def _bill_of(console: Console, qr: str) -> str | None:
    rows = console.query("SELECT b.bill_no FROM bag p LEFT JOIN bill b ON b.id = p.bill_id WHERE p.qr_id = %s", qr)
    return rows[0][0]


def _scan(console: Console, qr: str, expect: str) -> str:
    """Type a QR into the focused scanner input with Enter (as a wedge scanner does); the banner's text."""
    page = console.page
    assert page.evaluate("document.activeElement.matches('input.scan')"), "the scanner input lost the focus"
    page.evaluate("document.getElementById('banner').hidden = true")  # the next banner is this scan's
    page.keyboard.type(qr)
    page.keyboard.press("Enter")
    page.wait_for_selector(BANNER)
    text = page.inner_text("#banner")
    assert expect in text, text
    return text


def _white_share(png: bytes) -> float:
    image = require_module("PIL.Image").open(io.BytesIO(png)).convert("L")
    return sum(image.histogram()[246:]) / (image.width * image.height)


def _until(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Poll a condition that no page event announces (a plug-in's drawing)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _count(console: Console) -> str:
    return console.page.inner_text(".bill-summary .big-number").split(" parents")[0].strip()


def test_a_biller_builds_completes_and_opens_the_manifest_of_a_bill(console: Console, tmp_path: Path):
    page = console.page
    _full_parent(console, "SB00100")
    console.login("biller")
    page.wait_for_selector("ul.bills a.bill-link")
    shown = page.eval_on_selector_all("ul.bills .bill-link strong", "els => els.map(e => e.textContent)")
    assert shown == [r[0] for r in console.query("SELECT bill_no FROM bill ORDER BY id DESC")]

    # the form, by keyboard: Enter in the last field creates it and opens it
    page.click(".new-bill summary")
    page.fill("input[name=bill_no]", "KNP/2026-07")
    page.fill("input[name=capacity]", "2")
    page.fill("input[name=destination]", "Kanpur")
    page.fill("input[name=vehicle_number]", "UP78 CD 4321")
    page.press("input[name=description]", "Enter")
    page.wait_for_url(re.compile(r"#/bills/KNP%2F2026-07$"))
    page.wait_for_selector(".bill-summary h1")
    made = console.query("SELECT capacity, destination, vehicle_number, status FROM bill WHERE bill_no = 'KNP/2026-07'")
    assert made == [(2, "Kanpur", "UP78 CD 4321", "new")]
    assert _count(console) == "0 / 2" and "Kanpur" in page.inner_text(".facts")

    assert "SB00003 added" in _scan(console, "sb00003", "1 / 2 parents")
    page.wait_for_selector(".big-number[data-count='1']")
    assert "already on this bill" in _scan(console, "SB00003", "1 / 2 parents")
    _scan(console, "SB00100", "SB00100 added")
    page.wait_for_selector(".big-number[data-count='2']")
    assert _count(console) == "2 / 2"
    assert "60 kg of 60 kg expected" in page.inner_text(".facts")
    assert page.eval_on_selector_all(".parents li", "els => els.map(e => e.dataset.qr)") == ["SB00003", "SB00100"]
    assert _bill(console, "KNP/2026-07") == ("processing", 2, 2, False)

    page.click("button:has-text('Complete bill')")
    page.wait_for_selector(".bill-summary .badge.completed")
    assert "Bill completed" in page.inner_text("#banner")
    assert _bill(console, "KNP/2026-07") == ("completed", 2, 2, True)
    assert page.is_disabled(".parents li button")  # a completed bill's parents stay
    assert page.evaluate("document.activeElement.matches('input.scan')")  # back to the scanner

    # the manifest: fetched with the header (never a token in a URL), opened in a new tab from a blob:
    with page.expect_response(re.compile(r"manifest\.pdf$")) as fetched, console.context.expect_page() as tab:
        page.click("button:has-text('Manifest PDF')")
    answer = fetched.value
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.request.headers["authorization"].startswith("Bearer ") and "token" not in answer.url
    assert answer.url.endswith("/api/bills/KNP%2F2026-07/manifest.pdf")
    pdf_tab = tab.value
    assert pdf_tab.url.startswith(f"blob:{console.base}/")
    # the tab holds a PDF document, and Chromium's viewer draws it (the page's object-src 'none' does
    # not stop it): the viewer's white sheet fills a good part of the tab once drawn
    assert pdf_tab.evaluate("document.contentType") == "application/pdf"
    assert _until(lambda: _white_share(pdf_tab.screenshot()) > 0.2), "the PDF viewer drew no page"
    pdf_tab.close()
    # the same file by the download link (a phone without tabs)
    with page.expect_download() as download:
        page.click(".manifest a[download]")
    assert download.value.suggested_filename == "manifest-KNP_2026-07.pdf"
    saved = tmp_path / "manifest.pdf"
    download.value.save_as(saved)
    pdf = saved.read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Title (Manifest KNP/2026-07)" in pdf  # this bill's

    # the bill, seen from a parent's lookup: a link back to it
    page.click(".parents a:text('SB00100')")
    page.wait_for_selector(".bag[data-qr='SB00100']")
    page.click(".bag dd a:text('KNP/2026-07')")
    page.wait_for_selector(".bill-summary .badge.completed")


def test_the_bill_desk_errors_change_nothing(console: Console):
    page = console.page
    console.expect_errors("409", "422")  # the refused scans' answers, as the browser logs them
    console.login("biller", "#/bills/DEMO-BILL-2")
    page.wait_for_selector(".bill-summary h1")
    before = _bill(console, "DEMO-BILL-2")
    assert before == ("new", 0, 5, False)

    text = _scan(console, "SB00001", "This parent is on another bill")
    assert "DEMO-BILL-1" in text or "SB00001" in text  # the server's message names it
    assert page.is_visible("#banner.error")
    assert _bill_of(console, "SB00001") == "DEMO-BILL-1" and _bill(console, "DEMO-BILL-2") == before
    _scan(console, "DEMO-01-00", "That is not a parent bag")
    assert _bill(console, "DEMO-BILL-2") == before

    page.click("button:has-text('Complete bill')")
    page.wait_for_selector("#banner.error:has-text('The bill is not full yet')")
    assert _bill(console, "DEMO-BILL-2") == before
    assert page.evaluate("document.activeElement.matches('input.scan')")

    # on and off again: the database follows
    _scan(console, "SB00003", "SB00003 added")
    page.wait_for_selector(".parents li[data-qr='SB00003']")
    assert _bill_of(console, "SB00003") == "DEMO-BILL-2"
    page.click(".parents li[data-qr='SB00003'] button")
    page.wait_for_selector(".parents li.muted")
    assert _bill_of(console, "SB00003") is None and _bill(console, "DEMO-BILL-2")[:2] == ("new", 0)

    # a completed bill refuses scans until it is reopened
    page.click("a.back")
    page.click("a.bill-link:has-text('DEMO-BILL-1')")
    page.wait_for_selector(".bill-summary .badge.completed")
    _scan(console, "SB00003", "This bill is completed: reopen it first")
    assert _bill(console, "DEMO-BILL-1") == ("completed", 2, 2, True)
    page.click("button:has-text('Reopen')")
    page.wait_for_selector(".bill-summary .badge.processing")
    assert _bill(console, "DEMO-BILL-1")[:2] == ("processing", 2)
    _scan(console, "SB00003", "This bill is full")
    assert _bill_of(console, "SB00003") is None


def test_lookup_shows_a_bag_now_and_its_history(console: Console):
    page = console.page
    console.expect_errors("404")  # the unknown and the other area's bag, as the browser logs them
    _admin_api(console)("api/bags", {"qr_id": "SB00200", "type": "parent", "dispatch_area": "indore"})
    console.login("dispatcher", "#/lookup")
    page.wait_for_selector("#view[data-view=lookup] input.scan:focus")
    page.keyboard.type("demo-01-00")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#/lookup/DEMO-01-00$"))
    page.wait_for_selector(".bag[data-qr='DEMO-01-00'] .timeline, .history .timeline")
    facts = page.inner_text(".bag .facts")
    assert "child" in facts and "lucknow" in facts and "SB00001" in facts and "DEMO-BILL-1" in facts
    assert page.query_selector(".bag dd a[href^='#/bills']") is None  # a dispatcher has no bill desk
    # the link event, at the database's time; newest first
    (linked_at,) = console.query(
        "SELECT e.occurred_at FROM event e JOIN bag b ON b.id = e.bag_id WHERE b.qr_id = 'DEMO-01-00' AND kind = 'link'"
    )[0]
    link = page.query_selector(".timeline li[data-kind=link]")
    assert link and "DEMO-01-00 linked into SB00001" in link.inner_text()
    shown_at = datetime.fromisoformat(link.query_selector("time").get_attribute("datetime"))
    assert shown_at == linked_at
    shown = page.eval_on_selector_all(".timeline time", "els => els.map(e => e.dateTime)")
    times = [datetime.fromisoformat(t) for t in shown]
    assert times == sorted(times, reverse=True) and "newest first" in page.inner_text(".history h2")

    page.click(".bag dd a:text('SB00001')")
    page.wait_for_selector(".bag[data-qr='SB00001']")
    children = page.eval_on_selector_all(".children a", "els => els.map(e => e.textContent)")
    truth = console.query("SELECT c.qr_id FROM bag c JOIN bag p ON p.id = c.parent_id WHERE p.qr_id = 'SB00001'")
    assert len(children) == 30 and sorted(children) == sorted(r[0] for r in truth)
    assert "30 / 30" in page.inner_text(".bag .facts")

    # a scan synced from an offline scanner: its device time is shown next to the server's
    device_time = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    op = {"op": "link_child", "client_op_id": "op-1", "device_time": device_time}
    _admin_api(console)(
        "api/scans/sync", {"device_id": "shed-1", "operations": [{**op, "parent_qr": "SB00004", "child_qr": "LATE-01"}]}
    )
    page.fill("input.scan", "LATE-01")
    page.press("input.scan", "Enter")
    page.wait_for_selector(".bag[data-qr='LATE-01'] ~ .history li[data-kind=link]")
    assert "device time" in page.inner_text(".timeline li[data-kind=link]")
    kept = console.query("SELECT device_time FROM event WHERE qr_id = 'LATE-01' AND kind = 'link'")
    assert kept == [(datetime.fromisoformat(device_time),)]

    for qr in ("NOPE-0001", "SB00200"):  # unknown, and another area's bag: the same answer
        shown = page.query_selector(".found > *")  # the previous answer, replaced by this lookup's
        page.fill("input.scan", qr)
        page.press("input.scan", "Enter")
        if shown is not None:  # (CI: the second lookup's "Loading…" came after the first's answer was read)
            page.wait_for_function("el => !el.isConnected", arg=shown)
        page.wait_for_selector(".found .not-found")
        assert page.inner_text(".found") == "No such bag"
        assert "No such bag" in page.inner_text("#banner")
    assert console.query("SELECT dispatch_area FROM bag WHERE qr_id = 'SB00200'") == [("indore",)]


def test_the_bill_list_pages_and_filters(console: Console):
    page = console.page
    post = _admin_api(console)
    for i in range(30):
        post("api/bills", {"bill_no": f"LIST-{i:02}", "capacity": 3})
    console.login("biller")
    page.wait_for_selector("ul.bills a.bill-link")
    shown = lambda: page.eval_on_selector_all("ul.bills .bill-link strong", "els => els.map(e => e.textContent)")  # noqa: E731
    truth = [r[0] for r in console.query("SELECT bill_no FROM bill ORDER BY id DESC")]
    assert len(truth) == 32 and shown() == truth[:25]  # a page, newest first
    page.click("button:has-text('More bills')")
    page.wait_for_function("() => document.querySelectorAll('ul.bills .bill-link').length === 32")
    assert shown() == truth and page.is_hidden("button:has-text('More bills')")
    page.select_option("select[name=status]", "completed")
    page.wait_for_function("() => document.querySelectorAll('ul.bills .bill-link').length === 1")
    assert shown() == ["DEMO-BILL-1"]
    page.select_option("select[name=status]", "")
    page.fill("input[name=q]", "list-1")
    page.press("input[name=q]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('ul.bills .bill-link').length === 10")
    assert shown() == [f"LIST-{i}" for i in range(19, 9, -1)]


def test_bill_and_lookup_fit_a_360_px_phone(console: Console):
    page = console.page
    page.set_viewport_size({"width": 360, "height": 740})
    console.login("admin", "#/bills/DEMO-BILL-1")
    for hash_, ready in (
        ("#/bills/DEMO-BILL-1", ".parents li[data-qr]"),
        ("#/bills", "ul.bills a.bill-link"),
        ("#/lookup/SB00001", ".children a"),
        ("#/lookup/DEMO-01-00", ".timeline li"),
    ):
        console.open(hash_)
        page.wait_for_selector(ready)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, hash_
        small = page.eval_on_selector_all(
            "#view a, #view button, #view input, #view select, #view summary",
            "els => els.filter(e => e.getClientRects().length && e.getBoundingClientRect().height < 44)"
            ".map(e => e.outerHTML.slice(0, 80))",
        )
        assert small == [], (hash_, small)  # every target at least 44 px high
        if hash_ == "#/bills/DEMO-BILL-1":
            console.screenshot("bill-desk", full_page=True)
