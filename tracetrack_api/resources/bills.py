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


class BillPaths(Resource):
    """Every /api/bills/{bill_no}… route. Bill numbers may contain "/" (say
    INV/24-25/001, sent as %2F, which the server decodes before routing), so
    one path-converter route takes the rest of the path and reads its suffix."""

    @staticmethod
    def split(path: str) -> tuple[str, str, str | None]:
        """(bill_no, action, parent_qr) of the path after /api/bills/."""
        if "/parents/" in path:
            bill_no, _, parent_qr = path.partition("/parents/")
            return bill_no, "parent", parent_qr
        for action in ("parents", "complete", "reopen"):
            if path.endswith("/" + action):
                return path[: -len(action) - 1], action, None
        return path, "bill", None

    def route(self, req: falcon.Request, path: str, allowed: dict[str, str]) -> tuple[str, str, str | None]:
        bill_no, action, parent_qr = self.split(path)
        if action not in allowed:
            raise falcon.HTTPMethodNotAllowed(self.methods_of(action))
        return bill_no, allowed[action], parent_qr

    @staticmethod
    def methods_of(action: str) -> list[str]:
        return {"bill": ["GET", "PATCH", "DELETE"], "parents": ["POST"], "parent": ["DELETE"],
                "complete": ["POST"], "reopen": ["POST"]}[action]

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        bill_no, _, _ = self.route(req, path, {"bill": "detail"})
        require(req, *BILLERS)
        send(resp, bills.get_bill_detail(self.db, bill_no))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        bill_no, _, _ = self.route(req, path, {"bill": "update"})
        user = require(req, *BILLERS)
        changes = BillChanges(**self.body(req, BILL_CHANGES))
        self.write(req, resp, lambda conn, key: (200, bills.update_bill(
            self.db, bill_no, changes, user_id=user.id, idempotency_key=key, conn=conn)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        bill_no, action, parent_qr = self.route(req, path, {"bill": "delete", "parent": "remove"})
        if action == "remove":
            user = require(req, *BILLERS)
            self.write(req, resp, lambda conn, key: (200, {"result": "removed", "bill": bills.remove_parent(
                self.db, bill_no, parent_qr, user_id=user.id, idempotency_key=key, conn=conn)}))
            return
        user = require(req, "admin")

        def op(conn, key):
            bills.delete_bill(self.db, bill_no, user_id=user.id, idempotency_key=key, conn=conn)
            return 200, {"deleted": bill_no}

        self.write(req, resp, op)

    def on_post(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        bill_no, action, _ = self.route(req, path, {"parents": "add", "complete": "complete", "reopen": "reopen"})
        user = require(req, *BILLERS)
        if action == "add":
            body = self.body(req, ADD_PARENT)
            self.write(req, resp, lambda conn, key: (200, bills.add_parent(
                self.db, bill_no, body["parent_qr"], user_id=user.id, idempotency_key=key, conn=conn)))
            return
        change = bills.complete_bill if action == "complete" else bills.reopen_bill
        self.write(req, resp, lambda conn, key: (200, change(
            self.db, bill_no, user_id=user.id, idempotency_key=key, conn=conn)))
