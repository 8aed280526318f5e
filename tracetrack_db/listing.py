"""List filters, composed in one way for every list and export.

Lists (bags, bills, events) take any combination of optional filters and
page by keyset. Each combination becomes its own statement text, composed
here with psycopg.sql and bound parameters, so psycopg prepares one plan per
combination and the planner picks the index that fits it. The alternative,
one named query with `(%(x)s IS NULL OR ...)` per filter, lets a generic
plan (after psycopg's prepare threshold) pick one index for every
combination; it is used only where the data is small: the dashboard's
queries over the materialized views.
"""

from __future__ import annotations

from typing import Any, LiteralString

from psycopg import sql

from .cursor import check_limit, decode_cursor


class Where:
    """WHERE conditions (SQL text with %(name)s placeholders) and their values."""

    def __init__(self) -> None:
        self.parts: list[sql.Composable] = []
        self.params: dict[str, Any] = {}

    def add(self, condition: LiteralString, **params: Any) -> None:
        self.parts.append(sql.SQL(condition))
        self.params.update(params)


def where_sql(where: Where) -> sql.Composable:
    """`WHERE a AND b ...`, or nothing when there is no condition."""
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(where.parts) if where.parts else sql.SQL("")


def newest_first(
    select: LiteralString, where: Where, *, cursor: str | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """`select` (rows aliased r) filtered by `where`, newest first, one keyset
    page: the rows after `cursor`, `limit` + 1 of them (the extra one says
    whether there is a next page)."""
    if cursor is not None:
        where.add("r.id < %(before_id)s", before_id=decode_cursor(cursor))
    where.params["limit"] = check_limit(limit) + 1
    query = sql.SQL("{} {} ORDER BY r.id DESC LIMIT %(limit)s").format(sql.SQL(select), where_sql(where))
    return query, where.params
