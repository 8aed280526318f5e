"""Route table rows: corrections of scans (issue 12): close a parent short,
reopen it, undo one's own last link. Moves are with the scans (routes.py).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from tracetrack_db import models
from tracetrack_db.scans import MAX_REASON

from .handlers import corrections as handlers
from .schema import QR, Field, Text, body
from .table import SCANNERS, Operation

REASON = Text(
    max_length=MAX_REASON,
    min_length=1,
    pattern=r"^\s*[^\s\x00][^\x00]*$",
    description=f"why, 1-{MAX_REASON} characters, not only spaces (kept without its outer spaces)",
    invalid="reason must say why: not only spaces",
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "close_parent",
        "POST",
        "/api/scans/close",
        handlers.close_parent,
        "Close a parent short: completed with fewer children than its capacity",
        "scans",
        SCANNERS,
        models.CloseResult,
        idempotent=True,
        body=body(parent_qr=Field(QR, required=True), reason=Field(REASON, required=True)),
        errors=("bag_not_found", "not_a_parent", "parent_empty", "parent_full", "parent_on_bill"),
        description="For the last parent of a lot. It holds 1 to capacity - 1 children; from now on it "
        "counts as completed with its real child count and weight (bag field closed_short_reason), can go "
        "on a bill, and refuses links (409 parent_closed) until it reopens: POST /api/scans/reopen, or a "
        "child leaves it (unlink, move, undo, delete). Result closed, or already_closed (nothing changed). "
        "One close_short event with the reason.",
    ),
    Operation(
        "reopen_parent",
        "POST",
        "/api/scans/reopen",
        handlers.reopen_parent,
        "Reopen a parent closed short, so that more children can go in",
        "scans",
        SCANNERS,
        models.CloseResult,
        idempotent=True,
        body=body(parent_qr=Field(QR, required=True)),
        errors=("bag_not_found", "not_a_parent", "parent_on_bill"),
        description="Result reopened (a reopen_parent event), or not_closed (nothing changed).",
    ),
    Operation(
        "undo_last_link",
        "POST",
        "/api/scans/undo",
        handlers.undo_last_link,
        "Undo my last link, without rescanning the child",
        "scans",
        SCANNERS,
        models.UndoResult,
        idempotent=True,
        errors=("nothing_to_undo", "parent_on_bill", "wrong_area"),
        description="Undoes the caller's own most recent link when it is also their most recent link or "
        "unlink, was made by scanning (not by an import or a move), is younger than TRACETRACK_UNDO_WINDOW "
        "seconds (default 600) and its child is still in that parent by that link (no link or unlink of "
        "it since, by anyone); otherwise 409 nothing_to_undo and "
        "nothing changes. The answer names the child and the parent. One unlink event with details "
        "{undo: <the link event's id>}. Undoing again answers nothing_to_undo: it never reaches an older link.",
    ),
)
