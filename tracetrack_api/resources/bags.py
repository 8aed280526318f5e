"""Bags: register, list, look up (the hot read), history, delete."""

from __future__ import annotations

import re

import falcon

from tracetrack_db import bags, errors, events, normalize_qr

from ..auth import Principal, check_area, require
from ..http import (Body, Field, param_bool, param_datetime, param_limit, param_str, send)
from .base import Resource

NEW_BAG = Body(qr_id=Field("string", required=True, max_length=200),
               type=Field("string", required=True, enum=bags.TYPES),
               dispatch_area=Field("string", nullable=True, max_length=50))


def area_filter(req: falcon.Request, user: Principal) -> str | None:
    """The dispatch_area filter: a dispatcher's own area, whatever they ask."""
    asked = param_str(req, "dispatch_area", max_length=50)
    if asked is not None and not re.fullmatch(r"[a-z][a-z0-9_]{1,49}", asked):
        raise errors.UnknownArea(f"unknown dispatch area {asked!r}", field="dispatch_area")
    if user.restrict_area is None:
        return asked
    check_area(user, asked)
    return user.restrict_area


def bag_list_filters(req: falcon.Request, user: Principal) -> dict:
    """The list filters of GET /api/bags (also used by the CSV export)."""
    return dict(
        type=param_str(req, "type", enum=bags.TYPES),
        status=param_str(req, "status", enum=bags.STATUSES),
        dispatch_area=area_filter(req, user),
        q=param_str(req, "q", max_length=100),
        linked=param_bool(req, "linked"),
        billed=param_bool(req, "billed"),
        created_after=param_datetime(req, "created_after"),
        created_before=param_datetime(req, "created_before"),
    )


class Bags(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.context.user
        page = bags.list_bags(self.db, limit=param_limit(req), cursor=req.get_param("cursor"),
                              **bag_list_filters(req, user))
        send(resp, {"items": page.items, "next_cursor": page.next_cursor})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.context.user
        body = self.body(req, NEW_BAG)
        area = body.get("dispatch_area") or user.restrict_area
        check_area(user, area)
        if area is None:
            raise errors.DispatchAreaRequired("dispatch_area is required", field="dispatch_area")
        self.write(req, resp, lambda conn, key: (201, bags.register_bag(
            self.db, body["qr_id"], body["type"], area, user_id=user.id, idempotency_key=key, conn=conn)))


class BagItem(Resource):
    """GET/DELETE /api/bags/{qr} and GET /api/bags/{qr}/history. The route uses
    Falcon's path converter so that a QR containing "/" (sent as %2F, which
    the server decodes) still reaches its bag."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, qr: str) -> None:
        if qr.endswith("/history"):
            return self.history(req, resp, qr[: -len("/history")])
        area, data = bags.get_bag_detail_json(self.db, qr)
        check_area(req.context.user, area)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data

    def on_delete(self, req: falcon.Request, resp: falcon.Response, qr: str) -> None:
        if qr.endswith("/history"):
            raise falcon.HTTPMethodNotAllowed(["GET"])
        user = require(req, "admin", "biller")
        qr_id = normalize_qr(qr)

        def op(conn, key):
            bags.delete_bag(self.db, qr_id, user_id=user.id, idempotency_key=key, conn=conn)
            return 200, {"deleted": qr_id}

        self.write(req, resp, op)


    def history(self, req: falcon.Request, resp: falcon.Response, qr: str) -> None:
        user = req.context.user
        if user.restrict_area is not None:
            check_area(user, bags.get_bag(self.db, qr).dispatch_area)
        send(resp, {"qr_id": normalize_qr(qr),
                    "items": events.bag_history(self.db, qr, restrict_area=user.restrict_area)})
