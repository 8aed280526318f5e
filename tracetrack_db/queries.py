"""Named queries: `sql/queries/<domain>.sql`, loaded once.

Each query starts with a header line ``-- name: <name> :<kind>``; the comment
lines right after it are its documentation; the SQL runs to the next header.
Parameters use psycopg's ``%(name)s`` placeholders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import LiteralString

KINDS = ("one", "many", "exec", "execrows", "scalar")
_HEADER = re.compile(r"^--\s*name:\s*(?P<name>\S+)\s*(?P<kind>:\S+)?\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAM = re.compile(r"%\((\w+)\)s")


class QueryFileError(ValueError):
    """A query file is malformed: a bad header, an unknown kind, a duplicate name."""


@dataclass(frozen=True)
class Query:
    name: str
    kind: str
    sql: LiteralString
    doc: str
    params: frozenset[str]
    source: str  # "file.sql:line", for error messages


def parse(text: str, source: str = "<string>") -> dict[str, Query]:
    """Parse one query file into {name: Query}."""
    queries: dict[str, Query] = {}
    current: dict | None = None

    def finish() -> None:
        if current is None:
            return
        sql = "\n".join(current["lines"]).strip().rstrip(";").strip()
        if not sql:
            raise QueryFileError(f"{current['source']}: query {current['name']!r} has no SQL")
        queries[current["name"]] = Query(
            name=current["name"],
            kind=current["kind"],
            sql=sql,
            doc=" ".join(current["doc"]).strip(),
            params=frozenset(_PARAM.findall(sql)),
            source=current["source"],
        )

    for lineno, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line.strip())
        if header:
            finish()
            name, kind = header["name"], (header["kind"] or "")[1:]
            where = f"{source}:{lineno}"
            if not _NAME.match(name):
                raise QueryFileError(f"{where}: bad query name {name!r}")
            if kind not in KINDS:
                raise QueryFileError(f"{where}: query {name!r} needs a kind, one of :{', :'.join(KINDS)}")
            if name in queries:
                raise QueryFileError(f"{where}: duplicate query name {name!r} (first at {queries[name].source})")
            current = {"name": name, "kind": kind, "lines": [], "doc": [], "source": where}
        elif current is None:
            if line.strip() and not line.strip().startswith("--"):
                raise QueryFileError(f"{source}:{lineno}: SQL before the first '-- name:' header")
        elif line.strip().startswith("--") and not current["lines"]:
            current["doc"].append(line.strip()[2:].strip())
        else:
            current["lines"].append(line)
    finish()
    return queries


class Queries:
    """All named queries of the library, by name."""

    def __init__(self, queries: dict[str, Query]):
        self._queries = queries

    @classmethod
    def from_files(cls, files: list[tuple[str, str]]) -> Queries:
        merged: dict[str, Query] = {}
        for filename, text in files:
            for name, query in parse(text, filename).items():
                if name in merged:
                    raise QueryFileError(
                        f"{query.source}: duplicate query name {name!r} (first at {merged[name].source})"
                    )
                merged[name] = query
        return cls(merged)

    def __getitem__(self, name: str) -> Query:
        try:
            return self._queries[name]
        except KeyError:
            raise KeyError(f"unknown query {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._queries

    def __iter__(self):
        return iter(sorted(self._queries.values(), key=lambda q: q.name))

    def __len__(self) -> int:
        return len(self._queries)


@cache
def load() -> Queries:
    """The library's queries, parsed once per process."""
    from .sqlfiles import sql_files

    return Queries.from_files(sql_files("queries"))
