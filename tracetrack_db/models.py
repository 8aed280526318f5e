"""Row types: frozen dataclasses whose fields match the query columns.

Bag, Bill and Event are the columns of the views bag_row, bill_row and
event_row (sql/migrations/0005): tests compare the two."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: str
    dispatch_area: str | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Account(User):
    """A user as they see themselves (GET /api/me, a login): must_change_password
    is true after an admin set their password, until they choose their own."""

    must_change_password: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """What an authorisation check needs of an active user."""

    id: int
    username: str
    role: str
    dispatch_area: str | None
    token_version: int = 0  # tokens carrying another version are refused
    must_change_password: bool = False  # an admin's reset: only the change is open to them

    @property
    def restrict_area(self) -> str | None:
        """The only area this user may see and scan (dispatchers), else None."""
        return self.dispatch_area if self.role == "dispatcher" else None


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    label: str


@dataclass(frozen=True, slots=True)
class ParentFormat:
    name: str
    pattern: str
    capacity: int
    expected_weight_kg: Decimal


@dataclass(frozen=True, slots=True)
class Bag:
    id: int
    qr_id: str
    type: str
    status: str
    dispatch_area: str
    parent_id: int | None
    parent_qr: str | None
    bill_id: int | None
    bill_no: str | None
    capacity: int | None
    child_count: int
    weight_kg: Decimal
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    closed_short_reason: str | None = None  # a parent closed short: completed below its capacity


@dataclass(frozen=True, slots=True)
class Bill:
    id: int
    bill_no: str
    capacity: int
    description: str
    destination: str
    vehicle_number: str
    status: str
    linked_parent_count: int
    total_child_count: int
    total_weight_kg: Decimal
    expected_weight_kg: Decimal
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class BagDetail:
    """A bag with its parent (for a child), its children (for a parent) and its bill: the
    shape of bags.get_bag_detail_json's JSON, which PostgreSQL renders itself (the hot read
    never builds these objects; the OpenAPI document describes its answer with this type)."""

    bag: Bag
    parent: Bag | None
    children: list[Bag]
    bill: Bill | None


@dataclass(frozen=True, slots=True)
class BillDetail:
    bill: Bill
    parents: list[Bag]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    occurred_at: datetime
    kind: str
    user_id: int | None
    username: str | None
    bag_id: int | None
    qr_id: str | None
    parent_id: int | None
    parent_qr: str | None
    bill_id: int | None
    bill_no: str | None
    dispatch_area: str | None
    idempotency_key: str | None
    details: dict[str, Any] | None
    device_time: datetime | None  # a synced operation's: the scanner's clock (occurred_at: the server's)


@dataclass(frozen=True, slots=True)
class HistoryEntry(Event):
    """An event of a bag's history with the sentence a person reads
    (tracetrack_db.story): "SB00001 billed on B1 by bob"."""

    summary: str


@dataclass(frozen=True, slots=True)
class BagHistory:
    """A bag's history. `retained_from` is set when it reaches back past what the
    event log still holds: the start of the first month not archived (`tracetrack
    db archive`), when the bag, one of its children or its bill existed before
    it; their earlier events are in the archive files, not in `items`. null: the
    history is whole."""

    qr_id: str
    items: list[HistoryEntry]
    retained_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class OpenParentResult:
    bag: Bag
    child_count: int
    capacity: int
    created: bool


@dataclass(frozen=True, slots=True)
class LinkResult:
    result: str  # linked | already_linked
    child_count: int
    capacity: int
    parent_status: str
    weight_kg: Decimal


@dataclass(frozen=True, slots=True)
class BatchItem:
    child_qr: str
    result: str  # linked | already_linked | error
    error_code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    parent_qr: str
    items: list[BatchItem]
    child_count: int
    capacity: int
    parent_status: str


@dataclass(frozen=True, slots=True)
class UnlinkResult:
    child_qr: str
    parent_qr: str
    child_count: int
    capacity: int
    parent_status: str


@dataclass(frozen=True, slots=True)
class MoveResult:
    result: str  # moved | already_linked (already in that parent: nothing changed)
    child_qr: str
    from_parent_qr: str
    to_parent_qr: str
    child_count: int  # of the parent it is in now
    capacity: int
    parent_status: str
    from_child_count: int  # of the parent it left


@dataclass(frozen=True, slots=True)
class CloseResult:
    result: str  # closed | already_closed, reopened | not_closed (nothing changed)
    bag: Bag


@dataclass(frozen=True, slots=True)
class UndoResult:
    result: str  # undone
    child_qr: str
    parent_qr: str
    linked_at: datetime  # when the link now undone was made
    child_count: int  # of the parent, now
    capacity: int
    parent_status: str


@dataclass(frozen=True, slots=True)
class AddParentResult:
    result: str  # added | already_added
    bill: Bill


@dataclass(frozen=True, slots=True)
class RemoveParentResult:
    result: str  # removed
    bill: Bill


# returns ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReturnTicket:
    """Parents that came back from a depot (the columns of return_ticket_row, 0017)."""

    id: int
    ticket_no: str  # R7: what people say and print
    depot: str
    reason: str
    status: str  # open | finalised | cancelled
    parent_count: int
    total_child_count: int
    total_weight_kg: Decimal
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    closed_by: int | None  # who finalised or cancelled it
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReturnItem:
    """One returned parent, as it was when it came back (return_item_row)."""

    id: int
    ticket_id: int
    ticket_no: str
    parent_id: int
    parent_qr: str
    bill_id: int
    bill_no: str  # the bill it left
    child_count: int
    weight_kg: Decimal
    returned_by: int | None
    returned_by_username: str | None
    returned_at: datetime


@dataclass(frozen=True, slots=True)
class ReturnDetail:
    ticket: ReturnTicket
    items: list[ReturnItem]  # in the order they were scanned


@dataclass(frozen=True, slots=True)
class ReturnResult:
    result: str  # returned | already_returned (on this ticket already: nothing changed)
    item: ReturnItem
    ticket: ReturnTicket


# the dashboard ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TypeCounts:
    parent: int
    child: int


@dataclass(frozen=True, slots=True)
class BagTotals:
    total: int
    by_type: TypeCounts
    by_status: dict[str, dict[str, int]]  # type -> status -> bags
    by_area: dict[str, TypeCounts]
    unlinked_children: int


@dataclass(frozen=True, slots=True)
class BillTotals:
    by_status: dict[str, int]
    parents_billed: int


@dataclass(frozen=True, slots=True)
class HourBucket:
    hour: datetime
    scans: int


@dataclass(frozen=True, slots=True)
class ScanTotals:
    today: int
    last_hour: int
    hourly: list[HourBucket]


@dataclass(frozen=True, slots=True)
class UserActivity:
    user_id: int
    username: str
    role: str
    events_24h: int
    events_7d: int
    links_7d: int
    last_event_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecentScan:
    id: int
    occurred_at: datetime
    kind: str
    username: str | None
    qr_id: str | None
    parent_qr: str | None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Every time in it is in the site's zone (TRACETRACK_TIMEZONE), with its
    offset: the hourly buckets start at local hours, `today` at local midnight."""

    as_of: datetime | None  # the oldest view refresh behind these numbers
    dispatch_area: str | None
    bags: BagTotals
    bills: BillTotals
    scans: ScanTotals
    users: list[UserActivity]
    recent_scans: list[RecentScan]
    generated_at: datetime  # when these numbers were read (a cache may serve them a few seconds)
    time_zone: str = "UTC"  # the site's IANA zone: what an hour and today mean here


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = field(default=None)
