"""The console's dashboard (#/dashboard) in a real Chromium against the real
server: its totals and charts are GET /api/dashboard/analytics's, which are the
database's; 24 hourly bars labelled in the site's zone; a dispatcher sees their
area only; it refreshes itself without a reload; it fits a 360 px phone."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .console_browser import *  # noqa: F403
from .console_browser import Console

HOURLY = "svg.hourly rect[data-hour]"
SCANS = "('parent_scan', 'link', 'unlink')"  # the events the dashboard counts as scans
SCAN_TIME = "least(device_time, occurred_at)"  # an event counts in the hour it was scanned
WAIT = 45_000  # ms: views refreshed every second, the answer cached 5 s, the page reading every 15 s
ZONE = "Asia/Kolkata"  # +05:30: an hour of the site is not an hour of UTC (nor of the browser)


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> None:
    """The site's zone for the server the console fixture starts after this one."""
    monkeypatch.setenv("TRACETRACK_TIMEZONE", ZONE)


@pytest.fixture
def within_one_hour() -> None:
    """Compares figures of "this hour" taken a few seconds apart: a test that
    would cross the start of an hour (in UTC or the site's +05:30, so every
    half hour) waits for it to pass first (rarely, and at most 100 s)."""
    left = 1800 - time.time() % 1800
    if left < 100:
        time.sleep(left + 1)


def _scan(console: Console, token: str, parent: str, children: list[str], area: str = "lucknow") -> None:
    console.api(token, "POST", "/api/scans/parent", {"qr_id": parent, "dispatch_area": area})
    if children:
        answer = console.api(token, "POST", "/api/scans/batch", {"parent_qr": parent, "child_qrs": children})
        assert {i["result"] for i in answer["items"]} == {"linked"}


def _sync_earlier_hours(console: Console, token: str) -> None:
    """A scanner that was offline: its scans of the last 9 hours, synced now, count in the hours they were scanned."""
    now = datetime.now(UTC)
    ops: list[dict[str, Any]] = []
    for hours_ago, links in zip(range(9, 0, -1), (3, 5, 8, 6, 9, 4, 7, 2, 5), strict=True):
        at = (now - timedelta(hours=hours_ago)).isoformat()
        parent = f"SB091{hours_ago:02}"
        ops.append({"op": "open_parent", "qr_id": parent, "device_time": at})
        link = {"op": "link_child", "parent_qr": parent, "device_time": at}
        ops += [{**link, "child_qr": f"OFF-{hours_ago}-{n}"} for n in range(links)]
    for n, op in enumerate(ops):
        op["client_op_id"] = f"op-{n}"
    answer = console.api(token, "POST", "/api/scans/sync", {"device_id": "shed-pc-2", "operations": ops})
    assert {v["verdict"] for v in answer["results"]} == {"ok"}, answer


def _scans_since(console: Console, start: str, end: str | None = None, area: str | None = None) -> int:
    """The database's count of scans between two of the answer's times (ISO, with offsets)."""
    sql = f"SELECT count(*) FROM event WHERE kind IN {SCANS} AND {SCAN_TIME} >= %s::timestamptz"
    params: list[Any] = [start]
    if end:
        sql += f" AND {SCAN_TIME} < %s::timestamptz"
        params.append(end)
    if area:
        sql += " AND dispatch_area = %s"
        params.append(area)
    return int(console.query(sql, *params)[0][0])


def _today_start(hourly: list[dict]) -> str:
    """The site's midnight, from the answer's last hour (its offset is the site's)."""
    hour = datetime.fromisoformat(hourly[-1]["hour"])
    return hour.replace(hour=0).isoformat()


def _totals(console: Console) -> dict[str, int]:
    shown = console.page.eval_on_selector_all(
        "[data-total]", "els => Object.fromEntries(els.map(e => [e.dataset.total, e.textContent]))"
    )
    return {key: int(value) for key, value in shown.items()}


def _wait_for_today(console: Console, expected: int) -> None:
    console.page.wait_for_function(
        "n => document.querySelector('[data-total=today]')?.textContent === String(n)", arg=expected, timeout=WAIT
    )


def _distinct_colours_and_blue(png: bytes, box: dict[str, float]) -> tuple[int, int, int]:
    """Distinct colours of the whole picture, non-white pixels and bar-blue pixels in `box`."""
    from PIL import Image  # fpdf2's dependency: installed with tracetrack

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = len(image.getcolors(maxcolors=1 << 20) or [])
    area = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
    data = area.tobytes()
    pixels = [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]
    inked = sum(1 for p in pixels if p != (255, 255, 255))
    blue = sum(1 for r, g, b in pixels if b > 180 and r < 80 and g < 120)  # the hourly bars' #1d4ed8
    return colours, inked, blue


def test_the_dashboard_draws_the_answer_and_the_answer_is_the_database(
    within_one_hour: None, kolkata: None, console: Console
):
    page = console.page
    token = console.token("admin")
    _scan(console, token, "SB09001", [f"DASH-{n:02}" for n in range(12)])
    _scan(console, token, "SB09002", [f"DASH-{n:02}" for n in range(12, 19)])
    _sync_earlier_hours(console, console.token("dispatcher"))
    page.set_viewport_size({"width": 1100, "height": 900})  # the README's picture: a desk's screen
    console.login("admin", "#/dashboard")
    page.wait_for_selector(HOURLY, state="attached")  # a bar of 0 scans is 0 px high
    hour_shown = page.eval_on_selector_all(HOURLY, "rs => rs[rs.length - 1].dataset.hour")
    today = _scans_since(console, _today_start([{"hour": hour_shown}]))
    _wait_for_today(console, today)  # the views have been refreshed since the scans above

    answer = console.api(token, "GET", "/api/dashboard/analytics")
    assert answer["time_zone"] == ZONE
    hourly = answer["scans"]["hourly"]
    assert len(hourly) == 24
    # the answer is the database's
    now_hour = hourly[-1]["hour"]
    next_hour = (datetime.fromisoformat(now_hour) + timedelta(hours=1)).isoformat()
    this_hour = _scans_since(console, now_hour, next_hour)
    assert this_hour >= 2 + 19 and hourly[-1]["scans"] == this_hour == answer["scans"]["last_hour"]
    for bucket in hourly:  # each hour of the site, the synced ones at their scan time
        end = (datetime.fromisoformat(bucket["hour"]) + timedelta(hours=1)).isoformat()
        assert bucket["scans"] == _scans_since(console, bucket["hour"], end), bucket
    assert sum(1 for b in hourly if b["scans"]) >= 10
    assert answer["scans"]["today"] == today == _scans_since(console, _today_start(hourly))
    bags = dict(console.query("SELECT type, count(*) FROM bag GROUP BY type"))
    assert answer["bags"]["by_type"] == bags
    unlinked = console.query("SELECT count(*) FROM bag WHERE type = 'child' AND parent_id IS NULL")[0][0]
    billed = console.query("SELECT count(*) FROM bag WHERE type = 'parent' AND bill_id IS NOT NULL")[0][0]
    assert (answer["bags"]["unlinked_children"], answer["bills"]["parents_billed"]) == (unlinked, billed)

    # the page is the answer: every total, 24 bars in order, each bar's title its exact value
    assert _totals(console) == {
        "bags": answer["bags"]["total"],
        "parents": answer["bags"]["by_type"]["parent"],
        "children": answer["bags"]["by_type"]["child"],
        "unlinked": answer["bags"]["unlinked_children"],
        "today": answer["scans"]["today"],
        "hour": answer["scans"]["last_hour"],
        "billed": answer["bills"]["parents_billed"],
    }
    bars = page.eval_on_selector_all(
        HOURLY,
        """rs => rs.map(r => ({hour: r.dataset.hour, scans: +r.dataset.scans, height: +r.getAttribute('height'),
                               title: r.querySelector('title').textContent,
                               label: r.parentNode.querySelector('text.tick').textContent}))""",
    )
    assert [b["hour"] for b in bars] == [h["hour"] for h in hourly]
    assert [b["scans"] for b in bars] == [h["scans"] for h in hourly]
    for bar, bucket in zip(bars, hourly, strict=True):
        local = datetime.fromisoformat(bucket["hour"])  # already at the site's offset
        assert bar["label"] == local.strftime("%H")  # labelled in the site's zone, not the browser's
        later = (local + timedelta(hours=1)).strftime("%H")
        assert bar["title"] == f"{local:%H}:00–{later}:00: {bucket['scans']} scan{'' if bucket['scans'] == 1 else 's'}"
        assert (bar["height"] > 0) == (bucket["scans"] > 0)
    assert bars[-1]["height"] > 0 and bars[-1]["title"].endswith(f": {this_hour} scans")

    # the other charts: each an <svg role=img> with its summary, each bar titled with its value
    charts = page.eval_on_selector_all(
        "svg.chart",
        """ss => ss.map(s => ({kind: s.classList[1], role: s.getAttribute('role'), label: s.getAttribute('aria-label'),
                             title: s.querySelector(':scope > title').textContent, viewBox: s.getAttribute('viewBox'),
                             bars: [...s.querySelectorAll('rect.bar')].map(r => r.firstChild.textContent)}))""",
    )
    assert [c["kind"] for c in charts] == ["hourly", "areas", "statuses", "bills", "users"]
    assert all(c["role"] == "img" and c["label"] == c["title"] and c["viewBox"].startswith("0 0 ") for c in charts)
    by_kind = {c["kind"]: c for c in charts}
    area = answer["bags"]["by_area"]["lucknow"]
    assert by_kind["areas"]["bars"] == [f"lucknow: {area['parent']} parents", f"lucknow: {area['child']} children"]
    bills = dict(console.query("SELECT status, count(*) FROM bill GROUP BY status"))
    assert answer["bills"]["by_status"] == bills
    assert sorted(by_kind["bills"]["bars"]) == sorted(
        f"{s.replace('_', ' ')}: {n} bill{'' if n == 1 else 's'}" for s, n in bills.items()
    )
    statuses = console.query("SELECT type, status, count(*) FROM bag GROUP BY type, status ORDER BY type DESC, status")
    plural = {"parent": "parents", "child": "children"}
    assert by_kind["statuses"]["bars"] == [f"{plural[t]}: {s.replace('_', ' ')}: {n}" for t, s, n in statuses]
    users = [f"{u['username']} ({u['role']}): {u['events_24h']} in 24 h" for u in answer["users"]]
    assert by_kind["users"]["bars"] == users
    assert {u["username"] for u in answer["users"]} == {"admin", "dispatcher"}
    recent = page.eval_on_selector_all(".recent li", "ls => ls.map(l => l.textContent)")
    assert len(recent) == len(answer["recent_scans"]) == 20
    for line, scan in zip(recent, answer["recent_scans"], strict=True):
        what = f"{scan['qr_id']} → {scan['parent_qr']}" if scan["kind"] == "link" else f"parent {scan['qr_id']}"
        assert line.startswith(datetime.fromisoformat(scan["occurred_at"]).strftime("%H:%M")) and line.endswith(what)
        assert scan["username"] in line
    assert "Figures as of" in page.inner_text(".asof") and "refreshes on a schedule" in page.inner_text(".asof")

    # the README's picture: not blank, the chart drawn
    page.evaluate("window.scrollTo(0, 0)")
    png = console.screenshot("dashboard")
    box = page.eval_on_selector("svg.hourly", "s => s.getBoundingClientRect().toJSON()")
    colours, inked, blue = _distinct_colours_and_blue(png, box)
    assert colours > 20 and inked > 500 and blue > 100, (colours, inked, blue)


def test_a_dispatcher_sees_their_area_only(within_one_hour: None, console: Console):
    page = console.page
    token = console.token("admin")
    console.api(token, "POST", "/api/areas", {"name": "kanpur"})
    _scan(console, token, "SB09100", ["KANPUR-1", "KANPUR-2"], area="kanpur")
    console.login("admin", "#/dashboard")
    # the admin's dashboard has both areas once the views hold the new one
    page.wait_for_selector("svg.areas g.row[data-label=kanpur]", timeout=WAIT)
    assert "all areas" in page.inner_text("#view h1")
    page.click("#logout")
    page.wait_for_selector("form.login")

    console.login("dispatcher", "#/dashboard")
    page.wait_for_selector("svg.areas g.row")
    assert page.inner_text("#view h1") == "Dashboard · lucknow"
    assert page.eval_on_selector_all("svg.areas g.row", "gs => gs.map(g => g.dataset.label)") == ["lucknow"]
    lucknow = console.query("SELECT count(*) FROM bag WHERE dispatch_area = 'lucknow'")[0][0]
    everywhere = console.query("SELECT count(*) FROM bag")[0][0]
    totals = _totals(console)
    assert totals["bags"] == lucknow < everywhere
    hour_start = page.eval_on_selector_all(HOURLY, "rs => rs[rs.length - 1].dataset.hour")
    assert totals["hour"] == _scans_since(console, hour_start, area="lucknow") < _scans_since(console, hour_start)
    recent = page.inner_text(".recent")
    assert "SB09100" not in recent and "KANPUR" not in recent


def test_the_dashboard_refreshes_itself(console: Console):
    page = console.page
    token = console.token("admin")
    console.login("admin", "#/dashboard")
    page.wait_for_selector(HOURLY, state="attached")
    hour_before = page.eval_on_selector_all(HOURLY, "rs => rs[rs.length - 1].dataset.hour")
    # the views hold the demo's scans first (a page opened before the refresher's first
    # round showed 0, and the next figure counted the demo's scans with the new one)
    _wait_for_today(console, _scans_since(console, _today_start([{"hour": hour_before}])))
    before = _totals(console)
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
    console.api(token, "POST", "/api/scans/child", {"parent_qr": "SB00004", "child_qr": "DASH-LIVE-1"})
    page.wait_for_function(
        "n => document.querySelector('[data-total=today]').textContent !== String(n)", arg=before["today"], timeout=WAIT
    )
    after = _totals(console)
    assert page.evaluate("window.sameDocument") is True
    assert after["today"] == before["today"] + 1
    if page.eval_on_selector_all(HOURLY, "rs => rs[rs.length - 1].dataset.hour") == hour_before:
        assert after["hour"] == before["hour"] + 1  # (unless a new hour began meanwhile)
    assert after["children"] == before["children"] + 1 and after["bags"] == before["bags"] + 1
    assert "DASH-LIVE-1 → SB00004" in page.inner_text(".recent li:first-child")
    bars = page.eval_on_selector_all(HOURLY, "rs => rs.map(r => +r.dataset.scans)")
    assert len(bars) == 24 and bars[-1] == after["hour"]


def test_the_dashboard_fits_a_360_px_phone(console: Console):
    page = console.page
    page.set_viewport_size({"width": 360, "height": 740})
    console.login("admin", "#/dashboard")
    page.wait_for_selector("svg.users")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    boxes = page.eval_on_selector_all("svg.chart", "ss => ss.map(s => s.getBoundingClientRect().toJSON())")
    assert len(boxes) == 5 and all(b["left"] >= 0 and b["right"] <= 360 and b["width"] > 250 for b in boxes)
    assert page.eval_on_selector_all(HOURLY, "rs => rs.length") == 24
    # all 24 hour labels readable: none overlaps another
    ticks = page.eval_on_selector_all("svg.hourly text.tick", "ts => ts.map(t => t.getBoundingClientRect().toJSON())")
    assert len(ticks) == 24
    for n, a in enumerate(ticks):
        for b in ticks[n + 1 :]:
            side_by_side = a["right"] <= b["left"] or b["right"] <= a["left"]
            assert side_by_side or a["bottom"] <= b["top"] or b["bottom"] <= a["top"], (a, b)
    assert min(t["height"] for t in ticks) >= 9  # about 10 px text on the phone, not shrunk to a smudge
