"""Database.text: the hot read straight from libpq (textvalue.py) answers and
fails exactly as the cursor path (`scalar`) does."""

from __future__ import annotations

import enum
import subprocess
import sys

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tracetrack_db import Database, bags, errors
from tracetrack_db.queries import Queries, load, parse
from tracetrack_db.textvalue import TextQuery

from .factories import full_parent

EXTRA = """
-- name: tt_divide :scalar
SELECT (100 / %(by)s::int)::text
-- name: tt_echo :scalar
SELECT %(a)s || '%%' || %(b)s || %(a)s
-- name: tt_none :scalar
SELECT 'x' WHERE false
-- name: tt_percent :scalar
SELECT 'a%%b'
-- name: tt_statements :many
SELECT name FROM pg_prepared_statements ORDER BY name
-- name: tt_rows :many
SELECT 1
-- name: tt_deallocate :exec
DEALLOCATE ALL
"""


def with_extra() -> Queries:
    return Queries({**{q.name: q for q in load()}, **parse(EXTRA, "test")})


@pytest.fixture
def one_conn_db(service_url: str):
    """One connection, so what the verb prepared is visible to the next statement."""
    with Database(service_url, min_size=1, max_size=1, timeout=10, prepare_threshold=0, queries=with_extra()) as db:
        yield db


def test_placeholders_become_numbered_parameters_once_per_name():
    query = TextQuery.of("q", "SELECT %(a)s, %(b)s, %(a)s, 5 %% 2")
    assert query.sql == b"SELECT $1, $2, $1, 5 % 2"
    assert query.names == ("a", "b")
    assert query.statement == b"tt_q"
    with pytest.raises(ValueError, match="lone %"):
        TextQuery.of("q", "SELECT %(a)s % 2")
    assert TextQuery.of("q", "SELECT 5 % 2", params=False).sql == b"SELECT 5 % 2"  # no parameters: as written


def test_the_hot_read_gives_the_bytes_the_cursor_path_gives(db: Database):
    parent = full_parent(db, 1, children=3)
    for qr in (parent, bags.list_bags(db, limit=1, type="child").items[0].qr_id):
        for area in (None, "lucknow", "elsewhere"):
            params = {"qr_id": qr, "area": area}
            by_cursor = db.scalar("get_bag_detail_json", params)
            assert db.text("get_bag_detail_json", params) == (None if by_cursor is None else by_cursor.encode())
    assert db.text("get_bag_detail_json", {"qr_id": "NO-SUCH-BAG", "area": None}) is None
    with pytest.raises(errors.BagNotFound):
        bags.get_bag_detail_json(db, "NO-SUCH-BAG")


def test_parameters_repeat_and_percent_signs_read_as_psycopg_reads_them(one_conn_db: Database):
    db = one_conn_db
    assert db.text("tt_echo", {"a": "x", "b": "y"}) == b"x%yx" == db.scalar("tt_echo", {"a": "x", "b": "y"}).encode()
    assert db.text("tt_percent") == b"a%%b" == db.scalar("tt_percent").encode()  # no parameters: as written
    assert db.text("tt_percent", {}) == b"a%b" == db.scalar("tt_percent", {}).encode()  # parameters, even none
    assert db.text("tt_none") is None


class Area(enum.StrEnum):
    LUCKNOW = "lucknow"


def test_str_subclasses_are_strings(one_conn_db: Database):
    assert one_conn_db.text("tt_echo", {"a": Area.LUCKNOW, "b": "-"}) == b"lucknow%-lucknow"


def test_the_bytes_are_utf8_whatever_encoding_the_dsn_asks_for(service_url: str):
    latin1 = make_conninfo(service_url, options="-c client_encoding=LATIN1")
    with psycopg.connect(latin1) as raw:
        assert raw.info.encoding == "iso8859-1"  # the DSN does ask for it
        with pytest.raises(psycopg.NotSupportedError, match="UTF8"):
            Database(latin1, queries=with_extra()).text("tt_echo", {"a": "Köln", "b": "ü"}, conn=raw)
    with Database(latin1, min_size=1, max_size=1, queries=with_extra()) as db:
        params = {"a": "Köln", "b": "ü"}
        assert db.text("tt_echo", params) == "Köln%üKöln".encode() == db.scalar("tt_echo", params).encode()


def test_prepared_once_per_connection_and_again_after_discard(one_conn_db: Database):
    db = one_conn_db
    assert db.text("tt_divide", {"by": "4"}) == b"25"
    assert db.text("tt_divide", {"by": "5"}) == b"20"
    assert [r[0] for r in db.many("tt_statements")].count("tt_tt_divide") == 1
    db.execute("tt_deallocate")  # what a pooler's reset or an operator may do
    assert db.text("tt_divide", {"by": "2"}) == b"50"
    assert "tt_tt_divide" in [r[0] for r in db.many("tt_statements")]


def test_behind_a_pooler_nothing_is_prepared(service_url: str):
    with Database(service_url, min_size=1, max_size=1, prepare_threshold=None, queries=with_extra()) as db:
        assert db.text("tt_divide", {"by": "10"}) == b"10"
        assert [r[0] for r in db.many("tt_statements")] == []


def test_errors_are_the_cursor_paths(one_conn_db: Database):
    db = one_conn_db

    def raised(call) -> BaseException:
        with pytest.raises(Exception) as caught:
            call()
        return caught.value

    for params in ({"by": "0"}, {"by": "x"}):  # division by zero; invalid text for int
        by_text = raised(lambda p=params: db.text("tt_divide", p))
        by_cursor = raised(lambda p=params: db.scalar("tt_divide", p))
        assert type(by_text) is type(by_cursor)
        assert type(by_text.__cause__) is type(by_cursor.__cause__)
        assert isinstance(by_text.__cause__, psycopg.DataError)
    nul = raised(lambda: db.text("tt_divide", {"by": "1\x00"}))  # libpq would have cut the text at the NUL
    assert type(nul) is type(raised(lambda: db.scalar("tt_divide", {"by": "1\x00"}))) is errors.ValidationError
    assert db.text("tt_divide", {"by": "1"}) == b"100"  # the connection is fine after each


def test_wrong_use_is_refused_before_anything_runs(one_conn_db: Database):
    with pytest.raises(TypeError, match="str or None"):
        one_conn_db.text("tt_divide", {"by": 4})
    with pytest.raises(TypeError, match="needs parameters"):
        one_conn_db.text("tt_divide", {})
    with pytest.raises(TypeError, match=":many, not :scalar"):
        one_conn_db.text("tt_rows")


def test_a_connection_lost_mid_use_is_database_unavailable_then_replaced(one_conn_db: Database, sql_conn):
    db = one_conn_db
    causes = []
    for verb in (db.text, db.scalar):
        assert verb("tt_divide", {"by": "1"}) in (b"100", "100")  # the pool's one connection is open
        pids = sql_conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'tracetrack'").fetchall()
        assert pids
        for (pid,) in pids:
            sql_conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(errors.DatabaseUnavailable) as caught:
            verb("tt_divide", {"by": "1"})
        causes.append(type(caught.value.__cause__))
        db.pool.wait(timeout=10)  # the pool replaces the broken connection it was handed back
        assert db.text("tt_divide", {"by": "2"}) == b"50"
    # the cursor reads the FATAL message the server sent before it closed (AdminShutdown);
    # libpq's blocking call reports the closed connection: both are a gone server
    assert causes == [psycopg.OperationalError, psycopg.errors.AdminShutdown]


GEVENT_WORKER = """
from gevent import monkey; monkey.patch_all()
import sys, gevent
from tracetrack_db import Database
from tracetrack_db.queries import Queries, parse
queries = Queries(parse("-- name: slow :scalar\\nSELECT pg_sleep(0.5)::text || %(x)s", "test"))
ticks = []
def ticker():
    while True:
        ticks.append(1)
        gevent.sleep(0.01)
with Database(sys.argv[1], min_size=1, max_size=1, queries=queries) as db:
    db.text("slow", {"x": "warm"})  # prepared: the next call is the hot path's
    beat = gevent.spawn(ticker)
    gevent.sleep(0.05)
    before = len(ticks)
    assert db.text("slow", {"x": "!"}) == b"!"
    print(len(ticks) - before)
    beat.kill()
"""


def test_a_gevent_worker_keeps_serving_while_the_hot_read_waits(service_url: str):
    """gunicorn's gevent workers (deploy/gunicorn.conf.py): libpq's blocking call stopped
    every greenlet of the worker for the query's whole round trip."""
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_WORKER, service_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 10  # the ticker ran (every 10 ms) during the 0.5 s query
