"""create_app: the Falcon WSGI application over tracetrack_db."""

from __future__ import annotations

import falcon
import orjson

from tracetrack_db import Database

from . import errors, openapi, routes
from .auth import AuthMiddleware, UserDirectory
from .cache import LocalCache, RedisCache, make_cache
from .config import ApiSettings
from .metrics import Metrics, MetricsMiddleware
from .resources.base import Services
from .tokens import TokenSigner


class OpenApiDocument:
    auth_exempt = True

    def __init__(self, document: dict):
        self.data = orjson.dumps(document)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.data


def create_app(db: Database, settings: ApiSettings | None = None,
               cache: LocalCache | RedisCache | None = None) -> falcon.App:
    """Build the app. `db` must be open; the app never closes it."""
    settings = settings or ApiSettings.from_env()
    if not settings.secret_key:
        raise ValueError("TRACETRACK_SECRET_KEY is not set (tokens must be signed)")
    services = Services(
        db=db, settings=settings, cache=cache or make_cache(settings.db.redis_url),
        signer=TokenSigner(settings.secret_key, settings.token_ttl_seconds),
        directory=UserDirectory(db, settings.user_refresh_seconds))
    app = falcon.App(middleware=[MetricsMiddleware(db), AuthMiddleware(services.signer, services.directory)],
                     cors_enable=False)
    json = falcon.media.JSONHandler(dumps=lambda o: orjson.dumps(o).decode(), loads=orjson.loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json
    app.req_options.strip_url_path_trailing_slash = True
    table = routes.table()
    for path, resource_cls, _ops in table:
        if resource_cls is not None:
            app.add_route(path, resource_cls(services))
    app.add_route("/openapi.json", OpenApiDocument(openapi.build(table)))
    app.add_route("/metrics", Metrics(db))
    errors.install(app)
    return app

