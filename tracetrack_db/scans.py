"""Scans: open a parent, link children (one or a batch), unlink.

Each call is one round trip to a server-side function that takes its row
locks in the fixed order parent, then children (see 0002_operations.sql).
"""

from __future__ import annotations

from psycopg import Connection

from .database import Database
from .errors import ValidationError
from .models import (
    Bag,
    BatchItem,
    BatchResult,
    CloseResult,
    LinkResult,
    MoveResult,
    OpenParentResult,
    UndoResult,
    UnlinkResult,
)
from .qr import normalize_qr

MAX_BATCH = 500
MAX_REASON = 200
UNDO_WINDOW = 600  # seconds (TRACETRACK_UNDO_WINDOW)


def open_parent(
    db: Database,
    qr_id: str,
    *,
    user_id: int | None = None,
    dispatch_area: str | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> OpenParentResult:
    """Open a parent for scanning, creating it when new (in `dispatch_area`,
    else in `restrict_area`). Raises NotAParent, WrongArea (another area's
    parent, under `restrict_area`), DispatchAreaRequired."""
    qr = normalize_qr(qr_id)
    with db.connection(conn=conn) as conn:
        opened = db.one(
            "open_parent",
            {
                "qr_id": qr,
                "user_id": user_id,
                "dispatch_area": dispatch_area,
                "restrict_area": restrict_area,
                "idempotency_key": idempotency_key,
            },
            row=dict,
            conn=conn,
        )
        bag = db.one("get_bag_by_id", {"id": opened["bag_id"]}, row=Bag, conn=conn)
    return OpenParentResult(bag=bag, child_count=bag.child_count, capacity=bag.capacity or 0, created=opened["created"])


def link_child(
    db: Database,
    parent_qr: str,
    child_qr: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> LinkResult:
    """Link a child into a parent (creating the child when new).

    Returns result linked or already_linked. Raises ParentFull,
    ChildInOtherParent, NotAParent, NotAChild, ParentOnBill, BagNotFound (also
    for another area's parent under `restrict_area`), WrongArea (another
    area's child).
    """
    return db.one(
        "link_child",
        {
            "parent_qr": normalize_qr(parent_qr, "parent_qr"),
            "child_qr": normalize_qr(child_qr, "child_qr"),
            "user_id": user_id,
            "restrict_area": restrict_area,
            "idempotency_key": idempotency_key,
        },
        row=LinkResult,
        conn=conn,
    )


def link_children(
    db: Database,
    parent_qr: str,
    child_qrs: list[str],
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> BatchResult:
    """Link many children in one transaction: a result per child, in input order.

    A child that fails (full, in another parent, not a child, wrong area) gets
    result "error" with its code; the others are linked. A problem with the
    parent itself raises as in `link_child`.
    """
    parent = normalize_qr(parent_qr, "parent_qr")
    if not child_qrs:
        raise ValidationError("child_qrs must not be empty", field="child_qrs")
    if len(child_qrs) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} children per batch", field="child_qrs")
    children = [normalize_qr(c, "child_qrs") for c in child_qrs]
    rows = db.many(
        "link_children",
        {
            "parent_qr": parent,
            "child_qrs": children,
            "user_id": user_id,
            "restrict_area": restrict_area,
            "idempotency_key": idempotency_key,
        },
        row=dict,
        conn=conn,
    )
    # rows come back in input order; the parent's final state is the row
    # with the highest count (a batch only ever adds children)
    last = max(rows, key=lambda r: r["child_count"])
    return BatchResult(
        parent_qr=parent,
        items=[BatchItem(r["child_qr"], r["result"], r["error_code"], r["message"]) for r in rows],
        child_count=last["child_count"],
        capacity=last["capacity"],
        parent_status=last["parent_status"],
    )


def unlink_child(
    db: Database,
    child_qr: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> UnlinkResult:
    """Take a child out of its parent; the child bag stays and the parent reopens.
    Raises ChildNotLinked, ParentOnBill, NotAChild, BagNotFound (also for
    another area's child under `restrict_area`)."""
    qr = normalize_qr(child_qr, "child_qr")
    row = db.one(
        "unlink_child",
        {"child_qr": qr, "user_id": user_id, "restrict_area": restrict_area, "idempotency_key": idempotency_key},
        row=dict,
        conn=conn,
    )
    return UnlinkResult(child_qr=qr, **row)


def move_child(
    db: Database,
    child_qr: str,
    to_parent_qr: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> MoveResult:
    """Move a linked child into another parent in one transaction: it is never in
    two parents, nor in none (a full target refuses before anything changes).
    Raises ParentFull, ChildNotLinked, ParentOnBill, NotAChild, NotAParent,
    WrongArea (the target of another area), BagNotFound (also for another
    area's bag under `restrict_area`)."""
    child = normalize_qr(child_qr, "child_qr")
    target = normalize_qr(to_parent_qr, "to_parent_qr")
    row = db.one(
        "move_child",
        {
            "child_qr": child,
            "to_parent_qr": target,
            "user_id": user_id,
            "restrict_area": restrict_area,
            "idempotency_key": idempotency_key,
        },
        row=dict,
        conn=conn,
    )
    return MoveResult(child_qr=child, to_parent_qr=target, **row)


def close_parent(
    db: Database,
    parent_qr: str,
    reason: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> CloseResult:
    """Close a parent short: it holds fewer children than its capacity (at
    least one) and counts as completed from now on, can go on a bill, and
    refuses links (ParentClosed) until it reopens (`reopen_parent`, or a child
    leaves it). Result closed or already_closed. Raises ParentEmpty,
    ParentFull (nothing short to close), ParentOnBill, NotAParent, BagNotFound."""
    qr = normalize_qr(parent_qr, "parent_qr")
    text = reason.strip() if isinstance(reason, str) else ""
    if not text or len(text) > MAX_REASON or "\x00" in text:
        raise ValidationError(f"reason must be 1-{MAX_REASON} characters", field="reason")
    params = {"qr_id": qr, "reason": text, "user_id": user_id, "restrict_area": restrict_area}
    with db.connection(conn=conn) as conn:
        result = db.scalar("close_parent", {**params, "idempotency_key": idempotency_key}, conn=conn)
        return CloseResult(result, _bag(db, qr, conn))


def reopen_parent(
    db: Database,
    parent_qr: str,
    *,
    user_id: int | None = None,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> CloseResult:
    """Reopen a parent closed short so that more children can go in. Result
    reopened or not_closed. Raises ParentOnBill, NotAParent, BagNotFound."""
    qr = normalize_qr(parent_qr, "parent_qr")
    params = {"qr_id": qr, "user_id": user_id, "restrict_area": restrict_area, "idempotency_key": idempotency_key}
    with db.connection(conn=conn) as conn:
        result = db.scalar("reopen_parent", params, conn=conn)
        return CloseResult(result, _bag(db, qr, conn))


def _bag(db: Database, qr: str, conn: Connection) -> Bag:
    return db.one("get_bag", {"qr_id": qr, "area": None}, row=Bag, conn=conn)


def undo_last_link(
    db: Database,
    user_id: int,
    *,
    window_seconds: int = UNDO_WINDOW,
    restrict_area: str | None = None,
    idempotency_key: str | None = None,
    conn: Connection | None = None,
) -> UndoResult:
    """Undo the user's own last link without rescanning the child: it is the
    user's most recent link or unlink, made by scanning (not an import or a
    move) less than `window_seconds` ago, and the child is still in that
    parent. Undoing twice does not reach an older link: the undo is the user's
    last scan then. Raises NothingToUndo, ParentOnBill."""
    row = db.one(
        "undo_last_link",
        {
            "user_id": user_id,
            "window_seconds": window_seconds,
            "restrict_area": restrict_area,
            "idempotency_key": idempotency_key,
        },
        row=dict,
        conn=conn,
    )
    return UndoResult(result="undone", **row)
