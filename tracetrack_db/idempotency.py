"""Idempotent writes: the first answer to a key is stored and replayed.

The key is claimed in the same transaction as the write, so a crash or error
leaves no key behind, and a concurrent repeat waits for the first to finish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import Connection

from . import errors
from .database import Database

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    replayed: bool


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what identifies a request (method, path, body)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()


def run_once(db: Database, user_id: int, key: str, request_fingerprint: str,
             write: Callable[[Connection], tuple[int, bytes]]) -> Stored:
    """Run `write(conn)` once per (user, key) and return its (status, body).

    A repeat with the same fingerprint returns the stored answer and runs
    nothing; a repeat with a different request raises IdempotencyKeyReused.
    `write` must do its work on the connection it is given.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise errors.ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters",
                                     field="Idempotency-Key")
    params = {"user_id": user_id, "key": key, "fingerprint": request_fingerprint}
    with db.transaction() as conn:
        if db.one("claim_idempotency_key", params, conn=conn):
            status, body = write(conn)
            db.execute("store_idempotent_response",
                       {"user_id": user_id, "key": key, "status": status, "response": body}, conn=conn)
            return Stored(status, body, replayed=False)
        stored = db.one("get_idempotency_key", params, row=dict, conn=conn)
    if stored["fingerprint"] != request_fingerprint:
        raise errors.IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    return Stored(stored["status"], bytes(stored["response"]), replayed=True)
