"""Demo users and a small data set for a first run of `tracetrack serve`."""

from __future__ import annotations

from tracetrack_db import Database, bills, errors, scans, users

DEMO_USERS = (("admin", "admin", None), ("biller", "biller", None), ("dispatcher", "dispatcher", "lucknow"))
DEMO_PASSWORD = "tracetrack-demo"


def create_demo(db: Database) -> bool:
    """Create demo users and data unless any user exists; True when created."""
    if users.count_active_admins(db):
        return False
    for username, role, area in DEMO_USERS:
        try:
            users.create_user(db, username, DEMO_PASSWORD, role, area)
        except errors.UsernameTaken:
            return False  # another process is creating the demo at the same moment
    admin = users.find_user(db, "admin")
    assert admin is not None  # created just above
    for p in range(1, 6):
        parent = f"SB{p:05d}"
        scans.open_parent(db, parent, user_id=admin.id, dispatch_area="lucknow")
        count = 30 if p <= 3 else 12
        scans.link_children(db, parent, [f"DEMO-{p:02d}-{c:02d}" for c in range(count)], user_id=admin.id)
    bill = bills.create_bill(db, "DEMO-BILL-1", 2, destination="Delhi", vehicle_number="UP32 AB 1234", user_id=admin.id)
    bills.add_parent(db, bill.bill_no, "SB00001", user_id=admin.id)
    bills.add_parent(db, bill.bill_no, "SB00002", user_id=admin.id)
    bills.complete_bill(db, bill.bill_no, user_id=admin.id)
    bills.create_bill(db, "DEMO-BILL-2", 5, destination="Jaipur", user_id=admin.id)
    return True
