"""The OpenAPI 3.1 document, written from the route table, the value types of
its rows and the row dataclasses, so it says what the server enforces."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal
from typing import Any

from tracetrack_db import Page, __version__, errors, idempotency
from tracetrack_db.cursor import CURSOR_PATTERN

from . import errors as _api_errors  # noqa: F401 - registers the HTTP layer's error codes
from .schema import Value
from .table import Operation

_SCALARS: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    Decimal: {"type": "number"},
    datetime: {"type": "string", "format": "date-time"},
}

TAGS = [
    {"name": "system", "description": "Probes."},
    {"name": "accounts", "description": "Logging in, users and dispatch areas."},
    {"name": "bags", "description": "Bags: look-ups, history, registration, deletion."},
    {"name": "scans", "description": "Scanning parents and children; recent scans."},
    {"name": "bills", "description": "Bills (a truck's dispatch document) and the parents on them."},
    {"name": "reports", "description": "The dashboard, bill and activity reports (site time zone), CSV exports."},
    {"name": "imports", "description": "Bulk import of scanned batches (CSV, XLSX) and label extraction rules."},
    {"name": "formats", "description": "Parent formats: which QRs are parents, their capacity and expected weight."},
    {"name": "returns", "description": "Return tickets: parents back from a depot come off their bills."},
    {
        "name": "audit",
        "description": "The security log: logins, lockouts, password and user changes, who and from where.",
    },
    {"name": "docs", "description": "Browsable API docs (Swagger UI over this document), served offline."},
]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, snake_case"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the input to blame"},
                "request_id": {"type": "string"},
            },
        }
    },
}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key (per user) answers the first answer and changes nothing "
    "(Idempotent-Replayed: true); the same key with another request is 409 idempotency_key_reused.",
    "schema": {"type": "string", "pattern": idempotency.KEY_PATTERN, "maxLength": idempotency.MAX_KEY_LENGTH},
}


class Components:
    """The schemas of the row types an answer refers to, collected as they are met."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR}

    def ref(self, name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def of(self, tp: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            inner = self.of(options[0]) if len(options) == 1 else {"anyOf": [self.of(a) for a in options]}
            if type(None) not in args:
                return inner
            if set(inner) == {"type"} or (set(inner) == {"type", "format"}):
                return {**inner, "type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        if origin is list:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if origin is Page:
            return self.page(args[0])
        if tp is Any:
            return {}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.dataclass(tp)
        return dict(_SCALARS[tp])

    def dataclass(self, cls: type) -> dict[str, str]:
        name = cls.__name__
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: a type may refer to itself
            hints = typing.get_type_hints(cls)
            fields = [f.name for f in dataclasses.fields(cls)]
            schema: dict[str, Any] = {
                "type": "object",
                "required": fields,
                "properties": {f: self.of(hints[f]) for f in fields},
            }
            if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):
                schema["description"] = " ".join(cls.__doc__.split())
            self.schemas[name] = schema
        return self.ref(name)

    def page(self, item: type) -> dict[str, str]:
        name = f"{item.__name__}Page"
        if name not in self.schemas:
            self.schemas[name] = {
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": self.of(item)},
                    "next_cursor": {
                        "type": ["string", "null"],
                        "pattern": CURSOR_PATTERN,
                        "description": "pass as ?cursor= for the next page; null: the last",
                    },
                },
            }
        return self.ref(name)


def error_codes(op: Operation, path_values: dict[str, Value]) -> list[str]:
    """Every error code an operation may answer: the row's own and those its
    shape implies (a token, a body, parameters, Idempotency-Key)."""
    codes = []
    if op.roles is not None:
        codes += ["unauthenticated", "forbidden"]
        if not op.before_password_change:  # a user whose password an admin reset must change it first
            codes.append("password_change_required")
    names = [seg[1:-1] for seg in op.path.split("/") if seg.startswith("{")]
    values = [path_values[n] for n in names]
    if op.query is not None:
        codes.append("validation_error")
        values += [p.value for p in op.query.params.values()]
    if op.body is not None:
        codes += ["validation_error", "invalid_json", "length_required", "payload_too_large"]
        values += [f.value for f in op.body.fields.values()]
        values += [f.value.item for f in op.body.fields.values() if hasattr(f.value, "item")]
    codes += [v.error.code for v in values]
    if op.upload:
        codes += ["validation_error", "length_required", "file_too_large"]
    if op.idempotent:
        codes += ["validation_error", "idempotency_key_reused", "conflict"]
    codes += op.errors
    if op.tag not in ("system", "docs"):  # the probes answer their own 503, the docs need no database
        codes.append("database_unavailable")
    return list(dict.fromkeys(codes))


def operation(
    op: Operation, components: Components, path_values: dict[str, Value], spans_segments: frozenset[str]
) -> dict[str, Any]:
    classes = errors.by_code()
    content = (
        {media: {"schema": {"type": "string"}} for media in op.answer}
        if isinstance(op.answer, tuple)
        else {op.answer: {"schema": {"type": "string"}}}
        if isinstance(op.answer, str)  # CSV, HTML
        else {"application/json": {"schema": components.of(op.answer)}}
    )
    responses: dict[str, Any] = {
        str(status): {"description": "OK" if status < 300 else "unavailable", "content": content}
        for status in (op.status, *op.other_statuses)
    }
    by_status: dict[int, list[str]] = {}
    for code in error_codes(op, path_values):
        if code not in classes:
            raise KeyError(f"{op.id}: unknown error code {code!r}")
        by_status.setdefault(classes[code].status, []).append(code)
    names = [seg[1:-1] for seg in op.path.split("/") if seg.startswith("{")]
    if spans_segments & set(names):
        # an identifier that ends with another route's word (…/history, …/complete) makes the
        # path that route's; the identifier's pattern excludes it, the server answers 405
        by_status[405] = [
            "method_not_allowed (the path is another operation's: an identifier may not end with the word of a route)"
        ]
    for status, codes in sorted(by_status.items()):
        if str(status) in responses:
            continue
        responses[str(status)] = {
            "description": "error: " + ", ".join(codes),
            "content": {"application/json": {"schema": components.ref("Error")}},
        }
    doc: dict[str, Any] = {"operationId": op.id, "tags": [op.tag], "summary": op.summary, "responses": responses}
    description = [op.description] if op.description else []
    if op.roles is not None:
        doc["security"] = [{"bearer": []}]
        description.append("Roles: " + ", ".join(op.roles) + ".")
    doc["x-roles"] = list(op.roles) if op.roles is not None else None  # machine-readable: null is public
    if description:
        doc["description"] = " ".join(description)
    params = [
        {"name": name, "in": "path", "required": True, "schema": path_values[name].schema()}
        for name in (seg[1:-1] for seg in op.path.split("/") if seg.startswith("{"))
    ]
    if op.query is not None:
        params += op.query.parameters()
    if op.idempotent:
        params.append(IDEMPOTENCY_KEY)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body.schema()}}}
    if op.upload:
        binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
        doc["requestBody"] = {"required": True, "content": {media: binary for media in op.upload}}
    return doc


def build(
    operations: tuple[Operation, ...],
    path_values: dict[str, Value],
    spans_segments: frozenset[str],
    title: str = "TraceTrack API",
) -> dict[str, Any]:
    components = Components()
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = operation(op, components, path_values, spans_segments)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "Bag traceability: parents, children, bills and their history. Errors are "
            '{"error": {"code", "message", "field"?}}; a QR or bill number holding '
            '"/" is sent as %2F in a path.',
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
