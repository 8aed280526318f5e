"""Route table rows: return tickets (issue 12, items 1 and 2).

Joined into routes.OPERATIONS; the same rules as the rows there. Billers and
admins only: a dispatcher (who works in one area) gets 403 forbidden on all
of them; returns are paperwork about bills, which dispatchers do not see.
The path parameter return_id is typed by routes.PATH_VALUES.
"""

from __future__ import annotations

from tracetrack_db import Page, returns
from tracetrack_db.models import ReturnDetail, ReturnResult, ReturnTicket

from .handlers import returns as handlers
from .schema import PAGE, QR, Enum, Field, Int, Param, Text, body, query
from .table import BILLERS, Operation

RETURN_ID = Int(1)
DEPOT = Text(
    max_length=returns.MAX_DEPOT,
    pattern=returns.DEPOT_PATTERN,
    description="where the parents came back from: 1-200 characters, not only spaces "
    "(ASCII whitespace around it is dropped)",
    invalid="a depot is 1-200 characters, not only spaces",
)
CLOSE = (
    "Closing it the same way again answers the ticket as it is and records nothing; closing a ticket "
    "closed the other way is 409 return_not_open."
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "list_returns",
        "GET",
        "/api/returns",
        handlers.list_returns,
        "Return tickets, newest first",
        "returns",
        BILLERS,
        Page[ReturnTicket],
        query=query(**PAGE, status=Param(Enum(returns.STATUSES))),
    ),
    Operation(
        "open_return",
        "POST",
        "/api/returns",
        handlers.open_return,
        "Open a return ticket for parents coming back from a depot",
        "returns",
        BILLERS,
        ReturnTicket,
        status=201,
        idempotent=True,
        body=body(
            depot=Field(DEPOT, required=True),
            reason=Field(Text(returns.MAX_REASON), description="why they came back (default empty)"),
        ),
        description="Records a return_opened event. The ticket is open until finalised or cancelled; "
        "its ticket_no (R7) is what people say and print.",
    ),
    Operation(
        "get_return",
        "GET",
        "/api/returns/{return_id}",
        handlers.get_return,
        "A return ticket with its returned parents, in scan order",
        "returns",
        BILLERS,
        ReturnDetail,
        errors=("return_not_found",),
        description="Each item keeps the bill the parent left and its child count and weight when it came back.",
    ),
    Operation(
        "return_parent",
        "POST",
        "/api/returns/{return_id}/parents",
        handlers.return_parent,
        "Scan a returned parent into an open ticket: it leaves its bill",
        "returns",
        BILLERS,
        ReturnResult,
        idempotent=True,
        body=body(parent_qr=Field(QR, required=True)),
        errors=(
            "return_not_found",
            "return_not_open",
            "bag_not_found",
            "not_a_parent",
            "parent_not_on_bill",
            "returned_on_this_ticket",
            "return_full",
        ),
        description="One transaction: the parent comes off its bill (the bill's counters go down; a completed "
        "bill goes back to processing, a bill left empty to new), the ticket records the bill number, child "
        "count and weight, and one return_add event is written. The parent keeps its children and can go on a "
        "bill again (POST /api/bills/{bill_no}/parents). A parent already on this ticket and on no bill since: "
        "result already_returned, nothing recorded; one billed again since: 409 returned_on_this_ticket (open "
        f"a new ticket). At most {returns.MAX_PARENTS} parents per ticket (409 return_full).",
    ),
    Operation(
        "finalise_return",
        "POST",
        "/api/returns/{return_id}/finalise",
        handlers.finalise_return,
        "Finalise a return ticket: done, no more parents",
        "returns",
        BILLERS,
        ReturnTicket,
        idempotent=True,
        errors=("return_not_found", "return_not_open", "return_empty"),
        description=f"A ticket holding no parent cannot be finalised (409 return_empty): cancel it. {CLOSE}",
    ),
    Operation(
        "cancel_return",
        "POST",
        "/api/returns/{return_id}/cancel",
        handlers.cancel_return,
        "Cancel a return ticket: recorded as abandoned, nothing goes back",
        "returns",
        BILLERS,
        ReturnTicket,
        idempotent=True,
        errors=("return_not_found", "return_not_open"),
        description="The parents it took off their bills stay off them: put them back with "
        f"POST /api/bills/{{bill_no}}/parents. {CLOSE}",
    ),
)
