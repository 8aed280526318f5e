"""A real PgBouncer (Debian's `pgbouncer` package) in transaction pooling in
front of a PostgreSQL server, on a free local port, with its own ini in a
temporary directory: for tests/test_pgbouncer.py and bench/http_bench.py
--pgbouncer. PgBouncer refuses to run as root: as root it is started with
`-u nobody`, its directory handed to that user."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """`with PgBouncer(server_url, {"role": "password", …}) as bouncer:` then
    `bouncer.route(url)` is `url` through it. Every database name of the server
    is reachable (`* =`); clients are trusted by name (the roles listed), and
    PgBouncer logs in to the server with the listed passwords when asked."""

    def __init__(
        self,
        server_url: str,
        users: dict[str, str],
        *,
        pool_size: int = 4,
        max_client_conn: int = 500,
        workdir: Path | None = None,
    ):
        binary = pgbouncer_binary()
        if binary is None:
            raise FileNotFoundError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        self.binary = binary
        server = conninfo_to_dict(server_url)
        self.server_host = str(server.get("host") or "127.0.0.1")
        self.server_port = int(server.get("port") or 5432)
        self.users = users
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self._own_dir = workdir is None  # removed at stop
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="tracetrack-pgbouncer-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "pgbouncer.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def route(self, url: str) -> str:
        """`url` (a database and role on the server) through PgBouncer."""
        params = conninfo_to_dict(url)
        params.update(host="127.0.0.1", port=str(self.port))
        return make_conninfo("", **params)

    def _write_config(self) -> Path:
        ini = self.dir / "pgbouncer.ini"
        auth = self.dir / "users.txt"
        auth.write_text("".join(f'"{name}" "{password}"\n' for name, password in self.users.items()))
        ini.write_text(
            f"""[databases]
* = host={self.server_host} port={self.server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = {auth}
default_pool_size = {self.pool_size}
max_client_conn = {self.max_client_conn}
server_login_retry = 1
"""
        )
        if os.geteuid() == 0:  # run as nobody: it must read its own files
            nobody = pwd.getpwnam("nobody")
            for path in (self.dir, ini, auth):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        return ini

    def start(self, timeout: float = 15) -> PgBouncer:
        ini = self._write_config()
        argv = [self.binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(ini)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        probe = self.route(make_conninfo("", host=self.server_host, dbname="postgres", user=next(iter(self.users))))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self.proc.returncode}): {self.log()}")
            try:
                with psycopg.connect(probe, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not answer in {timeout} s: {self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate shutdown (SIGINT would wait for every client)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
