"""The direct lane: GETs of path parameters only, answered without Falcon's request machinery.

Falcon builds a Request and a Response, runs the middleware and the error
handlers around each request; for the hot read (GET /api/bags/{qr}) that was
a third of the server's CPU per request (RESULTS, "Issue 13 item 8: the
direct lane"). The operations whose Endpoint says `direct` (a GET with no
query parameters, no body, a JSON answer: a bag, a bill, /api/me ...) are
answered here through the same pieces Falcon's path calls: the router's
match, Endpoint.authenticate/admit/path_params/result/json_answer, the
error answers of errors.py and RequestLog's request id and hand-over. So
the answer (status, headers, body), the access line and the metrics are the
ones Falcon's path gives; tests/test_direct.py compares both paths request
by request.

Everything else goes to Falcon untouched: other methods, other operations,
a path that matches nothing, and a path that is not ASCII (Falcon decodes
PEP 3333's latin-1 tunnelling; QR codes and bill numbers are ASCII anyway).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import falcon

from tracetrack_db.errors import TraceTrackError

from .endpoint import _BODILESS, Endpoint
from .errors import domain_answer, http_answer, internal_answer, status_answer, status_line
from .logs import RequestLog
from .router import ROUTED, TableRouter
from .table import Ctx

_JSON = ("content-type", "application/json")  # header names as Falcon sends them (lower case)


class DirectLane:
    def __init__(self, router: TableRouter, request_log: RequestLog, options: falcon.RequestOptions):
        self.router = router
        self.find = router.find
        self.log = request_log
        self.options = options  # the app's req_options, read per request as Falcon reads them

    def __call__(self, env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """The answer to a GET the lane takes, or None: Falcon's to answer (the router's
        match left in `env` for it, so a GET is routed once either way)."""
        path = env.get("PATH_INFO") or "/"
        if env.get("REQUEST_METHOD") != "GET" or not path.isascii():
            return None
        if self.options.strip_url_path_trailing_slash and len(path) != 1 and path.endswith("/"):
            path = path[:-1]
        found = self.find(path)
        endpoint = found[1].get("GET") if found is not None else None
        if not isinstance(endpoint, Endpoint) or not endpoint.in_lane:
            env[ROUTED] = (self.router, path, found)
            return None
        # the steps of Endpoint.__call__ and of Falcon around it (RequestLog, errors.HANDLERS)
        started = time.perf_counter()
        route = found[3]
        rid = self.log.begin(env.get("HTTP_X_REQUEST_ID"))
        user_id = None
        try:
            user = None
            if endpoint.op.roles is not None:
                user = endpoint.authenticate(env.get("HTTP_AUTHORIZATION"))
                user_id = user.id  # for the access line
                endpoint.admit(user)
            params = endpoint.path_params(found[2])
            ctx = Ctx(endpoint.services, user, endpoint.client(env), env.get("HTTP_USER_AGENT"))
            result = endpoint.result(ctx, params)
            for action in ctx.after:
                action()
            status, body, headers = endpoint.json_answer(result)
        except TraceTrackError as exc:
            status, body, headers = domain_answer(exc)
        except falcon.HTTPError as exc:
            status, body, headers = http_answer(exc, "GET", path)
        except falcon.HTTPStatus as exc:
            status, body, headers = status_answer(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: logged, a 500 with the request id, as on Falcon's path
            status, body, headers = internal_answer(exc, rid, "GET", route)
        self.log.answered_now("GET", route, status, started, user_id, rid)
        bodiless = status in _BODILESS or status < 200  # as Falcon sends them: no body, no length
        if not headers and not bodiless:  # the hot read's answer, put together directly
            start_response(status_line(status), [_JSON, ("x-request-id", rid), ("content-length", str(len(body)))])
            return [body]
        # a Reply's or an error's own headers may name content-type; never the request id or the length
        named = {_JSON[0]: _JSON[1], **{name.lower(): str(value) for name, value in headers}}
        named["x-request-id"] = rid
        named.pop("content-length", None)
        if not bodiless:
            named["content-length"] = str(len(body))
        start_response(status_line(status), list(named.items()))
        return [] if bodiless else [body]
