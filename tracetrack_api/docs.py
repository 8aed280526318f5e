"""GET /docs: Swagger UI over /openapi.json, served entirely by this app.

The page, Swagger UI's files (from the `swagger-ui-bundle` package) and the
script that starts it are read once, when this module is first imported (at
the app's start), and answered from memory: no CDN, works offline. The page's
Content-Security-Policy allows this origin only (images also as data: URLs,
which Swagger UI's stylesheet embeds), so its initializer is a file of its
own (`docs.js`), never an inline script. An asset is named by a closed list
(the path parameter's enum): no other file can be asked for.
"""

from __future__ import annotations

import re

from swagger_ui_bundle import swagger_ui_path

from .table import CONTENT_TYPES, Static

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# Relative URLs: the page works behind a proxy that mounts the API under a prefix.
PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TraceTrack API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/docs.js"></script>
</body>
</html>
"""

INITIALIZER = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""

# the media types of the assets, as /openapi.json lists them
MEDIA_TYPES = ("text/css", "text/javascript", "image/png")
_VENDORED = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
ASSETS = (*_VENDORED, "docs.js")


def _asset(name: str, data: bytes) -> Static:
    if name.endswith((".js", ".css")):  # no source maps are served: say none
        data = re.sub(rb"\n[/][/*]# sourceMappingURL=[^\n]*\s*$", b"\n", data)
    return Static.asset(data, CONTENT_TYPES[name[name.rfind(".") :]])


def _load() -> dict[str, Static]:
    assets = {name: _asset(name, (swagger_ui_path / name).read_bytes()) for name in _VENDORED}
    assets["docs.js"] = _asset("docs.js", INITIALIZER)
    return assets


FILES: dict[str, Static] = _load()
INDEX = Static.page(PAGE, CSP)
