"""Scanning: open a parent, link one child or a batch, unlink, recent scans."""

from __future__ import annotations

import falcon

from tracetrack_db import events, scans

from ..auth import require
from ..http import Body, Field, param_datetime, param_int, param_limit, param_str, send
from .base import Resource

SCANNERS = ("dispatcher", "admin")
OPEN_PARENT = Body(qr_id=Field("string", required=True, max_length=200),
                   dispatch_area=Field("string", nullable=True, max_length=50,
                                       description="area of a new parent (admins; dispatchers use theirs)"))
LINK_CHILD = Body(parent_qr=Field("string", required=True, max_length=200),
                  child_qr=Field("string", required=True, max_length=200))
LINK_BATCH = Body(parent_qr=Field("string", required=True, max_length=200),
                  child_qrs=Field("string_list", required=True, max_items=scans.MAX_BATCH))
UNLINK = Body(child_qr=Field("string", required=True, max_length=200))


class ScanParent(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, *SCANNERS)
        body = self.body(req, OPEN_PARENT)

        def op(conn, key):
            opened = scans.open_parent(self.db, body["qr_id"], user_id=user.id,
                                       dispatch_area=body.get("dispatch_area"),
                                       restrict_area=user.restrict_area, idempotency_key=key, conn=conn)
            return (201 if opened.created else 200,
                    {"bag": opened.bag, "child_count": opened.child_count,
                     "capacity": opened.capacity, "created": opened.created})

        self.write(req, resp, op)


class ScanChild(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, *SCANNERS)
        body = self.body(req, LINK_CHILD)
        self.write(req, resp, lambda conn, key: (200, scans.link_child(
            self.db, body["parent_qr"], body["child_qr"], user_id=user.id,
            restrict_area=user.restrict_area, idempotency_key=key, conn=conn)))


class ScanBatch(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, *SCANNERS)
        body = self.body(req, LINK_BATCH)
        self.write(req, resp, lambda conn, key: (200, scans.link_children(
            self.db, body["parent_qr"], body["child_qrs"], user_id=user.id,
            restrict_area=user.restrict_area, idempotency_key=key, conn=conn)))


class ScanUnlink(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, *SCANNERS)
        body = self.body(req, UNLINK)
        self.write(req, resp, lambda conn, key: (200, scans.unlink_child(
            self.db, body["child_qr"], user_id=user.id, restrict_area=user.restrict_area,
            idempotency_key=key, conn=conn)))


class Scans(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.context.user
        page = events.recent_events(
            self.db, user_id=param_int(req, "user"), qr_id=param_str(req, "bag", max_length=200),
            since=param_datetime(req, "since"), dispatch_area=user.restrict_area,
            limit=param_limit(req), cursor=req.get_param("cursor"))
        send(resp, {"items": page.items, "next_cursor": page.next_cursor})


