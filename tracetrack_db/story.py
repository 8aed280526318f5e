"""A bag's history as a story (issue 12, item 2): one sentence per event.

    CH-01 linked into SB00001 by dina
    SB00001 billed on B1 by bill
    SB00001 returned on ticket R7 from bill B1 (depot Agra) by rita
    SB00001 billed on B9 by bill

Each history entry keeps every field of its event (the JSON stays
compatible) and gains `summary`, the sentence; when is its `occurred_at`
and who its `username`. Pure functions of the event row: no query.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .models import Event, HistoryEntry

_EVENT_FIELDS = tuple(f.name for f in fields(Event))
_BILL_VERBS = {
    "bill_created": "created",
    "bill_updated": "edited",
    "bill_complete": "completed",
    "bill_reopen": "reopened",
    "bill_deleted": "deleted",
}


def _sentence(e: Event, d: dict[str, Any]) -> str:
    qr, parent, bill = e.qr_id or "?", e.parent_qr or "?", e.bill_no or "?"
    ticket = d.get("ticket_no") or (f"R{d['return_id']}" if "return_id" in d else "?")
    kind = e.kind
    if kind == "bag_created":
        return f"{qr} registered"
    if kind == "parent_scan":
        return f"parent {qr} opened (new)" if d.get("created") else f"parent {qr} scanned"
    if kind == "link":
        return f"{qr} moved into {parent} from {d.get('from', '?')}" if d.get("move") else f"{qr} linked into {parent}"
    if kind == "unlink":
        return f"{qr} moved out of {parent} to {d.get('to', '?')}" if d.get("move") else f"{qr} taken out of {parent}"
    if kind == "bag_deleted":
        return f"{qr} deleted"
    if kind == "bill_add":
        return f"{parent} billed on {bill}"
    if kind == "bill_remove":
        return f"{parent} released: bill {bill} deleted" if d.get("bill_deleted") else f"{parent} taken off bill {bill}"
    if kind in _BILL_VERBS:
        return f"bill {bill} {_BILL_VERBS[kind]}"
    if kind == "close_short":
        reason = d.get("reason")
        return f"{e.parent_qr or qr} closed short" + (f": {reason}" if reason else "")
    if kind == "return_add":
        return f"{parent} returned on ticket {ticket} from bill {bill} (depot {d.get('depot', '?')})"
    if kind == "return_opened":
        return f"return ticket {ticket} opened (depot {d.get('depot', '?')})"
    if kind in ("return_finalised", "return_cancelled"):
        return f"return ticket {ticket} {kind.removeprefix('return_')}"
    subject = e.qr_id or e.parent_qr or (f"bill {e.bill_no}" if e.bill_no else "")
    return f"{kind.replace('_', ' ')} {subject}".strip()  # a kind added later still reads


def describe(event: Event) -> str:
    """The sentence a person reads for one event, ending with who did it."""
    sentence = _sentence(event, event.details or {})
    if event.details and "import_id" in event.details:
        sentence += f" (import {event.details['import_id']})"
    return f"{sentence} by {event.username}" if event.username else sentence


def entry(event: Event) -> HistoryEntry:
    """The event as a history entry: its fields and its sentence."""
    return HistoryEntry(**{name: getattr(event, name) for name in _EVENT_FIELDS}, summary=describe(event))
