"""Bills: create, list, read, edit, delete, add/remove parents, complete, reopen."""

from __future__ import annotations

import falcon

from tracetrack_db import bills
from tracetrack_db.bills import BillChanges

from ..auth import require
from ..http import Body, Field, param_limit, param_str, send
from .base import Resource

BILLERS = ("biller", "admin")
NEW_BILL = Body(bill_no=Field("string", required=True, max_length=64),
                capacity=Field("integer", required=True),
                description=Field("string", max_length=1000),
                destination=Field("string", max_length=200),
                vehicle_number=Field("string", max_length=50))
BILL_CHANGES = Body(capacity=Field("integer"),
                    description=Field("string", max_length=1000),
                    destination=Field("string", max_length=200),
                    vehicle_number=Field("string", max_length=50))
ADD_PARENT = Body(parent_qr=Field("string", required=True, max_length=200))


class Bills(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require(req, *BILLERS)
        page = bills.list_bills(self.db, status=param_str(req, "status", enum=bills.STATUSES),
                                q=param_str(req, "q", max_length=64), limit=param_limit(req),
                                cursor=req.get_param("cursor"))
        send(resp, {"items": page.items, "next_cursor": page.next_cursor})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = require(req, *BILLERS)
        b = self.body(req, NEW_BILL)
        self.write(req, resp, lambda conn, key: (201, bills.create_bill(
            self.db, b["bill_no"], b["capacity"], description=b.get("description", ""),
            destination=b.get("destination", ""), vehicle_number=b.get("vehicle_number", ""),
            user_id=user.id, idempotency_key=key, conn=conn)))


class BillItem(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        require(req, *BILLERS)
        send(resp, bills.get_bill_detail(self.db, bill_no))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        user = require(req, *BILLERS)
        changes = BillChanges(**self.body(req, BILL_CHANGES))
        self.write(req, resp, lambda conn, key: (200, bills.update_bill(
            self.db, bill_no, changes, user_id=user.id, idempotency_key=key, conn=conn)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        user = require(req, "admin")

        def op(conn, key):
            bills.delete_bill(self.db, bill_no, user_id=user.id, idempotency_key=key, conn=conn)
            return 200, {"deleted": bill_no}

        self.write(req, resp, op)


class BillParents(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        user = require(req, *BILLERS)
        body = self.body(req, ADD_PARENT)
        self.write(req, resp, lambda conn, key: (200, bills.add_parent(
            self.db, bill_no, body["parent_qr"], user_id=user.id, idempotency_key=key, conn=conn)))


class BillParentItem(Resource):
    def on_delete(self, req: falcon.Request, resp: falcon.Response, bill_no: str, parent_qr: str) -> None:
        user = require(req, *BILLERS)
        self.write(req, resp, lambda conn, key: (200, {"result": "removed", "bill": bills.remove_parent(
            self.db, bill_no, parent_qr, user_id=user.id, idempotency_key=key, conn=conn)}))


class BillComplete(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        user = require(req, *BILLERS)
        self.write(req, resp, lambda conn, key: (200, bills.complete_bill(
            self.db, bill_no, user_id=user.id, idempotency_key=key, conn=conn)))


class BillReopen(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, bill_no: str) -> None:
        user = require(req, *BILLERS)
        self.write(req, resp, lambda conn, key: (200, bills.reopen_bill(
            self.db, bill_no, user_id=user.id, idempotency_key=key, conn=conn)))
