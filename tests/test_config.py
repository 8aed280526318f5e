"""Settings: one way to fail on a bad value (the variable named, exit code 2,
no traceback), and `tracetrack config` listing every setting with its source."""

from __future__ import annotations

import orjson
import pytest

from tests.test_cli import run
from tracetrack_api.config import ALL_VARS, ApiSettings
from tracetrack_db.settings import ConfigError, masked

BAD = [
    ("TRACETRACK_POOL_MAX_SIZE", "abc"),
    ("TRACETRACK_POOL_MAX_SIZE", "0"),
    ("TRACETRACK_POOL_TIMEOUT", "nan"),
    ("TRACETRACK_PREPARE_THRESHOLD", "sometimes"),
    ("TRACETRACK_TOKEN_TTL", "12h"),
    ("TRACETRACK_TOKEN_TTL", "-5"),
    ("TRACETRACK_LOGIN_QUEUE", "soon"),
    ("TRACETRACK_EXPORT_STALL", "abc"),
    ("DATABASE_URL", "postgresql://[::1"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("TRACETRACK_LOG_FORMAT", "xml"),
    ("TRACETRACK_ACCESS_LOG", "maybe"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_one_line_naming_the_variable_and_exit_code_2(tmp_path, name, value):
    """`serve` checks every setting (those a worker reads later too) before it starts anything."""
    result = run(["serve", "--port", "0"], {"TRACETRACK_DATA_DIR": str(tmp_path), name: value}, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {name}: "), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pgdata").exists()  # nothing started


def test_library_commands_fail_the_same_way(tmp_path):
    result = run(["db", "status"], {"TRACETRACK_DATA_DIR": str(tmp_path), "TRACETRACK_POOL_MIN_SIZE": "x"})
    assert (
        result.returncode == 2 and result.stderr == "error: TRACETRACK_POOL_MIN_SIZE: must be a whole number, got 'x'\n"
    )


def test_the_library_raises_config_error_not_system_exit():
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({"TRACETRACK_POOL_MIN_SIZE": "9", "TRACETRACK_POOL_MAX_SIZE": "4"})
    assert caught.value.name == "TRACETRACK_POOL_MIN_SIZE"
    settings = ApiSettings.from_env(
        {
            "TRACETRACK_TOKEN_TTL": " 3600 ",
            "TRACETRACK_PREPARE_THRESHOLD": "none",
            "TRACETRACK_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert (settings.token_ttl_seconds, settings.db.prepare_threshold) == (3600, None)
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")


def test_config_lists_every_setting_with_its_source_and_masks_secrets(tmp_path):
    env = {
        "TRACETRACK_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://svc:hunter2-secret@db.example/tt",
        "TRACETRACK_SECRET_KEY": "very-secret-key-value",
        "REDIS_URL": "redis://:redis-pw@cache:6379/0",
        "TRACETRACK_TOKEN_TTL": "7200",
    }
    result = run(["config", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in orjson.loads(result.stdout)}
    assert set(rows) == {v.name for v in ALL_VARS}
    assert rows["TRACETRACK_TOKEN_TTL"] == {"name": "TRACETRACK_TOKEN_TTL", "value": "7200", "source": "environment"}
    assert rows["TRACETRACK_POOL_MAX_SIZE"]["value"] == "8" and rows["TRACETRACK_POOL_MAX_SIZE"]["source"] == "default"
    assert "serve sizes each worker's pool itself" in rows["TRACETRACK_POOL_MAX_SIZE"]["note"]
    assert rows["DATABASE_URL"]["value"] == "user=svc password=**** dbname=tt host=db.example"
    assert rows["REDIS_URL"]["value"] == "redis://:****@cache:6379/0"
    assert rows["TRACETRACK_SECRET_KEY"]["value"] == "****"
    for secret in ("hunter2-secret", "very-secret-key-value", "redis-pw"):
        assert secret not in result.stdout
    text = run(["config"], {**env, "TRACETRACK_MAX_BODY": "lots"})
    assert text.returncode == 2
    assert "TRACETRACK_MAX_BODY" in text.stdout and "must be a whole number" in text.stdout


def test_config_says_what_stands_in_for_unset_settings(tmp_path):
    result = run(["config", "--format", "json"], {"TRACETRACK_DATA_DIR": str(tmp_path)})
    rows = {r["name"]: r for r in orjson.loads(result.stdout)}
    assert rows["DATABASE_URL"]["value"] == f"embedded PostgreSQL in {tmp_path / 'pgdata'}"
    assert rows["TRACETRACK_SECRET_KEY"]["source"] == "data directory"
    assert rows["TRACETRACK_DATA_DIR"] == {
        "name": "TRACETRACK_DATA_DIR",
        "value": str(tmp_path),
        "source": "environment",
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "user=u password=**** dbname=db host=h port=5432"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "user=u password=**** dbname=db host=h sslmode=require"),
        ("postgresql://u@h/db?pass%77ord=s3cret", "user=u password=**** dbname=db host=h"),  # libpq decodes the name
        ("host=h password='a b' dbname=x", "password=**** dbname=x host=h"),
        ("postgresql://svc:pw@h/tt?foo=bar", "****"),  # not readable: nothing of it
        ("redis://:pw@cache:6379/0", "redis://:****@cache:6379/0"),
        ("redis://user:pw@cache/0", "redis://user:****@cache/0"),
        ("unix:///run/redis.sock?password=pw&db=1", "unix:///run/redis.sock?password=****&db=1"),
    ],
)
def test_masking(value, shown):
    assert masked(value) == shown


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("DATABASE_URL", "postgresql://svc:Sup3rSecret@db/tt?foo=bar", "Sup3rSecret"),
        ("REDIS_URL", "http://:RedisPass@r:6379", "RedisPass"),
    ],
)
def test_a_bad_secret_is_never_repeated(tmp_path, name, value, secret):
    """Before: the error line quoted the value (password and all) into the journal."""
    for command in (["config"], ["serve", "--port", "0"]):
        result = run(command, {"TRACETRACK_DATA_DIR": str(tmp_path), name: value}, timeout=60)
        assert result.returncode == 2 and name in result.stdout + result.stderr
        assert secret not in result.stdout + result.stderr
