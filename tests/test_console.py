"""GET /console: the console's files served by the app under a strict
Content-Security-Policy, nothing else reachable through it, and the shell in
a real Chromium: sign-in, each role's views, logout, the token never in a URL,
and the whole console's transfer size."""

from __future__ import annotations

import re

import pytest

from tracetrack_api import console as console_files
from tracetrack_api import routes

from .api_helpers import *  # noqa: F403
from .api_helpers import assert_error
from .console_browser import *  # noqa: F403
from .console_browser import Console
from .test_docs import _raw_get

BUDGET = 100 * 1024  # the bound on the whole console, transferred


def test_a_slash_after_the_page_redirects_to_the_page(api):
    """/console/ would load the page with its relative links one level too deep: 308 to /console."""
    from urllib.parse import urljoin

    for page in ("/console", "/docs"):
        moved = api.get(page + "/", params={"x": "1"})
        assert moved.status_code == 308, (page, moved.headers)
        assert urljoin(f"http://h{page}/", moved.headers["location"]) == f"http://h{page}"
        assert api.get(page).status_code == 200
        assert api.post(page + "/").status_code == 405  # a GET only
        # relative: under a mount point it stays there (/tt/console/ -> /tt/console)
        assert urljoin(f"http://h/tt{page}/", moved.headers["location"]) == f"http://h/tt{page}"


def test_console_page_and_files_are_served_by_the_app(api):
    page = api.get("/console")  # public: the page signs in by itself
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    directives = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert all(s in ("'self'", "'none'", "data:", "blob:") for v in directives.values() for s in v.split())
    assert page.headers["cache-control"] == "no-cache" and page.headers["referrer-policy"] == "no-referrer"
    # no inline script or style, nothing from another origin
    assert re.findall(rb"<script[^>]*>", page.content) == [b'<script type="module" src="console/assets/app.js">']
    assert b"<style" not in page.content and b" style=" not in page.content and b"http" not in page.content
    for name in console_files.ASSETS:
        result = api.get(f"/console/assets/{name}")
        assert result.status_code == 200, name
        assert result.headers["cache-control"] == "no-cache" and result.headers["etag"].startswith('"')
        assert result.headers["x-content-type-options"] == "nosniff"
        assert result.content == console_files.FILES[name].data
        again = api.get(f"/console/assets/{name}", headers={"If-None-Match": result.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        if name.endswith(".js"):
            assert result.headers["content-type"] == "text/javascript; charset=utf-8"
            # the DOM is built from text nodes: a QR or a description is never parsed as HTML
            assert b"innerHTML" not in result.content and b"insertAdjacentHTML" not in result.content, name
            assert b"eval(" not in result.content and b"new Function" not in result.content, name
    ops = {op.id: op for op in routes.OPERATIONS}
    assert ops["get_console"].roles is None and ops["get_console_asset"].roles is None


def test_the_service_worker_lists_every_file_and_changes_with_them(api):
    worker = api.get("/console/assets/sw.js")
    assert worker.headers["service-worker-allowed"] == "../../console"
    files = re.search(rb"const FILES = (\[.*\]);", worker.content)
    version = re.search(rb'const VERSION = "([0-9a-f]{16})";', worker.content)
    assert files and version
    listed = eval(files.group(1))  # a JSON list of strings
    assert listed[0] == "../../console" and set(listed[1:]) == set(console_files.ASSETS) - {"sw.js"}
    assert b'const VERSION = "dev"' not in worker.content and b"const FILES = [];" not in worker.content


@pytest.mark.parametrize(
    ("page", "param", "refused", "sample"),
    [
        (
            "/docs",
            "asset",
            ("swagger-ui.css.map", "index.html", "__init__.py", "docs.py", "swagger-ui.css%00.png"),
            "docs.js",
        ),
        ("/console", "console_file", ("__init__.py", "index.html", "app.js.map", "app.js%00.css"), "app.js"),
    ],
)
def test_no_other_file_is_reachable(api, page, param, refused, sample):
    """Only the closed list of each page's files: anything else is refused by the path's type."""
    for name in refused:
        assert_error(api.get(f"{page}/assets/{name}"), 400, "validation_error", param)
    for path in (f"{page}/assets", f"{page}/assets/", f"{page}/x/{sample}", f"{page}/assets/a/{sample}"):
        assert api.get(path).status_code in (400, 404), path


def test_console_paths_are_not_a_way_out_through_the_real_server(console: Console):
    for path in (
        "/console/assets/../../pyproject.toml",
        "/console/assets/..%2F__init__.py",
        "/console/assets/%2e%2e/%2e%2e/tracetrack_api/console/__init__.py",
        "/console/assets/..%5C__init__.py",
    ):
        status, body = _raw_get(console.base, path)
        assert status in (400, 404), (path, status)
        assert b"[project]" not in body and b"import" not in body


def _nav(console: Console) -> list[str]:
    return console.page.eval_on_selector_all("#nav a", "els => els.map(e => e.dataset.view)")


def test_each_role_signs_in_and_sees_its_views(console: Console):
    page = console.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    console.login("dispatcher")
    assert page.url.endswith("/console#/scan")  # a dispatcher starts at the scan station
    assert _nav(console) == ["scan", "lookup", "dashboard"]
    assert "dispatcher" in page.inner_text("#who") and "lucknow" in page.inner_text("#who")
    token = page.evaluate("sessionStorage.getItem('tracetrack.token')")
    assert token and token.count(".") == 1
    page.goto(f"{console.base}/console#/bills")  # not a dispatcher's view: back to its home
    page.wait_for_url(re.compile(r"#/scan$"))
    page.click("#logout")
    page.wait_for_selector("form.login")
    assert page.evaluate("sessionStorage.getItem('tracetrack.token')") is None
    rows = console.query("SELECT kind FROM security_log WHERE kind = 'logout'")
    assert len(rows) == 1  # the server ended the token too, not only the page
    console.login("biller")
    assert page.url.endswith("/console#/bills") and _nav(console) == ["bills", "lookup", "dashboard"]
    page.click("#logout")
    page.wait_for_selector("form.login")
    console.login("admin")
    assert _nav(console) == ["scan", "bills", "lookup", "dashboard"]
    assert all(token not in url for url in requests)  # the token never travels in a URL
    assert all(url.startswith(console.base) for url in requests)  # nothing from elsewhere


def test_a_wrong_password_says_so_and_a_dead_token_signs_out(console: Console):
    page = console.page
    console.expect_errors("401")  # the browser logs the refused login and the dead token's answer
    console.open()
    page.fill("input[name=username]", "dispatcher")
    page.fill("input[name=password]", "not-the-password")
    page.press("input[name=password]", "Enter")
    page.wait_for_selector("#banner.error:not([hidden])")
    assert "Wrong username or password" in page.inner_text("#banner")
    assert page.evaluate("sessionStorage.getItem('tracetrack.token')") is None
    console.login("admin", "#/lookup")
    page.evaluate("sessionStorage.setItem('tracetrack.token', 'x.y')")  # ended elsewhere: the next call is 401
    page.reload()
    page.wait_for_selector("form.login")
    assert "Signed out" in page.inner_text("#banner")


def test_the_whole_console_stays_under_100_kb(console: Console):
    """Every file of the console as the browser fetched it, each view visited: reported and bounded."""
    page = console.page
    console.login("admin")
    for name in ("scan", "bills", "lookup", "dashboard"):
        page.goto(f"{console.base}/console#/{name}")
        page.wait_for_selector(f"#view[data-view={name}]")
    sizes = page.evaluate(
        """() => [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
             .filter(e => new URL(e.name).pathname.startsWith('/console'))
             .map(e => [new URL(e.name).pathname, e.transferSize, e.encodedBodySize])"""
    )
    files: dict[str, tuple[int, int]] = {}  # path: (body, bytes on the wire with headers), once each
    for path, transfer, body in sizes:
        files[path] = max(files.get(path, (0, 0)), (body, transfer))
    assert set(files) >= {f"/console/assets/{n}" for n in console_files.ASSETS if n != "sw.js"} | {"/console"}
    total = sum(body for body, _t in files.values())
    print(f"\nconsole transfer: {len(files)} files, {total:,} bytes of bodies (budget {BUDGET:,})")
    for path, (body, transfer) in sorted(files.items()):
        print(f"  {path:40} {body:>7,} bytes ({transfer:,} on the wire with headers)")
    served = len(console_files.INDEX.data) + sum(len(f.data) for f in console_files.FILES.values())
    assert total <= served and served < BUDGET


# Every element with text of its own: its colour against the first opaque background behind
# it (the element's, else an ancestor's), as WCAG 2 computes contrast.
CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!own || !box.width || style.visibility === "hidden" || el.closest("svg, [hidden], option")) continue;
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && style.fontWeight >= 700);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < (large ? 3 : 4.5)) out.push(`${el.tagName} "${text}" ${ratio.toFixed(2)}`);
  }
  return out;
}"""


def test_every_view_reads_at_wcag_aa_contrast(console: Console):
    """Text against its background at 4.5:1 (3:1 when large), in every view and on a banner of each kind."""
    page = console.page
    console.login("admin")
    poor: dict[str, list[str]] = {}
    for name in ("scan", "bills", "lookup", "dashboard"):
        page.goto(f"{console.base}/console#/{name}")
        page.wait_for_selector(f"#view[data-view={name}] h1, #view[data-view={name}] input")
        page.wait_for_timeout(300)  # the view's first answer drawn
        poor[name] = page.evaluate(CONTRAST)
    page.goto(f"{console.base}/console#/lookup/SB00001")
    page.wait_for_selector("#view li")
    poor["lookup SB00001"] = page.evaluate(CONTRAST)
    for kind in ("ok", "error", "warn", "info"):
        page.evaluate(f"() => import('./console/assets/ui.js').then(ui => ui.banner('{kind}', 'Title', 'detail'))")
        page.wait_for_selector(f"#banner.{kind}:not([hidden])")
        poor[f"banner {kind}"] = page.evaluate(CONTRAST)
    page.click("#logout")
    page.wait_for_selector("form.login")
    poor["login"] = page.evaluate(CONTRAST)
    assert {view: found for view, found in poor.items() if found} == {}
