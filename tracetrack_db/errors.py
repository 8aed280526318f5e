"""Domain errors, one class per stable error code, and the one place that
turns psycopg errors into them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pg


class TraceTrackError(Exception):
    """Base of every domain error: a stable `code`, an HTTP-like `status`."""

    code = "error"
    status = 400

    def __init__(self, message: str | None = None, *, field: str | None = None):
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")
        self.field = field


# 400: invalid input
class ValidationError(TraceTrackError):
    code = "validation_error"


class InvalidQr(ValidationError):
    code = "invalid_qr"


class InvalidCursor(ValidationError):
    code = "invalid_cursor"


class UnknownArea(ValidationError):
    code = "unknown_area"


class DispatchAreaRequired(ValidationError):
    code = "dispatch_area_required"


class TooManyChildren(ValidationError):
    code = "too_many_children"


class WeakPassword(ValidationError):
    code = "weak_password"


class InvalidUsername(ValidationError):
    code = "invalid_username"


# 401 / 403
class InvalidCredentials(TraceTrackError):
    code, status = "invalid_credentials", 401


class Forbidden(TraceTrackError):
    code, status = "forbidden", 403


class WrongArea(Forbidden):
    code = "wrong_area"


# 404
class NotFound(TraceTrackError):
    code, status = "not_found", 404


class BagNotFound(NotFound):
    code = "bag_not_found"


class BillNotFound(NotFound):
    code = "bill_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class RuleNotFound(NotFound):
    code = "rule_not_found"


class ImportNotFound(NotFound):
    code = "import_not_found"


# 409: conflicts with the current state
class Conflict(TraceTrackError):
    code, status = "conflict", 409


class QrTaken(Conflict):
    code = "qr_taken"


class BillExists(Conflict):
    code = "bill_exists"


class UsernameTaken(Conflict):
    code = "username_taken"


class AreaExists(Conflict):
    code = "area_exists"


class ParentFull(Conflict):
    code = "parent_full"


class ChildInOtherParent(Conflict):
    code = "child_in_other_parent"


class ChildNotLinked(Conflict):
    code = "child_not_linked"


class ParentOnBill(Conflict):
    code = "parent_on_bill"


class ParentClosed(Conflict):
    code = "parent_closed"


class NothingToUndo(Conflict):
    code = "nothing_to_undo"


class BagOnBill(Conflict):
    code = "bag_on_bill"


class BagHasChildren(Conflict):
    code = "bag_has_children"


class BillFull(Conflict):
    code = "bill_full"


class ParentOnOtherBill(Conflict):
    code = "parent_on_other_bill"


class ParentNotOnBill(Conflict):
    code = "parent_not_on_bill"


class ParentEmpty(Conflict):
    code = "parent_empty"


class BillCompleted(Conflict):
    code = "bill_completed"


class BillNotFull(Conflict):
    code = "bill_not_full"


class BillNotCompleted(Conflict):
    code = "bill_not_completed"


class BillCapacityTooSmall(Conflict):
    code = "bill_capacity_too_small"


class LastAdmin(Conflict):
    code = "last_admin"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class RuleExists(Conflict):
    code = "rule_exists"


# Imports (tracetrack_db.importfiles, imports, extraction): a file refused whole
class ImportFileError(ValidationError):
    code = "invalid_import_file"


class EmptyFile(ImportFileError):
    code = "empty_file"


class MissingColumn(ImportFileError):
    code = "missing_column"


class UnsupportedFile(ImportFileError):
    code = "unsupported_file"


class FormulaCell(ImportFileError):
    code = "formula_cell"


class CellTooLarge(ImportFileError):
    code = "cell_too_large"


class BadEncoding(ImportFileError):
    code = "bad_encoding"


class TooManyRows(ImportFileError):
    code = "too_many_rows"


class FileTooLarge(ImportFileError):
    code, status = "file_too_large", 413


class InvalidRule(ValidationError):
    code = "invalid_rule"


class ImportNotAllowed(Forbidden):
    code = "import_not_allowed"


# Accounts and parent formats (issue 12)
class PasswordChangeRequired(Forbidden):
    code = "password_change_required"


class WrongPassword(ValidationError):
    code = "wrong_password"


class FormatNotFound(NotFound):
    code = "format_not_found"


class FormatExists(Conflict):
    code = "format_exists"


class FormatInUse(Conflict):
    code = "format_in_use"


# Return tickets (issue 12)
class ReturnNotFound(NotFound):
    code = "return_not_found"


class ReturnNotOpen(Conflict):
    code = "return_not_open"


class ReturnEmpty(Conflict):
    code = "return_empty"


class ReturnFull(Conflict):
    code = "return_full"


class ReturnedOnThisTicket(Conflict):
    code = "returned_on_this_ticket"


# Offline sync (issue 12): verdicts of single operations of a list, and a list refused whole
class DeviceTimeOutOfRange(ValidationError):
    code = "device_time_out_of_range"


class DuplicateClientOpId(ValidationError):
    code = "duplicate_client_op_id"


class ClientOpIdReused(Conflict):
    code = "client_op_id_reused"


# 422: the wrong kind of bag
class WrongBagType(TraceTrackError):
    code, status = "wrong_bag_type", 422


class NotAParent(WrongBagType):
    code = "not_a_parent"


class NotAChild(WrongBagType):
    code = "not_a_child"


# 503
class DatabaseUnavailable(TraceTrackError):
    code, status = "database_unavailable", 503


class ReplicaUnavailable(DatabaseUnavailable):
    """A read failed on the replica as a gone standby fails: run it again (it goes to the primary)."""


def _all_subclasses(cls: type[TraceTrackError]) -> list[type[TraceTrackError]]:
    out: list[type[TraceTrackError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def by_code() -> dict[str, type[TraceTrackError]]:
    """Every error class by code, including those a caller (the HTTP layer) defines."""
    classes: list[type[TraceTrackError]] = [TraceTrackError, *_all_subclasses(TraceTrackError)]
    return {c.code: c for c in classes}


BY_CODE: dict[str, type[TraceTrackError]] = by_code()  # the library's own

# Unique, foreign-key and check constraints whose violation is a client error:
# the error class, the field, and the message.
_CONSTRAINTS: dict[str, tuple[type[TraceTrackError], str, str]] = {
    "bag_qr_id_key": (QrTaken, "qr_id", "this QR code is already registered"),
    "bill_bill_no_key": (BillExists, "bill_no", "a bill with this number already exists"),
    "app_user_username_key": (UsernameTaken, "username", "this username is taken"),
    "dispatch_area_pkey": (AreaExists, "name", "this dispatch area exists already"),
    "parent_format_name_key": (Conflict, "name", "a parent format of this name exists already"),
    "extraction_rule_name_key": (RuleExists, "name", "an extraction rule of this name exists already"),
    "extraction_rule_name_check": (
        ValidationError,
        "name",
        "a rule name is 2-50 characters of a-z 0-9 _, starting with a letter",
    ),
    "bag_dispatch_area_fkey": (UnknownArea, "dispatch_area", "unknown dispatch area"),
    "app_user_dispatch_area_fkey": (UnknownArea, "dispatch_area", "unknown dispatch area"),
    "bag_qr_id_check": (InvalidQr, "qr_id", "invalid QR code"),
    "bag_qr_id_path": (InvalidQr, "qr_id", "invalid QR code: segments joined by single '/', not ending /HISTORY"),
    "bill_bill_no_check": (
        ValidationError,
        "bill_no",
        "a bill number is 1-64 characters of A-Z a-z 0-9 _ . - in segments joined by single "
        "'/', each starting with a letter or digit, none named parents, complete, reopen, manifest, "
        "manifest.csv or manifest.pdf",
    ),
    "bill_capacity_check": (ValidationError, "capacity", "capacity must be from 1 to 500"),
    "bill_description_check": (ValidationError, "description", "description is too long (1000 at most)"),
    "bill_destination_check": (ValidationError, "destination", "destination is too long (200 at most)"),
    "bill_vehicle_number_check": (ValidationError, "vehicle_number", "vehicle_number is too long (50 at most)"),
    "app_user_username_check": (ValidationError, "username", "a username is 3-64 characters of A-Z a-z 0-9 _ . @ -"),
    "app_user_dispatcher_area": (DispatchAreaRequired, "dispatch_area", "a dispatcher needs a dispatch area"),
    "dispatch_area_name_check": (ValidationError, "name", "an area name is 2-50 characters of a-z 0-9 _"),
    "parent_format_capacity_check": (ValidationError, "capacity", "capacity must be from 1 to 1000"),
    "return_ticket_depot_check": (ValidationError, "depot", "a depot is 1-200 characters"),
    "return_ticket_reason_check": (ValidationError, "reason", "a reason is at most 1000 characters"),
}


_FIELD_BY_CODE = {
    "unknown_area": "dispatch_area",
    "dispatch_area_required": "dispatch_area",
    "validation_error": None,
    "qr_taken": "qr_id",
    "too_many_children": "child_qrs",
}


def translate(exc: psycopg.Error) -> TraceTrackError | None:
    """The domain error a psycopg error stands for, or None if it is a bug."""
    diag = exc.diag
    state = diag.sqlstate or ""
    if state.startswith("TT"):
        fallback = {"TT400": ValidationError, "TT403": Forbidden, "TT404": NotFound, "TT422": WrongBagType}.get(
            state, Conflict
        )
        code = diag.message_hint or ""
        return BY_CODE.get(code, fallback)(diag.message_primary, field=_FIELD_BY_CODE.get(code))
    if isinstance(exc, pg.IntegrityError) and diag.constraint_name in _CONSTRAINTS:
        cls, field, message = _CONSTRAINTS[diag.constraint_name]
        return cls(message, field=field)
    if isinstance(exc, pg.InvalidRegularExpression):
        return ValidationError(f"invalid pattern: {diag.message_primary}", field="pattern")
    if isinstance(exc, psycopg.DataError):  # NUL bytes, out-of-range numbers, bad encodings
        return ValidationError(f"invalid value: {diag.message_primary or exc}")
    if state.startswith("40"):  # deadlock, serialization failure (class 40): retryable
        # (psycopg's DeadlockDetected is not a subclass of TransactionRollback: test the class)
        return Conflict("a concurrent change got in the way: try again")
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, pg.QueryCanceled | pg.LockNotAvailable):
        return DatabaseUnavailable(f"database unavailable: {exc}".strip())
    return None


@contextmanager
def wrap_errors() -> Iterator[None]:
    """Re-raise psycopg and pool errors as domain errors where they are ones."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise DatabaseUnavailable("no database connection available in time") from exc
    except psycopg.Error as exc:
        domain = translate(exc)
        if domain is None:
            raise
        raise domain from exc
