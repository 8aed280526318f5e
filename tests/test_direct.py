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

from .api_helpers import *  # noqa: F403
from .api_helpers import Api, api_settings
from .test_observability import captured

TEMPORARY = "granary-lantern-4711"


@pytest.fixture
def twin(api: Api) -> falcon.testing.TestClient:
    """The same service with the lane off."""
    return falcon.testing.TestClient(create_app(api.db, api.settings, direct=False))


def answer(client: falcon.testing.TestClient, path: str, headers: dict[str, str], method: str = "GET") -> tuple:
    result = client.simulate_request(method, path, headers=headers, remote_addr="127.0.0.1")
    shown = sorted((name.lower(), value) for name, value in result.headers.items() if name.lower() != "x-request-id")
    return result.status, shown, result.content, re.fullmatch(r"[0-9a-f]{32}", result.headers["x-request-id"])


def taken(api: Api, path: str, headers: dict[str, str], method: str = "GET") -> bool:
    """Whether the lane answers this request (it is then answered: a real request)."""
    env = falcon.testing.create_environ(path, method=method, headers=headers, remote_addr="127.0.0.1")
    lane = api.app.direct
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
    assert {op.id for op in routes.OPERATIONS if Endpoint.direct_for(op)} == expected
    admin = api.admin()
    headers = admin.headers
    assert taken(api, "/api/bags/SB00001", headers)
    assert taken(api, "/api/bags/SB00001/history", headers)
    assert taken(api, "/api/bags/SB00001", {})  # a 401, answered by the lane
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
        assert not taken(api, path, headers, method), (method, path)


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
        assert taken(api, path, headers), path
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
    assert taken(api, "/api/bags/SB00001", caller.headers)
    seen = []

    class Stamp:
        def process_request(self, req, resp):
            seen.append(req.path)

    api.app.add_middleware(Stamp())
    assert not taken(api, "/api/bags/SB00001", caller.headers)
    assert api.get("/api/bags/SB00001", caller).status_code == 404 and seen == ["/api/bags/SB00001"]
    other = Api(api.db)
    other.app.add_error_handler(KeyError, lambda req, resp, exc, params: None)
    assert not taken(other, "/api/bags/SB00001", caller.headers)


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
