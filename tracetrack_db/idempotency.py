"""Idempotent writes: the first outcome of a key is stored and replayed.

The key is claimed in the same transaction as the write, so a crash or error
leaves no key behind, and a concurrent repeat waits for the first to finish.
The library stores the outcome as (code, JSON of the result); what the code
means (an HTTP status, say) is the caller's business.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from . import errors
from .database import Database
from .jsontext import dumps

MAX_KEY_LENGTH = 200
# visible ASCII, no space and no comma (a server joins a repeated header with commas)
KEY_PATTERN = rf"^[\x21-\x2b\x2d-\x7e]{{1,{MAX_KEY_LENGTH}}}$"
_KEY = re.compile(rf"[\x21-\x2b\x2d-\x7e]{{1,{MAX_KEY_LENGTH}}}")


@dataclass(frozen=True)
class Stored:
    code: int
    body: bytes  # JSON of the result
    replayed: bool


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what identifies a request (method, path, body)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise errors.ValidationError(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} visible ASCII characters, no space or comma "
            "(and one such header)",
            field="Idempotency-Key",
        )
    return key


def run_once(
    db: Database, user_id: int, key: str, request_fingerprint: str, write: Callable[[Connection], tuple[int, Any]]
) -> Stored:
    """Run `write(conn)` once per (user, key); it returns (code, result) and
    must do its work on the connection it is given. The result is stored as
    JSON and returned as such.

    A repeat with the same fingerprint returns the stored outcome and runs
    nothing; a repeat with a different request raises IdempotencyKeyReused.
    """
    check_key(key)
    params = {"user_id": user_id, "key": key, "fingerprint": request_fingerprint}
    with db.transaction() as conn:
        if db.one("claim_idempotency_key", params, conn=conn):
            code, result = write(conn)
            body = dumps(result)
            db.execute(
                "store_idempotent_response",
                {"user_id": user_id, "key": key, "status": code, "response": body},
                conn=conn,
            )
            return Stored(code, body, replayed=False)
        stored = db.one("get_idempotency_key", params, row=dict, conn=conn)
    if stored["fingerprint"] != request_fingerprint:
        raise errors.IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    return Stored(stored["status"], bytes(stored["response"]), replayed=True)
