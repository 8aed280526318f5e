"""The service's logs: one access line per request, a request id in every line.

- Every request gets a request id: the `X-Request-Id` it came with (nginx
  sets `$request_id`) when that is 1-128 safe characters (`A-Z a-z 0-9 . _ :
  = / + -`), else 32 new hex digits. The answer carries it back in
  `X-Request-Id`, and every log line emitted while the request runs carries it
  (`REQUEST_ID`, a context variable, read by `RequestIdFilter`); lines outside
  a request carry "-".
- `RequestLog`, the outermost middleware (and the direct lane, direct.py, through its
  `begin` and `answered_now`), sets both and writes the access line
  (logger `tracetrack.access`, INFO): method, route template (never the raw
  path: it holds QR codes and bill numbers; "unmatched" when no route
  matched), status, duration in ms, request id and user id. Never headers,
  tokens, query strings or bodies.
- `configure(level, fmt)` sends every logger (granian's too, through
  `dict_config`) to stderr as text or as one JSON object a line
  (python-json-logger over orjson).

The cost is kept off the hot paths: a request only queues one `Answered`
(for the metrics, and for its access line when the access log is on and its
logger enabled for INFO), and a thread of the process writes the lines in
batches (deferred.py: up to 0.2 s later, each with its request's own time):
a record built directly (no caller lookup, no thread or process names) and
formatted by the handler, with the time's second-resolution prefix reused
within a second.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

import falcon

from .deferred import Deferred

REQUEST_ID: ContextVar[str] = ContextVar("tracetrack_request_id", default="-")
MAX_REQUEST_ID = 128
_SAFE_ID = re.compile(r"[A-Za-z0-9._:=/+-]+")
ACCESS_LOGGER = "tracetrack.access"
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_ACCESS_MESSAGE = "%s %s %s %.1fms user=%s"


def request_id_of(header: str | None) -> str:
    """The request's id: `header` when it is a safe, bounded id, else a new one:
    32 hex digits, the process's random half and a count (unique, not secret,
    without a getrandom(2) per request)."""
    if header and len(header) <= MAX_REQUEST_ID and _SAFE_ID.fullmatch(header):
        return header
    return f"{_id_prefix}{next(_id_numbers):016x}"


def _new_id_prefix() -> None:
    global _id_prefix
    _id_prefix = os.urandom(8).hex()


_id_prefix = ""
_id_numbers = itertools.count()
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # a forked worker's ids are its own


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's, or "-") to every record a handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            record.request_id = REQUEST_ID.get()
        return True


class _FastTime:
    """formatTime in ISO 8601 UTC (2026-01-31T12:00:00.123Z), the second's text computed once a second."""

    _second = -1
    _prefix = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int(record.msecs):03d}Z"


class TextFormatter(_FastTime, logging.Formatter):
    """TEXT_FORMAT; a line without a traceback is put together directly (a third of
    logging.Formatter's cost: this runs once per request)."""

    def __init__(self, fmt: str = TEXT_FORMAT, **kwargs: Any):
        super().__init__(fmt, defaults={"request_id": "-"}, **kwargs)
        self._fast = fmt == TEXT_FORMAT

    def format(self, record: logging.LogRecord) -> str:
        if not self._fast or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        return (
            f"{self.formatTime(record)} {record.levelname} {record.name} "
            f"[{record.__dict__.get('request_id', '-')}] {record.getMessage()}"
        )


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, request_id, the access
    line's fields (method, route, status, duration_ms, user_id) and exc_info (the
    traceback) when there is one (python-json-logger over orjson; a plain record,
    the access line's kind, is put together directly, as the library would)."""
    import orjson
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.orjson import OrjsonFormatter

    skip = frozenset(RESERVED_ATTRS) | {"message", "asctime"}

    class JsonFormatter(_FastTime, OrjsonFormatter):
        def format(self, record: logging.LogRecord) -> str:
            if record.exc_info or record.exc_text or record.stack_info or isinstance(record.msg, dict):
                return super().format(record)
            data = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            for key, value in record.__dict__.items():
                if key not in skip and key[0] != "_":
                    data[key] = value
            return orjson.dumps(data, default=str).decode()

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def make_formatter(fmt: str = "text") -> logging.Formatter:
    if fmt == "json":
        return json_formatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")


def dict_config(level: str = "info", fmt: str = "text") -> dict[str, Any]:
    """A logging.config.dictConfig for the whole process: the root logger to stderr
    at `level` in `fmt`, and granian's loggers through it (granian applies this
    in its main process and in every worker)."""
    level = level.lower()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {LEVELS}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": {"()": make_formatter, "fmt": fmt}},
        "handlers": {
            "console": {
                "class": "tracetrack_api.logs.ConsoleHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["console"]},
        "loggers": {
            "_granian": {"level": level.upper(), "handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        },
    }


_new_record = object.__new__
_batch = threading.local()  # the lines this thread emits inside batched(), by ConsoleHandler, if any
# A pipe's write(2) of at most PIPE_BUF bytes is never interleaved with another process's:
# every worker writes to the same stderr, so a batch goes out in writes of whole lines,
# each at most this long (a longer line alone, as a line always was).
WRITE_MAX = 4096


class ConsoleHandler(logging.StreamHandler):
    """logging.StreamHandler (stderr), but the lines a thread emits inside `batched()`
    are kept and written together when the block ends, in writes of whole lines up to
    WRITE_MAX bytes: a batch of access lines costs a write(2) per ~25 lines instead of
    one per line (stderr is line-buffered). Lines emitted outside a batch, or by another
    thread, are written and flushed at once, as by StreamHandler."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_batch, "lines", None)
        if lines is None:
            super().emit(record)
            return
        try:
            lines.setdefault(self, []).append(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: reported on stderr, never raised
            self.handleError(record)


@contextmanager
def batched() -> Iterator[None]:
    """Every line this thread emits to a ConsoleHandler in the block (an access line, or
    anything a handler or filter logs meanwhile) written when it ends: each handler's in
    order, under its lock, then flushed."""
    if getattr(_batch, "lines", None) is not None:  # already in a batch: the outer one writes
        yield
        return
    lines: dict[ConsoleHandler, list[str]] = {}  # each handler's, in order
    _batch.lines = lines
    try:
        yield
    finally:
        _batch.lines = None
        for handler, its_lines in lines.items():
            _write_lines(handler, its_lines)


def _write_lines(handler: ConsoleHandler, lines: list[str]) -> None:
    chunk: list[str] = []
    size = 0
    with handler.lock:  # type: ignore[union-attr]  # (created with the handler)
        try:
            for line in lines:
                length = len(line) if line.isascii() else len(line.encode())
                if chunk and size + length > WRITE_MAX:
                    handler.stream.write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            if chunk:
                handler.stream.write("".join(chunk))
            handler.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: reported on stderr, never raised
            handler.handleError(logging.makeLogRecord({"msg": "a batch of %d log lines", "args": (len(lines),)}))


def configure(level: str = "info", fmt: str = "text") -> None:
    """Configure this process's logging (see dict_config). Records carry no thread
    or process names (neither format shows them; each costs time per line)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(dict_config(level, fmt))


def settings_from_env(environ: dict[str, str] | None = None) -> tuple[str, str, bool]:
    """(level, format, access log on) from TRACETRACK_LOG_LEVEL, TRACETRACK_LOG_FORMAT and
    TRACETRACK_ACCESS_LOG (what `tracetrack serve` sets for its workers; gunicorn reads them too)."""
    from .config import ACCESS_LOG, LOG_FORMAT, LOG_LEVEL  # declared with every other setting

    return LOG_LEVEL.get(environ), LOG_FORMAT.get(environ), ACCESS_LOG.get(environ)


class Answered(NamedTuple):
    """One answered request, as RequestLog hands it to the access line and the metrics."""

    at: float  # time.time() when it was answered
    method: str
    route: str  # the route template, or "unmatched"
    status: int
    seconds: float
    user_id: int | None
    request_id: str
    logged: bool  # whether its access line is wanted (decided when it was answered)


def _streamed(req: falcon.Request, resp: falcon.Response) -> bool:
    """Whether Falcon will hand the server `resp.stream` (no body set besides it, a body sent)."""
    return (
        resp.stream is not None
        and resp.data is None
        and resp.text is None
        and resp.media is None
        and req.method != "HEAD"
        and resp.status_code not in (204, 304)
    )


class _Streamed:
    """A streamed answer's chunks; `done` runs once when the server closes them (PEP 3333:
    after the last chunk, or when the client went away), and closes the stream it wraps."""

    def __init__(self, stream: Any, done: Callable[[], None]):
        self._stream = stream
        self._done: Callable[[], None] | None = done

    def __iter__(self):
        return iter(self._stream)

    def close(self) -> None:
        done, self._done = self._done, None
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            if done is not None:
                done()


class RequestLog:
    """Falcon middleware: the request id, and each answered request handed over in
    batches (deferred.py) to the access line and to `record` (the metrics)."""

    def __init__(self, access_log: bool = True, record: Callable[[list[Answered]], None] | None = None):
        self.access_log = access_log
        self.record = record
        self.log = logging.getLogger(ACCESS_LOGGER)
        self.answered = Deferred(self.hand_over, "requests")

    def begin(self, header: str | None) -> str:
        """The id of a request that came with this X-Request-Id header, set for its log lines."""
        rid = request_id_of(header)
        REQUEST_ID.set(rid)  # each request has its own thread or greenlet: no reset (a CSV stream logs after)
        return rid

    def answered_now(self, method: str, route: str, status: int, started: float, user_id: Any, rid: str) -> None:
        """Hand over a request answered now, `started` its time.perf_counter() at the start."""
        logged = self.access_log and self.log.isEnabledFor(logging.INFO)  # as the logger is set now
        if self.record is None and not logged:
            return
        seconds = time.perf_counter() - started
        self.answered.add(Answered(time.time(), method, route, status, seconds, user_id, rid, logged))

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        context = req.context
        context.request_id = self.begin(req.get_header("X-Request-Id"))
        context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        context = req.context
        rid = context.get("request_id")
        if rid is None:  # process_request did not run
            return
        resp.set_header("X-Request-Id", rid)
        route = req.uri_template or "unmatched"
        args = (req.method, route, resp.status_code, context.started, context.get("user_id"), rid)
        if _streamed(req, resp):  # a CSV export: answered when its last chunk is sent (or it is cut)
            resp.stream = _Streamed(resp.stream, lambda: self.answered_now(*args))
            return
        self.answered_now(*args)

    def hand_over(self, answered: list[Answered]) -> None:
        self.write(answered)
        if self.record is not None:
            self.record(answered)

    def write(self, answered: list[Answered]) -> None:
        """The access lines of answered requests (those answered while the line was wanted):
        records through the logger's handlers and filters as ever, each a copy of one
        makeRecord per batch with the request's own fields (a dict copy costs less than
        LogRecord's constructor), the console's lines of a batch written together (`batched`)."""
        log = self.log
        template: logging.LogRecord | None = None
        with batched():
            for created, method, route, code, seconds, user_id, rid, logged in answered:
                if not logged:
                    continue
                if template is None:
                    template = log.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0, _ACCESS_MESSAGE, (), None)
                    kind, fields, made = type(template), template.__dict__, template.created
                ms = seconds * 1000
                record = _new_record(kind)  # the record factory's class, as makeRecord's
                record.__dict__ = {
                    **fields,
                    "args": (method, route, code, ms, "-" if user_id is None else user_id),
                    "created": created,  # when the request was answered, not when its line is written
                    "msecs": int((created - int(created)) * 1000) + 0.0,
                    "relativeCreated": fields["relativeCreated"] + (created - made) * 1000,
                    "method": method,
                    "route": route,
                    "status": code,
                    "duration_ms": round(ms, 2),
                    "user_id": user_id,
                    "request_id": rid,
                }
                log.handle(record)
