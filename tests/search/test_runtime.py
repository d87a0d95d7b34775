"""The sweep driver at run time: stop signals, the Ray cluster it connects to, trials that
cannot start, sweeps whose every trial fails, and the progress line.

Real Ray (local and multi-node clusters), RLlib and SQLite; tests poll, never sleep.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import make_tiny_sweep
from sweep_helpers import (REPO, TRADETUNE, cli_env, poll, run_cli, states, trials,
                           write_config)

HERE = Path(__file__).resolve().parent
RESUME_LINE = re.compile(r"^sweep interrupted \((Ctrl-C|SIGTERM|SIGHUP)\); trials in flight "
                         r"were marked FAIL and will be re-run\. Continue with: tradetune "
                         r"resume --study (\S+)$")


class Driver:
    """A ``tradetune`` subprocess in its own process group (as under ``timeout`` or a batch
    system), its output collected line by line as it comes."""

    def __init__(self, args: list[str], results: Path, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [*TRADETUNE, *args], cwd=REPO, text=True, start_new_session=True,
            env={**cli_env(results), "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(pipe, sink), daemon=True)
                         for pipe, sink in ((self.proc.stdout, self.out),
                                            (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe, sink: list[str]) -> None:
        for line in pipe:
            sink.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.out))

    def send(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def report(self) -> str:
        return "\n".join(["-- stdout", *self.out[-30:], "-- stderr", *self.err[-30:]])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sqlite(results: Path) -> str:
    return f"sqlite:///{results / 'tradetune.db'}"


def _assert_no_traceback(driver: Driver) -> None:
    err = "\n".join(driver.err)
    assert "Traceback" not in err and "SIGTERM received" not in err, driver.report()


# -- stop signals, in-process ----------------------------------------------------------------------

def test_stop_signals_turn_sigterm_and_sighup_into_one_stop():
    from search.sweep.stopping import StopRequested, StopSignals

    before = signal.getsignal(signal.SIGTERM)
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)):
        with pytest.raises(StopRequested) as stopped, StopSignals() as stop:
            signal.raise_signal(sig)
        assert stopped.value.signum == sig and stopped.value.exit_code == code
        assert stop.received == sig
        assert isinstance(stopped.value, KeyboardInterrupt)  # Ctrl-C's path, whatever the signal
    assert signal.getsignal(signal.SIGTERM) is before


def test_deferred_and_graceful_blocks():
    from search.sweep.stopping import StopOnSignal, StopRequested, StopSignals

    finished = False
    with pytest.raises(StopRequested), StopSignals() as stop:
        with stop.deferred():  # finishes its work (creating a study), then stops
            signal.raise_signal(signal.SIGTERM)
            finished = True
    assert finished
    with StopSignals() as stop:
        assert not StopOnSignal().stop_all()
        with stop.graceful():  # Tune's loop: the first signal only asks the loop to end
            signal.raise_signal(signal.SIGTERM)
            assert StopOnSignal().stop_all()
            with pytest.raises(StopRequested):  # a second one does not wait
                signal.raise_signal(signal.SIGINT)
    assert not StopOnSignal().stop_all()


IN_A_FINALIZER = """
import signal, time, weakref
from search.sweep.stopping import StopRequested, StopSignals
class Thing:
    def __del__(self):
        signal.raise_signal(signal.SIGTERM)  # lands while Python runs a finalizer
def callback(ref):
    signal.raise_signal(signal.SIGTERM)  # ... or a weakref callback
for how in ("weakref", "__del__"):
    try:
        with StopSignals() as stop:
            thing = Thing() if how == "__del__" else type("T", (), {})()
            ref = weakref.ref(thing, callback) if how == "weakref" else None
            del thing
            time.sleep(30)
            print(how, "not stopped", flush=True)
    except StopRequested as stopped:
        print(how, "stopped", stopped.exit_code, flush=True)
"""


def test_a_stop_signal_inside_a_finalizer_is_not_lost():
    """A signal that arrives while the garbage collector runs a finalizer or a weakref
    callback (Ray and gRPC hold many): the stop is raised right after it, nothing is printed."""
    done = subprocess.run([sys.executable, "-c", IN_A_FINALIZER], cwd=REPO, env=cli_env(REPO),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "weakref stopped 143\n__del__ stopped 143\n", done.stdout + done.stderr
    assert not done.stderr and done.returncode == 0


STUCK = """
import signal, time
from search.sweep import stopping
stopping.STOP_GRACE_S = 1.0
def last_words(signum):
    print("marked FAIL; resume with ...", flush=True)
    return 128 + signum
with stopping.StopSignals() as stop:
    stop.last_words = last_words
    with stop.graceful():
        signal.raise_signal(signal.SIGTERM)
        time.sleep(120)  # a Ray call that never returns
print("not reached")
"""


def test_a_stop_that_hangs_is_forced_after_the_grace_period():
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], cwd=REPO, env=cli_env(REPO),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stdout + done.stderr
    assert done.stdout == "marked FAIL; resume with ...\n" and not done.stderr
    assert time.monotonic() - start < 30


# -- the Ray cluster: reachable, and big enough for one trial ---------------------------------------

class _NotRay:
    """A TCP server that answers like something other than a Ray head (Redis, say)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"-ERR unknown command\r\n")


@pytest.mark.parametrize("where", ["nothing-listens", "not-ray"])
def test_unreachable_address_fails_fast_and_creates_nothing(where, tmp_path):
    results = tmp_path / "results"
    port = _free_port() if where == "nothing-listens" else _NotRay().port
    path = write_config(tmp_path / "sweep.yaml", make_tiny_sweep(**{"study": "far"}))
    start = time.monotonic()
    done = subprocess.run([*TRADETUNE, "launch", str(path), "--address", f"127.0.0.1:{port}"],
                          cwd=REPO, env={**cli_env(results), "TRADETUNE_RAY_CONNECT_S": "2"},
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tradetune launch: error: cannot reach a Ray cluster at "
                               f"127.0.0.1:{port}: "), lines[0]
    assert lines[0].endswith(f"start it with `ray start --head --port={port}` or check "
                             "--address/RAY_ADDRESS")
    assert ("Connection refused" if where == "nothing-listens" else "not as a Ray head") \
        in lines[0]
    assert took < 60, took  # imports included; Ray's own retries take minutes
    assert not results.exists(), "no SQLite file, no results folder"


def test_resume_with_unreachable_address_changes_nothing(tmp_path, monkeypatch):
    """The study has a trial left RUNNING by a dead driver: a resume that cannot reach its
    cluster must leave it (and everything else) as it was."""
    from search.study import studies
    from search.study.storage import open_storage
    from spaces import get_space

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    config = make_tiny_sweep(**{"study": "far"})
    results.mkdir()
    study = studies.create_study(open_storage(_sqlite(results)), config,
                                 get_space("ppo", config["search"]["space_overrides"]),
                                 studies.data_fingerprint(config["data"]))
    study.ask().set_user_attr("driver", "elsewhere-1-1")  # RUNNING, its driver long gone
    before = sorted(p.name for p in results.iterdir())
    port = _free_port()
    done = subprocess.run([*TRADETUNE, "resume", "--study", "far", "--address",
                           f"127.0.0.1:{port}"], cwd=REPO,
                          env={**cli_env(results), "TRADETUNE_RAY_CONNECT_S": "2"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"tradetune resume: error: cannot reach a Ray cluster at 127.0.0.1:{port}: Connection "
        f"refused (waited up to 2 s, TRADETUNE_RAY_CONNECT_S); start it with `ray start "
        f"--head --port={port}` or check --address/RAY_ADDRESS")
    assert states(_sqlite(results), "far") == {"RUNNING": 1}
    assert sorted(p.name for p in results.iterdir()) == before  # no experiment directory


def test_check_resources_per_node(ray_session):
    from search.sweep.cluster import check_resources
    from search.errors import ClusterError

    node = max((n["Resources"] for n in ray_session.nodes() if n["Alive"]),
               key=lambda r: r.get("CPU", 0))
    cpus, gpus = node.get("CPU", 0), node.get("GPU", 0)
    check_resources({"resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus}}, None)
    with pytest.raises(ClusterError, match=rf"a trial needs {cpus + 1:g} CPUs on one node .* "
                                           rf"but this machine has {cpus:g} CPUs, so it would "
                                           rf"wait forever; lower resources.cpus_per_trial to "
                                           rf"at most {cpus:g}"):
        check_resources({"resources": {"cpus_per_trial": cpus + 1, "gpus_per_trial": 0}}, None)
    if not gpus:
        with pytest.raises(ClusterError, match=r"but this machine has no GPU, so it would wait "
                                               r"forever; set resources.gpus_per_trial: 0"):
            check_resources({"resources": {"cpus_per_trial": 1, "gpus_per_trial": 1}}, None)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["gpus_per_trial", "cpus_per_trial"])
def test_launch_refuses_a_trial_no_node_can_run(setting, tmp_path):
    """More than the machine has: one line before the study exists, not an endless wait."""
    results = tmp_path / "results"
    config = make_tiny_sweep(**{"study": "big", f"resources.{setting}": 4096})
    path = write_config(tmp_path / "sweep.yaml", config)
    done = run_cli(["launch", str(path)], results, timeout=180)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    unit = "GPU" if setting == "gpus_per_trial" else "CPU"
    assert lines[0].startswith(f"tradetune launch: error: a trial needs "), lines[0]
    assert f"4096 {unit}s" in lines[0] and f"resources.{setting}" in lines[0]
    assert "so it would wait forever" in lines[0]
    assert "launched study" not in done.stdout
    assert not (results / "tradetune.db").exists() and not (results / "big").exists()


# -- stop signals through the CLI ---------------------------------------------------------------------

def _launch(tmp_path: Path, study: str, **changes) -> tuple[Driver, Path, str]:
    results = tmp_path / "results"
    config = make_tiny_sweep(**{"study": study, "search.num_samples": 3, **changes})
    driver = Driver(["launch", str(write_config(tmp_path / "sweep.yaml", config))], results)
    return driver, results, _sqlite(results)


def _assert_stopped_cleanly(driver: Driver, url: str, study: str, name: str,
                            reason: str | None = "sweep interrupted") -> None:
    assert RESUME_LINE.match(driver.out[-1]), driver.report()
    assert driver.out[-1].startswith(f"sweep interrupted ({name});")
    assert driver.out[-1].endswith(f"resume --study {study}")
    _assert_no_traceback(driver)
    left = trials(url, study)
    assert not [t for t in left if t.state.name in ("RUNNING", "WAITING")], states(url, study)
    for trial in left:
        if trial.state.name == "FAIL" and reason is not None:
            assert trial.user_attrs["fail_reason"] == reason


@pytest.mark.slow
@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGTERM, True),
                                        (signal.SIGHUP, False)],
                         ids=["sigterm", "sigterm-process-group", "sighup"])
def test_sigterm_and_sighup_stop_like_ctrl_c(sig, group, tmp_path):
    """SIGTERM to the driver (docker stop, Kubernetes) or to its whole process group (timeout,
    SLURM, which also stops Ray's own processes), SIGHUP from a closed terminal."""
    driver, results, url = _launch(tmp_path, "stopped")
    try:
        poll(lambda: states(url, "stopped").get("RUNNING"), 300, "a running trial")
        driver.send(sig, group=group)
        code = driver.wait(timeout=60)  # a stop is bounded (STOP_GRACE_S), whatever Ray does
    finally:
        driver.stop()
    assert code == 128 + sig, driver.report()
    # With the whole group signalled, the trial's worker may die first and fail on its own.
    _assert_stopped_cleanly(driver, url, "stopped", signal.Signals(sig).name,
                            reason=None if group else "sweep interrupted")
    if not group:
        assert not driver.err, driver.report()  # no stack dumps, no Ray log lines
    assert states(url, "stopped").get("FAIL"), "the trial in flight is FAIL, not RUNNING"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stop_right_after_launch_still_stops(sig, tmp_path):
    """Ctrl-C or SIGTERM in the first moments after "launched study", while Tune starts."""
    driver, results, url = _launch(tmp_path, "early")
    try:
        poll(lambda: driver.said("launched study 'early'"), 300, "the launched line")
        driver.send(sig)
        code = driver.wait(timeout=60)
    finally:
        driver.stop()
    assert code == 128 + sig, driver.report()
    _assert_stopped_cleanly(driver, url, "early", "Ctrl-C" if sig == signal.SIGINT
                            else "SIGTERM")
    assert not driver.err, driver.report()


def _ray_is_starting(driver: Driver) -> bool:
    import psutil

    try:
        children = psutil.Process(driver.proc.pid).children(recursive=True)
        return any("gcs_server" in " ".join(child.cmdline()) for child in children)
    except psutil.Error:
        return False


@pytest.mark.slow
def test_sigterm_while_ray_starts_leaves_nothing(tmp_path):
    """Ray starts before the study is created: stopped then, nothing is stored."""
    driver, results, url = _launch(tmp_path, "unborn")
    try:
        poll(lambda: _ray_is_starting(driver), 300, "Ray's GCS to start", every=0.05)
        driver.send(signal.SIGTERM)
        code = driver.wait(timeout=60)
    finally:
        driver.stop()
    assert code == 143, driver.report()
    assert driver.err == ["tradetune launch: stopped by SIGTERM before the study was created; "
                          "nothing was stored"], driver.report()
    assert not driver.said("launched study")
    assert not (results / "tradetune.db").exists()


# -- a trial waiting for resources other jobs hold ----------------------------------------------------

@pytest.mark.slow
def test_trial_waiting_for_resources_is_said_and_sigterm_on_a_cluster(tmp_path):
    """A one-CPU cluster whose CPU another job holds: the check at launch passes (the node has
    a CPU), the trial waits, and the progress line says why. SIGTERM then stops the driver,
    which only joined that cluster."""
    cluster = subprocess.Popen([sys.executable, str(HERE / "busy_cluster.py")], cwd=REPO,
                               env=cli_env(tmp_path), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    driver = None
    try:
        address = cluster.stdout.readline().strip()
        assert re.fullmatch(r"[\d.]+:\d+", address), address
        results = tmp_path / "results"
        config = make_tiny_sweep(**{"study": "queued"})
        driver = Driver(["launch", str(write_config(tmp_path / "sweep.yaml", config)),
                         "--address", address], results)
        poll(lambda: driver.said("waiting for resources"), 300, "the waiting note")
        note = next(line for line in driver.out if "waiting for resources" in line)
        assert note.endswith("running 0, failed 0, best validation sharpe -, remaining ?; "
                             "1 trial waiting for resources: needs 1 CPU on one node, cluster "
                             "has 0 CPUs, 0 GPUs free"), note
        driver.send(signal.SIGTERM)
        code = driver.wait(timeout=60)
    finally:
        if driver is not None:
            driver.stop()
        cluster.stdin.close()
        cluster.wait(timeout=120)
    assert code == 143, driver.report()
    _assert_stopped_cleanly(driver, _sqlite(results), "queued", "SIGTERM")


# -- a sweep in which no trial completed -----------------------------------------------------------

@pytest.mark.slow
def test_sweep_whose_every_trial_fails_exits_nonzero(tmp_path):
    """rejected_space.py passes every check before the sweep; RLlib rejects it in each trial."""
    results = tmp_path / "results"
    config = make_tiny_sweep(**{"study": "doomed", "search.space": "rejected_space:sample",
                                "search.space_overrides": "{}", "training.max_failures": 0})
    path = write_config(tmp_path / "sweep.yaml", config)
    env = {**cli_env(results), "PYTHONPATH": f"{REPO}{os.pathsep}{HERE}"}
    for argv in (["launch", str(path)], ["resume", "--study", "doomed"]):
        done = subprocess.run([*TRADETUNE, *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        reason = "ValueError: Unknown activation (no-such-activation) for framework=torch!"
        if argv[0] == "launch":
            assert lines[0] == (
                f"tradetune launch: error: no trial completed: 2 failed, with: {reason}; fix "
                "the cause (the Ray worker logs named above have the details), then continue "
                "with: tradetune resume --study doomed (if the cause is a value of the config, "
                "resume would run it again: launch a new study instead)")
        else:
            # The resume ran the stored config again and it failed the same way: resume is not
            # offered again, and the count is the study's, as the progress line says it.
            assert lines[0] == (
                "tradetune resume: error: no trial completed: 4 failed in the study, 2 of them "
                f"in this run, with: {reason}; the cause is in the study's config, which resume "
                "runs again unchanged: fix the config and launch a new study (free the name "
                "with tradetune delete --study doomed)")
        failed_counts = [int(m[1]) for m in re.finditer(r"failed (\d+), best", done.stdout)]
        assert failed_counts[-1] == (2 if argv[0] == "launch" else 4), done.stdout[-3000:]
        assert "sweep finished" not in done.stdout
    assert states(_sqlite(results), "doomed") == {"FAIL": 4}


# -- the progress line shows the study's own figures ----------------------------------------------

PROGRESS = re.compile(r"trials done (\d+)/(\d+), running (\d+), failed (\d+), best validation "
                      r"sharpe (\S+), remaining")


def _progress(lines: list[str]) -> list[tuple[int, int, str]]:
    """(done, failed, best) of each progress line."""
    found = [PROGRESS.search(line) for line in lines]
    return [(int(m[1]), int(m[4]), m[5]) for m in found if m]


@pytest.mark.slow
def test_progress_line_shows_the_study_best_and_counts(tmp_path):
    """Walk-forward trials report one score per fold, and the trial's value is their
    aggregate: "best" is the study's best value. After a resume, done, failed and best count
    the earlier driver's trials too."""
    results = tmp_path / "results"
    url = _sqlite(results)
    config = make_tiny_sweep(**{"study": "folds", "search.num_samples": 2,
                                "data.walk_forward": "{folds: 2, mode: rolling}",
                                "training.max_iterations": 2,
                                "training.aggregate": "mean_minus_std"})
    path = write_config(tmp_path / "sweep.yaml", config)
    first = Driver(["launch", str(path)], results)
    try:
        poll(lambda: states(url, "folds") == {"COMPLETE": 1, "RUNNING": 1}, 300,
             "one trial done and the second running")
        poll(lambda: _progress(first.out) and _progress(first.out)[-1][0] == 1, 60,
             "the progress line of the first trial")
    finally:
        first.stop()  # SIGKILL: the second trial stays RUNNING until the resume
    (done_trial,) = [t for t in trials(url, "folds") if t.state.name == "COMPLETE"]
    assert _progress(first.out)[-1] == (1, 0, f"{done_trial.value:.4f}"), first.report()

    resumed = run_cli(["resume", "--study", "folds"], results)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    lines = resumed.stdout.splitlines()
    assert _progress(lines)[0] == (1, 1, f"{done_trial.value:.4f}"), resumed.stdout
    import optuna

    study = optuna.load_study(study_name="folds", storage=url)
    assert _progress(lines)[-1] == (2, 1, f"{study.best_value:.4f}"), resumed.stdout


# -- a driver ended by an error --------------------------------------------------------------------

@pytest.mark.slow
def test_a_progress_callback_that_raises_leaves_no_trial_running(tmp_path, monkeypatch):
    """The caller's progress callback raises while a trial runs: the error reaches the caller,
    and the trial in flight is FAIL with the reason at once, as after Ctrl-C (not RUNNING with
    no driver until a later resume)."""
    import tradetune

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    url = _sqlite(results)

    def broken(event) -> None:
        if event.kind == "progress" and states(url, "broken").get("RUNNING"):
            raise ValueError("the caller's callback broke")

    config = make_tiny_sweep(**{"study": "broken", "search.num_samples": 2,
                                "training.max_iterations": 30})
    with pytest.raises(ValueError, match="the caller's callback broke"):
        tradetune.launch(config, progress=broken)
    left = trials(url, "broken")
    assert left and not [t for t in left if t.state.name in ("RUNNING", "WAITING")], \
        states(url, "broken")
    failed = [t for t in left if t.state.name == "FAIL"]
    assert failed and all(t.user_attrs["fail_reason"] == "sweep ended by an error in the "
                          "driver: ValueError: the caller's callback broke" for t in failed)
