"""Request parsing and response rendering shared by the resources.

Bodies are read raw (size limit, idempotency fingerprint), parsed by orjson
and checked against a `Body` spec, which also feeds the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import falcon
import orjson

from tracetrack_db.errors import ValidationError


class PayloadTooLarge(ValidationError):
    code, status = "payload_too_large", 413


class InvalidJson(ValidationError):
    code = "invalid_json"


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return float(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def send(resp: falcon.Response, obj: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = dumps(obj)


@dataclass(frozen=True)
class Field:
    type: str  # string | integer | boolean | string_list | number
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    max_items: int | None = None
    enum: tuple[str, ...] | None = None
    description: str = ""


_PY = {"string": str, "integer": int, "boolean": bool, "number": (int, float), "string_list": list}


class Body:
    """The fields a JSON body may carry; anything else is refused."""

    def __init__(self, **fields: Field):
        self.fields = fields

    def parse(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValidationError("the body must be a JSON object")
        for name in data:
            if name not in self.fields:
                raise ValidationError(f"unknown field {name!r}", field=name)
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name not in data:
                if spec.required:
                    raise ValidationError(f"{name} is required", field=name)
                continue
            value = data[name]
            if value is None:
                if not spec.nullable:
                    raise ValidationError(f"{name} must not be null", field=name)
                out[name] = None
                continue
            expected = _PY[spec.type]
            if not isinstance(value, expected) or (spec.type != "boolean" and isinstance(value, bool)):
                raise ValidationError(f"{name} must be {spec.type.replace('_', ' of ')}", field=name)
            if spec.type == "string_list":
                if not all(isinstance(v, str) for v in value):
                    raise ValidationError(f"{name} must be a list of strings", field=name)
                if spec.max_items is not None and len(value) > spec.max_items:
                    raise ValidationError(f"{name} may hold at most {spec.max_items} items", field=name)
                if not value:
                    raise ValidationError(f"{name} must not be empty", field=name)
            if "\x00" in (value if isinstance(value, str) else "".join(value) if spec.type == "string_list" else ""):
                raise ValidationError(f"{name} must not contain NUL characters", field=name)
            if spec.max_length is not None and isinstance(value, str) and len(value) > spec.max_length:
                raise ValidationError(f"{name} may have at most {spec.max_length} characters", field=name)
            if spec.enum is not None and value not in spec.enum:
                raise ValidationError(f"{name} must be one of {', '.join(spec.enum)}", field=name)
            out[name] = value
        return out

    def schema(self) -> dict[str, Any]:
        props = {}
        for name, spec in self.fields.items():
            if spec.type == "string_list":
                prop: dict[str, Any] = {"type": "array", "items": {"type": "string", "maxLength": 200}}
                if spec.max_items:
                    prop["maxItems"] = spec.max_items
                prop["minItems"] = 1
            else:
                prop = {"type": spec.type}
            if spec.max_length:
                prop["maxLength"] = spec.max_length
            if spec.enum:
                prop["enum"] = list(spec.enum)
            if spec.nullable:
                prop["type"] = [prop["type"], "null"]
            if spec.description:
                prop["description"] = spec.description
            props[name] = prop
        schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        required = [n for n, s in self.fields.items() if s.required]
        if required:
            schema["required"] = required
        return schema


def read_raw(req: falcon.Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (413)."""
    if req.context.get("raw_body") is not None:
        return req.context.raw_body
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    req.context.raw_body = raw
    return raw


def parse_body(req: falcon.Request, body: Body, limit: int) -> dict[str, Any]:
    raw = read_raw(req, limit)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidJson(f"malformed JSON: {exc}") from None
    return body.parse(data)


# query parameters -----------------------------------------------------------
def param_limit(req: falcon.Request, default: int = 50, maximum: int = 200) -> int:
    raw = req.get_param("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError("limit must be a whole number", field="limit") from None
    if not 1 <= value <= maximum:
        raise ValidationError(f"limit must be from 1 to {maximum}", field="limit")
    return value


def param_str(req: falcon.Request, name: str, *, enum: tuple[str, ...] | None = None,
              max_length: int = 200) -> str | None:
    value = req.get_param(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise ValidationError(f"{name} is too long", field=name)
    if "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters", field=name)
    if enum is not None and value not in enum:
        raise ValidationError(f"{name} must be one of {', '.join(enum)}", field=name)
    return value


def param_bool(req: falcon.Request, name: str) -> bool | None:
    value = req.get_param(name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValidationError(f"{name} must be true or false", field=name)


def param_int(req: falcon.Request, name: str) -> int | None:
    value = req.get_param(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number", field=name) from None
    if not 0 < number < 2**63:
        raise ValidationError(f"{name} is out of range", field=name)
    return number


def param_datetime(req: falcon.Request, name: str) -> datetime | None:
    value = req.get_param(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 date-time", field=name) from None
    if parsed.tzinfo is None:
        raise ValidationError(f"{name} needs a time zone (e.g. Z or +05:30)", field=name)
    return parsed
