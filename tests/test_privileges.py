"""The two database roles: the service role (the `db` fixture, as the API
connects) can do what the service does and nothing an attacker holding its
connection would want: no writing the event log, no DDL, no disabling a
trigger. Before, the service connected as the tables' owner, which can."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tracetrack_db import Database, privileges, scans, views
from tracetrack_db.runtime import database_urls, migrate_and_bootstrap
from tracetrack_db.settings import Settings

from .conftest import SERVICE_ROLE
from .factories import full_parent


@pytest.fixture
def service_conn(service_url):
    with psycopg.connect(service_url, autocommit=True) as conn:
        yield conn


FORBIDDEN = {
    "update an event": "UPDATE event SET kind = 'link'",
    "delete an event": "DELETE FROM event",
    "insert an event": "INSERT INTO event (kind) VALUES ('link')",
    "truncate the events": "TRUNCATE event",
    "disable the event log's trigger": "ALTER TABLE event DISABLE TRIGGER USER",
    "drop the event log's trigger": "DROP TRIGGER IF EXISTS event_append_only ON event",
    "alter a table": "ALTER TABLE bag ADD COLUMN evil text",
    "drop a table": "DROP TABLE bill CASCADE",
    "create a table": "CREATE TABLE evil (x int)",
    "update a bag behind the functions": "UPDATE bag SET child_count = 99",
    "delete a bag behind the functions": "DELETE FROM bag",
    "insert a bag behind the functions": (
        "INSERT INTO bag (qr_id, type, dispatch_area) VALUES ('EVIL1', 'child', 'lucknow')"
    ),
    "update a bill behind the functions": "UPDATE bill SET capacity = 1",
    "lock a bag for update": "SELECT 1 FROM bag FOR UPDATE",
    "rename a user": "UPDATE app_user SET username = 'root'",
    "delete a user": "DELETE FROM app_user",
    "refresh a view directly": "REFRESH MATERIALIZED VIEW mv_bag_totals",
    "re-grant itself": "SELECT tt_apply_privileges()",
    "add a parent format": "INSERT INTO parent_format (name, pattern) VALUES ('evil', '^EVIL[0-9]{3}$')",
    "forget the migrations": "DELETE FROM schema_migrations",
    "grant itself more": "INSERT INTO service_grant (object, privileges) VALUES ('bag', 'UPDATE')",
    "call a function as its owner": "INSERT INTO definer_function (name) VALUES ('tt_apply_privileges')",
    "change an import's results": "UPDATE import_row SET verdict = 'ok'",
    "forget an import": "DELETE FROM import_job",
}


def test_a_grant_is_a_row_and_the_function_applies_it(service_conn, sql_conn):
    """A later migration adds rows to service_grant / definer_function instead of
    replacing tt_apply_privileges (0012)."""
    sql_conn.execute("CREATE TABLE probe (x int)")
    sql_conn.execute("CREATE FUNCTION tt_probe() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM probe'")
    sql_conn.execute("REVOKE EXECUTE ON FUNCTION tt_probe() FROM PUBLIC")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_conn.execute("SELECT 1 FROM probe")
    sql_conn.execute("INSERT INTO service_grant (object, privileges) VALUES ('probe', 'SELECT')")
    sql_conn.execute("INSERT INTO definer_function (name) VALUES ('tt_probe')")
    sql_conn.execute("SELECT tt_apply_privileges()")
    assert service_conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 0
    assert service_conn.execute("SELECT tt_probe()").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_conn.execute("INSERT INTO probe VALUES (1)")


@pytest.mark.parametrize("what", FORBIDDEN)
def test_the_service_role_cannot(what, db, service_conn, sql_conn):
    full_parent(db, 1, children=3)  # some events, bags and a user to aim at
    before = sql_conn.execute(
        "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM bag), "
        "(SELECT string_agg(tgenabled::text, '') FROM pg_trigger "
        " WHERE tgrelid = 'event'::regclass AND NOT tgisinternal)"
    ).fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_conn.execute(FORBIDDEN[what])
    after = sql_conn.execute(
        "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM bag), "
        "(SELECT string_agg(tgenabled::text, '') FROM pg_trigger "
        " WHERE tgrelid = 'event'::regclass AND NOT tgisinternal)"
    ).fetchone()
    assert after == before and "D" not in after[2]


def test_the_owner_could(sql_conn):
    """What the service role is refused is what the owner can do: the test above
    fails on the old setup, where the service connected as the owner."""
    with sql_conn.transaction():
        sql_conn.execute("ALTER TABLE event DISABLE TRIGGER USER")
        sql_conn.execute("ALTER TABLE event ENABLE TRIGGER USER")
        sql_conn.execute("ALTER TABLE bag ADD COLUMN harmless text")
        sql_conn.execute("ALTER TABLE bag DROP COLUMN harmless")


def test_the_service_role_does_its_work_through_the_functions(db, service_conn):
    """Scans, bills and view refreshes work as the service role (the whole test
    suite runs as it); it owns nothing and is no superuser."""
    assert not privileges.is_owner(service_conn)
    assert service_conn.execute("SELECT current_user").fetchone()[0] == SERVICE_ROLE
    full_parent(db, 1)
    assert scans.unlink_child(db, "C00001-00").parent_qr == "SB00001"
    assert views.refresh_views(db)
    definer = service_conn.execute(
        "SELECT count(*) FILTER (WHERE prosecdef), count(*) FILTER (WHERE prosecdef AND proconfig IS NOT NULL) "
        "FROM pg_proc WHERE proname LIKE 'tt\\_%%'"
    ).fetchone()
    assert definer[0] == definer[1] >= 14  # every SECURITY DEFINER function pins its search_path


def test_a_security_definer_function_is_not_for_everyone(db_url, sql_conn):
    """PUBLIC may not call the functions that run as the owner: a role that is not
    a service role (but may connect) gets nothing from them."""
    sql_conn.execute("DROP ROLE IF EXISTS tt_test_stranger")
    sql_conn.execute("CREATE ROLE tt_test_stranger LOGIN")
    try:
        with psycopg.connect(privileges.with_user(db_url, "tt_test_stranger"), autocommit=True) as stranger:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                stranger.execute("SELECT tt_open_parent('SB00009', NULL, 'lucknow', NULL, NULL)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                stranger.execute("SELECT tt_refresh_view('mv_bag_totals')")
    finally:
        sql_conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM tt_test_stranger").format(sql.Identifier(sql_conn.info.dbname))
        )
        sql_conn.execute("DROP ROLE tt_test_stranger")


def test_migrate_grants_again_what_it_recreates(db_url, service_conn):
    """The dashboard's views are dropped and re-created by every migrate: the
    grants follow (the refresher and the dashboard keep working)."""
    from tracetrack_db import migrations

    migrations.migrate(db_url)
    assert service_conn.execute("SELECT count(*) FROM mv_bag_totals").fetchone()[0] >= 0
    service_conn.execute("SELECT tt_refresh_view('mv_bag_totals')")


def test_a_superuser_cannot_be_made_a_service_role(db_url):
    with pytest.raises(ValueError, match="superuser"):
        privileges.grant_service(db_url, "postgres")


def test_the_embedded_server_sets_up_both_roles_by_itself(tmp_path):
    """No DATABASE_URL: migrate as the embedded superuser, serve as tracetrack_service
    (what `tracetrack serve` does), with nothing to configure."""
    settings = Settings(data_dir=tmp_path)
    with database_urls(settings) as urls:
        assert urls.embedded and urls.owner != urls.service
        migrate_and_bootstrap(settings, urls.owner)
        with Database(urls.service, min_size=1, max_size=2) as db, db.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == privileges.EMBEDDED_SERVICE_ROLE
            assert not privileges.is_owner(conn)
            scans.open_parent(db, "SB00001", dispatch_area="lucknow")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM event")
        migrate_and_bootstrap(settings, urls.owner)  # again: nothing to create, nothing breaks
