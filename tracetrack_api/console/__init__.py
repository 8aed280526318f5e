"""GET /console: the warehouse console (scan station, bill desk, lookup,
dashboard), plain HTML, CSS and JavaScript modules in this directory.

No build step and nothing from elsewhere: the files are read once, when this
module is imported (at the app's start), and answered from memory like the
docs page's (tracetrack_api.docs). The page's Content-Security-Policy allows
this origin only and no inline script or style. Every file is revalidated on
every load (ETag, 304), so a release never mixes old and new modules. A file is named by a closed
list (the path parameter's enum, made here from this directory's .js, .css
and .svg files): nothing else can be asked for.

The service worker (sw.js) gets the list of files and a hash of them all
filled in, so a browser keeps a copy for a reload without network and drops
it when a release changes any file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..table import CONTENT_TYPES, Static

HERE = Path(__file__).parent

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "font-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
MEDIA_TYPES = ("text/css", "text/javascript", "image/svg+xml")
_SUFFIXES = (".css", ".js", ".svg")
ASSETS: tuple[str, ...] = tuple(sorted(p.name for p in HERE.iterdir() if p.suffix in _SUFFIXES))
SERVICE_WORKER = "sw.js"


def _service_worker(data: bytes, version: str) -> bytes:
    # relative to the worker's own URL (console/assets/sw.js): the page is ../../console
    files = ["../../console", *(name for name in ASSETS if name != SERVICE_WORKER)]
    filled = data.replace(b'const VERSION = "dev";', b"const VERSION = %s;" % json.dumps(version).encode())
    filled = filled.replace(b"const FILES = [];", b"const FILES = %s;" % json.dumps(files).encode())
    if filled.count(version.encode()) != 1 or b"const FILES = [];" in filled:
        raise RuntimeError("sw.js lost the lines the server fills in (VERSION, FILES)")
    return filled


def _load() -> tuple[dict[str, Static], Static]:
    page = (HERE / "index.html").read_bytes()
    data = {name: (HERE / name).read_bytes() for name in ASSETS}
    version = hashlib.sha256(b"".join([page, *data.values()])).hexdigest()[:16]
    data[SERVICE_WORKER] = _service_worker(data[SERVICE_WORKER], version)
    # no-cache: revalidated (304 by ETag) on every load, so a release never mixes old modules with a new page
    files = {
        name: Static.asset(body, CONTENT_TYPES[Path(name).suffix], **{"Cache-Control": "no-cache"})
        for name, body in data.items()
    }
    # the worker may serve the page's scope, one level above its own URL
    files[SERVICE_WORKER].headers["Service-Worker-Allowed"] = "../../console"
    index = Static.page(page, CSP, **{"Permissions-Policy": "camera=(), microphone=(), geolocation=()"})
    return files, index


FILES, INDEX = _load()
