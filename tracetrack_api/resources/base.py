"""What every resource is given, and the idempotent-write helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon
from psycopg import Connection

from tracetrack_db import Database, idempotency

from ..auth import UserDirectory
from ..cache import LocalCache, RedisCache
from ..config import ApiSettings
from ..http import Body, dumps, parse_body, read_raw
from ..tokens import TokenSigner


@dataclass
class Services:
    db: Database
    settings: ApiSettings
    cache: LocalCache | RedisCache
    signer: TokenSigner
    directory: UserDirectory


class Resource:
    def __init__(self, services: Services):
        self.s = services
        self.db = services.db

    def body(self, req: falcon.Request, spec: Body) -> dict[str, Any]:
        return parse_body(req, spec, self.s.settings.max_body_bytes)

    def write(self, req: falcon.Request, resp: falcon.Response,
              op: Callable[[Connection | None, str | None], tuple[int, Any]]) -> None:
        """Run a write; with an Idempotency-Key, once per key (a repeat gets the first answer).

        `op(conn, key)` does the work on `conn` (None: its own connection) and
        returns (status, payload).
        """
        key = req.get_header("Idempotency-Key")
        if key is None:
            status, payload = op(None, None)
            data = dumps(payload)
        else:
            fingerprint = idempotency.fingerprint(req.method, req.relative_uri,
                                                  read_raw(req, self.s.settings.max_body_bytes))

            def run(conn: Connection) -> tuple[int, bytes]:
                code, payload = op(conn, key)
                return code, dumps(payload)

            stored = idempotency.run_once(self.db, req.context.user.id, key, fingerprint, run)
            status, data = stored.status, stored.body
            if stored.replayed:
                resp.set_header("Idempotent-Replayed", "true")
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data
