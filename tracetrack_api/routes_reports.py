"""Route table rows: Reports: bills and activity in the site's time zone (issue 11).

Joined into routes.OPERATIONS; the same rules as the rows there.
"""

from __future__ import annotations

from tracetrack_db import bills as bill_ops
from tracetrack_db import reports as report_ops

from .handlers import reports
from .schema import AREA, PAGE, Date, Enum, Int, Param, query
from .table import ANY_ROLE, BILLERS, CSV, Operation

RANGE = {
    "from": Param(Date(), description="first local day (TRACETRACK_TIMEZONE), included; default: to, else today"),
    "to": Param(
        Date(),
        description=f"last local day, included; default: from, else today; at most {report_ops.MAX_DAYS} days",
    ),
}
BILL_REPORT_FILTERS = {
    **RANGE,
    "on": Param(
        Enum(report_ops.BILL_BASES),
        "created",
        description="which time puts a bill in the range: created_at, or completed_at (completed bills only)",
    ),
    "created_by": Param(Int(1), description="the biller's user id"),
    "dispatch_area": Param(AREA, description="bills holding a parent of this area"),
    "status": Param(Enum(bill_ops.STATUSES)),
}
TIMES = "Days and hours are the site's (TRACETRACK_TIMEZONE); every time is in that zone, with its offset."

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "report_bills",
        "GET",
        "/api/reports/bills",
        reports.bill_report,
        "Bills of a range of local days: totals per day, biller and area, and a page of bills",
        "reports",
        BILLERS,
        report_ops.BillReport,
        query=query(**BILL_REPORT_FILTERS, **PAGE),
        errors=("invalid_range", "unknown_area", "invalid_cursor"),
        description=f"{TIMES} The totals cover every bill of the range; `bills` is one page, newest first "
        "(pass next_cursor back as cursor). by_biller is by who created the bills (on=created) or "
        "completed them (on=completed).",
    ),
    Operation(
        "report_bills_csv",
        "GET",
        "/api/reports/bills.csv",
        reports.bill_report_csv,
        "The bill report's bills as CSV: every bill of the range, one row each",
        "reports",
        BILLERS,
        CSV,
        query=query(**BILL_REPORT_FILTERS),
        errors=("invalid_range", "unknown_area"),
        description=TIMES,
    ),
    Operation(
        "report_activity",
        "GET",
        "/api/reports/activity",
        reports.activity_report,
        "Scans, links, unlinks and bill actions per local hour or day, per user and per area",
        "reports",
        ANY_ROLE,
        report_ops.ActivityReport,
        query=query(
            **RANGE,
            bucket=Param(
                Enum(report_ops.BUCKETS), "day", description=f"hour: at most {report_ops.MAX_HOURLY_DAYS} days"
            ),
            dispatch_area=Param(AREA, description="dispatchers: only their own area"),
            user=Param(Int(1), description="a user id"),
        ),
        errors=("invalid_range", "unknown_area", "wrong_area"),
        description=f"{TIMES} Bill actions carry no area unless they move a parent (added, removed): "
        "an area's figures count only its bags' events.",
    ),
)
