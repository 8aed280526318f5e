"""GET /docs and its files: Swagger UI over /openapi.json (see tracetrack_api.docs)."""

from __future__ import annotations

from .. import docs
from ..table import Ctx, Static


def page(ctx: Ctx) -> Static:
    return docs.INDEX


def asset(ctx: Ctx, asset: str) -> Static:
    return docs.FILES[asset]  # `asset` is one of docs.ASSETS: the route's path type says so
