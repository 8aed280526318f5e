"""What a review of the console (issue 14) found, each test failing before its fix (95074b2):
the next user of a tab, the manifest's tab, an admin's password reset, a link cut short,
and Undo after a scan whose answer was lost."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from tracetrack_ops.demo import DEMO_PASSWORD

from .console_browser import *  # noqa: F403
from .console_browser import Console


def scan(page: Any, code: str) -> None:
    page.fill("#scan-input", code)
    page.press("#scan-input", "Enter")


def test_logout_forgets_the_open_parent(console: Console):
    """The next user of the tab must not see the last user's parent (here: another area's)."""
    page = console.page
    console.expect_errors("status of 404")
    console.login("admin", "#/scan")
    page.wait_for_function("() => document.querySelectorAll('#scan-area option').length > 1")
    page.select_option("#scan-area", "indore")
    scan(page, "SB90001")
    page.wait_for_selector("#parent-qr:has-text('SB90001')")
    scan(page, "INDORE-SECRET-1")
    page.wait_for_selector("#scan-parent li:has-text('INDORE-SECRET-1')")
    page.click("#logout")
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", "dispatcher")  # area lucknow
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_selector("#scan-input")
    time.sleep(1.5)
    shown = page.inner_text("#scan-parent")
    assert "SB90001" not in shown and "INDORE-SECRET-1" not in shown, shown


def test_the_manifest_tab_gets_no_copy_of_the_token(console: Console):
    """window.open without noopener copies sessionStorage (the token) into the PDF's tab:
    closing the console's tab then leaves a signed-in tab behind."""
    admin = console.token("admin")
    console.api(admin, "POST", "/api/bills", {"bill_no": "REVIEW-1", "capacity": 1})
    page = console.page
    console.login("biller", "#/bills/REVIEW-1")
    page.wait_for_selector("text=Manifest PDF")
    with page.expect_popup() as popup_info:
        page.click("text=Manifest PDF")
    popup = popup_info.value
    popup.wait_for_load_state()
    leaked = popup.evaluate("() => sessionStorage.getItem('tracetrack.token')")
    page.close()  # the biller closes the console; the PDF stays open
    assert leaked is None, "the manifest's tab holds the biller's token"


def test_a_user_whose_password_an_admin_reset_can_change_it_in_the_console(console: Console):
    """An admin's reset sets must_change_password: every call but POST /api/me/password is then 403,
    and the console has no way to make that call."""
    admin = console.token("admin")
    user = console.api(
        admin,
        "POST",
        "/api/users",
        {"username": "newop", "password": "Warehouse-start-2026", "role": "dispatcher", "dispatch_area": "lucknow"},
    )
    console.api(admin, "PATCH", f"/api/users/{user['id']}", {"password": "Reset-by-admin-2026"})
    console.expect_errors("status of 403")
    page = console.page
    console.open()
    page.fill("input[name=username]", "newop")
    page.fill("input[name=password]", "Reset-by-admin-2026")
    page.press("input[name=password]", "Enter")
    page.wait_for_selector("#who:not(:empty)")
    # a form with a new-password field: the only thing this user may do now
    page.wait_for_selector("#view[data-view=password] input[autocomplete=new-password]")
    page.goto(f"{console.base}/console#/scan")
    page.wait_for_selector("#view[data-view=password]")  # not the scan station: it would answer 403 to everything
    page.fill("input[name=current_password]", "Reset-by-admin-2026")
    page.fill("input[name=new_password]", "My-own-choice-2026-x")
    page.press("input[name=new_password]", "Enter")
    page.wait_for_selector("#banner.ok:has-text('Password changed')")
    page.wait_for_selector("#scan-input")  # the dispatcher's home view, signed in with the new token
    assert console.query("SELECT must_change_password FROM app_user WHERE username = 'newop'") == [(False,)]
    assert console.token("newop", "My-own-choice-2026-x")


def test_a_malformed_hash_shows_a_view(console: Console):
    """decodeURIComponent throws on a stray % (a link cut short): the page stays on 'Loading…'."""
    console.expect_errors("URI malformed")
    console.login("dispatcher", "#/scan")
    page = console.page
    page.wait_for_selector("#scan-input")
    page.goto(f"{console.base}/console#/lookup/SB0%", wait_until="load")
    page.reload(wait_until="load")  # a bookmark or a link pasted cut short
    time.sleep(2)
    assert "Loading" not in page.inner_text("main"), page.inner_text("main")
    assert not any("URI malformed" in e for e in console.errors), console.errors


def test_undo_after_a_lost_answer_takes_the_child_out(console: Console):
    """A child scan reaches the server but its answer is lost: the console queues it again,
    and Undo then only drops the queued copy: the screen says 0 / 30, the child stays linked."""
    page = console.page
    console.expect_errors("ERR_CONNECTION_RESET", "Failed to load resource")
    console.login("dispatcher", "#/scan")
    page.wait_for_selector("#scan-input")
    scan(page, "SB55104")
    page.wait_for_selector("#parent-qr:has-text('SB55104')")
    mode = {"now": "pass"}

    def network(route: Any) -> None:
        r = route.request
        if mode["now"] == "pass":
            return route.continue_()
        if mode["now"] == "lose-next" and r.url.endswith("/api/scans/child"):
            keep = ("authorization", "content-type", "idempotency-key")
            headers = {k: v for k, v in r.headers.items() if k.lower() in keep}
            urllib.request.urlopen(urllib.request.Request(r.url, r.post_data_buffer, headers, method="POST")).read()
            mode["now"] = "down"  # the link is made, the answer and what follows are lost
        return route.abort("connectionreset")

    console.context.route("**/api/**", network)
    mode["now"] = "lose-next"
    scan(page, "LOST-004")
    page.wait_for_selector("#net:has-text('1 queued')")
    page.click("text=Undo last scan")
    page.wait_for_selector("#banner:has-text('Undo queued')")  # not forgotten: taken out by an unlink
    page.wait_for_selector("#parent-count:has-text('0 / 30')")
    page.wait_for_selector("#net:has-text('2 queued')")
    mode["now"] = "pass"  # the network is back: the link (replayed) and the unlink are sent
    page.wait_for_function("() => document.getElementById('net').textContent === ''", timeout=30_000)
    page.wait_for_selector("#parent-count:has-text('0 / 30')")
    linked = console.query("select parent_id from bag where qr_id = 'LOST-004'")
    assert linked == [(None,)]  # linked once (before the answer was lost), then taken out
    assert console.query("select count(*) from event where qr_id = 'LOST-004' and kind = 'link'") == [(1,)]
