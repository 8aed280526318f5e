"""The vocabulary of the route table: one `Operation` per method and path,
what a handler is given (`Ctx`) and what it may return.

A handler is a plain function `handler(ctx, **params)`: params are the path
parameters, the query parameters given (or their defaults) and the body
fields given, each already checked. It returns a value (rendered as JSON with
the operation's status), a `Reply` (a value and a status of its choosing),
`RawJson` (bytes PostgreSQL already rendered) or a `CsvStream`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

from tracetrack_db import Database, Principal, errors
from tracetrack_db.audit import Origin
from tracetrack_db.users import ROLES

from .cache import LocalCache, RedisCache
from .config import ApiSettings
from .schema import Body, Query

PUBLIC = None
ANY_ROLE = ("admin", "biller", "dispatcher")
BILLERS = ("admin", "biller")
SCANNERS = ("admin", "dispatcher")


@dataclass(frozen=True)
class Operation:
    id: str  # operationId: get_bag, link_child ...
    method: str  # GET, POST, PATCH, DELETE
    path: str  # /api/bags/{qr}: parameters typed by routes.PATH_VALUES
    handler: Callable[..., Any]
    summary: str
    tag: str
    roles: tuple[str, ...] | None  # None: no token needed
    answer: Any  # a row type, Page[...], list[...], or CSV
    status: int = 200
    other_statuses: tuple[int, ...] = ()  # a handler's Reply may also answer these
    body: Body | None = None
    query: Query | None = None
    errors: tuple[str, ...] = ()  # error codes beyond those the row implies
    idempotent: bool = False  # a write that honours Idempotency-Key
    description: str = ""
    # a file as the body (these media types), given to the handler as `file`:
    # a stream of at most TRACETRACK_IMPORT_MAX_BYTES, never read whole here
    upload: tuple[str, ...] = ()
    # open to a user who must change their password first (an admin set it):
    # every other row answers them 403 password_change_required
    before_password_change: bool = False
    # a JSON body may have this many bytes (0: TRACETRACK_MAX_BODY; the larger of the two counts)
    max_body: int = 0


CSV = "text/csv"
HTML = "text/html"


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
    chunks: Iterable[bytes]  # closed (if it has close()) when the answer is done
    filename: str


# the content types of the docs' and the console's files, by suffix
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Static:
    """Bytes answered as they are, with their content type and headers (the docs and console pages and files)."""

    data: bytes
    content_type: str
    headers: dict[str, str]

    @classmethod
    def page(cls, data: bytes, csp: str, **headers: str) -> Static:
        """An HTML page under its Content-Security-Policy, fetched afresh on every visit."""
        base = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return cls(data, "text/html; charset=utf-8", base | headers)

    @classmethod
    def asset(cls, data: bytes, content_type: str, **headers: str) -> Static:
        """A file a browser may keep for a day and revalidate by its ETag (a hash of its bytes)."""
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        base = {"Cache-Control": "public, max-age=86400", "ETag": etag, "X-Content-Type-Options": "nosniff"}
        return cls(data, content_type, base | headers)


@dataclass
class Services:
    """What the handlers share: built once by create_app."""

    db: Database
    settings: ApiSettings
    cache: LocalCache | RedisCache
    directory: Any  # auth.UserDirectory
    signer: Any  # tokens.TokenSigner
    login_guard: Any  # login_guard.LoginGuard
    counters: Any = None  # cache.SharedCounters or RedisCache: what every process must share
    positions: Any = None  # positions.WritePositions, with a replica only: read-your-writes


@dataclass(slots=True)
class Ctx:
    """One request's caller and, inside an idempotent write, its transaction."""

    services: Services
    user: Principal | None
    client: str = ""  # the client's address (see endpoint.ClientAddress)
    agent: str | None = None  # its User-Agent
    key: str | None = None  # the Idempotency-Key of this write
    conn: Connection | None = None  # its transaction
    after: list[Callable[[], Any]] = field(default_factory=list)  # run once the write committed

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def caller(self) -> Principal:
        """The authenticated caller, for an operation with roles (never a public one)."""
        if self.user is None:
            raise TypeError("a public operation has no caller")
        return self.user

    @property
    def origin(self) -> Origin:
        """Who asks and from where, for the security log rows of a change."""
        user = self.user
        return Origin(user.id if user else None, user.username if user else "", self.client or None, self.agent)

    @property
    def area(self) -> str | None:
        """A dispatcher's area: every read and write is confined to it."""
        return self.user.restrict_area if self.user is not None else None

    def confine(self, asked: str | None) -> str | None:
        """A dispatch_area filter: a dispatcher's own area whatever they ask
        (asking for another one is 403 wrong_area); anyone else's as asked."""
        if self.area is None:
            return asked
        if asked is not None and asked != self.area:
            raise errors.WrongArea(f"you work in {self.area}, not in {asked}", field="dispatch_area")
        return self.area

    def after_commit(self, action: Callable[[], Any]) -> None:
        """Run `action` once the request's write is committed (say, forget a cached user)."""
        self.after.append(action)

    @property
    def writes(self) -> dict[str, Any]:
        """The keyword arguments every library write takes: who, which key, which transaction."""
        return {"user_id": self.user.id if self.user else None, "idempotency_key": self.key, "conn": self.conn}


def check_table(operations: tuple[Operation, ...], path_values: dict[str, Any], spans_segments: frozenset[str]) -> None:
    """Refuse, when the app is built, a row the generic endpoint would get wrong
    without a word: unknown roles, an idempotent public row, a parameter named
    twice, a handler that cannot take its row's parameters, a path the router
    cannot index, or a word after an identifier that the identifier may hold."""
    seen: set[tuple[str, str]] = set()
    for op in operations:
        where = f"route table: {op.id} ({op.method} {op.path})"
        if (op.method, op.path) in seen:
            raise ValueError(f"{where}: a second row for the same method and path")
        seen.add((op.method, op.path))
        if op.roles is not None and (
            not isinstance(op.roles, tuple) or not op.roles or not set(op.roles) <= set(ROLES)
        ):
            raise ValueError(f"{where}: roles must be None or a tuple of {ROLES}, not {op.roles!r}")
        if op.idempotent and op.roles is None:
            raise ValueError(f"{where}: Idempotency-Key keys belong to a user: an idempotent row needs roles")
        if op.before_password_change and op.roles is None:
            raise ValueError(f"{where}: before_password_change is for rows with roles (a public row has no user)")
        segments = op.path.split("/")[1:]
        if any(s.startswith("{") for s in segments[:2]):
            raise ValueError(f"{where}: a path starts with two literal segments (the router's index)")
        path = [s[1:-1] for s in segments if s.startswith("{")]
        for name in path:
            if name not in path_values:
                raise ValueError(f"{where}: path parameter {name!r} has no type in PATH_VALUES")
        query = list(op.query.params) if op.query else []
        body = list(op.body.fields) if op.body else []
        if op.upload and op.body:
            raise ValueError(f"{where}: a row takes a JSON body or an upload, not both")
        if op.upload:
            body = ["file"]
        names = path + query + body
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: a parameter is named twice among path, query and body: {names}")
        required = {n for n in body if op.body and op.body.fields[n].required} | ({"file"} if op.upload else set())
        defaulted = {
            n for n in query if op.query and (op.query.params[n].default is not None or op.query.params[n].required)
        }
        _check_handler(where, op, set(names), set(path) | required | defaulted)
        _check_words(where, segments, path_values, spans_segments)


def _check_handler(where: str, op: Operation, given: set[str], always: set[str]) -> None:
    params = list(inspect.signature(op.handler).parameters.values())[1:]  # after ctx
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not takes_any and given - named:
        raise ValueError(f"{where}: the handler takes no {sorted(given - named)}")
    needed = {p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if needed - always:
        raise ValueError(f"{where}: the handler needs {sorted(needed - always)}, which a request may not give")


def _check_words(where: str, segments: list[str], path_values: dict[str, Any], spans_segments: frozenset[str]) -> None:
    """After an identifier that may hold "/", every literal word must be one the
    identifier's own type refuses to end with (or, when more follows, to hold):
    else a QR or bill number could be read as that route."""
    for i, segment in enumerate(segments):
        name = segment[1:-1] if segment.startswith("{") else None
        if name not in spans_segments or i + 1 >= len(segments):
            continue
        word = segments[i + 1]
        samples = [f"ABCD/{word}"] + ([f"ABCD/{word}/EFGH"] if i + 2 < len(segments) else [])
        for sample in samples:
            try:
                path_values[name].from_text(name, sample)
            except errors.TraceTrackError:
                continue
            raise ValueError(
                f"{where}: {name} {sample!r} is a valid identifier, so the path would be read "
                f"wrongly: add {word!r} to the identifier's reserved words (and a migration "
                "for its constraint)"
            )
