"""The vocabulary of the route table: one `Operation` per method and path,
what a handler is given (`Ctx`) and what it may return.

A handler is a plain function `handler(ctx, **params)`: params are the path
parameters, the query parameters given (or their defaults) and the body
fields given, each already checked. It returns a value (rendered as JSON with
the operation's status), a `Reply` (a value and a status of its choosing),
`RawJson` (bytes PostgreSQL already rendered) or a `CsvStream`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from tracetrack_db import Database, Principal

from .cache import LocalCache, RedisCache
from .config import ApiSettings
from .schema import Body, Query

PUBLIC = None
ANY_ROLE = ("admin", "biller", "dispatcher")


@dataclass(frozen=True)
class Operation:
    id: str                            # operationId: get_bag, link_child ...
    method: str                        # GET, POST, PATCH, DELETE
    path: str                          # /api/bags/{qr}; {user_id:int} for an integer
    handler: Callable[..., Any]
    summary: str
    tag: str
    roles: tuple[str, ...] | None      # None: no token needed
    answer: Any                        # a row type, Page[...], list[...], or CSV
    status: int = 200
    other_statuses: tuple[int, ...] = ()  # a handler's Reply may also answer these
    body: Body | None = None
    query: Query | None = None
    errors: tuple[str, ...] = ()       # error codes beyond those the row implies
    idempotent: bool = False           # a write that honours Idempotency-Key
    description: str = ""


CSV = "text/csv"


@dataclass(frozen=True, slots=True)
class Reply:
    value: Any
    status: int
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RawJson:
    data: bytes


@dataclass(slots=True)
class CsvStream:
    chunks: Iterator[bytes]
    filename: str


@dataclass
class Services:
    """What the handlers share: built once by create_app."""

    db: Database
    settings: ApiSettings
    cache: LocalCache | RedisCache
    directory: Any   # auth.UserDirectory
    signer: Any      # tokens.TokenSigner


@dataclass(slots=True)
class Ctx:
    """One request's caller and, inside an idempotent write, its transaction."""

    services: Services
    user: Principal | None
    key: str | None = None              # the Idempotency-Key of this write
    conn: Connection | None = None      # its transaction

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def area(self) -> str | None:
        """A dispatcher's area: every read and write is confined to it."""
        return self.user.restrict_area if self.user is not None else None

    @property
    def writes(self) -> dict[str, Any]:
        """The keyword arguments every library write takes: who, which key, which transaction."""
        return {"user_id": self.user.id if self.user else None, "idempotency_key": self.key, "conn": self.conn}
