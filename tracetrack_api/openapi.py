"""The OpenAPI 3.1 document, built from the route table, the request `Body`
specs and the library's row dataclasses, so it cannot drift from the code."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from datetime import datetime
from decimal import Decimal
from typing import Any

from tracetrack_db import models

_SCALARS = {int: {"type": "integer"}, str: {"type": "string"}, bool: {"type": "boolean"},
            float: {"type": "number"}, Decimal: {"type": "number"},
            datetime: {"type": "string", "format": "date-time"}}
COMPONENTS = (models.User, models.Area, models.Bag, models.Bill, models.BagDetail, models.BillDetail,
              models.Event, models.LinkResult, models.BatchItem, models.BatchResult, models.UnlinkResult,
              models.AddParentResult)


def schema_of(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [schema_of(a) for a in typing.get_args(tp) if a is not type(None)]
        nullable = type(None) in typing.get_args(tp)
        if len(options) == 1 and "type" in options[0]:
            return {**options[0], "type": [options[0]["type"], "null"]} if nullable else options[0]
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    if origin is list:
        return {"type": "array", "items": schema_of(typing.get_args(tp)[0])}
    if origin is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp):
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    return dict(_SCALARS[tp])


def component(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    return {"type": "object", "properties": {name: schema_of(hints[name]) for name in fields},
            "required": fields}


def ref(cls: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def page_of(cls: type) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": ref(cls)},
                           "next_cursor": {"type": ["string", "null"]}}}


ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                   "request_id": {"type": "string"}}}}}


def build(routes: list, title: str = "TraceTrack API", version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, _resource, ops in routes:
        if not ops:  # a routing-only entry; its operations are documented separately
            continue
        item: dict[str, Any] = {}
        for method, op in ops.items():
            item[method] = op.openapi(path)
        paths[re.sub(r"\{(\w+):\w+\}", r"{\1}", path)] = item
    schemas = {cls.__name__: component(cls) for cls in COMPONENTS}
    schemas["Error"] = ERROR
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Bag traceability: parents, children, bills and their history."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }
