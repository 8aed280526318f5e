"""CSV exports streamed with COPY … TO STDOUT: every matching row, constant memory.

The columns are those of bag_row and bill_row, the library's Bag and Bill,
in the same order. A text cell a spreadsheet would run as a formula (it
starts with = + - @, a tab or a CR) gets a leading apostrophe (tt_csv_text).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from functools import cache

from psycopg import sql

from .bags import bag_filters
from .bills import bill_filters
from .database import Database
from .listing import where_sql
from .models import Bag, Bill

CHUNK = 64 * 1024

_COPY = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)")


@cache
def _columns(row: type) -> sql.Composable:
    """The row type's columns of `r`, in order; text ones through tt_csv_text."""
    hints = typing.get_type_hints(row)
    out = []
    for f in dataclasses.fields(row):
        column = sql.Identifier(f.name)
        if str in (hints[f.name], *typing.get_args(hints[f.name])):
            out.append(sql.SQL("tt_csv_text(r.{0}) AS {0}").format(column))
        else:
            out.append(sql.SQL("r.{}").format(column))
    return sql.SQL(", ").join(out)


def bags_query(**filters) -> tuple[sql.Composed, dict]:
    """The SELECT that `bags_csv` copies (also for `tracetrack db explain export_bags`)."""
    where = bag_filters(**filters)
    return sql.SQL("SELECT {} FROM bag_row r {} ORDER BY r.id").format(_columns(Bag), where_sql(where)), where.params


def bills_query(status: str | None = None, q: str | None = None) -> tuple[sql.Composed, dict]:
    """The SELECT that `bills_csv` copies (also for `tracetrack db explain export_bills`)."""
    where = bill_filters(status, q)
    query = sql.SQL("SELECT {} FROM bill_row r {} ORDER BY r.id").format(_columns(Bill), where_sql(where))
    return query, where.params


def _stream(db: Database, select: sql.Composable, params: dict) -> Iterator[bytes]:
    # Holds one read connection for the whole export; the generator's close
    # (client gone) returns it to the pool.
    with db.connection(read=True) as conn, conn.cursor() as cur, cur.copy(_COPY.format(select), params) as copy:
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
    return _stream(db, *bags_query(**filters))


def bills_csv(db: Database, status: str | None = None, q: str | None = None) -> Iterator[bytes]:
    """Every bill matching the filters of `bills.list_bills`, oldest first, as CSV."""
    return _stream(db, *bills_query(status, q))
