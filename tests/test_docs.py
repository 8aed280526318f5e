"""GET /docs: Swagger UI over /openapi.json, every file served by the app
itself under a Content-Security-Policy of 'self', no path traversal, and the
page rendered by a real headless Chromium that lists the operations without a
request leaving the server's origin."""

from __future__ import annotations

import http.client
import os
import shutil
from urllib.parse import urlsplit

from tracetrack_api import docs, routes

from .api_helpers import *  # noqa: F403
from .conftest import require_module, service_missing
from .test_server import running_server

CHROMIUM = os.environ.get("TRACETRACK_CHROMIUM", "/usr/bin/chromium")


def test_docs_page_and_its_files_are_served_by_the_app(api):
    page = api.get("/docs")  # public
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert all(source in ("'self'", "'none'", "data:") for value in directives.values() for source in value.split())
    assert "<script>" not in page.text and "http" not in page.text  # no inline script, nothing from elsewhere
    assert page.headers["cache-control"] == "no-cache"
    expected = {
        "swagger-ui.css": "text/css; charset=utf-8",
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "favicon-32x32.png": "image/png",
        "docs.js": "text/javascript; charset=utf-8",
    }
    assert set(expected) == set(docs.ASSETS)
    for name, content_type in expected.items():
        assert f'"docs/assets/{name}"' in page.text
        result = api.get(f"/docs/assets/{name}")
        assert result.status_code == 200, name
        assert result.headers["content-type"] == content_type
        assert result.headers["cache-control"] == "public, max-age=86400"
        assert result.headers["etag"].startswith('"') and result.headers["x-content-type-options"] == "nosniff"
        assert result.content == docs.FILES[name].data and len(result.content) > 100
    assert b"SwaggerUIBundle(" in api.get("/docs/assets/docs.js").content
    assert b"validatorUrl: null" in docs.FILES["docs.js"].data  # Swagger UI's default asks a validator online
    assert b"sourceMappingURL" not in docs.FILES["swagger-ui-bundle.js"].data[-500:]
    ops = {op.id: op for op in routes.OPERATIONS}
    assert ops["get_docs"].roles is None and ops["get_docs_asset"].roles is None  # in the route table, public


def test_a_browser_with_a_current_copy_gets_304(api):
    """Before: the ETag was sent but If-None-Match ignored, so each visit fetched 1.5 MB again."""
    first = api.get("/docs/assets/swagger-ui-bundle.js")
    etag = first.headers["etag"]
    again = api.get("/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert api.get("/docs/assets/docs.js", headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 200
    listed = api.get(
        "/docs/assets/docs.js", headers={"If-None-Match": f'"other", W/{docs.FILES["docs.js"].headers["ETag"]}'}
    )
    assert listed.status_code == 304
    assert api.get("/docs/assets/docs.js", headers={"If-None-Match": '"stale"'}).status_code == 200


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """A request line sent as written (urllib and browsers would resolve the dots first)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _chromium():
    if not shutil.which(CHROMIUM):
        service_missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    return require_module("playwright.sync_api")


def test_docs_render_in_headless_chromium_from_the_server_alone(db_url):
    """The real server (granian) and Debian's Chromium driven by Playwright:
    the page lists every operation, and every request stays on the server."""
    sync_api = _chromium()
    with running_server(db_url, "--no-demo", env_extra={"TRACETRACK_REFRESH_INTERVAL": "0"}) as (base, _proc):
        # path traversal through the real server, with the dots and encodings sent as they are
        for path in (
            "/docs/assets/../../pyproject.toml",
            "/docs/assets/..%2F..%2Fpyproject.toml",
            "/docs/assets/%2e%2e/%2e%2e/tracetrack_api/docs.py",
            "/docs/assets/..%5Cdocs.py",
            "/docs/assets/%2Fetc%2Fpasswd",
            "/docs/assets/....//....//etc/passwd",
        ):
            status, body = _raw_get(base, path)
            assert status in (400, 404), (path, status)
            assert b"[project]" not in body and b"root:" not in body and b"swagger_ui_path" not in body
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        requests: list[str] = []
        problems: list[str] = []
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                page = browser.new_page()
                page.on("request", lambda r: requests.append(r.url))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(base + "/docs", wait_until="load")
                try:
                    page.wait_for_selector(".opblock-summary-path[data-path='/api/bags/{qr}']", timeout=30_000)
                except sync_api.TimeoutError:
                    raise AssertionError(
                        f"no operation rendered: {problems} {requests}\n{page.inner_text('body')[:2000]}"
                    ) from None
                paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
                summaries = page.inner_text("#swagger-ui")
                title = page.inner_text(".information-container .title")
                # open one operation: its parameters and answers render too
                page.click(".opblock-get .opblock-summary-path[data-path='/api/bags/{qr}']")
                page.wait_for_selector(".opblock.is-open .parameters-container", timeout=10_000)
                opened = page.inner_text(".opblock.is-open")
            finally:
                browser.close()
    assert "TraceTrack API" in title
    assert sorted(paths) == sorted(op.path for op in routes.OPERATIONS)  # every operation is listed
    for op_id in ("get_bag", "login", "link_child", "get_dashboard"):
        op = next(o for o in routes.OPERATIONS if o.id == op_id)
        assert op.summary in summaries, op.summary
    assert "qr" in opened and "bag_not_found" in opened
    assert base + "/openapi.json" in requests and base + "/docs/assets/swagger-ui-bundle.js" in requests
    foreign = [url for url in requests if not url.startswith(origin + "/") and not url.startswith("data:")]
    assert foreign == []  # no CDN, no validator, no fonts from elsewhere
    assert problems == []  # no script error, nothing the Content-Security-Policy had to block
