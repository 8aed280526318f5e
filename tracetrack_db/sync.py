"""Offline sync: the operations a scanner captured while offline, applied in order.

Each operation (open a parent, link, unlink, move) carries a client operation
id, unique per device, and the device's time. Each runs in its own
transaction through the same library call as the single scan (scans.py), so
it gets the same result or the same error code, and its verdict is kept,
keyed by (device, client op id), in that transaction. A resend of the same
operation answers the kept verdict and runs nothing; the same id with another
operation is refused (client_op_id_reused). The device's time reaches the
operation's events through a transaction-local setting that
event.device_time's default reads (sql/migrations/0018_offline_sync.sql); a
device clock too far ahead or behind the database's refuses the operation
(device_time_out_of_range).

One verdict is not kept: `conflict`, a concurrent change that got in the way
("try again"), so a resend runs that operation again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import Connection

from . import areas, errors, scans
from .database import Database
from .jsontext import dumps
from .qr import normalize_qr

MAX_OPERATIONS = 1000
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"  # device_id and client_op_id (sync_op's checks)
ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit"
_ID = re.compile(ID_PATTERN[1:-1])
MAX_AHEAD_SECONDS = 5 * 60  # defaults of TRACETRACK_SYNC_MAX_AHEAD / _MAX_BEHIND
MAX_BEHIND_SECONDS = 7 * 86400

# each operation's arguments: (name, required); all are QRs but dispatch_area
OPS: dict[str, tuple[tuple[str, bool], ...]] = {
    "open_parent": (("qr_id", True), ("dispatch_area", False)),
    "link_child": (("parent_qr", True), ("child_qr", True)),
    "unlink_child": (("child_qr", True),),
    "move_child": (("child_qr", True), ("to_parent_qr", True)),
}
COMMON = ("client_op_id", "op", "device_time")


@dataclass(frozen=True, slots=True)
class SyncOp:
    """One operation of a list, checked and normalised (QRs as normalize_qr makes them)."""

    client_op_id: str
    op: str  # a key of OPS
    device_time: datetime  # with its offset
    args: dict[str, str]  # the op's arguments given (an absent or null dispatch_area: not there)


@dataclass(frozen=True, slots=True)
class SyncVerdict:
    """What one operation got: ok with the single call's answer (`result`, `status`
    200 or 201), or error with its code, message and status (404, 409, 422 ...)."""

    client_op_id: str
    op: str
    verdict: str  # ok | error
    status: int  # what the single call would have answered
    result: dict[str, Any] | None  # ok: the single call's answer
    code: str | None  # error: the single call's error code, or a sync one
    message: str | None
    replayed: bool  # the verdict kept from an earlier sync of this operation: nothing ran now


@dataclass(frozen=True, slots=True)
class SyncAnswer:
    device_id: str
    results: list[SyncVerdict]  # one per operation, in the order sent


def check_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise errors.ValidationError(f"{field} must be {ID_RULE}", field=field)
    return value


def parse_time(value: object, field: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise errors.ValidationError(f"{field} must be an ISO 8601 date-time", field=field) from None
    else:
        raise errors.ValidationError(f"{field} must be an ISO 8601 date-time", field=field)
    if parsed.tzinfo is None:
        raise errors.ValidationError(f"{field} needs a time zone (e.g. Z or +05:30)", field=field)
    try:  # a time beyond the years 1-9999 in UTC could be kept but never read back (a resend's replay)
        parsed.astimezone(UTC)
    except OverflowError:
        raise errors.ValidationError(f"{field} must lie within the years 1-9999 (UTC)", field=field) from None
    return parsed


def parse_operation(item: object, where: str) -> SyncOp:
    """One operation of a list (a JSON object), checked; `where` names it in errors."""
    if isinstance(item, SyncOp):
        return item
    if not isinstance(item, Mapping):
        raise errors.ValidationError(f"{where} must be an object", field=where)
    op = item.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise errors.ValidationError(f"{where}.op must be one of {', '.join(OPS)}", field=f"{where}.op")
    names = OPS[op]
    known = set(COMMON) | {n for n, _ in names}
    for name in item:
        if name not in known:
            raise errors.ValidationError(f"unknown field {name!r} for {op}", field=f"{where}.{name}")
    for name in COMMON:
        if name not in item:
            raise errors.ValidationError(f"{where}.{name} is required", field=f"{where}.{name}")
    args: dict[str, str] = {}
    for name, required in names:
        value = item.get(name)
        field = f"{where}.{name}"
        if value is None:
            if required:
                raise errors.ValidationError(f"{field} is required", field=field)
            continue
        args[name] = areas.check_name(value, field) if name == "dispatch_area" else normalize_qr(value, field)
    return SyncOp(
        client_op_id=check_id(item["client_op_id"], f"{where}.client_op_id"),
        op=op,
        device_time=parse_time(item["device_time"], f"{where}.device_time"),
        args=args,
    )


def parse_operations(items: object, field: str = "operations") -> list[SyncOp]:
    """A whole list, checked before anything runs: 1-1000 known operations with
    their arguments, client op ids unique within it. Raises ValidationError
    (DuplicateClientOpId for an id given twice) naming the item."""
    if not isinstance(items, list):
        raise errors.ValidationError(f"{field} must be a list of operations", field=field)
    if not items:
        raise errors.ValidationError(f"{field} must not be empty", field=field)
    if len(items) > MAX_OPERATIONS:
        raise errors.ValidationError(f"at most {MAX_OPERATIONS} operations per sync: send the rest next", field=field)
    ops = [parse_operation(item, f"{field}[{i}]") for i, item in enumerate(items)]
    seen: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.client_op_id in seen:
            raise errors.DuplicateClientOpId(
                f"client_op_id {op.client_op_id!r} is given twice ({field}[{seen[op.client_op_id]}] and "
                f"{field}[{i}]): each operation needs its own",
                field=f"{field}[{i}].client_op_id",
            )
        seen[op.client_op_id] = i
    return ops


# the single calls, by op: (answer, status) -------------------------------------------
Runner = Callable[..., tuple[Any, int]]


def _open_parent(db: Database, args: dict[str, str], **kw: Any) -> tuple[Any, int]:
    opened = scans.open_parent(db, args["qr_id"], dispatch_area=args.get("dispatch_area"), **kw)
    return opened, 201 if opened.created else 200


def _link_child(db: Database, args: dict[str, str], **kw: Any) -> tuple[Any, int]:
    return scans.link_child(db, args["parent_qr"], args["child_qr"], **kw), 200


def _unlink_child(db: Database, args: dict[str, str], **kw: Any) -> tuple[Any, int]:
    return scans.unlink_child(db, args["child_qr"], **kw), 200


def _move_child(db: Database, args: dict[str, str], **kw: Any) -> tuple[Any, int]:
    return scans.move_child(db, args["child_qr"], args["to_parent_qr"], **kw), 200


RUNNERS: dict[str, Runner] = {
    "open_parent": _open_parent,
    "link_child": _link_child,
    "unlink_child": _unlink_child,
    "move_child": _move_child,
}


class _Lost(Exception):
    """A concurrent sync of the same operation kept its verdict first."""


def sync(
    db: Database,
    device_id: str,
    operations: list[SyncOp] | list[Any],
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    max_ahead_seconds: int = MAX_AHEAD_SECONDS,
    max_behind_seconds: int = MAX_BEHIND_SECONDS,
    conn: Connection | None = None,
) -> SyncAnswer:
    """Apply `operations` (SyncOps, or JSON objects: see parse_operations) in
    order, each in its own transaction, on one connection: a verdict per
    operation, in order. A list that is not well formed raises ValidationError
    and changes nothing. `restrict_area` confines every operation as it
    confines the single calls (a dispatcher's area)."""
    device = check_id(device_id, "device_id")
    ops = parse_operations(operations)
    with db.connection(conn=conn) as own:
        results = [
            _apply(db, own, device, op, user_id, restrict_area, max_ahead_seconds, max_behind_seconds) for op in ops
        ]
    return SyncAnswer(device_id=device, results=results)


def _apply(
    db: Database,
    conn: Connection,
    device: str,
    op: SyncOp,
    user_id: int | None,
    area: str | None,
    max_ahead: int,
    max_behind: int,
) -> SyncVerdict:
    ids = {"user_id": user_id, "device_id": device, "client_op_id": op.client_op_id}  # a user's own devices
    try:
        with conn.transaction():
            seen = db.one(
                "sync_begin_op",
                {**ids, "device_time": op.device_time, "max_ahead": max_ahead, "max_behind": max_behind},
                row=dict,
                conn=conn,
            )
            if seen["op"] is not None:
                return _kept(op, seen, user_id)
            kept: str | None = None
            if seen["clock"] is not None:
                limit = f"{max_ahead} s ahead of" if seen["clock"] == "ahead" else f"{max_behind} s behind"
                verdict = _refused(
                    op,
                    errors.DeviceTimeOutOfRange(
                        f"device_time {op.device_time.isoformat()} is more than {limit} the server's clock: "
                        "set the scanner's clock, then scan again (a new client_op_id)"
                    ),
                )
            else:
                answer, status = RUNNERS[op.op](
                    db,
                    op.args,
                    user_id=user_id,
                    restrict_area=area,
                    idempotency_key=f"sync:{device}:{op.client_op_id}",
                    conn=conn,
                )
                kept = dumps(answer).decode()  # kept as written, and answered as a resend will read it
                verdict = SyncVerdict(op.client_op_id, op.op, "ok", status, orjson.loads(kept), None, None, False)
            if not _keep(db, conn, ids, op, user_id, verdict, kept):
                raise _Lost
            return verdict
    except _Lost:
        pass
    except errors.DatabaseUnavailable:
        raise
    except errors.TraceTrackError as exc:  # the operation changed nothing (its transaction rolled back)
        verdict = _refused(op, exc)
        if type(exc) is errors.Conflict:  # "try again": not kept, a resend runs it again
            return verdict
        if _keep(db, conn, ids, op, user_id, verdict):
            return verdict
    return _kept(op, db.one("sync_verdict", ids, row=dict, conn=conn), user_id)


def _refused(op: SyncOp, exc: errors.TraceTrackError) -> SyncVerdict:
    return SyncVerdict(op.client_op_id, op.op, "error", exc.status, None, exc.code, exc.message, False)


def _keep(
    db: Database,
    conn: Connection,
    ids: dict[str, Any],
    op: SyncOp,
    user_id: int | None,
    verdict: SyncVerdict,
    result: str | None = None,  # an ok verdict's answer, as JSON text
) -> bool:
    return bool(
        db.scalar(
            "sync_keep_verdict",
            {
                **ids,
                "user_id": user_id,
                "op": op.op,
                "args": dumps(op.args).decode(),
                "device_time": op.device_time,
                "status": verdict.status,
                "code": verdict.code,
                "message": verdict.message,
                "result": result,
            },
            conn=conn,
        )
    )


def _kept(op: SyncOp, row: dict[str, Any], user_id: int | None) -> SyncVerdict:
    """The kept verdict of this operation, or client_op_id_reused if the id was another's."""
    same = (
        row["user_id"] == user_id
        and row["op"] == op.op
        and row["args"] == op.args
        and row["device_time"] == op.device_time
    )
    if not same:
        return _refused(
            op,
            errors.ClientOpIdReused(
                f"client_op_id {op.client_op_id!r} of this device was used for another operation "
                f"(synced before): give each operation its own id"
            ),
        )
    result = None if row["result"] is None else orjson.loads(row["result"])
    verdict = "ok" if row["code"] is None else "error"
    return SyncVerdict(op.client_op_id, op.op, verdict, row["status"], result, row["code"], row["message"], True)
