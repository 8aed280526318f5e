"""The route table: the single source of truth for every operation of the API.

One row per method and path: who may call it, what it takes, what it
answers, which errors it may give, whether it honours Idempotency-Key, and
the handler. The generic endpoint (endpoint.py) enforces the row, and the
OpenAPI document (openapi.py) is written from the same rows, so the two
cannot drift. Adding an endpoint is one row plus one handler function.
"""

from __future__ import annotations

from tracetrack_db import Page, models, passwords
from tracetrack_db import bags as bag_ops
from tracetrack_db import bills as bill_ops
from tracetrack_db import scans as scan_ops
from tracetrack_db import users as user_ops

from . import (
    console,
    routes_audit,
    routes_corrections,
    routes_documents,
    routes_formats,
    routes_imports,
    routes_reports,
    routes_returns,
    routes_sync,
)
from .answers import Deleted, Health, Liveness, LoggedOut, LoginAnswer, Readiness
from .docs import ASSETS as DOC_ASSETS
from .docs import MEDIA_TYPES as DOC_MEDIA_TYPES
from .handlers import accounts, bags, bills, docs, reports, scans, system
from .schema import (
    ANY_PASSWORD,
    AREA,
    BILL_NO,
    CAPACITY,
    LOGIN_NAME,
    NEW_AREA_NAME,
    PAGE,
    PASSWORD,
    QR,
    USERNAME,
    Bool,
    DateTime,
    Enum,
    Field,
    Int,
    Param,
    Text,
    TextList,
    Value,
    body,
    query,
)
from .table import ANY_ROLE, BILLERS, CSV, HTML, PUBLIC, SCANNERS, Operation

# Path parameters, by name. QRs and bill numbers may hold "/" (sent as %2F).
PATH_VALUES: dict[str, Value] = {
    "qr": QR,
    "parent_qr": QR,
    "bill_no": BILL_NO,
    "user_id": Int(1),
    "asset": Enum(DOC_ASSETS),
    "console_file": Enum(console.ASSETS),
    "import_id": Int(1),
    "rule_name": routes_imports.RULE_NAME,
    "format_name": routes_formats.FORMAT_NAME,
    "return_id": routes_returns.RETURN_ID,
}
SPANS_SEGMENTS = frozenset({"qr", "parent_qr", "bill_no"})

BAG_FILTERS = {
    "type": Param(Enum(bag_ops.TYPES)),
    "status": Param(Enum(bag_ops.STATUSES)),
    "dispatch_area": Param(AREA, description="dispatchers: only their own area"),
    "q": Param(Text(100), description="QR prefix"),
    "linked": Param(Bool(), description="children in a parent (true) or waiting (false)"),
    "billed": Param(Bool(), description="parents on a bill (true) or not (false)"),
    "created_after": Param(DateTime()),
    "created_before": Param(DateTime()),
}
BILL_FILTERS = {"status": Param(Enum(bill_ops.STATUSES)), "q": Param(Text(64), description="bill number prefix")}
DISPATCHER_NEEDS_AREA = {
    "if": {"properties": {"role": {"const": "dispatcher"}}, "required": ["role"]},
    "then": {"required": ["dispatch_area"], "properties": {"dispatch_area": AREA.schema()}},
}

CORE_OPERATIONS: tuple[Operation, ...] = (
    # system ---------------------------------------------------------------------------------
    Operation(
        "health",
        "GET",
        "/health",
        system.health,
        "Liveness with database and cache checks",
        "system",
        PUBLIC,
        Health,
        other_statuses=(503,),
    ),
    Operation(
        "livez",
        "GET",
        "/livez",
        system.livez,
        "Liveness: the process answers (touches no database)",
        "system",
        PUBLIC,
        Liveness,
        description="For restarts: a failing /livez means restart the process.",
    ),
    Operation(
        "readyz",
        "GET",
        "/readyz",
        system.readyz,
        "Readiness: the database answers and every migration of this version is applied",
        "system",
        PUBLIC,
        Readiness,
        other_statuses=(503,),
        description="For traffic: 503 (with a reason: database_unavailable or migrations_pending) means "
        "send no requests here yet; the process itself need not restart.",
    ),
    # accounts -------------------------------------------------------------------------------
    Operation(
        "login",
        "POST",
        "/api/auth/login",
        accounts.login,
        "Log in: a bearer token",
        "accounts",
        PUBLIC,
        LoginAnswer,
        body=body(username=Field(LOGIN_NAME, required=True), password=Field(ANY_PASSWORD, required=True)),
        errors=("invalid_credentials", "invalid_username", "rate_limited"),
        description="Throttled, never locked: 5 free attempts per username and client address in 15 "
        "minutes, then each waits 1, 2, 4 ... up to 300 s after the one before (429 with "
        "Retry-After); at most TRACETRACK_LOGIN_ADDRESS_RATE attempts a minute per address. "
        "user.must_change_password true (an admin set the password): every operation but GET /api/me, "
        "POST /api/me/password and logout answers 403 password_change_required until the user "
        "changes it.",
    ),
    Operation(
        "logout",
        "POST",
        "/api/auth/logout",
        accounts.logout,
        "End every token of the caller",
        "accounts",
        ANY_ROLE,
        LoggedOut,
        description="Ends the caller's tokens (all devices) at once in this process and within "
        "TRACETRACK_USER_REFRESH seconds in the others.",
        before_password_change=True,
    ),
    Operation(
        "get_me",
        "GET",
        "/api/me",
        accounts.me,
        "The caller (must_change_password: only the password change is open yet)",
        "accounts",
        ANY_ROLE,
        models.Account,
        before_password_change=True,
    ),
    Operation(
        "change_password",
        "POST",
        "/api/me/password",
        accounts.change_password,
        "Change my password: every other token ends, this device gets a new one",
        "accounts",
        ANY_ROLE,
        LoginAnswer,
        body=body(
            current_password=Field(ANY_PASSWORD, required=True),
            new_password=Field(
                ANY_PASSWORD,
                required=True,
                description=f"{passwords.MIN_LENGTH}-{passwords.MAX_LENGTH} characters, not the username, "
                "not a common or easily guessed one, not the current one (weak_password)",
            ),
        ),
        errors=("wrong_password", "weak_password", "rate_limited", "user_not_found"),
        before_password_change=True,
        description="Clears must_change_password. Ends every token of the caller (all devices) and answers "
        "a fresh one for this device, like a login. A wrong current password counts as a failed login of "
        "the caller's username from this address (the same throttle: 429 with Retry-After). Not "
        "Idempotency-Key: the answer is a token, which is never stored; after a lost answer the old token "
        "is ended (401): log in with the new password.",
    ),
    Operation(
        "list_users",
        "GET",
        "/api/users",
        accounts.list_users,
        "Users, by id",
        "accounts",
        ("admin",),
        Page[models.User],
        query=query(**PAGE),
    ),
    Operation(
        "create_user",
        "POST",
        "/api/users",
        accounts.create_user,
        "Create a user",
        "accounts",
        ("admin",),
        models.User,
        status=201,
        idempotent=True,
        body=body(
            rules=(DISPATCHER_NEEDS_AREA,),
            username=Field(USERNAME, required=True),
            password=Field(PASSWORD, required=True),
            role=Field(Enum(user_ops.ROLES), required=True),
            dispatch_area=Field(AREA, nullable=True, description="required for a dispatcher"),
        ),
        errors=("username_taken", "weak_password", "dispatch_area_required", "unknown_area"),
    ),
    Operation(
        "update_user",
        "PATCH",
        "/api/users/{user_id}",
        accounts.update_user,
        "Change a user's role, area, active flag or password",
        "accounts",
        ("admin",),
        models.User,
        idempotent=True,
        body=body(
            min_fields=1,
            role=Field(Enum(user_ops.ROLES)),
            dispatch_area=Field(AREA, nullable=True, description="null clears it (not for a dispatcher)"),
            is_active=Field(Bool()),
            password=Field(PASSWORD),
        ),
        errors=("user_not_found", "last_admin", "weak_password", "dispatch_area_required", "unknown_area"),
    ),
    Operation(
        "list_areas",
        "GET",
        "/api/areas",
        accounts.list_areas,
        "Dispatch areas",
        "accounts",
        ANY_ROLE,
        Page[models.Area],
    ),
    Operation(
        "create_area",
        "POST",
        "/api/areas",
        accounts.create_area,
        "Add a dispatch area",
        "accounts",
        ("admin",),
        models.Area,
        status=201,
        idempotent=True,
        body=body(name=Field(NEW_AREA_NAME, required=True), label=Field(Text(100))),
        errors=("area_exists",),
    ),
    # bags -----------------------------------------------------------------------------------
    Operation(
        "list_bags",
        "GET",
        "/api/bags",
        bags.list_bags,
        "Bags, newest first",
        "bags",
        ANY_ROLE,
        Page[models.Bag],
        query=query(**PAGE, **BAG_FILTERS),
        errors=("unknown_area", "wrong_area"),
    ),
    Operation(
        "register_bag",
        "POST",
        "/api/bags",
        bags.register_bag,
        "Register a bag by hand",
        "bags",
        ANY_ROLE,
        models.Bag,
        status=201,
        idempotent=True,
        body=body(
            qr_id=Field(QR, required=True),
            type=Field(Enum(bag_ops.TYPES), required=True),
            dispatch_area=Field(AREA, nullable=True, description="dispatchers: their own by default"),
        ),
        errors=("qr_taken", "not_a_parent", "not_a_child", "unknown_area", "dispatch_area_required", "wrong_area"),
    ),
    Operation(
        "get_bag",
        "GET",
        "/api/bags/{qr}",
        bags.get_bag,
        "A bag with its parent or children and its bill",
        "bags",
        ANY_ROLE,
        models.BagDetail,
        errors=("bag_not_found",),
    ),
    Operation(
        "get_bag_history",
        "GET",
        "/api/bags/{qr}/history",
        bags.bag_history,
        "Genealogy: the bag's, its children's and its bill's events, oldest first; retained_from says where "
        "archived months cut it",
        "bags",
        ANY_ROLE,
        models.BagHistory,
        errors=("bag_not_found",),
    ),
    Operation(
        "delete_bag",
        "DELETE",
        "/api/bags/{qr}",
        bags.delete_bag,
        "Delete a bag (its history stays)",
        "bags",
        BILLERS,
        Deleted,
        idempotent=True,
        errors=("bag_not_found", "bag_on_bill", "bag_has_children"),
    ),
    # scans ----------------------------------------------------------------------------------
    Operation(
        "open_parent",
        "POST",
        "/api/scans/parent",
        scans.open_parent,
        "Open (or create) a parent",
        "scans",
        SCANNERS,
        models.OpenParentResult,
        other_statuses=(201,),
        idempotent=True,
        body=body(
            qr_id=Field(QR, required=True),
            dispatch_area=Field(
                AREA, nullable=True, description="area of a new parent (admins; dispatchers use theirs)"
            ),
        ),
        errors=("not_a_parent", "wrong_area", "unknown_area", "dispatch_area_required"),
        description="201 when the parent was created by this scan.",
    ),
    Operation(
        "link_child",
        "POST",
        "/api/scans/child",
        scans.link_child,
        "Link a child into a parent",
        "scans",
        SCANNERS,
        models.LinkResult,
        idempotent=True,
        body=body(parent_qr=Field(QR, required=True), child_qr=Field(QR, required=True)),
        errors=(
            "bag_not_found",
            "not_a_parent",
            "not_a_child",
            "parent_full",
            "parent_closed",
            "child_in_other_parent",
            "parent_on_bill",
            "wrong_area",
        ),
    ),
    Operation(
        "link_children",
        "POST",
        "/api/scans/batch",
        scans.link_children,
        "Link many children: a result per child",
        "scans",
        SCANNERS,
        models.BatchResult,
        idempotent=True,
        body=body(
            parent_qr=Field(QR, required=True),
            child_qrs=Field(
                TextList(QR, scan_ops.MAX_BATCH), required=True, description="at most the parent's capacity"
            ),
        ),
        errors=("bag_not_found", "not_a_parent", "parent_on_bill", "parent_closed", "too_many_children"),
    ),
    Operation(
        "unlink_child",
        "POST",
        "/api/scans/unlink",
        scans.unlink_child,
        "Take a child out of its parent",
        "scans",
        SCANNERS,
        models.UnlinkResult,
        idempotent=True,
        body=body(child_qr=Field(QR, required=True)),
        errors=("bag_not_found", "not_a_child", "child_not_linked", "parent_on_bill"),
        description="A parent closed short reopens (the unlink event's details say {reopened: reason}).",
    ),
    Operation(
        "move_child",
        "POST",
        "/api/scans/move",
        scans.move_child,
        "Move a child into another parent",
        "scans",
        SCANNERS,
        models.MoveResult,
        idempotent=True,
        body=body(child_qr=Field(QR, required=True), to_parent_qr=Field(QR, required=True)),
        errors=(
            "bag_not_found",
            "not_a_parent",
            "not_a_child",
            "child_not_linked",
            "parent_full",
            "parent_closed",
            "parent_on_bill",
            "wrong_area",
        ),
        description="One transaction: the child leaves its parent and joins the other, or nothing changes "
        "(a full target is 409 parent_full, one closed short 409 parent_closed); a parent closed short "
        "that the child leaves reopens. One event pair (unlink, link) with details {move: true}. "
        "Into the parent it is already in: result already_linked, nothing recorded.",
    ),
    Operation(
        "list_scans",
        "GET",
        "/api/scans",
        scans.list_scans,
        "Recent events, newest first",
        "scans",
        ANY_ROLE,
        Page[models.Event],
        query=query(
            **PAGE,
            user=Param(Int(1), description="user id"),
            bag=Param(QR, description="a bag's QR: its events and, for a parent, its links"),
            since=Param(DateTime()),
        ),
        errors=("bag_not_found",),
    ),
    # bills ----------------------------------------------------------------------------------
    Operation(
        "list_bills",
        "GET",
        "/api/bills",
        bills.list_bills,
        "Bills, newest first",
        "bills",
        BILLERS,
        Page[models.Bill],
        query=query(**PAGE, **BILL_FILTERS),
    ),
    Operation(
        "create_bill",
        "POST",
        "/api/bills",
        bills.create_bill,
        "Create a bill",
        "bills",
        BILLERS,
        models.Bill,
        status=201,
        idempotent=True,
        body=body(
            bill_no=Field(BILL_NO, required=True),
            capacity=Field(CAPACITY, required=True),
            description=Field(Text(1000)),
            destination=Field(Text(200)),
            vehicle_number=Field(Text(50)),
        ),
        errors=("bill_exists",),
    ),
    Operation(
        "get_bill",
        "GET",
        "/api/bills/{bill_no}",
        bills.get_bill,
        "A bill with its parents",
        "bills",
        BILLERS,
        models.BillDetail,
        errors=("bill_not_found",),
    ),
    Operation(
        "update_bill",
        "PATCH",
        "/api/bills/{bill_no}",
        bills.update_bill,
        "Edit a bill (an edit to the same values records nothing)",
        "bills",
        BILLERS,
        models.Bill,
        idempotent=True,
        body=body(
            min_fields=1,
            capacity=Field(CAPACITY),
            description=Field(Text(1000)),
            destination=Field(Text(200)),
            vehicle_number=Field(Text(50)),
        ),
        errors=("bill_not_found", "bill_completed", "bill_capacity_too_small"),
    ),
    Operation(
        "delete_bill",
        "DELETE",
        "/api/bills/{bill_no}",
        bills.delete_bill,
        "Delete a bill (its parents come off it; the history stays)",
        "bills",
        ("admin",),
        Deleted,
        idempotent=True,
        errors=("bill_not_found",),
    ),
    Operation(
        "add_bill_parent",
        "POST",
        "/api/bills/{bill_no}/parents",
        bills.add_parent,
        "Put a parent on a bill",
        "bills",
        BILLERS,
        models.AddParentResult,
        idempotent=True,
        body=body(parent_qr=Field(QR, required=True)),
        errors=(
            "bill_not_found",
            "bag_not_found",
            "not_a_parent",
            "bill_full",
            "parent_on_other_bill",
            "bill_completed",
            "parent_empty",
        ),
    ),
    Operation(
        "remove_bill_parent",
        "DELETE",
        "/api/bills/{bill_no}/parents/{parent_qr}",
        bills.remove_parent,
        "Take a parent off a bill (the last one out sends the bill back to new)",
        "bills",
        BILLERS,
        models.RemoveParentResult,
        idempotent=True,
        errors=("bill_not_found", "bag_not_found", "parent_not_on_bill", "bill_completed"),
    ),
    Operation(
        "complete_bill",
        "POST",
        "/api/bills/{bill_no}/complete",
        bills.complete_bill,
        "Complete a full bill",
        "bills",
        BILLERS,
        models.Bill,
        idempotent=True,
        errors=("bill_not_found", "bill_not_full"),
    ),
    Operation(
        "reopen_bill",
        "POST",
        "/api/bills/{bill_no}/reopen",
        bills.reopen_bill,
        "Reopen a completed bill (back to processing)",
        "bills",
        BILLERS,
        models.Bill,
        idempotent=True,
        errors=("bill_not_found", "bill_not_completed"),
    ),
    # reports --------------------------------------------------------------------------------
    Operation(
        "get_dashboard",
        "GET",
        "/api/dashboard/analytics",
        reports.dashboard,
        "Totals, bills, scans per hour, activity, recent scans (from views; see as_of)",
        "reports",
        ANY_ROLE,
        models.Dashboard,
        query=query(dispatch_area=Param(AREA)),
        errors=("unknown_area", "wrong_area"),
    ),
    Operation(
        "export_bags",
        "GET",
        "/api/exports/bags.csv",
        reports.export_bags,
        "Every matching bag as CSV (streamed; the columns of Bag)",
        "reports",
        BILLERS,
        CSV,
        query=query(**BAG_FILTERS),
        errors=("unknown_area", "too_many_exports"),
    ),
    Operation(
        "export_bills",
        "GET",
        "/api/exports/bills.csv",
        reports.export_bills,
        "Every matching bill as CSV (streamed; the columns of Bill)",
        "reports",
        BILLERS,
        CSV,
        query=query(**BILL_FILTERS),
        errors=("too_many_exports",),
    ),
    # docs -----------------------------------------------------------------------------------
    Operation(
        "get_docs",
        "GET",
        "/docs",
        docs.page,
        "Browsable API docs: Swagger UI over /openapi.json",
        "docs",
        PUBLIC,
        HTML,
        description="Everything the page loads comes from this server (no CDN; works "
        "offline); its Content-Security-Policy allows this origin only.",
    ),
    Operation(
        "get_docs_asset",
        "GET",
        "/docs/assets/{asset}",
        docs.asset,
        "A file of the docs page",
        "docs",
        PUBLIC,
        DOC_MEDIA_TYPES,
        description="Read once at start-up; cached by browsers for a day.",
    ),
    # the warehouse console ------------------------------------------------------------------
    Operation(
        "get_console",
        "GET",
        "/console",
        docs.console_page,
        "The warehouse console: scan station, bill desk, bag lookup, dashboard (sign in on the page)",
        "docs",
        PUBLIC,
        HTML,
        description="Plain HTML, CSS and JavaScript modules from this server, no inline script "
        "(Content-Security-Policy: this origin only). The page signs in through POST /api/auth/login "
        "and keeps the token in the tab's sessionStorage, never in a URL.",
    ),
    Operation(
        "get_console_asset",
        "GET",
        "/console/assets/{console_file}",
        docs.console_asset,
        "A file of the console",
        "docs",
        PUBLIC,
        console.MEDIA_TYPES,
        description="Read once at start-up; revalidated by ETag on every load.",
    ),
)

# The paperwork of a warehouse day and its reference data, each area's rows in its own module.
OPERATIONS: tuple[Operation, ...] = (
    CORE_OPERATIONS
    + routes_imports.OPERATIONS
    + routes_documents.OPERATIONS
    + routes_reports.OPERATIONS
    + routes_formats.OPERATIONS
    + routes_corrections.OPERATIONS
    + routes_sync.OPERATIONS
    + routes_returns.OPERATIONS
    + routes_audit.OPERATIONS
)
