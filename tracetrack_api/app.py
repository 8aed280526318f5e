"""create_app: the Falcon WSGI application over tracetrack_db, built from the route table."""

from __future__ import annotations

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


class App(falcon.App):
    """Falcon's app, with the direct lane (direct.py) in front of it for the GETs it takes.
    The lane runs the app's own middleware and error answers, as create_app builds them:
    a middleware or an error handler added later turns it off (Falcon's path for all)."""

    direct: DirectLane | None = None

    def __call__(self, env, start_response):
        if self.direct is not None:
            answer = self.direct(env, start_response)
            if answer is not None:
                return answer
        return super().__call__(env, start_response)

    def add_middleware(self, middleware):
        self.direct = None
        super().add_middleware(middleware)

    def add_error_handler(self, exception, handler=None):
        self.direct = None
        super().add_error_handler(exception, handler)


class Redirect:
    """308 to the page's own address: /console/ and /docs/ to /console and /docs (the pages'
    relative links resolve from their address; from /console/ they would miss)."""

    def __init__(self, location: str):
        self.location = location

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
    direct: bool = True,
) -> App:
    """Build the app. `db` must be open; the app never closes it. `directory`:
    the user cache, when the caller keeps it (to start a UserChangeListener).
    `counters`: where the login throttle and export marks count (default: Redis
    when configured, else PostgreSQL, so every process shares them).
    `access_log`: one line per request to the `tracetrack.access` logger (when
    it is enabled for INFO); every answer carries X-Request-Id either way.
    `direct`: the direct lane on (direct.py; off only to compare it with Falcon's path)."""
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
    app.direct = DirectLane(router, request_log) if direct else None
    buildinfo.publish()
    return app
