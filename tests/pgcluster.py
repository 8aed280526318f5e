"""A throwaway PostgreSQL cluster of the test's own, for what must not happen
to the shared test server: restarting it mid-load (tests of the durability
drills) and streaming from it to a hot standby (tests of the read replica).

The binaries are PostgreSQL's own (Debian's /usr/lib/postgresql/N/bin, else
`pg_config --bindir`, else those inside the `pgserver` wheel). PostgreSQL
refuses to run as root: as root every command runs as the `postgres` system
user (Debian's package makes it), the cluster's directory handed to it.

    with Cluster("primary") as primary:                 # initdb + start
        url = primary.url("postgres")
        with primary.standby("standby") as standby:        # pg_basebackup -R, start
            standby.wait_replayed(primary)
        primary.restart(mode="immediate")                # a crash, then recovery
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo


def postgres_bindir() -> Path | None:
    """Where initdb, pg_ctl and pg_basebackup are, or None."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    try:
        import pgserver

        bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
        return bindir if (bindir / "initdb").exists() else None
    except ImportError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One PostgreSQL cluster in `directory`, listening on 127.0.0.1 on a free
    port with trust auth (replication included), WAL for a standby kept."""

    def __init__(self, name: str = "primary", *, port: int | None = None, settings: dict[str, str] | None = None):
        bindir = postgres_bindir()
        if bindir is None:
            raise FileNotFoundError("no PostgreSQL binaries (Debian: apt-get install postgresql)")
        self.bin = bindir
        # its own directory under the temporary root, not pytest's tmp_path: a
        # root-owned 0700 parent would keep the postgres user out
        self.dir = Path(tempfile.mkdtemp(prefix=f"tracetrack-pg-{name}-"))
        self.data = self.dir / "data"
        self.port = port or free_port()
        self.settings = settings or {}
        self.user = "postgres" if os.geteuid() == 0 else None

    # running commands as the cluster's owner ------------------------------
    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin / tool), *args]
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run(self._argv(tool, *args), capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({out.returncode}): {out.stderr or out.stdout}")
        return out

    def _own(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # lifecycle --------------------------------------------------------------
    def initdb(self) -> Cluster:
        self._own(self.dir)
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        self._configure(primary=True)
        return self

    def _configure(self, *, primary: bool) -> None:
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "wal_keep_size": "256MB",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "logging_collector": "off",
            "autovacuum": "on",
            **self.settings,
        }
        with (self.data / "postgresql.conf").open("a") as f:
            f.write("\n# tests/pgcluster.py\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
        if primary:
            with (self.data / "pg_hba.conf").open("a") as f:
                f.write("host replication all 127.0.0.1/32 trust\n")

    def start(self, timeout: float = 60) -> Cluster:
        log = str(self.dir / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", str(int(timeout)), "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clients cut, clean), `immediate` (as a crash:
        no checkpoint, recovery from the WAL at the next start)."""
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return make_conninfo("", host="127.0.0.1", port=str(self.port), dbname=dbname, user=user)

    def __enter__(self) -> Cluster:  # initdb unless it is a standby made by standby()
        if not (self.data / "PG_VERSION").exists():
            self.initdb()
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # replication ------------------------------------------------------------
    def standby(self, name: str = "standby", **kwargs) -> Cluster:
        """A hot standby of this (running) cluster, made by pg_basebackup -R; not
        started: `with primary.standby() as s:` or `.start()`."""
        replica = Cluster(name, **kwargs)
        replica._own(replica.dir)
        replica.run(
            "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        # the copy carries the primary's settings: the standby's own port and socket come last
        replica._configure(primary=False)
        return replica

    def replay_lsn(self) -> str | None:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            return conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]

    def wait_replayed(self, primary: Cluster, timeout: float = 30) -> None:
        """Until this standby has replayed everything the primary has written."""
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url(), autocommit=True) as conn:
            while True:
                done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),)).fetchone()[0]
                if done:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby did not replay {target} in {timeout} s:\n{self.log()[-2000:]}")
                time.sleep(0.05)
