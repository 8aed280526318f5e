"""create_app: the Falcon WSGI application over tracetrack_db, built from the route table."""

from __future__ import annotations

import logging

import falcon
import orjson

from tracetrack_db import Database

from . import buildinfo, errors, openapi
from .auth import Authenticator, UserDirectory
from .cache import LocalCache, RedisCache, SharedCounters, make_cache, shared_counters
from .config import ApiSettings
from .direct import DirectLane
from .endpoint import ClientAddress, Endpoint
from .login_guard import LoginGuard
from .logs import RequestLog
from .metrics import RequestMetrics, count_reads
from .positions import WritePositions
from .router import TableRouter
from .routes import OPERATIONS, PATH_VALUES, SPANS_SEGMENTS
from .table import Services, check_table
from .tokens import TokenSigner

log = logging.getLogger("tracetrack_api")


class App(falcon.App):
    """Falcon's app, with the direct lane (direct.py) in front of it for the GETs it takes.

    The lane runs none of Falcon's middleware or error handlers: it does what the two
    create_app installs do (RequestLog, errors.HANDLERS) itself. So `open_lane` opens it
    only while those are all that is installed, and adding a middleware, an error handler
    or an error reporter afterwards closes it (Falcon's path for every request, logged)."""

    lane: DirectLane | None = None

    def __call__(self, env, start_response):
        if self.lane is not None:
            answer = self.lane(env, start_response)
            if answer is not None:
                return answer
        return super().__call__(env, start_response)

    def open_lane(self, lane: DirectLane) -> None:
        # Falcon's own record of what was added (attributes of falcon.App; test_direct pins them)
        if self._unprepared_middleware != [lane.log] or dict(self._error_handlers) != errors.HANDLERS:
            log.warning("the direct lane stays closed: a middleware or an error handler it does not run is installed")
        elif self._report_error is not None:
            log.warning("the direct lane stays closed: an error reporter is set")
        else:
            self.lane = lane

    def _close_lane(self, what: str) -> None:
        if self.lane is not None:
            log.warning("the direct lane is closed: %s was added after the app was built", what)
            self.lane = None

    def add_middleware(self, middleware):
        self._close_lane("a middleware")
        super().add_middleware(middleware)

    def add_error_handler(self, exception, handler=None):
        self._close_lane("an error handler")
        super().add_error_handler(exception, handler)

    def set_error_reporter(self, reporter):
        self._close_lane("an error reporter")
        super().set_error_reporter(reporter)


class Redirect:
    """308 to the page's own address: /console/ and /docs/ to /console and /docs (the pages'
    relative links resolve from their address; from /console/ they would miss). Relative
    ("../console"), so it holds under a mount point (SCRIPT_NAME) too."""

    def __init__(self, page: str):
        self.location = "../" + page.lstrip("/")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_308
        resp.location = self.location


class OpenApiDocument:
    def __init__(self, document: dict):
        self.data = orjson.dumps(document)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.data


def create_app(
    db: Database,
    settings: ApiSettings | None = None,
    cache: LocalCache | RedisCache | None = None,
    directory: UserDirectory | None = None,
    counters: LocalCache | RedisCache | SharedCounters | None = None,
    access_log: bool = True,
    lane: bool | None = None,
) -> App:
    """Build the app. `db` must be open; the app never closes it. `directory`:
    the user cache, when the caller keeps it (to start a UserChangeListener).
    `counters`: where the login throttle and export marks count (default: Redis
    when configured, else PostgreSQL, so every process shares them).
    `access_log`: one line per request to the `tracetrack.access` logger (when
    it is enabled for INFO); every answer carries X-Request-Id either way.
    `lane`: the direct lane on (direct.py; default: settings.direct_lane)."""
    check_table(OPERATIONS, PATH_VALUES, SPANS_SEGMENTS)
    settings = settings or ApiSettings.from_env()
    if not settings.secret_key:
        raise ValueError("TRACETRACK_SECRET_KEY is not set (tokens must be signed)")
    signer = TokenSigner(settings.secret_key, settings.token_ttl_seconds)
    directory = directory or UserDirectory(db, settings.user_refresh_seconds)
    cache = cache or make_cache(settings.redis_url)
    counters = counters or shared_counters(cache, db)
    services = Services(
        db=db,
        settings=settings,
        cache=cache,
        directory=directory,
        signer=signer,
        counters=counters,
        positions=WritePositions(db, cache, settings.db.replica_max_lag) if db.replica is not None else None,
        login_guard=LoginGuard(
            counters, settings.login_address_rate, settings.login_concurrency, settings.login_queue_seconds
        ),
    )
    count_reads(db)
    client = ClientAddress(settings.trusted_proxies)
    authenticate = Authenticator(signer, directory)
    router = TableRouter(SPANS_SEGMENTS.__contains__)
    by_path: dict[str, dict] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = Endpoint(op, services, authenticate, PATH_VALUES, client)
    for path, method_map in by_path.items():
        router.add(path, tuple(method_map.values()), method_map)  # the resource: its endpoints
    request_log = RequestLog(access_log, RequestMetrics(db).record)
    # falcon's types name its CompiledRouter for router=; any object with its methods works
    app = App(router=router, middleware=[request_log], cors_enable=False)  # type: ignore[call-overload]
    app.add_route("/openapi.json", OpenApiDocument(openapi.build(OPERATIONS, PATH_VALUES, SPANS_SEGMENTS)))
    for page in ("/console", "/docs"):
        app.add_route(page + "/", Redirect(page))
    errors.install(app)
    if settings.direct_lane if lane is None else lane:
        app.open_lane(DirectLane(router, request_log, app.req_options))
    buildinfo.publish()
    return app
