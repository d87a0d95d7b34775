"""A private PostgreSQL server for tests that must stop a database, or need password auth.

The machine's shared server (127.0.0.1:5432, trust auth) is never touched: each instance is
initdb'd into its own temporary directory and listens on a free port of 127.0.0.1 only, with
its unix socket in that directory. TCP logins need a password (scram-sha-256). As root, the
server runs as the ``postgres`` system user (initdb refuses root).

Use the ``private_pg`` fixture (one password-protected server per test module that imports it),
or ``PrivatePostgres`` directly for a server a test stops and starts.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # system account the server runs as when the tests run as root


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """One throw-away PostgreSQL cluster: ``start()``, ``stop()``, ``url()``, ``close()``.

    It has a database ``studies`` owned by the login role ``tradetune`` with ``password``.
    """

    user = "tradetune"
    database = "studies"

    def __init__(self, password: str | None = None):
        self.bin = _bin_dir()
        if self.bin is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.password = password or f"pw-{uuid.uuid4().hex}"
        self.superuser_password = f"su-{uuid.uuid4().hex}"
        self.port = free_port()
        # Not under pytest's tmp_path: the server account must be able to reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="tradetune-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_server = os.geteuid() == 0
        if self._as_server:
            shutil.chown(self.root, SERVER_USER)
        self._initdb()
        self.start()
        self._create_role()

    # -- lifecycle ---------------------------------------------------------------------------

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_server:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()} "
                               f"{self.log.read_text()[-2000:] if self.log.exists() else ''}")
        return done

    def _initdb(self) -> None:
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(self.superuser_password + "\n")
        if self._as_server:
            shutil.chown(pwfile, SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a real outage."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop",
                  check=False)

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _create_role(self) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            conn.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")

    # -- URLs --------------------------------------------------------------------------------

    def url(self, password: str | None = "literal", database: str | None = None) -> str:
        """``postgresql://`` URL of the ``tradetune`` role over TCP. ``password``: "literal"
        (the real one, in the URL), None (none: PGPASSWORD or a pgpass file must give it), or
        any other text (put in the URL as is, e.g. ``${VAR}`` or a wrong password)."""
        secret = {"literal": self.password, None: None}.get(password, password)
        auth = f"{self.user}:{secret}" if secret is not None else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database or self.database}"


@pytest.fixture(scope="module")
def private_pg():
    """A password-protected private PostgreSQL server for the importing test module."""
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()
