"""tracetrack_db: the TraceTrack data library.

Hand-written SQL on PostgreSQL (psycopg 3 + psycopg_pool): migrations, named
queries and typed domain operations. Usable without any HTTP layer::

    from tracetrack_db import Database, scans
    with Database("postgresql://...") as db:
        scans.open_parent(db, "SB00001", dispatch_area="lucknow")
        scans.link_child(db, "SB00001", "CHILD-0001")
"""

from . import areas, bags, bills, errors, events, exports, idempotency, maintenance, migrations, scans, users, views
from .database import Database
from .errors import TraceTrackError
from .models import (
    AddParentResult,
    Area,
    Bag,
    BagDetail,
    BagHistory,
    BatchItem,
    BatchResult,
    Bill,
    BillDetail,
    Dashboard,
    Event,
    LinkResult,
    OpenParentResult,
    Page,
    ParentFormat,
    Principal,
    RemoveParentResult,
    UnlinkResult,
    User,
)
from .qr import normalize_qr
from .settings import Settings
from .version import __version__

__all__ = [
    "__version__",
    "Database",
    "Settings",
    "TraceTrackError",
    "normalize_qr",
    "areas",
    "bags",
    "bills",
    "errors",
    "events",
    "exports",
    "idempotency",
    "maintenance",
    "migrations",
    "scans",
    "users",
    "views",
    "AddParentResult",
    "Area",
    "Bag",
    "BagDetail",
    "BagHistory",
    "BatchItem",
    "BatchResult",
    "Bill",
    "BillDetail",
    "Dashboard",
    "Event",
    "LinkResult",
    "OpenParentResult",
    "Page",
    "ParentFormat",
    "Principal",
    "RemoveParentResult",
    "UnlinkResult",
    "User",
]
