"""Route table rows: offline scanners that sync (issue 12).

Joined into routes.OPERATIONS; the same rules as the rows there. Each
operation of a list is checked by the library (tracetrack_db.sync), which the
JSON Schema below states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracetrack_db import sync
from tracetrack_db.errors import TraceTrackError

from .handlers import sync as handlers
from .schema import AREA, QR, DateTime, Field, Text, Value, body
from .table import SCANNERS, Operation

DEVICE_ID = Text(
    max_length=64, pattern=sync.ID_PATTERN, description=sync.ID_RULE, invalid=f"device_id is {sync.ID_RULE}"
)


@dataclass(frozen=True)
class Operations(Value):
    """The list of operations: 1-1000 objects, each one of the four kinds with
    its arguments; client_op_id unique within the list (duplicate_client_op_id)."""

    def schema(self) -> dict[str, Any]:
        kinds = []
        for op, args in sync.OPS.items():
            props: dict[str, Any] = {
                "op": {"const": op},
                "client_op_id": {
                    **DEVICE_ID.schema(),
                    "description": "unique per device: a resend with it is a replay",
                },
                "device_time": {**DateTime().schema(), "description": "the scanner's clock when it was scanned"},
            }
            for name, _required in args:
                props[name] = QR.schema() if name != "dispatch_area" else {"anyOf": [AREA.schema(), {"type": "null"}]}
            kinds.append(
                {
                    "type": "object",
                    "title": op,
                    "properties": props,
                    "required": [*sync.COMMON, *(n for n, r in args if r)],
                    "additionalProperties": False,
                }
            )
        return {"type": "array", "minItems": 1, "maxItems": sync.MAX_OPERATIONS, "items": {"oneOf": kinds}}

    def from_json(self, name: str, value: Any) -> list[sync.SyncOp]:
        try:
            return sync.parse_operations(value, name)
        except TraceTrackError as exc:
            # the body field to blame is operations; the message says which operation and argument
            if exc.field and exc.field != name and exc.field not in exc.message:
                exc.message = f"{exc.field}: {exc.message}"
                exc.args = (exc.message,)
            exc.field = name
            raise


# 1,000 operations of two QRs of qr.MAX_INPUT_LENGTH (200) characters each, ids and
# times: about 0.7 MB; a list of real QRs (~150 bytes an operation) is a fifth of it
MAX_BODY = 1024 * 1024

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "sync_scans",
        "POST",
        "/api/scans/sync",
        handlers.sync_operations,
        "Sync the operations an offline scanner captured: a verdict per operation",
        "scans",
        SCANNERS,
        sync.SyncAnswer,
        body=body(
            device_id=Field(DEVICE_ID, required=True, description="the scanner: client_op_id is unique per device"),
            operations=Field(Operations(), required=True, description="in the order they were scanned"),
        ),
        errors=("duplicate_client_op_id",),
        max_body=MAX_BODY,
        description="Up to 1,000 operations (open_parent, link_child, unlink_child, move_child: the "
        "bodies of POST /api/scans/parent, /child, /unlink, /move plus op, client_op_id and device_time), "
        "applied in order, each in its own transaction, with the caller's role and area as the single "
        "calls. A body that is not well formed (400) changes nothing. Each operation gets a verdict: ok "
        "with the single call's answer (result) and status, or error with the single call's code, "
        "message and status (bag_not_found, parent_full, child_in_other_parent, wrong_area ...), or one of "
        "sync's own: device_time_out_of_range (the device clock is more than TRACETRACK_SYNC_MAX_AHEAD "
        "ahead of the server's or TRACETRACK_SYNC_MAX_BEHIND behind it), client_op_id_reused (this "
        "device's id was synced before with another operation or by another user). Verdicts are kept "
        "per (device_id, client_op_id): sending the same list again changes nothing and answers the "
        "same verdicts, with replayed true; only conflict (a concurrent change got in the way) is not "
        "kept, and runs again when resent. Events of synced operations carry device_time; a bag's "
        "history orders by it where given. Idempotency-Key is not needed: client_op_id is one per operation.",
    ),
)
