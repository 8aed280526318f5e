"""The route table: every path, its resource, and what the OpenAPI document
says of each operation (roles, body, parameters, answers, error codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracetrack_db import bags as bag_ops
from tracetrack_db import bills as bill_ops
from tracetrack_db import models

from .http import Body
from .openapi import page_of, ref
from .resources import accounts, bags, bills, reports, scans, system
from .resources.base import Resource

ANY = ("admin", "biller", "dispatcher")
LIST_PARAMS = [("limit", {"type": "integer", "minimum": 1, "maximum": 200}), ("cursor", {"type": "string"})]
QR_PATH = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"}


@dataclass
class Op:
    summary: str
    roles: tuple[str, ...] | None  # None: no token needed
    response: dict[str, Any]
    status: tuple[int, ...] = (200,)
    body: Body | None = None
    query: list[tuple[str, dict]] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    media: str = "application/json"

    def openapi(self, path: str) -> dict[str, Any]:
        params = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 1} if name == "user_id" else QR_PATH}
                  for name in _path_names(path)]
        params += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in self.query]
        responses: dict[str, Any] = {
            str(code): {"description": "OK" if code < 300 else "done",
                        "content": {self.media: {"schema": self.response}}}
            for code in self.status}
        codes = set(self.errors) | {400, 413} if self.body else set(self.errors)
        if self.roles is not None:
            codes |= {401, 403}
        for code in sorted(codes | {503}):
            responses[str(code)] = {"description": "error",
                                    "content": {"application/json": {"schema": ref_error()}}}
        op: dict[str, Any] = {"summary": self.summary, "responses": responses}
        if self.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = "Roles: " + ", ".join(self.roles)
        if params:
            op["parameters"] = params
        if self.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": self.body.schema()}}}
        return op


def ref_error() -> dict[str, str]:
    return {"$ref": "#/components/schemas/Error"}


def _path_names(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


OBJ = {"type": "object"}
BAG_FILTERS = [("type", {"type": "string", "enum": list(bag_ops.TYPES)}),
               ("status", {"type": "string", "enum": list(bag_ops.STATUSES)}),
               ("dispatch_area", {"type": "string"}), ("q", {"type": "string", "maxLength": 100}),
               ("linked", {"type": "boolean"}), ("billed", {"type": "boolean"}),
               ("created_after", {"type": "string", "format": "date-time"}),
               ("created_before", {"type": "string", "format": "date-time"})]
OPEN_PARENT_ANSWER = {"type": "object", "required": ["bag", "child_count", "capacity", "created"],
                      "properties": {"bag": ref(models.Bag), "child_count": {"type": "integer"},
                                     "capacity": {"type": "integer"}, "created": {"type": "boolean"}}}
LOGIN_ANSWER = {"type": "object", "required": ["token", "expires_at", "user"],
                "properties": {"token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
                               "user": ref(models.User)}}
DELETED = {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}
HISTORY = {"type": "object", "required": ["qr_id", "items"],
           "properties": {"qr_id": {"type": "string"}, "items": {"type": "array", "items": ref(models.Event)}}}
REMOVED = {"type": "object", "required": ["result", "bill"],
           "properties": {"result": {"type": "string"}, "bill": ref(models.Bill)}}
CSV = {"type": "string"}
DASHBOARD = {"type": "object", "required": ["as_of", "bags", "bills", "scans", "users", "recent_scans"],
             "properties": {"as_of": {"type": ["string", "null"], "format": "date-time"},
                            "dispatch_area": {"type": ["string", "null"]},
                            "bags": OBJ, "bills": OBJ, "scans": OBJ,
                            "users": {"type": "array"}, "recent_scans": {"type": "array"},
                            "generated_at": {"type": "number"}}}
HEALTH = {"type": "object", "required": ["status", "checks", "pool"],
          "properties": {"status": {"type": "string"}, "checks": OBJ, "pool": OBJ}}


def table() -> list[tuple[str, type[Resource] | None, dict[str, Op]]]:
    """(path, resource or None when another route serves it, operations)."""
    return [
        ("/health", system.Health, {"get": Op("Liveness with database and cache checks", None, HEALTH,
                                              status=(200,))}),
        ("/api/auth/login", accounts.Login, {"post": Op(
            "Log in: a bearer token", None, LOGIN_ANSWER, body=accounts.LOGIN, errors=(401, 429))}),
        ("/api/me", accounts.Me, {"get": Op("The caller", ANY, ref(models.User))}),
        ("/api/users", accounts.Users, {
            "get": Op("Users", ("admin",), page_of(models.User), query=LIST_PARAMS, errors=(400,)),
            "post": Op("Create a user", ("admin",), ref(models.User), status=(201,), body=accounts.NEW_USER,
                       errors=(409,))}),
        ("/api/users/{user_id:int}", accounts.UserItem, {"patch": Op(
            "Change a user", ("admin",), ref(models.User), body=accounts.USER_CHANGES, errors=(404, 409))}),
        ("/api/areas", accounts.Areas, {
            "get": Op("Dispatch areas", ANY, page_of(models.Area)),
            "post": Op("Add a dispatch area", ("admin",), ref(models.Area), status=(201,),
                       body=accounts.NEW_AREA, errors=(409,))}),
        ("/api/bags", bags.Bags, {
            "get": Op("Bags, newest first", ANY, page_of(models.Bag), query=LIST_PARAMS + BAG_FILTERS,
                      errors=(400,)),
            "post": Op("Register a bag", ANY, ref(models.Bag), status=(201,), body=bags.NEW_BAG,
                       errors=(409, 422))}),
        # one route takes QRs containing "/" (sent as %2F) and the /history suffix
        ("/api/bags/{qr:path}", bags.BagItem, {
            "get": Op("A bag with its parent or children and bill", ANY, ref(models.BagDetail),
                      errors=(400, 404)),
            "delete": Op("Delete a bag", ("admin", "biller"), DELETED, errors=(400, 404, 409))}),
        ("/api/bags/{qr}/history", None, {"get": Op(
            "Genealogy: the bag's, its children's and its bill's events", ANY, HISTORY, errors=(400, 404))}),
        ("/api/scans/parent", scans.ScanParent, {"post": Op(
            "Open (or create) a parent", scans.SCANNERS, OPEN_PARENT_ANSWER, status=(200, 201),
            body=scans.OPEN_PARENT, errors=(404, 409, 422))}),
        ("/api/scans/child", scans.ScanChild, {"post": Op(
            "Link a child into a parent", scans.SCANNERS, ref(models.LinkResult), body=scans.LINK_CHILD,
            errors=(404, 409, 422))}),
        ("/api/scans/batch", scans.ScanBatch, {"post": Op(
            "Link many children: a result per child", scans.SCANNERS, ref(models.BatchResult),
            body=scans.LINK_BATCH, errors=(404, 409, 422))}),
        ("/api/scans/unlink", scans.ScanUnlink, {"post": Op(
            "Take a child out of its parent", scans.SCANNERS, ref(models.UnlinkResult), body=scans.UNLINK,
            errors=(404, 409, 422))}),
        ("/api/scans", scans.Scans, {"get": Op(
            "Recent events", ANY, page_of(models.Event),
            query=LIST_PARAMS + [("user", {"type": "integer", "minimum": 1}), ("bag", {"type": "string"}),
                                 ("since", {"type": "string", "format": "date-time"})], errors=(400,))}),
        ("/api/bills", bills.Bills, {
            "get": Op("Bills, newest first", bills.BILLERS, page_of(models.Bill),
                      query=LIST_PARAMS + [("status", {"type": "string", "enum": list(bill_ops.STATUSES)}),
                                           ("q", {"type": "string", "maxLength": 64})], errors=(400,)),
            "post": Op("Create a bill", bills.BILLERS, ref(models.Bill), status=(201,), body=bills.NEW_BILL,
                       errors=(409,))}),
        # one route serves every bill item path below (bill numbers may contain "/")
        ("/api/bills/{path:path}", bills.BillPaths, {}),
        ("/api/bills/{bill_no}", None, {
            "get": Op("A bill with its parents", bills.BILLERS, ref(models.BillDetail), errors=(400, 404)),
            "patch": Op("Edit a bill", bills.BILLERS, ref(models.Bill), body=bills.BILL_CHANGES,
                        errors=(404, 409)),
            "delete": Op("Delete a bill", ("admin",), DELETED, errors=(400, 404))}),
        ("/api/bills/{bill_no}/parents", None, {"post": Op(
            "Put a parent on a bill", bills.BILLERS, ref(models.AddParentResult), body=bills.ADD_PARENT,
            errors=(404, 409, 422))}),
        ("/api/bills/{bill_no}/parents/{parent_qr}", None, {"delete": Op(
            "Take a parent off a bill", bills.BILLERS, REMOVED, errors=(400, 404, 409))}),
        ("/api/bills/{bill_no}/complete", None, {"post": Op(
            "Complete a full bill", bills.BILLERS, ref(models.Bill), errors=(400, 404, 409))}),
        ("/api/bills/{bill_no}/reopen", None, {"post": Op(
            "Reopen a completed bill", bills.BILLERS, ref(models.Bill), errors=(400, 404, 409))}),
        ("/api/dashboard/analytics", reports.Dashboard, {"get": Op(
            "Totals, bills, scans per hour, activity, recent scans (from views; see as_of)", ANY, DASHBOARD,
            query=[("dispatch_area", {"type": "string"})], errors=(400,))}),
        ("/api/exports/bags.csv", reports.BagsExport, {"get": Op(
            "Every matching bag as CSV (streamed)", ("admin", "biller"), CSV, query=BAG_FILTERS,
            errors=(400,), media="text/csv")}),
        ("/api/exports/bills.csv", reports.BillsExport, {"get": Op(
            "Every matching bill as CSV (streamed)", ("admin", "biller"), CSV,
            query=[("status", {"type": "string", "enum": list(bill_ops.STATUSES)}),
                   ("q", {"type": "string", "maxLength": 64})], errors=(400,), media="text/csv")}),
    ]
