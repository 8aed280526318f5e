"""What the console's browser tests share: the real server (`tracetrack serve`,
granian, the demo data) on a database of the test's own, and Debian's Chromium
driven by Playwright (never `playwright install`: nothing is downloaded).

`console` gives a page in a fresh browser context (its own sessionStorage,
IndexedDB and service worker) and collects every console error, failed script
and blocked resource; a test fails if any was seen, unless it declares them
with `console.expect_errors(...)` (a request failing while offline, for example).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tracetrack_ops.demo import DEMO_PASSWORD

from .conftest import require_module, service_missing
from .test_server import http, running_server

CHROMIUM = os.environ.get("TRACETRACK_CHROMIUM", "/usr/bin/chromium")
# Where screenshots go: the test's own output directory, or the README's pictures with
# TRACETRACK_SCREENSHOTS=docs/screenshots (so a plain test run leaves the checkout as it was)
SCREENSHOTS = os.environ.get("TRACETRACK_SCREENSHOTS")
PHONE = {"width": 390, "height": 844}


def playwright_api() -> Any:
    if not shutil.which(CHROMIUM):
        service_missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    return require_module("playwright.sync_api")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    sync_api = playwright_api()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    base: str  # the server's URL
    db_url: str  # its database (the owner's URL): what the tests compare the screen with
    page: Any
    context: Any
    output: Path  # where this test's screenshots go
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def open(self, hash_: str = "") -> None:
        self.page.goto(f"{self.base}/console{hash_}", wait_until="load")

    def login(self, username: str, hash_: str = "") -> None:
        """Open the console and sign in as a demo user (admin, biller, dispatcher)."""
        self.open(hash_)
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", DEMO_PASSWORD)
        self.page.press("input[name=password]", "Enter")
        self.page.wait_for_selector("#who:not(:empty)")

    def token(self, username: str, password: str = DEMO_PASSWORD) -> str:
        """A token of `username`, signed in through the API (data made as a client would)."""
        return str(self.api(None, "POST", "/api/auth/login", {"username": username, "password": password})["token"])

    def api(self, token: str | None, method: str, path: str, body: dict | None = None) -> Any:
        """The server's API: the answer's JSON, asserted 2xx."""
        status, answer, _ = http(method, self.base + path, body, token=token)
        assert status < 300, (path, status, answer)
        return answer

    def expect_errors(self, *patterns: str) -> None:
        """Console errors this test causes on purpose (regular expressions)."""
        self.allowed += [re.compile(p) for p in patterns]

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    def screenshot(self, name: str, **kwargs: Any) -> bytes:
        """A PNG of the page, written to <output>/<name>.png (docs/screenshots: the README's)."""
        self.output.mkdir(parents=True, exist_ok=True)
        return bytes(self.page.screenshot(path=str(self.output / f"{name}.png"), **kwargs))


@pytest.fixture
def console(db_url: str, chromium: Any, tmp_path: Path) -> Iterator[Console]:
    with running_server(db_url, env_extra={"TRACETRACK_REFRESH_INTERVAL": "1"}) as (base, _proc):
        context = chromium.new_context(viewport=PHONE, service_workers="allow")
        page = context.new_page()
        result = Console(base, db_url, page, context, Path(SCREENSHOTS) if SCREENSHOTS else tmp_path)
        page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: result.errors.append(f"pageerror: {e}"))
        try:
            yield result
        finally:
            context.close()
        assert result.unexpected() == [], "errors in the browser's console"
