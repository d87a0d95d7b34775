"""Faults a long sweep must survive: driver kills, a killed trial worker, the database going
away, an unusable results directory, and readers polling the study while it is written.

Real Ray, RLlib, Optuna, SQLite and a private PostgreSQL server; tests poll, never sleep.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_tiny_sweep
from pg_private import PrivatePostgres
from sweep_helpers import (
    REPO,
    TRADETUNE,
    assert_consistent,
    cli_env,
    poll,
    run_cli,
    start_cli,
    states,
    write_config,
)

SUMMARY = re.compile(r"^kills=(\d+) resumes=(\d+) complete=(\d+) lost=(\d+) duplicated=(\d+) "
                     r"stale_running=(\d+)$")


def _pg_states(url: str, study: str) -> dict[str, int]:
    """Trial states of a PostgreSQL study; {} until the driver has created it."""
    from search.errors import UserError

    try:
        return states(url, study)
    except UserError:
        return {}


def _complete(url: str, study: str) -> dict[int, float]:
    from sweep_helpers import trials

    return {t.number: t.value for t in trials(url, study) if t.state.name == "COMPLETE"}


# -- 1. driver killed at random moments ----------------------------------------------------------

@pytest.mark.slow
def test_soak_kills_the_driver_and_resumes_without_loss(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak_resume.py"), "--kills", "3", "--seed",
         "3", "--num-samples", "4", "--results", str(tmp_path / "results")],
        cwd=REPO, env=cli_env(tmp_path / "results"), capture_output=True, text=True,
        timeout=900)
    output = done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, output[-4000:]
    assert SUMMARY.match(last), output[-4000:]
    assert last == "kills=3 resumes=3 complete=4 lost=0 duplicated=0 stale_running=0"


# -- 2. the process running a trial is killed ----------------------------------------------------

def _first_checkpointed_row(results: Path) -> tuple[Path, dict] | None:
    for path in results.glob("*/run-*/*/result.json"):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line still being written
                continue
            if row.get("checkpoint_dir_name") and (path.parent / row["checkpoint_dir_name"]).is_dir():
                return path, row
    return None


@pytest.mark.slow
def test_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "worker", "search.num_samples": 2,
                                "training.max_iterations": 6, "training.patience": 100})
    assert config["training"]["max_failures"] >= 1
    log = tmp_path / "launch.log"
    driver = start_cli(["launch", str(write_config(tmp_path / "sweep.yaml", config))], results,
                       log=log)
    try:
        result_file, killed = poll(lambda: _first_checkpointed_row(results), 300,
                                   "a trial's first checkpoint")
        os.kill(killed["pid"], signal.SIGKILL)
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    output = log.read_text()
    assert "retrying from its last checkpoint" in output
    # The retry happened inside the same study trial: nothing failed, nothing extra ran.
    assert states(url, "worker") == {"COMPLETE": 2}
    assert_consistent(url, "worker", 2)
    rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
    after = [r for r in rows if r["pid"] != killed["pid"]]
    assert after, "the killed trial did not run again in a new worker"
    checkpointed = max(r["iterations"] for r in rows[:rows.index(after[0])]
                       if r["checkpoint_dir_name"])
    assert after[0]["iterations"] == checkpointed + 1, "not restored from its checkpoint"
    assert rows[-1]["iterations"] == 6 and rows[-1]["stop_reason"] == "max_iterations"
    # Tune's JSON and CSV results are written; TensorBoard's logger (torch in the driver) is not.
    assert (result_file.parent / "progress.csv").is_file()
    assert not list(result_file.parent.glob("events.out.tfevents*"))


# -- 3. the database goes away ------------------------------------------------------------------

@pytest.fixture
def outage_pg():
    server = PrivatePostgres()
    yield server
    server.close()


def test_storage_retries_through_a_restart_then_gives_up_at_once(outage_pg, capsys):
    import threading as th

    import optuna

    from search.errors import StorageUnavailable
    from search.study.storage import open_storage

    storage = open_storage(outage_pg.url(), retry_s=30)
    study = optuna.create_study(study_name="retry", storage=storage)
    study.tell(study.ask(), 1.0)
    outage_pg.stop()
    answer: list = []
    reader = th.Thread(target=lambda: answer.append(len(study.get_trials(deepcopy=False))))
    reader.start()
    err: list[str] = []
    poll(lambda: err.append(capsys.readouterr().err) or "is unreachable" in "".join(err), 30,
         "the storage to notice the outage")
    assert reader.is_alive()
    outage_pg.start()
    reader.join(timeout=60)
    assert answer == [1]  # the call in flight was retried, not failed
    assert "is reachable again" in capsys.readouterr().err
    # A short window: the next outage exhausts it, and from then on every call fails at once.
    storage.retry_s = 1.0
    outage_pg.stop()
    with pytest.raises(StorageUnavailable, match=r"unavailable for 1 s \(connection failed"):
        study.set_user_attr("k", "v")
    outage_pg.start()
    with pytest.raises(StorageUnavailable):
        study.set_user_attr("k", "v")
    assert outage_pg.password not in capsys.readouterr().err


def _launch_on(server: PrivatePostgres, tmp_path: Path, study: str, trials: int,
               iterations: int, retry_s: int) -> tuple[subprocess.Popen, Path, Path]:
    """A tiny sweep launched on ``server`` with a ``retry_s`` storage retry window: the driver
    and the files its stdout and stderr go to."""
    config = make_tiny_sweep(**{"study": study, "search.num_samples": trials,
                                "training.max_iterations": iterations, "training.patience": 100})
    path = write_config(tmp_path / "sweep.yaml", config)
    env = {**cli_env(tmp_path / "results", server.url()),
           "TRADETUNE_STORAGE_RETRY_S": str(retry_s)}
    out, err = tmp_path / "launch.out", tmp_path / "launch.err"
    driver = subprocess.Popen([*TRADETUNE, "launch", str(path)], cwd=REPO, env=env,
                              stdout=open(out, "w"), stderr=open(err, "w"))
    return driver, out, err


@pytest.mark.slow
def test_postgres_outage_is_ridden_out_or_stops_cleanly_and_resumes(tmp_path, outage_pg):
    """With a 10 s retry window: a short outage is ridden out; a long one stops the sweep with
    one line saying how to resume; no finished trial is lost either way."""
    url, study = outage_pg.url(), "outage"
    results = tmp_path / "results"
    driver, out, err = _launch_on(outage_pg, tmp_path, study, trials=3, iterations=6,
                                  retry_s=10)
    try:
        # Short outage, while a trial trains: down until the driver notices, then back.
        poll(lambda: _pg_states(url, study).get("RUNNING"), 300, "a running trial")
        outage_pg.stop()
        poll(lambda: "is unreachable" in err.read_text(), 60, "the driver to notice")
        outage_pg.start()
        poll(lambda: "is reachable again" in err.read_text(), 60, "the driver to reconnect")
        # Long outage, after a trial finished: the driver gives up after 10 s and stops.
        poll(lambda: _pg_states(url, study).get("COMPLETE"), 300, "a finished trial")
        finished = _complete(url, study)
        outage_pg.stop()
        rc = driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
        if not outage_pg.is_running():
            outage_pg.start()
    stderr = err.read_text().strip().splitlines()
    assert rc == 1, out.read_text()[-2000:] + "\n".join(stderr)
    assert "Traceback" not in err.read_text()
    assert stderr[-1].startswith(f"tradetune launch: error: study storage {outage_pg.url('***')}"
                                 " unavailable for 10 s (")
    # TRADETUNE_STORAGE names the storage, so the resume command needs no --storage.
    assert stderr[-1].endswith(f"continue with: tradetune resume --study {study}")
    assert [line for line in stderr if "error" in line] == [stderr[-1]]
    assert outage_pg.password not in out.read_text() + err.read_text()
    kept = _complete(url, study)
    assert kept.items() >= finished.items(), "a finished trial was lost"
    done = run_cli(["resume", "--study", study, "--storage", url], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_consistent(url, study, 3, results)
    assert _complete(url, study).items() >= kept.items()


@pytest.mark.slow
def test_sigterm_while_the_storage_is_retried_stops_at_once_and_leaves_no_process(
        tmp_path, outage_pg):
    """Issue 22 row 6: SIGTERM while launch retried a storage it could not reach ended with
    exit 143 after 30 s and no message, and Ray's agents were left running under PID 1. A
    stop now ends the retry at once, says its line, and no process of the driver is left."""
    import psutil

    url, study = outage_pg.url(), "term"
    driver, out, err = _launch_on(outage_pg, tmp_path, study, trials=2, iterations=50,
                                  retry_s=300)
    try:
        poll(lambda: _pg_states(url, study).get("RUNNING"), 300, "a running trial")
        children = psutil.Process(driver.pid).children(recursive=True)
        outage_pg.stop()
        poll(lambda: "is unreachable" in err.read_text(), 120, "the driver to retry")
        started = time.monotonic()
        driver.send_signal(signal.SIGTERM)
        rc = driver.wait(timeout=90)
        took = time.monotonic() - started
    finally:
        if driver.poll() is None:
            driver.kill()
        if not outage_pg.is_running():
            outage_pg.start()
    said = out.read_text() + err.read_text()
    assert rc == 143, said[-3000:]
    assert took < 45, f"the stop took {took:.0f} s"
    assert "SIGTERM" in said and "Traceback" not in said, said[-3000:]
    assert "tradetune resume --study term" in said
    left = poll(lambda: not [p for p in children if p.is_running()
                             and p.status() != psutil.STATUS_ZOMBIE] or None,
                30, "the driver's processes to end", every=1)
    assert left


# -- 4. results directory not writable, or disk full ----------------------------------------------

def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


def _unusable_results(kind: str, tmp_path: Path, cleanup: list) -> tuple[Path, str]:
    """A results directory of the given kind, and the reason the error must give."""
    if kind == "under_a_file":
        (tmp_path / "plain-file").write_text("not a directory\n")
        return tmp_path / "plain-file" / "results", "is not a directory"
    if kind == "immutable_dir":
        target = tmp_path / "immutable"
        target.mkdir()
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(target)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        cleanup.append(["chattr", "-i", str(target)])
        return target, "is not writable (Operation not permitted)"
    target = tmp_path / kind
    options = "ro,size=1m" if kind == "read_only_tmpfs" else "size=1m"
    if not _mount_tmpfs(target, options):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    cleanup.append(["umount", "-l", str(target)])
    if kind == "read_only_tmpfs":
        return target, "is not writable (Read-only file system)"
    filler = os.open(target / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    return target, "is not writable (No space left on device)"


@pytest.mark.parametrize("kind", ["under_a_file", "immutable_dir", "read_only_tmpfs",
                                  "full_tmpfs", "nearly_full_tmpfs"])
def test_unusable_results_dir_is_one_line_before_any_trial(kind, tmp_path):
    cleanup: list = []
    try:
        if kind == "nearly_full_tmpfs":
            results = tmp_path / kind
            if not _mount_tmpfs(results, "size=8m"):
                pytest.skip("cannot mount a tmpfs here (needs root)")
            cleanup.append(["umount", "-l", str(results)])
            reason = "has only 8.0 MB free; a sweep needs at least 100 MB"
        else:
            results, reason = _unusable_results(kind, tmp_path, cleanup)
        before = sorted(p.name for p in results.iterdir()) if results.is_dir() else None
        config = make_tiny_sweep(**{"study": "nowhere"})
        done = run_cli(["launch", str(write_config(tmp_path / "sweep.yaml", config))], results,
                       timeout=120)
        after = sorted(p.name for p in results.iterdir()) if results.is_dir() else None
    finally:
        for command in reversed(cleanup):
            subprocess.run(command, capture_output=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tradetune launch: error: results directory {results}"), lines
    assert reason in lines[0]
    assert lines[0].endswith("set TRADETUNE_RESULTS to a writable directory with free space")
    assert "launched study" not in done.stdout and "Configuration for experiment" not in done.stdout
    assert before == after  # no database, no experiment directory


# -- 5. readers while a sweep writes to SQLite ----------------------------------------------------

# Reads as fast as one process can, at low CPU priority so the 2-core sweep keeps its pace.
READER_LOOP = """
import io, os, sys, contextlib, pathlib
from search.cli import main
os.nice(10)
stop = pathlib.Path(sys.argv[1])
calls = failures = 0
while not stop.exists():
    for argv in (["status", "--study", "readers", "-f", "json"],
                 ["best", "--study", "readers", "--top", "3", "-f", "json"], ["status"]):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(argv)
        calls += 1
        if rc != 0 or err.getvalue().strip():
            failures += 1
            print(f"rc={rc} {err.getvalue().strip()}", flush=True)
print(f"calls={calls} failures={failures}", flush=True)
"""


@pytest.mark.slow
def test_readers_never_see_a_locked_database(tmp_path):
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "readers", "search.num_samples": 3})
    log = tmp_path / "launch.log"
    driver = start_cli(["launch", str(write_config(tmp_path / "sweep.yaml", config))], results,
                       log=log)
    stop = tmp_path / "stop"
    cli_calls: list[subprocess.CompletedProcess] = []

    def cli_reader() -> None:  # a fresh `tradetune` process per call, like a user's shell
        while driver.poll() is None:
            for args in (["best", "--study", "readers"], ["status", "--study", "readers"]):
                cli_calls.append(run_cli(args, results, timeout=120))

    try:
        poll(lambda: states(url, "readers"), 300, "the study's first trial")
        loop = subprocess.Popen([sys.executable, "-c", READER_LOOP, str(stop)], cwd=REPO,
                                env=cli_env(results), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=cli_reader, daemon=True)
        reader.start()
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
        reader.join(timeout=180)
        stop.touch()
        loop_output = loop.communicate(timeout=180)[0]
    finally:
        for proc in (driver,):
            if proc.poll() is None:
                proc.kill()
    assert "locked" not in log.read_text()
    assert_consistent(url, "readers", 3)
    calls = re.search(r"calls=(\d+) failures=(\d+)", loop_output)
    assert calls and int(calls.group(2)) == 0, loop_output[-3000:]
    print(loop_output.strip().splitlines()[-1], f"cli calls={len(cli_calls)}")
    assert int(calls.group(1)) >= 20, loop_output
    assert len(cli_calls) >= 4
    for done in cli_calls:
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
