"""Routing by the route table's path templates.

WSGI servers hand the application a decoded path, so "%2F" arrives as "/"
and an identifier may span several segments. A template's identifier
parameters ({qr}, {bill_no}, {parent_qr}) therefore match any text, "/"
included, up to the template's next literal; the literal segments after
them (/history, /parents, /complete, /reopen) are words the identifiers may
not end with or contain (tracetrack_db.qr, tracetrack_db.bills), so every
path has one reading. Templates with more literal segments are tried first.
Nothing is stripped: "/api/bags/X/" names the bag "X/", which no QR can be
(400 invalid_qr), and never the bag "X".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon.routing


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    resource: object
    method_map: dict[str, Callable[..., Any]]
    literals: int


def _head(path: str) -> str:
    """The first two segments: /api/bags of /api/bags/X/history (every template starts with literals)."""
    return "/".join(path.split("/", 3)[:3])


def compile_template(template: str, spans_segments: Callable[[str], bool]) -> tuple[re.Pattern[str], int]:
    """A regex for a template; `spans_segments(name)` says which parameters may hold "/"."""
    parts, literals = [], 0
    for segment in template.split("/")[1:]:
        match = re.fullmatch(r"\{(\w+)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            literals += 1
        elif spans_segments(match[1]):  # anything, even "X/": the parameter's type refuses what no id can be
            parts.append(f"(?P<{match[1]}>.+?)")
        else:
            parts.append(f"(?P<{match[1]}>[^/]+)")
    return re.compile("/" + "/".join(parts)), literals


ROUTED = "tracetrack.routed"  # a WSGI environ's key: (router, path, find's answer) the direct lane already had


class TableRouter:
    """A Falcon router (add_route / find) over decoded paths."""

    def __init__(self, spans_segments: Callable[[str], bool]):
        self.spans_segments = spans_segments
        self._groups: dict[str, list[Route]] = {}
        self.options = falcon.routing.CompiledRouterOptions()  # Falcon reads router.options

    def add(self, template: str, resource: object, method_map: dict[str, Callable[..., Any]]) -> None:
        """Route `template` to `method_map` ({"GET": responder, ...}); other
        methods answer 405 with an Allow header naming exactly these."""
        if "{" in _head(template):
            raise ValueError(f"{template}: a route starts with its literal segments (they index the routes)")
        method_map = dict(method_map)
        falcon.routing.set_default_responders(method_map)
        pattern, literals = compile_template(template, self.spans_segments)
        group = self._groups.setdefault(_head(template), [])
        if any(r.template == template for r in group):
            raise ValueError(f"{template} is routed twice: give each path one add()")
        group.append(Route(template, pattern, resource, method_map, literals))
        group.sort(key=lambda r: (-r.literals, -len(r.template)))

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        """Falcon's interface, for resources outside the table (on_get ...)."""
        self.add(uri_template, resource, falcon.routing.map_http_methods(resource, **kwargs))

    def find(self, uri: str, req: falcon.Request | None = None):
        if req is not None:
            routed = req.env.get(ROUTED)
            if routed is not None and routed[0] is self and routed[1] == uri:
                return routed[2]
        for route in self._groups.get(_head(uri), ()):
            match = route.pattern.fullmatch(uri)
            if match is not None:
                return route.resource, route.method_map, match.groupdict(), route.template
        return None

    def templates(self) -> list[str]:
        return [r.template for group in self._groups.values() for r in group]
