"""The `tracetrack` command, run as a real process, on both database paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

ENTRY = [sys.executable, "-c", "from tracetrack_ops.cli import main; main()"]


def run(args, env_extra, input_text=None, timeout=120):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TRACETRACK_ADMIN_USERNAME", "TRACETRACK_ADMIN_PASSWORD", "TRACETRACK_PASSWORD")
    }
    env.update(env_extra)
    return subprocess.run(
        ENTRY + args,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        cwd=Path(__file__).parent.parent,
    )


def postgres_running_on(pgdata: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and any(str(pgdata) in part for part in proc.info["cmdline"] or []):
            return True
    return False


def test_migrate_on_embedded_postgres_persists_and_stops(tmp_path):
    env = {"TRACETRACK_DATA_DIR": str(tmp_path)}
    first = run(["db", "migrate"], env)
    assert first.returncode == 0, first.stderr
    assert "migrated embedded PostgreSQL: 0001_schema.sql" in first.stdout
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    assert not postgres_running_on(tmp_path / "pgdata")  # stopped cleanly on exit
    second = run(
        ["db", "migrate"], {**env, "TRACETRACK_ADMIN_USERNAME": "boss", "TRACETRACK_ADMIN_PASSWORD": "boss-password-77"}
    )
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout  # the data directory was reused
    assert "created admin user 'boss'" in second.stdout
    status = run(["db", "status"], env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.rstrip().endswith("applied, 0 pending")


def test_migrate_with_database_url_and_admin_bootstrap(db_url):
    env = {
        "DATABASE_URL": db_url,
        "TRACETRACK_ADMIN_USERNAME": "chief",
        "TRACETRACK_ADMIN_PASSWORD": "chief-password-77",
    }
    result = run(["db", "migrate"], env)
    assert result.returncode == 0, result.stderr
    assert "created admin user 'chief'" in result.stdout
    again = run(["db", "migrate"], env)
    assert "created admin" not in again.stdout
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT role FROM app_user WHERE username = 'chief'").fetchall() == [("admin",)]


@pytest.mark.parametrize(
    "command",
    [
        ["db", "migrate"],
        ["db", "status"],
        ["db", "table-stats"],
        ["serve", "--port", "1"],
        ["users", "create", "--username", "abc", "--role", "admin"],
    ],
)
def test_bad_database_url_fails_with_the_host_named_and_no_traceback(command):
    result = run(
        command,
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere", "TRACETRACK_PASSWORD": "long-enough-for-sure"},
    )
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def test_users_create_reads_the_password_from_the_environment_only(db_url):
    env = {"DATABASE_URL": db_url, "TRACETRACK_PASSWORD": "s3cret-pass-phrase"}
    made = run(["users", "create", "--username", "ops", "--role", "dispatcher", "--area", "jaipur"], env)
    assert made.returncode == 0, made.stderr
    assert "created dispatcher 'ops'" in made.stdout
    dup = run(["users", "create", "--username", "OPS", "--role", "admin"], env)
    assert dup.returncode == 1 and "username_taken" in dup.stderr
    no_password = run(["users", "create", "--username", "x1y", "--role", "admin"], {"DATABASE_URL": db_url})
    assert no_password.returncode == 1 and "TRACETRACK_PASSWORD" in no_password.stderr
    assert "--password" not in run(["users", "create", "--help"], {}).stdout
    from tracetrack_db import Database, users

    with Database(db_url) as db:
        assert users.authenticate(db, "ops", "s3cret-pass-phrase").user.dispatch_area == "jaipur"


def test_status_reports_a_changed_migration(db_url):
    current = run(["db", "status"], {"DATABASE_URL": db_url})
    assert current.returncode == 0 and "views dashboard.sql" in current.stdout and "current" in current.stdout
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_views SET checksum = 'x'")
        assert "changed" in run(["db", "status"], {"DATABASE_URL": db_url}).stdout.split("views")[1]
        conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    result = run(["db", "status"], {"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert "changed" in result.stdout
    refused = run(["db", "migrate"], {"DATABASE_URL": db_url})
    assert refused.returncode == 1 and "0001_schema (changed)" in refused.stderr


def test_the_packages_run_as_modules(db_url):
    library = subprocess.run(
        [sys.executable, "-m", "tracetrack_db", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URL": db_url},
    )
    assert library.returncode == 0 and "0 pending" in library.stdout, library.stderr
    assert (
        "Usage: python -m tracetrack_db"
        in subprocess.run(
            [sys.executable, "-m", "tracetrack_db", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    )
    service = subprocess.run(
        [sys.executable, "-m", "tracetrack_api", "--help"], capture_output=True, text=True, timeout=60
    )
    assert service.returncode == 0 and "serve" in service.stdout and "config" in service.stdout


def test_the_local_token_secret_is_private_from_the_start(tmp_path):
    """Before, the secret was written with the default mode and chmod'ed after:
    readable by others in between, and a readable one was used as it was."""
    import stat

    from tracetrack_ops.cli import local_secret

    secret = local_secret(tmp_path)
    path = tmp_path / "secret_key"
    assert len(secret) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_secret(tmp_path) == secret  # kept across runs
    path.chmod(0o644)
    with pytest.raises(SystemExit):
        local_secret(tmp_path)


def test_service_role_command_makes_a_least_privilege_role(db_url, sql_conn):
    """`tracetrack db service-role ROLE` as the owner: the role is created with the
    given password, recorded, granted; the service can then connect as it and
    is no owner. Repeating it is harmless."""
    from tracetrack_db import privileges

    role = f"tt_cli_svc_{os.getpid()}"
    env = {"DATABASE_URL": db_url, "TRACETRACK_SERVICE_PASSWORD": "cli-service-password-7"}
    try:
        made = run(["db", "service-role", role], env)
        assert made.returncode == 0, made.stderr
        assert f"created role {role}" in made.stdout and "cli-service-password-7" not in made.stdout
        again = run(["db", "service-role", role], env)
        assert again.returncode == 0 and "created role" not in again.stdout
        url = privileges.with_user(db_url, role, "cli-service-password-7")
        with psycopg.connect(url, autocommit=True) as conn:
            assert not privileges.is_owner(conn)
            assert conn.execute("SELECT count(*) FROM bag").fetchone()[0] == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM event")
        refused = run(["db", "service-role", "postgres"], env)
        assert refused.returncode == 1 and "superuser" in refused.stderr
    finally:
        if sql_conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            sql_conn.execute(f"DROP OWNED BY {role}")  # its grants in this database
            sql_conn.execute(f"DROP ROLE {role}")
