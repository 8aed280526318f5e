"""The named-query loader: parsing, validation, and the shipped files."""

from __future__ import annotations

import pytest

from tracetrack_db import Database
from tracetrack_db.queries import Queries, QueryFileError, load, parse


def test_parse_headers_docs_kinds_and_params():
    text = """
-- name: get_thing :one
-- Fetch a thing
-- by its id.
SELECT a, b FROM thing WHERE id = %(id)s AND x = %(x)s;

-- name: drop_things :execrows
DELETE FROM thing;
"""
    queries = parse(text, "things.sql")
    assert list(queries) == ["get_thing", "drop_things"]
    q = queries["get_thing"]
    assert q.kind == "one"
    assert q.doc == "Fetch a thing by its id."
    assert q.sql == "SELECT a, b FROM thing WHERE id = %(id)s AND x = %(x)s"
    assert q.params == {"id", "x"}
    assert q.source == "things.sql:2"
    assert queries["drop_things"].kind == "execrows"


@pytest.mark.parametrize(
    "text, message",
    [
        ("-- name: a :one\nSELECT 1;\n-- name: a :many\nSELECT 2;", "duplicate query name 'a'"),
        ("-- name: a :fetch\nSELECT 1;", "needs a kind"),
        ("-- name: a\nSELECT 1;", "needs a kind"),
        ("-- name: Bad-Name :one\nSELECT 1;", "bad query name"),
        ("SELECT 1;\n-- name: a :one\nSELECT 1;", "SQL before the first"),
        ("-- name: a :one\n-- only a comment\n", "has no SQL"),
    ],
)
def test_malformed_files_fail_loudly(text, message):
    with pytest.raises(QueryFileError, match=message):
        parse(text, "bad.sql")


def test_duplicate_names_across_files_fail():
    with pytest.raises(QueryFileError, match="duplicate query name 'a'.*first at one.sql:1"):
        Queries.from_files([("one.sql", "-- name: a :one\nSELECT 1"), ("two.sql", "-- name: a :one\nSELECT 2")])


def test_unknown_name_fails_loudly():
    with pytest.raises(KeyError, match="unknown query 'no_such_query'"):
        load()["no_such_query"]


def test_shipped_queries_load_once_with_kinds():
    queries = load()
    assert load() is queries
    assert len(queries) >= 30
    for q in queries:
        assert q.kind in ("one", "many", "exec", "execrows", "scalar")
        assert q.doc, f"{q.name} ({q.source}) has no documentation comment"


def test_verb_must_match_kind_and_params_must_be_given(db: Database):
    with pytest.raises(TypeError, match="is :one, not :many"):
        db.many("get_bag", {"qr_id": "SB00001"})
    with pytest.raises(TypeError, match=r"needs parameters \['area', 'qr_id'\]"):
        db.one("get_bag", {})


def test_every_shipped_query_prepares_on_the_real_schema(db: Database):
    """Each query parses and plans against the migrated schema (PREPARE checks
    names, types and parameters without running anything)."""
    import re

    with db.connection() as conn:
        for q in load():
            if q.sql.lstrip().upper().startswith("COPY"):  # cannot be prepared: run on no rows, undone
                with conn.transaction(force_rollback=True), conn.cursor() as cur, cur.copy(q.sql):
                    pass
                continue
            names = sorted(q.params)
            positional = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", q.sql)  # noqa: B023 - used at once
            conn.execute(f"PREPARE tt_check_{q.name} AS {positional}".replace("%%", "%"))
            conn.execute(f"DEALLOCATE tt_check_{q.name}")


def test_every_call_site_uses_the_verb_of_the_declared_kind():
    """db.one/many/scalar/execute("name") in the code must match the query's
    declared kind and name an existing query (a mismatch is a 500 at run time)."""
    import re
    from pathlib import Path

    verbs = {"one": ("one",), "many": ("many",), "scalar": ("scalar",), "execute": ("exec", "execrows")}
    queries = load()
    root = Path(__file__).resolve().parent.parent
    calls = 0
    for source in [*root.glob("tracetrack_db/*.py"), *root.glob("tracetrack_ops/*.py")]:
        for verb, name in re.findall(r'db\.(one|many|scalar|execute)\(\s*"(\w+)"', source.read_text()):
            calls += 1
            assert name in queries, f"{source.name}: unknown query {name}"
            assert queries[name].kind in verbs[verb], (
                f"{source.name}: db.{verb}({name!r}) but it is :{queries[name].kind}"
            )
    assert calls > 30


def _sources(*packages: str) -> dict[str, str]:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    return {str(p.relative_to(root)): p.read_text() for pkg in packages for p in root.glob(f"{pkg}/**/*.py")}


def test_the_http_service_runs_no_sql_and_no_named_query():
    """tracetrack_api calls typed library functions only: no db.one/many/scalar/execute/run_sql,
    no connection of its own."""
    import re

    call = re.compile(r"\b(?:db|conn|cur)\.(?:one|many|scalar|execute|run_sql|connection|transaction|cursor)\(")
    found = [(path, m) for path, text in _sources("tracetrack_api").items() for m in call.findall(text)]
    assert found == []


def test_every_named_query_is_used_by_the_library_or_its_tools():
    import re

    used = set()
    for text in _sources("tracetrack_db", "tracetrack_ops").values():
        used |= set(re.findall(r'"(\w+)"', text))
    unused = [q.name for q in load() if q.name not in used]
    assert unused == []


@pytest.mark.parametrize(("view", "row"), [("bag_row", "Bag"), ("bill_row", "Bill"), ("event_row", "Event")])
def test_the_row_views_are_the_dataclasses(db: Database, view: str, row: str):
    """Bag, Bill and Event are written once, as views: the named queries, the JSON of the hot read
    and the CSV exports select them, and the dataclasses must have exactly their columns."""
    import dataclasses

    from tracetrack_db import models

    with db.connection() as conn:
        columns = [d.name for d in conn.execute(f"SELECT * FROM {view} LIMIT 0").description]
    assert columns == [f.name for f in dataclasses.fields(getattr(models, row))]
