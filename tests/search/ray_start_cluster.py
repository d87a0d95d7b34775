"""A Ray cluster started the way README.md says, as separate `ray start` processes, for tests of
the real multi-machine path (token authentication included).

Every node lives in a private ``RAY_TMPDIR`` (short: Ray's socket paths must stay under 108
characters), so no other Ray on the machine finds it and every process it started can be found
(its command line names that directory) and ended by its id, even when a test fails.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayStartCluster:
    """``with RayStartCluster(token=True) as cluster: cluster.head(); cluster.node()``.

    ``token``: the nodes run with ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` (never the
    user's ``~/.ray/auth_token``); ``cluster.token`` is that token. ``env`` is what a process
    of this cluster's machine (a driver) needs: the private ``RAY_TMPDIR``, without the auth
    settings."""

    def __init__(self, token: bool = True):
        self.dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16) if token else None
        self.env = {**os.environ, "RAY_TMPDIR": self.dir}
        for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            self.env.pop(name, None)
        self.node_env = {**self.env, "RAY_AUTH_MODE": "token" if token else "disabled",
                         **({"RAY_AUTH_TOKEN": self.token} if token else {})}

    def __enter__(self) -> "RayStartCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self, args: list[str]) -> None:
        head = ["--include-dashboard=false"] if "--head" in args else []
        done = subprocess.run([RAY, "start", *args, *head, "--disable-usage-stats"],
                              env=self.node_env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def head(self, cpus: int = 1) -> None:
        self._start(["--head", f"--port={self.port}", f"--num-cpus={cpus}"])

    def node(self, cpus: int = 1) -> None:
        self._start([f"--address={self.address}", f"--num-cpus={cpus}"])

    def processes(self) -> list[psutil.Process]:
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if self.dir in " ".join(proc.info["cmdline"] or []):
                    mine.append(proc)
            except psutil.Error:
                continue
        return mine

    def stop(self) -> None:
        """End every process of this cluster (those of a driver's local Ray that used the same
        RAY_TMPDIR too), by id: SIGTERM, then SIGKILL what is left after 10 s."""
        procs = self.processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        deadline = time.monotonic() + 10
        while (alive or self.processes()) and time.monotonic() < deadline:
            for proc in [*alive, *self.processes()]:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(alive, timeout=2)
        shutil.rmtree(self.dir, ignore_errors=True)
