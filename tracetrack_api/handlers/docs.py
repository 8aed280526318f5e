"""GET /docs and /console and their files: Swagger UI over /openapi.json
(tracetrack_api.docs) and the warehouse console (tracetrack_api.console)."""

from __future__ import annotations

from .. import console, docs
from ..table import Ctx, Static


def page(ctx: Ctx) -> Static:
    return docs.INDEX


def asset(ctx: Ctx, asset: str) -> Static:
    return docs.FILES[asset]  # `asset` is one of docs.ASSETS: the route's path type says so


def console_page(ctx: Ctx) -> Static:
    return console.INDEX


def console_asset(ctx: Ctx, console_file: str) -> Static:
    return console.FILES[console_file]  # one of console.ASSETS: the route's path type says so
