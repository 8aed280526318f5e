"""CSV exports streamed with COPY … TO STDOUT: every matching row, constant memory."""

from __future__ import annotations

from collections.abc import Iterator

from psycopg import sql

from .bags import bag_filters
from .bills import bill_filters
from .database import Database

CHUNK = 64 * 1024

_BAG_EXPORT = sql.SQL(
    "COPY (SELECT b.qr_id, b.type, b.status, b.dispatch_area, p.qr_id AS parent_qr, bl.bill_no, "
    "b.child_count, b.capacity, b.weight_kg, b.created_at, b.updated_at "
    "FROM bag b LEFT JOIN bag p ON p.id = b.parent_id LEFT JOIN bill bl ON bl.id = b.bill_id "
    "{where} ORDER BY b.id) TO STDOUT WITH (FORMAT csv, HEADER)")
_BILL_EXPORT = sql.SQL(
    "COPY (SELECT bill_no, status, capacity, linked_parent_count, total_child_count, total_weight_kg, "
    "expected_weight_kg, destination, vehicle_number, description, created_at, completed_at "
    "FROM bill {where} ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")


def _where(parts: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")


def _stream(db: Database, query: sql.Composable, params: dict) -> Iterator[bytes]:
    # Holds one read connection for the whole export; the generator's close
    # (client gone) returns it to the pool.
    with db.connection(read=True) as conn, conn.cursor() as cur, cur.copy(query, params) as copy:
        buffer = bytearray()
        for data in copy:
            buffer += data
            if len(buffer) >= CHUNK:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


def bags_csv(db: Database, **filters) -> Iterator[bytes]:
    """Every bag matching the filters of `bags.list_bags`, oldest first, as CSV."""
    where, params = bag_filters(**filters)
    return _stream(db, _BAG_EXPORT.format(where=_where(where)), params)


def bills_csv(db: Database, status: str | None = None, q: str | None = None) -> Iterator[bytes]:
    """Every bill matching the filters of `bills.list_bills`, oldest first, as CSV."""
    where, params = bill_filters(status, q)
    return _stream(db, _BILL_EXPORT.format(where=_where(where)), params)
