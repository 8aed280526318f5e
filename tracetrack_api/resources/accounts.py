"""Login, the caller, users, dispatch areas."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import falcon

from tracetrack_db import areas, users
from tracetrack_db.users import UserChanges

from ..auth import RateLimited, require
from ..http import Body, Field, param_limit, send
from .base import Resource

LOGIN = Body(username=Field("string", required=True, max_length=64),
             password=Field("string", required=True, max_length=1024))
NEW_USER = Body(username=Field("string", required=True, max_length=64),
                password=Field("string", required=True, max_length=1024),
                role=Field("string", required=True, enum=users.ROLES),
                dispatch_area=Field("string", nullable=True, max_length=50))
USER_CHANGES = Body(role=Field("string", enum=users.ROLES),
                    dispatch_area=Field("string", nullable=True, max_length=50),
                    is_active=Field("boolean"),
                    password=Field("string", max_length=1024))
NEW_AREA = Body(name=Field("string", required=True, max_length=50),
                label=Field("string", max_length=100))


class Login(Resource):
    auth_exempt = True

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, LOGIN)
        window = int(time.time() // 60)
        attempts = self.s.cache.incr(f"login:{body['username'].lower()}:{window}", 60)
        if attempts > self.s.settings.login_attempts_per_minute:
            raise RateLimited("too many login attempts for this user: wait a minute")
        user = users.authenticate(self.db, body["username"], body["password"])
        token, expires = self.s.signer.issue(user.id)
        self.s.directory.forget(user.id)
        send(resp, {"token": token, "expires_at": datetime.fromtimestamp(expires, UTC), "user": user})


class Me(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, users.get_user(self.db, req.context.user.id))


class Users(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, "admin")
        page = users.list_users(self.db, limit=param_limit(req), cursor=req.get_param("cursor"))
        send(resp, {"items": page.items, "next_cursor": page.next_cursor})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, "admin")
        body = self.body(req, NEW_USER)
        self.write(req, resp, lambda conn, key: (201, users.create_user(
            self.db, body["username"], body["password"], body["role"], body.get("dispatch_area"), conn=conn)))


class UserItem(Resource):
    def on_patch(self, req: falcon.Request, resp: falcon.Response, user_id: int) -> None:
        require(req, "admin")
        body = self.body(req, USER_CHANGES)
        changes = UserChanges(
            role=body.get("role"), dispatch_area=body.get("dispatch_area"),
            clear_area="dispatch_area" in body and body["dispatch_area"] is None,
            is_active=body.get("is_active"), password=body.get("password"))
        self.write(req, resp, lambda conn, key: (200, users.update_user(self.db, user_id, changes, conn=conn)))
        self.s.directory.forget(user_id)


class Areas(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"items": areas.list_areas(self.db), "next_cursor": None})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, "admin")
        body = self.body(req, NEW_AREA)
        self.write(req, resp, lambda conn, key: (201, areas.create_area(self.db, body["name"], body.get("label"), conn=conn)))
