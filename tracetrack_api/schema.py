"""What a request may carry: value types for body fields, query and path
parameters. Each type checks a value and states itself as JSON Schema, so
the OpenAPI document says exactly what the server accepts.

Identifiers (QRs, bill numbers) are checked here against the library's own
patterns; the library normalises them again (its functions are public).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import falcon

from tracetrack_db import areas, bills, cursor, passwords, qr, users
from tracetrack_db.errors import (
    InvalidCursor,
    InvalidQr,
    InvalidUsername,
    TraceTrackError,
    UnknownArea,
    ValidationError,
)

NO_NUL = r"^[^\x00]*$"


class Value:
    """A kind of value. `from_json` checks a JSON body value, `from_text` a
    query or path string; both raise a 400 naming the field."""

    error: type[TraceTrackError] = ValidationError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def from_json(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def from_text(self, name: str, text: str) -> Any:
        return self.from_json(name, text)

    def fail(self, name: str, message: str) -> TraceTrackError:
        return self.error(message, field=name)


@dataclass(frozen=True)
class Text(Value):
    max_length: int = 200
    min_length: int = 0
    pattern: str | None = None  # anchored, Python and ECMAScript alike
    description: str = ""
    invalid: str = ""  # the message for a pattern mismatch

    def __post_init__(self) -> None:
        object.__setattr__(self, "_re", re.compile(self.pattern or NO_NUL))

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": self.max_length, "pattern": self.pattern or NO_NUL}
        if self.min_length:
            out["minLength"] = self.min_length
        if self.description:
            out["description"] = self.description
        return out

    def from_json(self, name: str, value: Any) -> str:
        # the value's own error (unknown_area, invalid_cursor ...) is for a
        # malformed value; a wrong type or size is a plain validation_error
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string", field=name)
        if "\x00" in value:
            raise ValidationError(f"{name} must not contain NUL characters", field=name)
        if len(value) > self.max_length:
            raise ValidationError(f"{name} may have at most {self.max_length} characters", field=name)
        if len(value) < self.min_length:
            raise ValidationError(f"{name} needs at least {self.min_length} characters", field=name)
        match = self._re.search(value)  # type: ignore[attr-defined]
        if match is None or match.end() != len(value):  # Python's $ also matches before a final newline
            raise self.fail(name, self.invalid or f"{name} is not well formed")
        return value


class _Checked(Text):
    """A string (type and length checked here, as for any text) whose grammar
    is the library's to check: `normalise(value, field)` raises its own error."""

    def normalise(self, value: str, name: str) -> Any:
        raise NotImplementedError

    def from_json(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string", field=name)
        if len(value) > self.max_length:
            raise ValidationError(f"{name} may have at most {self.max_length} characters", field=name)
        return self.normalise(value, name)


class QrText(_Checked):
    """A QR: the library's normalize_qr is the check (the pattern documents it)."""

    error = InvalidQr

    def normalise(self, value: str, name: str) -> str:
        return qr.normalize_qr(value, name)


class BillNoText(_Checked):
    """A bill number: the library's normalize_bill_no is the check."""

    def normalise(self, value: str, name: str) -> str:
        return bills.normalize_bill_no(value, name)


@dataclass(frozen=True)
class Enum(Value):
    values: tuple[str, ...]

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}

    def from_json(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise self.fail(name, f"{name} must be one of {', '.join(self.values)}")
        return value


@dataclass(frozen=True)
class Int(Value):
    minimum: int = 1
    maximum: int = 2**63 - 1

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def from_json(self, name: str, value: Any) -> int:
        # JSON Schema counts 2.0 as an integer: so does the server
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(name, f"{name} must be a whole number")
        if not self.minimum <= value <= self.maximum:
            raise self.fail(name, f"{name} must be from {self.minimum} to {self.maximum}")
        return value

    def from_text(self, name: str, text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
            raise self.fail(name, f"{name} must be a whole number")
        return self.from_json(name, int(text))


@dataclass(frozen=True)
class Bool(Value):
    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def from_json(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, f"{name} must be true or false")
        return value

    def from_text(self, name: str, text: str) -> bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise self.fail(name, f"{name} must be true or false")


@dataclass(frozen=True)
class DateTime(Value):
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}

    def from_json(self, name: str, value: Any) -> datetime:
        if not isinstance(value, str):
            raise self.fail(name, f"{name} must be an ISO 8601 date-time")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise self.fail(name, f"{name} must be an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            raise self.fail(name, f"{name} needs a time zone (e.g. Z or +05:30)")
        return parsed


@dataclass(frozen=True)
class Date(Value):
    """A calendar date, YYYY-MM-DD (a day of the site's time zone where a report reads it)."""

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}

    def from_json(self, name: str, value: Any) -> date:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise self.fail(name, f"{name} must be a date, YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(name, f"{name} must be a date, YYYY-MM-DD") from None


@dataclass(frozen=True)
class TextList(Value):
    item: Text
    max_items: int

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema(), "minItems": 1, "maxItems": self.max_items}

    def from_json(self, name: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(name, f"{name} must be a list of strings")
        if not value:
            raise self.fail(name, f"{name} must not be empty")
        if len(value) > self.max_items:
            raise self.fail(name, f"{name} may hold at most {self.max_items} items")
        return [self.item.from_json(name, v) for v in value]


class PasswordText(_Checked):
    """A new password: the library's strength rules are the check (weak_password)."""

    def normalise(self, value: str, name: str) -> str:
        if "\x00" in value:
            raise ValidationError(f"{name} must not contain NUL characters", field=name)
        passwords.check_strength(value)
        return value


class _AreaText(Text):
    error = UnknownArea


class _CursorText(Text):
    error = InvalidCursor


class _LoginNameText(Text):
    error = InvalidUsername


# the values of this API --------------------------------------------------------
QR = QrText(
    max_length=qr.MAX_INPUT_LENGTH,
    pattern=qr.input_pattern(),
    description="whitespace, control and zero-width characters are dropped, then each other "
    "character is NFKC-normalised and must become one of A-Z a-z 0-9 - _ / (anything else, "
    "and anything above U+FFFF, is refused, never dropped), letters are uppercased; the result "
    "is 4-100 characters in segments joined by single '/' (not ending /HISTORY)",
    invalid="invalid QR code",
)
BILL_NO = BillNoText(
    max_length=200,
    pattern=bills.input_pattern(),
    description=bills.BILL_NO_RULE + "; whitespace around it is dropped; matched case-insensitively",
    invalid=f"invalid bill number: {bills.BILL_NO_RULE}",
)
LOGIN_NAME = _LoginNameText(
    max_length=64,
    pattern="^[ -~]*$",
    description="ASCII: usernames are",
    invalid="a username is ASCII: A-Z a-z 0-9 _ . @ -",
)
USERNAME = Text(
    max_length=64,
    pattern=users.USERNAME_PATTERN,
    description="3-64 characters of A-Z a-z 0-9 _ . @ -",
    invalid="a username is 3-64 characters of A-Z a-z 0-9 _ . @ -",
)
PASSWORD = PasswordText(
    max_length=passwords.MAX_LENGTH,
    min_length=passwords.MIN_LENGTH,
    description=f"{passwords.MIN_LENGTH}-{passwords.MAX_LENGTH} characters",
)
ANY_PASSWORD = Text(max_length=passwords.MAX_LENGTH)
AREA = _AreaText(
    max_length=50,
    pattern=areas.NAME_PATTERN,
    description="a dispatch area: 2-50 characters of a-z 0-9 _",
    invalid="unknown dispatch area",
)
NEW_AREA_NAME = Text(
    max_length=50,
    pattern=areas.NAME_PATTERN,
    description="2-50 characters of a-z 0-9 _, starting with a letter",
    invalid="an area name is 2-50 characters of a-z 0-9 _",
)
CAPACITY = Int(bills.MIN_CAPACITY, bills.MAX_CAPACITY)
CURSOR = _CursorText(
    max_length=200,
    pattern=cursor.CURSOR_PATTERN,
    description="next_cursor of the previous page",
    invalid="invalid cursor: pass back next_cursor unchanged",
)
LIMIT = Int(1, 200)


# bodies -------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    value: Value
    required: bool = False
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class Body:
    """The fields a JSON object body may carry; anything else is refused."""

    fields: dict[str, Field]
    min_fields: int = 0  # e.g. 1 for a PATCH
    rules: tuple[dict[str, Any], ...] = ()  # extra JSON Schema (if/then) the library enforces

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
            else:
                out[name] = spec.value.from_json(name, value)
        if len(out) < self.min_fields:
            raise ValidationError(f"name at least one of {', '.join(self.fields)}")
        return out

    def schema(self) -> dict[str, Any]:
        props = {}
        for name, spec in self.fields.items():
            prop = spec.value.schema()
            if spec.nullable:
                prop = {"anyOf": [prop, {"type": "null"}]}
            if spec.description:
                prop["description"] = spec.description
            props[name] = prop
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        required = [n for n, s in self.fields.items() if s.required]
        if required:
            out["required"] = required
        if self.min_fields:
            out["minProperties"] = self.min_fields
        if self.rules:
            out["allOf"] = list(self.rules)
        return out


def body(min_fields: int = 0, rules: tuple[dict[str, Any], ...] = (), **fields: Field) -> Body:
    return Body(fields, min_fields, rules)


# query parameters ---------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    value: Value
    default: Any = None
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Query:
    params: dict[str, Param] = field(default_factory=dict)

    def parse(self, req: falcon.Request) -> dict[str, Any]:
        out: dict[str, Any] = {}
        given = req.params
        for name, spec in self.params.items():
            raw = given.get(name)
            if raw is None:
                if spec.required:
                    raise ValidationError(f"{name} is required", field=name)
                if spec.default is not None:
                    out[name] = spec.default
                continue
            if isinstance(raw, list):  # ?a=1&a=2
                raise ValidationError(f"{name} may be given once", field=name)
            out[name] = spec.value.from_text(name, raw)
        return out

    def parameters(self) -> list[dict[str, Any]]:
        out = []
        for name, spec in self.params.items():
            schema = spec.value.schema()
            if spec.default is not None:
                schema["default"] = spec.default
            item: dict[str, Any] = {"name": name, "in": "query", "required": spec.required, "schema": schema}
            if spec.description:
                item["description"] = spec.description
            out.append(item)
        return out


def query(**params: Param) -> Query:
    return Query(params)


PAGE = {"limit": Param(LIMIT, 50), "cursor": Param(CURSOR)}
