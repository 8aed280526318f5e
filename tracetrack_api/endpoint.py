"""The one mechanism every operation of the route table goes through:

token and role (401, 403; a user whose password an admin set may call only
the rows marked before_password_change until they change it: 403
password_change_required), path, query and body parameters checked against
the row (400 naming the field, 413), the Idempotency-Key protocol for
writes, then `handler(ctx, **params)`, whose result is rendered as JSON (or
streamed as CSV). Handlers never see HTTP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import falcon
import orjson

from tracetrack_db import Principal, errors, idempotency
from tracetrack_db.jsontext import dumps

from .auth import Authenticator
from .errors import InvalidJson, LengthRequired, PayloadTooLarge
from .schema import Value
from .table import CsvStream, Ctx, Operation, RawJson, Reply, Services, Static

_BODILESS = frozenset((204, 304))  # statuses answered without a body


def _matches(if_none_match: str | None, etag: str | None) -> bool:
    """Whether an If-None-Match header names this ETag (weak or strong) or is *."""
    if not if_none_match or not etag:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


class Upload:
    """A request body as a stream of at most `limit` bytes: past it, a read
    raises 413 (FileTooLarge). A Content-Length over the limit is refused
    before anything is read; a chunked body is cut off at the limit."""

    def __init__(self, req: falcon.Request, limit: int):
        length = req.content_length
        if (
            length is None
            and req.get_header("Transfer-Encoding") is not None
            and not req.env.get("wsgi.input_terminated")
        ):
            raise LengthRequired("send a Content-Length (this server cannot read a chunked body)")
        if length is not None and length > limit:
            raise errors.FileTooLarge(f"the file may have at most {limit} bytes: split it", field="file")
        self.stream = req.bounded_stream if length is not None else req.stream
        self.left = limit + 1 if length is None else length
        self.limit = limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise errors.FileTooLarge(f"the file may have at most {self.limit} bytes: split it", field="file")
        return data


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (413). A chunked body (no
    Content-Length) is read when the server says where it ends
    (wsgi.input_terminated, as granian does), and refused with 411 otherwise:
    never act on a body that was not read."""
    length = req.content_length
    if length is None:
        if req.get_header("Transfer-Encoding") is None:
            return b""
        if not req.env.get("wsgi.input_terminated"):
            raise LengthRequired("send a Content-Length (this server cannot read a chunked body)")
        stream = req.stream
    elif length > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    else:
        stream = req.bounded_stream
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    return raw


class ClientAddress:
    """The client's address: the peer's, or, when the peer is a trusted proxy
    (the nginx in front, which sets X-Real-IP to the address it saw), the one
    it names: X-Real-IP, else the last address of X-Forwarded-For (the one
    that proxy appended; those before it are the client's own say). An
    untrusted peer cannot choose its address with either header."""

    def __init__(self, trusted: tuple[str, ...]):
        self.networks = tuple(ipaddress.ip_network(a, strict=False) for a in trusted)
        self._trusted: dict[str, bool] = {}

    def is_trusted(self, peer: str) -> bool:
        known = self._trusted.get(peer)
        if known is None:
            try:
                address = ipaddress.ip_address(peer)
                known = any(address in n for n in self.networks)
            except ValueError:
                known = False
            if len(self._trusted) < 1024:
                self._trusted[peer] = known
        return known

    def __call__(self, env: dict[str, Any]) -> str:
        """The address of the request of this WSGI environment."""
        peer = env.get("REMOTE_ADDR") or ""
        if self.networks and self.is_trusted(peer):
            named = env.get("HTTP_X_REAL_IP")
            if not named:
                forwarded = env.get("HTTP_X_FORWARDED_FOR")
                named = forwarded.rsplit(",", 1)[-1].strip() if forwarded else None
            return named or peer
        return peer


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"malformed JSON: {exc}") from None


class Endpoint:
    """The responder of one operation (a Falcon responder: req, resp, **path)."""

    def __init__(
        self,
        op: Operation,
        services: Services,
        authenticate: Authenticator,
        path_values: dict[str, Value],
        client: ClientAddress,
    ):
        self.op = op
        self.client = client
        self.services = services
        self.authenticate = authenticate
        self.path_values = path_values
        self.max_body = max(op.max_body, services.settings.max_body_bytes)
        self.max_upload = services.settings.import_max_bytes
        self.forbidden = f"this needs the role {' or '.join(op.roles)}" if op.roles else ""
        # with a replica, a user's reads see their own writes (positions.py); None: nothing to do
        self.positions: Any = services.positions if op.roles is not None else None
        self.in_lane = self.lane_takes(op)

    @staticmethod
    def lane_takes(op: Operation) -> bool:
        """Whether the direct lane (direct.py) answers `op`'s requests: a GET whose row reads
        path parameters only (no query parameters, no body: a request's query string or
        body is ignored, as on Falcon's path) and answers JSON with a body."""
        return (
            op.method == "GET"
            and op.query is None
            and op.body is None
            and not op.upload
            and not isinstance(op.answer, str | tuple)  # a media type (CSV, HTML, PDF, assets)
            and not {op.status, *op.other_statuses} & _BODILESS
        )

    def __call__(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        op = self.op
        user = None
        if op.roles is not None:
            user = self.authenticate(req.get_header("Authorization"))
            req.context.user_id = user.id  # for the access line
            self.admit(user)
        params = self.path_params(path)
        if op.query is not None:
            params.update(op.query.parse(req))
        raw = b""
        if op.body is not None:
            raw = read_body(req, self.max_body)
            params.update(op.body.parse(parse_json(raw)))
        elif op.upload:
            params["file"] = Upload(req, self.max_upload)
        ctx = Ctx(self.services, user, self.client(req.env), req.user_agent)
        key = req.get_header("Idempotency-Key") if op.idempotent else None
        if key is None:  # (the direct lane runs these same steps for the GETs it takes: direct.py)
            result = self.result(ctx, params)
            for action in ctx.after:  # before the answer is made: one that fails answers a bare 500
                action()
            self.render(resp, result, req)
            return

        def write(conn):
            ctx.key, ctx.conn = key, conn
            return self.outcome(op.handler(ctx, **params))

        assert user is not None  # the table makes every idempotent operation need a role
        fingerprint = idempotency.fingerprint(req.method, req.relative_uri, raw)
        if self.positions is None:
            stored = idempotency.run_once(self.services.db, user.id, key, fingerprint, write)
        else:
            with self.writing(user.id):
                stored = idempotency.run_once(self.services.db, user.id, key, fingerprint, write)
        for action in ctx.after:  # committed now
            action()
        resp.status = stored.code
        resp.content_type = falcon.MEDIA_JSON
        resp.data = stored.body
        if stored.replayed:
            resp.set_header("Idempotent-Replayed", "true")

    def admit(self, user: Principal) -> None:
        """403 unless `user` may call this operation now."""
        if user.role not in self.op.roles:  # type: ignore[operator]  # (called only when it has roles)
            raise errors.Forbidden(self.forbidden)
        if user.must_change_password and not self.op.before_password_change:
            raise errors.PasswordChangeRequired(
                "an administrator set your password: choose your own (POST /api/me/password) first"
            )

    def path_params(self, path: dict[str, str]) -> dict[str, Any]:
        """The path's parameters, each checked (400 naming it)."""
        return {name: self.path_values[name].from_text(name, raw) for name, raw in path.items()}

    def result(self, ctx: Ctx, params: dict[str, Any]) -> Any:
        """The handler's result (a read, or a write without an Idempotency-Key)."""
        return self.op.handler(ctx, **params) if self.positions is None else self.routed(ctx, params)

    def routed(self, ctx: Ctx, params: dict[str, Any]) -> Any:
        """The handler, with a replica: a read sees what its caller wrote (and one
        the replica failed runs again on the primary); a write's position is
        remembered for the caller's next reads."""
        db, user_id = ctx.db, ctx.caller.id
        if self.op.method != "GET":
            with self.writing(user_id):
                return self.op.handler(ctx, **params)
        with db.reads_after(self.positions.of(user_id)):
            try:
                return self.op.handler(ctx, **params)
            except errors.ReplicaUnavailable:
                with db.reads_on_primary():
                    return self.op.handler(ctx, **params)

    @contextmanager
    def writing(self, user_id: int) -> Iterator[None]:
        """A write with a replica: its reads on the primary, and its position kept
        for the caller's next reads, even when it raised (a sync or an import may
        have committed some of its operations)."""
        try:
            with self.services.db.reads_on_primary("write"):
                yield
        finally:
            self.positions.wrote(user_id)

    def outcome(self, result: Any) -> tuple[int, Any]:
        """(status, value) of a write's result, for the idempotency store."""
        if isinstance(result, Reply):
            return result.status, result.value
        if isinstance(result, RawJson):
            return self.op.status, orjson.Fragment(result.data)
        return self.op.status, result

    def render(self, resp: falcon.Response, result: Any, req: falcon.Request | None = None) -> None:
        if isinstance(result, CsvStream):
            resp.status = self.op.status
            resp.content_type = "text/csv; charset=utf-8"
            resp.set_header("Content-Disposition", f'attachment; filename="{result.filename}"')
            resp.stream = result.chunks
        elif isinstance(result, Static):
            if req is not None and _matches(req.get_header("If-None-Match"), result.headers.get("ETag")):
                resp.status = 304  # the browser's copy is current: headers only
                resp.set_headers(result.headers)
                return
            resp.status = self.op.status
            resp.content_type = result.content_type
            resp.data = result.data
            resp.set_headers(result.headers)
        else:
            status, body, headers = self.json_answer(result)
            resp.status = status
            resp.content_type = falcon.MEDIA_JSON
            resp.data = body
            if headers:
                resp.set_headers(headers)

    def json_answer(self, result: Any) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        """(status, body, headers) of a JSON result (a value, a Reply, RawJson)."""
        if isinstance(result, RawJson):
            return self.op.status, result.data, ()
        if isinstance(result, CsvStream | Static):
            close = getattr(result, "chunks", None) and getattr(result.chunks, "close", None)  # type: ignore[union-attr]
            if close is not None:
                close()  # an export's slot and connection come back
            raise TypeError(f"{self.op.id}: its row answers JSON, its handler returned {type(result).__name__}")
        status, value = self.outcome(result)
        headers = tuple(result.headers.items()) if isinstance(result, Reply) and result.headers else ()
        return status, dumps(value), headers
