"""The HTTP layer's own error codes, and the one place every error becomes an HTTP answer."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import falcon

from tracetrack_db.errors import TraceTrackError, ValidationError
from tracetrack_db.jsontext import dumps

from .logs import request_id_of

log = logging.getLogger("tracetrack_api")


class Unauthenticated(TraceTrackError):
    code, status = "unauthenticated", 401


class RateLimited(TraceTrackError):
    """429: wait `retry_after` seconds (sent as Retry-After)."""

    code, status = "rate_limited", 429

    def __init__(self, message: str, *, retry_after: int = 1, scope: str = ""):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.scope = scope  # what is limited (a login's: address, user or busy), for the security log


class TooManyExports(RateLimited):
    code = "too_many_exports"


class TooManyImports(RateLimited):
    code = "too_many_imports"


class PayloadTooLarge(ValidationError):
    code, status = "payload_too_large", 413


class InvalidJson(ValidationError):
    code = "invalid_json"


class LengthRequired(TraceTrackError):
    code, status = "length_required", 411


_STATUS = {
    code: falcon.code_to_http_status(code) for code in (400, 401, 403, 404, 405, 409, 411, 413, 422, 429, 500, 503)
}


def status_line(status: int) -> str:
    """The status line of a code: "404 Not Found" of 404."""
    return _STATUS.get(status) or falcon.code_to_http_status(status)


class ErrorAnswer(NamedTuple):
    """An error (or a raised falcon.HTTPStatus) as an HTTP answer: Falcon's handlers
    below and the direct lane (direct.py) both send these, so it reads the same on
    either path."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def error_answer(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    extra: dict | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ErrorAnswer:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    if extra:
        body.update(extra)
    return ErrorAnswer(status, dumps({"error": body}), headers)


def domain_answer(exc: TraceTrackError) -> ErrorAnswer:
    if isinstance(exc, RateLimited):
        headers: tuple[tuple[str, str], ...] = (("Retry-After", str(exc.retry_after)),)
    elif exc.status == 503:
        headers = (("Retry-After", "2"),)
    elif exc.status == 401:
        headers = (("WWW-Authenticate", "Bearer"),)
    else:
        headers = ()
    return error_answer(exc.status, exc.code, exc.message, exc.field, headers=headers)


def internal_answer(exc: BaseException, request_id: str, method: str, route: str | None) -> ErrorAnswer:
    """A bug: log it with its traceback (and the request id) and answer a JSON 500
    with the request id and no detail: the traceback is for the log, never the client."""
    log.error(
        "unhandled error [request %s] %s %s",
        request_id,
        method,
        route or "unmatched",
        exc_info=exc,
        extra={"request_id": request_id},
    )
    return error_answer(
        500,
        "internal_error",
        "an unexpected error happened; it has been logged",
        extra={"request_id": request_id},
    )


def _send(resp: falcon.Response, answer: ErrorAnswer) -> None:
    resp.status = status_line(answer.status)
    resp.content_type = falcon.MEDIA_JSON
    resp.data = answer.body
    for name, value in answer.headers:
        resp.set_header(name, value)


def http_answer(exc: falcon.HTTPError, method: str, path: str) -> ErrorAnswer:
    status = exc.status_code
    code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type", 400: "bad_request"}.get(
        status, "http_error"
    )
    message = exc.description
    if status == 404 and not message:
        message = f"no such path: {path}"
    elif status == 405 and not message:
        message = f"{method} is not an operation of this path; it takes {dict(exc.headers or {}).get('Allow', '')}"
    headers = tuple(dict(exc.headers or {}).items())
    return error_answer(status, code, message or exc.title or code.replace("_", " "), headers=headers)


def domain_error(req, resp, exc: TraceTrackError, params) -> None:
    _send(resp, domain_answer(exc))


def http_error(req, resp, exc: falcon.HTTPError, params) -> None:
    _send(resp, http_answer(exc, req.method, req.path))


def status_answer(exc: falcon.HTTPStatus) -> ErrorAnswer:
    """A falcon.HTTPStatus raised to answer: its status, headers and text (handlers never
    raise one; this keeps both paths alike if one ever does)."""
    status = falcon.http_status_to_code(exc.status)
    return ErrorAnswer(status, (exc.text or "").encode(), tuple(dict(exc.headers or {}).items()))


def status_error(req, resp, exc: falcon.HTTPStatus, params) -> None:
    _send(resp, status_answer(exc))


def unexpected_error(req, resp, exc: Exception, params) -> None:
    request_id = req.context.get("request_id") or request_id_of(req.get_header("X-Request-Id"))
    _send(resp, internal_answer(exc, request_id, req.method, req.uri_template))
    resp.set_header("X-Request-Id", request_id)


def install(app: falcon.App) -> None:
    # Falcon picks the most specific handler by the exception's MRO.
    for exception, handler in HANDLERS.items():
        app.add_error_handler(exception, handler)


# what each exception (by its class's MRO) is answered with, on Falcon's path and the lane's
HANDLERS: dict[type[Exception], Any] = {
    Exception: unexpected_error,
    falcon.HTTPError: http_error,
    falcon.HTTPStatus: status_error,
    TraceTrackError: domain_error,
}
