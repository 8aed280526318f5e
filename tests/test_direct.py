"""The direct lane (tracetrack_api/direct.py) answers exactly what Falcon's path answers.

Every request below goes to two apps over the same database: the served one
(the lane on) and one with the lane off (Falcon's path for everything). The
status, the headers (the request id aside) and the body must be the same; the
lane must have taken the request (or left it to Falcon) as its rule says; the
access line and the metrics must be the same.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import falcon
import falcon.testing
import pytest

from tracetrack_api import deferred, routes
from tracetrack_api.app import create_app
from tracetrack_api.endpoint import Endpoint
from tracetrack_api.router import ROUTED
from tracetrack_api.table import Reply, Static

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings
from .test_observability import captured

TEMPORARY = "granary-lantern-4711"


@pytest.fixture
def twin(api: Api) -> falcon.testing.TestClient:
    """The same service with the lane off."""
    return falcon.testing.TestClient(create_app(api.db, api.settings, lane=False))


def answer(client: falcon.testing.TestClient, path: str, headers: dict[str, str], method: str = "GET") -> tuple:
    """(status, headers but the request id, body, whether the request id is a new one)."""
    result = client.simulate_request(method, path, headers=headers, remote_addr="127.0.0.1")
    shown = sorted((name.lower(), value) for name, value in result.headers.items() if name.lower() != "x-request-id")
    fresh = re.fullmatch(r"[0-9a-f]{32}", result.headers["x-request-id"]) is not None
    return result.status, shown, result.content, fresh


def served_by_lane(api: Api, path: str, headers: dict[str, str], method: str = "GET") -> bool:
    """Sends the request to the lane alone (a real request: it runs, is logged and counted)
    and says whether the lane answered it (False: it left it to Falcon)."""
    env = falcon.testing.create_environ(path, method=method, headers=headers, remote_addr="127.0.0.1")
    lane = api.app.lane
    return lane is not None and lane(env, lambda status, headers, exc_info=None: None) is not None


def test_the_lane_takes_the_gets_of_path_parameters_that_answer_json_and_nothing_else(api):
    expected = {
        "health",
        "livez",
        "readyz",
        "get_me",
        "list_areas",
        "get_bag",
        "get_bag_history",
        "get_bill",
        "get_import",
        "list_extraction_rules",
        "get_bill_manifest",
        "list_parent_formats",
        "get_return",
    }
    assert {op.id for op in routes.OPERATIONS if Endpoint.lane_takes(op)} == expected
    admin = api.admin()
    headers = admin.headers
    assert served_by_lane(api, "/api/bags/SB00001", headers)
    assert served_by_lane(api, "/api/bags/SB00001/history", headers)
    assert served_by_lane(api, "/api/bags/SB00001", {})  # a 401, answered by the lane
    for method, path in [
        ("HEAD", "/api/bags/SB00001"),  # only GET
        ("POST", "/api/bags/SB00001"),
        ("GET", "/api/bags"),  # query parameters: Falcon's
        ("GET", "/api/bills/B1/manifest.csv"),  # CSV
        ("GET", "/api/bills/B1/manifest.pdf"),  # PDF
        ("GET", "/console"),  # HTML
        ("GET", "/openapi.json"),  # not an operation of the table
        ("GET", "/no/such/path"),
        ("GET", "/api/bags/SB0000\u00e9"),  # not ASCII: Falcon decodes it
    ]:
        assert not served_by_lane(api, path, headers, method), (method, path)


def test_each_answer_of_the_lane_is_falcons_answer(api, twin):
    admin, biller = api.admin(), api.biller()
    dispatcher, elsewhere = api.dispatcher("lucknow"), api.dispatcher("akola")
    api.parent_with_children(dispatcher, "SB01234", 2)
    api.bill(biller, "BILL-9", capacity=2)
    reset = api.user("dispatcher", "lucknow")
    assert api.patch(f"/api/users/{reset.id}", admin, json={"password": TEMPORARY}).status_code == 200
    must_change = api.login(reset.username, TEMPORARY).json["token"]
    bearer = {"Authorization": f"Bearer {dispatcher.token}"}
    cases: list[tuple[str, dict[str, str]]] = [
        ("/api/bags/SB01234", bearer),  # 200
        ("/api/bags/SB01234?area=akola&x=1", bearer),  # a query string the operation does not read
        ("/api/bags/SB01234", {**bearer, "If-None-Match": "*", "X-Request-Id": "given-id-1"}),
        ("/api/bags/SB01234/history", bearer),
        ("/api/bags/NOPE9999", bearer),  # 404
        ("/api/bags/SB01234", {"Authorization": f"Bearer {elsewhere.token}"}),  # another area: 404
        ("/api/bags/not a qr", bearer),  # 400 invalid_qr
        ("/api/bags/SB01234/", bearer),  # the bag "SB01234/": 400
        ("/api/bags/SB01234", {}),  # 401 missing
        ("/api/bags/SB01234", {"Authorization": "Basic abc"}),  # 401 scheme
        ("/api/bags/SB01234", {"Authorization": "Bearer forged.token"}),  # 401 invalid
        ("/api/bills/BILL-9", bearer),  # 403: a dispatcher
        ("/api/bills/BILL-9", biller.headers),  # 200
        ("/api/bills/NO-SUCH", biller.headers),  # 404
        ("/api/areas", {"Authorization": f"Bearer {must_change}"}),  # 403 password_change_required
        ("/api/me", {"Authorization": f"Bearer {must_change}"}),  # 200: allowed before the change
        ("/api/me", admin.headers),
        ("/livez", {}),  # public
        ("/readyz", {}),
        ("/api/parent-formats", dispatcher.headers),
    ]
    statuses = set()
    for path, headers in cases:
        assert served_by_lane(api, path, headers), path
        lane, falcon_path = answer(api.client, path, headers), answer(twin, path, headers)
        assert lane[:3] == falcon_path[:3], (path, lane, falcon_path)
        assert lane[3] or headers.get("X-Request-Id") == "given-id-1"
        statuses.add(lane[0][:3])
    assert statuses >= {"200", "400", "401", "403", "404"}
    given = api.client.simulate_get("/api/bags/SB01234", headers={**bearer, "X-Request-Id": "given-id-1"})
    assert given.headers["x-request-id"] == "given-id-1"
    assert api.get("/api/bags/SB01234", dispatcher).headers["x-request-id"] != given.headers["x-request-id"]


def test_a_bug_behind_the_lane_is_the_same_bare_500_and_logged_traceback(api, twin):
    dispatcher = api.dispatcher("lucknow")

    def broken(ctx: Any, qr: str) -> Any:
        raise RuntimeError("secret detail: password=hunter2-internal")

    for client in (api.client, twin):
        endpoint = client.app._router.find("/api/bags/X")[1]["GET"]
        endpoint.op = dataclasses.replace(endpoint.op, handler=broken)
    answers = []
    for client in (api.client, twin):
        with captured("json") as out:
            result = client.simulate_get(
                "/api/bags/SB01234", headers={**dispatcher.headers, "X-Request-Id": "bug-report-8"}
            )
        records = [json.loads(line) for line in out.getvalue().splitlines()]
        answers.append((result.status, result.headers, result.content, [(r["level"], r["logger"]) for r in records]))
        assert "Traceback" in records[0]["exc_info"] and records[0]["request_id"] == "bug-report-8"
    assert answers[0] == answers[1]
    status, headers, body, logged = answers[0]
    assert status == "500 Internal Server Error" and headers["x-request-id"] == "bug-report-8"
    assert b"hunter2" not in body and json.loads(body)["error"]["request_id"] == "bug-report-8"
    assert logged == [("ERROR", "tracetrack_api"), ("INFO", "tracetrack.access")]


def test_the_lane_writes_falcons_access_line_and_metrics(api, twin):
    from tracetrack_api.metrics import REQUESTS

    dispatcher = api.dispatcher("lucknow")
    api.open_parent(dispatcher, "SB01234")

    def count(status: str) -> float:
        deferred.flush_all()
        return REQUESTS.labels("GET", "/api/bags/{qr}", status)._value.get()

    lines = []
    for client in (api.client, twin):
        before = (count("200"), count("401"))
        with captured("json") as out:
            client.simulate_get("/api/bags/SB01234", headers={**dispatcher.headers, "X-Request-Id": "line-1"})
            client.simulate_get("/api/bags/SB01234", headers={"X-Request-Id": "line-2"})
        assert (count("200"), count("401")) == (before[0] + 1, before[1] + 1)
        access = [json.loads(line) for line in out.getvalue().splitlines()]
        for a in access:  # the durations differ
            a["message"] = re.sub(r" [0-9.]+ms ", " ms ", a["message"])
        lines.append([{k: v for k, v in a.items() if k not in ("time", "duration_ms")} for a in access])
    assert lines[0] == lines[1]
    assert [(a["route"], a["status"], a["user_id"], a["request_id"]) for a in lines[0]] == [
        ("/api/bags/{qr}", 200, dispatcher.id, "line-1"),
        ("/api/bags/{qr}", 401, None, "line-2"),
    ]


def test_the_lane_sees_the_callers_address_as_falcons_path_does(db):
    """Behind a trusted proxy, X-Real-IP (else X-Forwarded-For's last) names the client."""
    seen = []
    api = Api(db, api_settings(trusted_proxies=("127.0.0.1",)))
    endpoint = api.app._router.find("/api/bags/X")[1]["GET"]
    original = endpoint.op.handler
    endpoint.op = dataclasses.replace(endpoint.op, handler=lambda ctx, qr: seen.append(ctx.client) or original(ctx, qr))
    caller = api.dispatcher("lucknow")
    api.get("/api/bags/SB00001", caller, headers={"X-Real-IP": "10.1.2.3"})
    api.get("/api/bags/SB00001", caller, headers={"X-Forwarded-For": "6.6.6.6, 10.4.5.6"})
    api.get("/api/bags/SB00001", caller)
    assert seen == ["10.1.2.3", "10.4.5.6", "127.0.0.1"]


def test_a_middleware_or_error_handler_added_later_turns_the_lane_off(api):
    """The lane runs what create_app installed; anything added after would be skipped by it."""
    caller = api.dispatcher("lucknow")
    assert served_by_lane(api, "/api/bags/SB00001", caller.headers)
    seen = []

    class Stamp:
        def process_request(self, req, resp):
            seen.append(req.path)

    api.app.add_middleware(Stamp())
    assert not served_by_lane(api, "/api/bags/SB00001", caller.headers)
    assert api.get("/api/bags/SB00001", caller).status_code == 404 and seen == ["/api/bags/SB00001"]
    other = Api(api.db)
    other.app.add_error_handler(KeyError, lambda req, resp, exc, params: None)
    assert not served_by_lane(other, "/api/bags/SB00001", caller.headers)


def test_a_falcon_error_raised_behind_the_lane_answers_as_on_falcons_path(api, twin):
    caller = api.dispatcher("lucknow")

    def refusing(ctx: Any, qr: str) -> Any:
        raise falcon.HTTPMethodNotAllowed(["GET"], description=None)

    for client in (api.client, twin):
        endpoint = client.app._router.find("/api/bags/X")[1]["GET"]
        endpoint.op = dataclasses.replace(endpoint.op, handler=refusing)
    lane, falcon_path = (
        answer(api.client, "/api/bags/SB01234", caller.headers),
        answer(twin, "/api/bags/SB01234", caller.headers),
    )
    assert lane[:3] == falcon_path[:3] and lane[0] == "405 Method Not Allowed", (lane, falcon_path)
    assert ("allow", "GET") in lane[1]


def raw(app: Any, path: str, headers: dict[str, str] | None = None) -> tuple:
    """(status, the header list as sent but the request id, the body, the request ids sent)."""
    env = falcon.testing.create_environ(path, headers=headers or {}, remote_addr="127.0.0.1")
    got: dict = {}

    def start_response(status, sent, exc_info=None):
        got["status"], got["headers"] = status, sent

    body = b"".join(app(env, start_response))
    shown = sorted((name.lower(), value) for name, value in got["headers"] if name.lower() != "x-request-id")
    return got["status"], shown, body, [value for name, value in got["headers"] if name.lower() == "x-request-id"]


def failing_after(ctx: Any) -> Any:
    def fail() -> None:
        raise RuntimeError("an after action failed")

    ctx.after.append(fail)
    return Reply({"ok": True}, 200, {"Location": "/x"})


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda ctx: (_ for _ in ()).throw(falcon.HTTPNotFound(description="gone")), id="HTTPError"),
        pytest.param(
            lambda ctx: (_ for _ in ()).throw(falcon.HTTPStatus(falcon.HTTP_503, headers={"Retry-After": "5"})),
            id="HTTPStatus",
        ),
        pytest.param(
            lambda ctx: Reply({"a": 1}, 200, {"Content-Type": "application/x-a", "X-Request-Id": "spoof"}),
            id="Reply naming content-type and x-request-id",
        ),
        pytest.param(
            lambda ctx: Reply({"a": 1}, 200, {"Retry-After": 2}),  # type: ignore[dict-item]  # (what a slip sends)
            id="Reply with a header that is an int",
        ),
        pytest.param(failing_after, id="an after action that fails"),
        pytest.param(lambda ctx: (_ for _ in ()).throw(falcon.HTTPStatus(falcon.HTTP_204)), id="HTTPStatus 204"),
        pytest.param(
            lambda ctx: (_ for _ in ()).throw(falcon.HTTPStatus(falcon.HTTP_304, text="x")), id="HTTPStatus 304"
        ),
        pytest.param(lambda ctx: Reply({"a": 1}, 204), id="Reply 204 its row does not declare"),
    ],
)
def test_odd_results_of_a_handler_read_the_same_on_both_paths(api, twin, handler):
    for app in (api.app, twin.app):
        endpoint = app._router.find("/livez")[1]["GET"]
        endpoint.op = dataclasses.replace(endpoint.op, handler=handler)
    assert served_by_lane(api, "/livez", {})
    given = {"X-Request-Id": "the-same-id"}  # (a 500's body names it)
    lane, falcon_path = raw(api.app, "/livez", given), raw(twin.app, "/livez", given)
    assert lane == falcon_path, (lane, falcon_path)
    assert lane[3] == ["the-same-id"]  # one request id, the server's own


def test_a_row_answering_no_body_and_a_handler_breaking_its_row_are_not_the_lanes(api, caplog):
    livez = next(op for op in routes.OPERATIONS if op.id == "livez")
    assert Endpoint.lane_takes(livez)
    assert not Endpoint.lane_takes(dataclasses.replace(livez, other_statuses=(204,)))  # Falcon sends no body
    endpoint = api.app._router.find("/livez")[1]["GET"]
    endpoint.op = dataclasses.replace(endpoint.op, handler=lambda ctx: Static(b"x", "text/plain", {}))
    result = api.get("/livez")
    assert result.status_code == 500 and "livez: its row answers JSON, its handler returned Static" in caplog.text


def test_the_lane_opens_only_over_what_it_mirrors_and_closes_when_more_is_added(api, caplog):
    from tracetrack_api import errors
    from tracetrack_api.app import App
    from tracetrack_api.direct import DirectLane
    from tracetrack_api.logs import RequestLog
    from tracetrack_api.router import TableRouter

    class Stamp:
        def process_request(self, req, resp):
            pass

    for extra_middleware, extra_handler in ((Stamp(), None), (None, KeyError)):
        request_log = RequestLog()
        app = App(middleware=[request_log] + ([extra_middleware] if extra_middleware else []))
        errors.install(app)
        if extra_handler:
            super(App, app).add_error_handler(extra_handler, lambda req, resp, exc, params: None)
        app.open_lane(DirectLane(TableRouter(lambda name: False), request_log, app.req_options))
        assert app.lane is None
    assert "the direct lane stays closed" in caplog.text
    for close in (
        lambda app: app.add_middleware(Stamp()),
        lambda app: app.add_error_handler(KeyError, lambda req, resp, exc, params: None),
        lambda app: app.set_error_reporter(lambda req, exc, params, handled: None),
    ):
        served = Api(api.db)
        assert served.app.lane is not None
        close(served.app)
        assert served.app.lane is None
    assert "the direct lane is closed: an error reporter was added" in caplog.text
    assert Api(api.db, api_settings(direct_lane=False)).app.lane is None  # TRACETRACK_DIRECT_LANE=0


def test_the_lane_reads_the_apps_request_options_and_routes_a_get_once(api, twin):
    caller = api.dispatcher("lucknow")
    api.open_parent(caller, "SB01234")
    for app in (api.app, twin.app):
        app.req_options.strip_url_path_trailing_slash = True
    lane, falcon_path = (
        answer(api.client, "/api/bags/SB01234/", caller.headers),
        answer(twin, "/api/bags/SB01234/", caller.headers),
    )
    assert lane[:3] == falcon_path[:3] and lane[0] == "200 OK", (lane, falcon_path)
    # a GET the lane leaves to Falcon: its match is handed over, not made again
    env = falcon.testing.create_environ("/api/bags", headers=caller.headers)
    assert api.app.lane(env, lambda *a: None) is None
    router, path, found = env[ROUTED]
    assert router is api.app._router and path == "/api/bags" and found[3] == "/api/bags"
    env[ROUTED] = (router, "/api/bags", "as the lane found it")
    assert api.app._router.find("/api/bags", falcon.Request(env)) == "as the lane found it"
    env[ROUTED] = (twin.app._router, "/api/bags", "another app's match")  # only its own router's
    assert api.app._router.find("/api/bags", falcon.Request(env))[3] == "/api/bags"


def test_an_export_a_json_row_returns_by_mistake_gives_its_slot_back(api):
    from tracetrack_api.handlers import reports

    admin = api.admin()
    endpoint = api.app._router.find("/api/me")[1]["GET"]
    endpoint.op = dataclasses.replace(endpoint.op, handler=reports.export_bags)
    free = reports._export_slots._value
    assert api.get("/api/me", admin).status_code == 500  # a named bug
    assert reports._export_slots._value == free  # the slot came back
    endpoint.op = dataclasses.replace(endpoint.op, handler=routes_handler("get_me"))
    assert api.get("/api/exports/bags.csv", admin).status_code == 200  # and the user's mark


def routes_handler(op_id: str) -> Any:
    return next(op.handler for op in routes.OPERATIONS if op.id == op_id)
