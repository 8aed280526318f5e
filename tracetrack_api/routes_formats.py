"""Route table rows: parent formats as data, managed by admins (issue 12).

Joined into routes.OPERATIONS; the same rules as the rows there. The path
parameter format_name is typed by FORMAT_NAME (routes.PATH_VALUES).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tracetrack_db import formats
from tracetrack_db.errors import ValidationError
from tracetrack_db.models import ParentFormat

from .answers import Deleted
from .handlers import formats as handlers
from .schema import Field, Int, Text, Value, body
from .table import ANY_ROLE, Operation

FORMAT_NAME = Text(
    max_length=50,
    pattern=formats.NAME_PATTERN,
    description="1-50 characters of A-Z a-z 0-9 _ -, starting with a letter or digit",
    invalid=formats.NAME_RULE,
)
PATTERN = Text(
    max_length=formats.MAX_PATTERN,
    min_length=3,
    pattern=r"^\^[^\x00]*\$$",
    description="an anchored PostgreSQL regular expression over normalised QRs (A-Z 0-9 - _ /), "
    "e.g. ^SB[0-9]{5}$; no | outside a group",
    invalid="a pattern is anchored: ^ first and $ last, as in ^SB[0-9]{5}$",
)
FORMAT_CAPACITY = Int(formats.MIN_CAPACITY, formats.MAX_CAPACITY)


@dataclass(frozen=True)
class Kilograms(Value):
    """A weight in kg: a JSON number from 0 up to numeric(12, 3)'s largest."""

    maximum: Decimal = formats.MAX_WEIGHT

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": 0, "maximum": float(self.maximum)}

    def from_json(self, name: str, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{name} must be a number", field=name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{name} must be a number", field=name)
        number = Decimal(str(value))
        if not 0 <= number <= self.maximum:
            raise ValidationError(f"{name} must be from 0 to {self.maximum}", field=name)
        return number


KILOGRAMS = Kilograms()
APPLIES = (
    "capacity and expected_weight_kg apply to parents created from then on: an existing parent keeps "
    "the capacity and expected weight it was created with."
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "list_parent_formats",
        "GET",
        "/api/parent-formats",
        handlers.list_formats,
        "Parent QR formats, in matching order: a QR matching one opens as a parent of its capacity",
        "formats",
        ANY_ROLE,
        list[ParentFormat],
        description="Any role reads them (a scanning console shows capacities). A QR matching no format is a child QR.",
    ),
    Operation(
        "add_parent_format",
        "POST",
        "/api/parent-formats",
        handlers.add_format,
        "Add a parent QR format",
        "formats",
        ("admin",),
        ParentFormat,
        status=201,
        idempotent=True,
        body=body(
            name=Field(FORMAT_NAME, required=True),
            pattern=Field(PATTERN, required=True),
            capacity=Field(FORMAT_CAPACITY, description="children per parent (default 30)"),
            expected_weight_kg=Field(KILOGRAMS, description="of a full parent (default 30)"),
        ),
        errors=("format_exists",),
        description="400 validation_error (field pattern) for a pattern PostgreSQL cannot run, one "
        "not anchored, or one matching an empty text. 409 format_exists for a taken name, a pattern "
        "another format has, or one an existing parent (of another format) matches. Bags already "
        "registered keep their type: a child whose QR matches the new format stays a child.",
    ),
    Operation(
        "change_parent_format",
        "PATCH",
        "/api/parent-formats/{format_name}",
        handlers.change_format,
        "Change a parent format's pattern, capacity or expected weight",
        "formats",
        ("admin",),
        ParentFormat,
        idempotent=True,
        body=body(
            min_fields=1,
            pattern=Field(PATTERN),
            capacity=Field(FORMAT_CAPACITY),
            expected_weight_kg=Field(KILOGRAMS),
        ),
        errors=("format_not_found", "format_in_use", "format_exists"),
        description=f"{APPLIES} The pattern changes only while no parent bag matches the current "
        "one (409 format_in_use otherwise).",
    ),
    Operation(
        "remove_parent_format",
        "DELETE",
        "/api/parent-formats/{format_name}",
        handlers.remove_format,
        "Remove a parent format no parent uses",
        "formats",
        ("admin",),
        Deleted,
        idempotent=True,
        errors=("format_not_found", "format_in_use"),
        description="In use (409 format_in_use): a parent bag's QR matches its pattern. QRs it matched "
        "are child QRs once it is gone.",
    ),
)
