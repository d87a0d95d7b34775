"""The Ray cluster a sweep runs on: connect with a bounded wait, and check that a trial fits.

``ray.init`` to an address where no Ray cluster answers retries for many minutes, and Tune
waits forever for a trial that asks for more than any node has. Both are checked here, before
the study is created, each failing with one line that says what to fix.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from typing import Any, Iterator

from search.errors import ClusterError, both

CONNECT_ENV = "TRADETUNE_RAY_CONNECT_S"
DEFAULT_CONNECT_S = 10.0
# A gRPC server (Ray's GCS) answers the HTTP/2 client preface with a SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def connect_seconds() -> float:
    """How long to wait for the Ray cluster at an address: ``TRADETUNE_RAY_CONNECT_S`` or 10."""
    raw = os.environ.get(CONNECT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_CONNECT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise ClusterError(f"{CONNECT_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


def ray_address(address: str | None) -> str | None:
    """The cluster to use: ``--address``, else ``RAY_ADDRESS``; None (or "local") = start a
    local Ray."""
    chosen = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    return None if chosen in ("", "local") else chosen


def _fix(port: str) -> str:
    return (f"start it with `ray start --head --port={port}` or check "
            f"{both('--address', 'address=')}/RAY_ADDRESS")


def probe_address(address: str, wait_s: float | None = None) -> None:
    """Raise ``ClusterError`` unless a Ray cluster's GCS answers at ``address`` within
    ``wait_s`` seconds. Creates nothing and does not import Ray."""
    wait_s = connect_seconds() if wait_s is None else wait_s
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")  # [::1]:6380
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} must look like HOST:PORT (the head's "
                           "`ray start --head --port`), e.g. 10.0.0.5:6380")
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, int(port)), timeout=max(left, 0.1)) as sock:
                if address.startswith("ray://"):
                    return  # Ray Client's server; ray.init checks the rest
                sock.settimeout(max(deadline - time.monotonic(), 0.1))
                sock.sendall(_HTTP2_PREFACE)
                header = _read(sock, 9)
                if len(header) == 9 and header[3] == _SETTINGS_FRAME:
                    return
                raise ClusterError(f"cannot reach a Ray cluster at {target}: something "
                                   "answers there but not as a Ray head's GCS port (the "
                                   "dashboard's 8265 and the client's 10001 are other ports); "
                                   f"{_fix(port)}")
        except socket.gaierror as exc:
            reason = f"unknown host {host!r} ({exc.strerror})"
            break
        except socket.timeout:
            reason = f"no answer within {wait_s:g} s"
        except OSError as exc:
            reason = exc.strerror or str(exc)
        if time.monotonic() + 0.5 >= deadline:
            break
        time.sleep(0.5)  # a head that is still starting gets the whole wait
    raise ClusterError(f"cannot reach a Ray cluster at {target}: {reason} (waited up to "
                       f"{wait_s:g} s, {CONNECT_ENV}); {_fix(port)}")


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def connect(address: str | None) -> bool:
    """Connect this process to Ray: the cluster at ``address`` (``--address`` or
    ``RAY_ADDRESS``), probed first with a bounded wait, or a new local Ray. Returns whether
    this call connected (the caller then disconnects with ``ray.shutdown()``); False when the
    process was already connected. One line (``ClusterError``) when it cannot."""
    import ray

    if ray.is_initialized():
        return False
    target = ray_address(address)
    if target == "auto":
        target = _running_cluster()
    if target is not None:
        probe_address(target)
        use_cluster_authentication(target)
    try:
        with _processes_in_their_own_group(target is None):
            ray.init(address=target or "local", logging_level=logging.ERROR,
                     log_to_driver=False, include_dashboard=False, configure_logging=False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # version mismatch, a broken local start: one line, not Ray's pages
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        where = f"the Ray cluster at {target}" if target else "a local Ray"
        raise ClusterError(f"cannot connect to {where}: {first.strip()[:300]}") from None
    return True


TOKEN_FIX = ("copy the token from the head node (its ~/.ray/auth_token, or the RAY_AUTH_TOKEN "
             "it was started with) into ~/.ray/auth_token on this machine, or set "
             "RAY_AUTH_TOKEN; every node of the cluster needs it, with RAY_AUTH_MODE=token")


def use_cluster_authentication(address: str) -> None:
    """Meet the cluster at ``address`` on its own terms. Ray 2.60 turns token authentication
    on for a ``ray start`` cluster whenever a token exists on the head (``~/.ray/auth_token``,
    which any local ``ray.init`` creates), while a driver connects without a token unless
    ``RAY_AUTH_MODE=token``: Ray then retries for minutes and ends with "Failed to connect".
    So: ask the cluster (a GCS call, a few ms); if it wants a token and this machine has one,
    connect in token mode; if it has none, or the wrong one, one line that says what to do."""
    if not _refused_for_authentication(address):
        return
    from ray._raylet import AuthenticationTokenLoader

    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise ClusterError(f"the Ray cluster at {address} uses token authentication and this "
                           f"machine has no token: {TOKEN_FIX}")
    before = os.environ.get("RAY_AUTH_MODE")
    _token_mode()
    if _refused_for_authentication(address):
        _restore_mode(before)
        raise ClusterError(f"the Ray cluster at {address} refused this machine's token "
                           f"(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token): "
                           f"{TOKEN_FIX}")


def _token_mode() -> None:
    """Token authentication for this process's Ray connection (as Ray itself switches it on);
    ``ray_session`` puts ``RAY_AUTH_MODE`` back when the connection ends."""
    from ray._raylet import Config

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")


def _restore_mode(mode: str | None) -> None:
    from ray._raylet import Config

    os.environ.pop("RAY_AUTH_MODE", None)
    if mode is not None:
        os.environ["RAY_AUTH_MODE"] = mode
    Config.initialize("")


def _refused_for_authentication(address: str) -> bool:
    """Whether the GCS at ``address`` refuses this process's credentials. Ray's C++ client
    writes a warning line to stderr on the way: it is kept out of the command's output."""
    import ray.exceptions
    from ray._raylet import GcsClient

    saved = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(quiet, 2)
        GcsClient(address=address)
    except ray.exceptions.AuthenticationError:
        return True
    except Exception:  # noqa: BLE001 - anything else is ray.init's to report, as before
        return False
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    return False


@contextlib.contextmanager
def _processes_in_their_own_group(local: bool) -> Iterator[None]:
    """While a local Ray starts: its processes (GCS, raylet and, through the raylet, the
    workers and agents) start in process groups of their own. A signal to the driver's whole
    process group (``timeout``, SLURM, a terminal) then reaches the driver alone, which stops
    the sweep cleanly and shuts its Ray down; otherwise Ray's processes die under the stop and
    Ray's core ends the driver (exit 1, "The connection to the plasma store is failed") before
    it can mark its trials FAIL and say how to resume. They still die with the driver: Ray
    binds them to it (``PR_SET_PDEATHSIG``), and ``ray.shutdown`` ends them. Ray has no
    option for this: its one ``Popen`` is wrapped for the block."""
    if not local or os.name != "posix":
        yield
        return
    from ray._private import services

    original = services.ConsolePopen

    class _OwnGroupPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = _OwnGroupPopen
    try:
        yield
    finally:
        services.ConsolePopen = original


def _running_cluster() -> str:
    """``--address auto``: the Ray cluster running on this machine, as HOST:PORT."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError as exc:
        raise ClusterError(f"{both('--address', 'address=')} auto: "
                           f"{str(exc).split('. Please')[0]}; start one with "
                           "`ray start --head --port=PORT` or give HOST:PORT") from None


SETTINGS = {"CPU": "resources.cpus_per_trial", "GPU": "resources.gpus_per_trial"}


def trial_needs(config: dict[str, Any]) -> dict[str, float]:
    """What one trial asks Ray for (Tune places a trial, with all its resources, on one node)."""
    resources = config.get("resources") or {}
    return {"CPU": float(resources.get("cpus_per_trial", 1)),
            "GPU": float(resources.get("gpus_per_trial", 0))}


def describe(resources: dict[str, float], zero: bool = True) -> str:
    """``{"CPU": 2, "GPU": 0}`` -> "2 CPUs, 0 GPUs" (``zero=False``: "2 CPUs")."""
    return ", ".join(_count(value, key) for key, value in resources.items() if zero or value)


def _count(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")


def local_node() -> dict[str, float]:
    """This machine's CPUs and NVIDIA GPUs as a local Ray would count them, without Ray (for
    ``launch --dry-run``, which starts nothing): ``CUDA_VISIBLE_DEVICES`` if set, else the
    GPUs ``nvidia-smi -L`` lists (none where it is missing)."""
    import shutil
    import subprocess

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    elif shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                    timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        gpus = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
    else:
        gpus = 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


def check_resources(config: dict, address: str | None,
                    nodes: list[dict[str, float]] | None = None) -> None:
    """Refuse a sweep whose trials could never start, before anything is created: one trial
    needs ``resources.cpus_per_trial`` CPUs and ``resources.gpus_per_trial`` GPUs on one node.
    Checked against every alive node of the cluster at ``address`` (``--address`` /
    ``RAY_ADDRESS``, else a local Ray), or against ``nodes`` when given. Uses this process's
    Ray connection if there is one; otherwise connects (bounded wait) and disconnects again.
    Raises ``ClusterError``."""
    if nodes is None:
        import ray

        connected_here = connect(address)
        try:
            nodes = [node.get("Resources") or {} for node in ray.nodes() if node.get("Alive")]
        finally:
            if connected_here:
                ray.shutdown()
    needs = trial_needs(config)
    if any(all(needs[key] <= node.get(key, 0.0) for key in needs) for node in nodes):
        return
    target = ray_address(address)
    where = f"the Ray cluster at {target}" if target else "this machine"
    most = {key: max((node.get(key, 0.0) for node in nodes), default=0.0) for key in needs}
    short = [key for key in needs if not needs[key] <= most[key]]
    if short == ["GPU"] and most["GPU"] == 0:
        problem = f"{where} has no GPU"
        fix = ("set resources.gpus_per_trial: 0, or run on a cluster with GPUs "
               f"({both('--address', 'address=')})")
    else:
        largest = f"the largest node of {where}" if len(nodes) > 1 else where
        problem = (f"{largest} has {describe({k: most[k] for k in short})}" if short else
                   f"no single node of {where} has all of it")
        fix = ("lower " + " and ".join(f"{SETTINGS[k]} to at most {most[k]:g}" for k in short)
               if short else f"lower {SETTINGS['CPU']} or {SETTINGS['GPU']}")
        fix += (", or add a bigger node" if target
                else f", or use a cluster ({both('--address', 'address=')})")
    raise ClusterError(f"a trial needs {describe(needs, zero=False)} on one node "
                       f"({SETTINGS['CPU']}, {SETTINGS['GPU']}) but {problem}, so it would "
                       f"wait forever; {fix}")


def waiting_for_resources() -> int:
    """How many placement groups of this driver wait because no node has the resources free
    (Tune asks one per trial); 0 when unknown."""
    import ray

    try:
        job = ray.get_runtime_context().get_job_id()
        table = ray.util.placement_group_table()
    except Exception:  # a lost cluster: the sweep's own checks report it
        return 0
    # A placement group id ends with the id of the job (driver) that created it.
    return sum(1 for pg_id, pg in table.items()
               if str(pg_id).endswith(job) and pg.get("state") == "PENDING")


def free_resources() -> dict[str, float]:
    """CPUs and GPUs free right now in the whole cluster."""
    import ray

    try:
        free = ray.available_resources()
    except Exception:
        return {}
    return {"CPU": free.get("CPU", 0.0), "GPU": free.get("GPU", 0.0)}
