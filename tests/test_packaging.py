"""The library alone: installed from the repository's own files into a fresh
virtualenv, without the 'server' extra, it imports and migrates, and none of
the HTTP stack comes with it."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTTP_STACK = ("falcon", "granian", "redis", "prometheus_client", "pgserver")

pytestmark = pytest.mark.server  # builds and installs: a minute, not milliseconds


def test_the_library_installs_alone_without_the_http_stack(tmp_path, db_url):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import importlib.util, json, tracetrack_db\n"
        "from tracetrack_db import Database, scans, bags\n"
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {list(HTTP_STACK)!r}}}))\n"
        "print(tracetrack_db.__file__)\n"
    )
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    found, where = result.stdout.splitlines()
    assert found == '{"falcon": false, "granian": false, "redis": false, "prometheus_client": false, "pgserver": false}'
    assert where.startswith(str(env_dir)), where  # the installed copy, not the checkout
    # its own command migrates a database and uses it
    tracetrack = env_dir / "bin" / "tracetrack"
    migrated = subprocess.run(
        [str(tracetrack), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "DATABASE_URL": db_url},
        cwd=tmp_path,
    )
    assert migrated.returncode == 0 and "migrated" in migrated.stdout, migrated.stdout + migrated.stderr
    use = subprocess.run(
        [
            str(python),
            "-c",
            (
                "import sys; from tracetrack_db import Database, scans, bags\n"
                "with Database(sys.argv[1]) as db:\n"
                "    scans.open_parent(db, 'SB00042', dispatch_area='lucknow')\n"
                "    linked = scans.link_child(db, 'SB00042', 'LIB-ONLY-1')\n"
                "    print(linked.result, bags.get_bag(db, 'LIB-ONLY-1').parent_qr)"
            ),
            db_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert use.stdout.split() == ["linked", "SB00042"], use.stderr
    # the library's commands as a module, and its settings, need nothing of the service
    as_module = subprocess.run(
        [str(python), "-m", "tracetrack_db", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DATABASE_URL": db_url},
        cwd=tmp_path,
    )
    assert as_module.returncode == 0 and "0 pending" in as_module.stdout, as_module.stdout + as_module.stderr
    config = subprocess.run(
        [str(tracetrack), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DATABASE_URL": db_url},
        cwd=tmp_path,
    )
    assert config.returncode == 0 and "TRACETRACK_POOL_MAX_SIZE" in config.stdout, config.stderr
    # typed packages (PEP 561)
    site = Path(where).parent.parent
    assert all((site / package / "py.typed").exists() for package in ("tracetrack_db", "tracetrack_api"))
    # without DATABASE_URL there is no embedded server to fall back on: one line says what to do
    embedded = subprocess.run(
        [str(tracetrack), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in env.items() if k != "DATABASE_URL"},
        cwd=tmp_path,
    )
    assert embedded.returncode != 0 and "DATABASE_URL" in embedded.stderr and "Traceback" not in embedded.stderr
    # the service needs its extra, and says so in one line
    serve = subprocess.run(
        [str(tracetrack), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DATABASE_URL": db_url},
        cwd=tmp_path,
    )
    assert serve.returncode != 0 and "pip install 'tracetrack[server]'" in serve.stderr, serve.stderr
    assert "Traceback" not in serve.stderr
    assert sys.executable != str(python)
