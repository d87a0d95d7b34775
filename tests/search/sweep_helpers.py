"""Helpers shared by the sweep tests: tiny configs on disk, CLI subprocesses, study reads, studies
made without training (``two_studies``)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TRADETUNE = [sys.executable, "-m", "search.cli"]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli_env(results: Path, storage: str | None = None) -> dict[str, str]:
    env = {**os.environ, "TRADETUNE_RESULTS": str(results), "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": str(REPO)}
    env.pop("TRADETUNE_STORAGE", None)
    env.pop("RAY_ADDRESS", None)
    if storage:
        env["TRADETUNE_STORAGE"] = storage
    return env


def run_cli(args: list[str], results: Path, storage: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=cli_env(results, storage),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(args: list[str], results: Path, storage: str | None = None,
              log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen([*TRADETUNE, *args], cwd=REPO, env=cli_env(results, storage),
                            stdout=out, stderr=subprocess.STDOUT)


def poll(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Wait until ``condition()`` is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def trials(url: str, study: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return []  # not launched yet; opening would create the file
    from search.study.storage import open_storage

    try:  # read-only: never create tables while a driver is creating them
        storage = open_storage(url, read_only=True)
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except Exception as exc:  # noqa: BLE001 - not created yet (tables or study missing)
        if ("no such table" in str(exc) or "holds no studies yet" in str(exc)
                or isinstance(exc, KeyError)):
            return []
        raise


def states(url: str, study: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials(url, study):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def json_out(completed: subprocess.CompletedProcess) -> Any:
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout)


def assert_consistent(url: str, study: str, budget: int, results: Path | None = None) -> None:
    """Exactly ``budget`` COMPLETE trials, none RUNNING, no Tune trial counted twice, every
    COMPLETE trial's checkpoint on disk (stored relative to ``results``, by default the folder
    of a SQLite study database), study best == best COMPLETE value."""
    if results is None:
        assert url.startswith("sqlite:///"), "give the results directory of a non-SQLite study"
        results = Path(url[len("sqlite:///"):]).parent
    all_trials = trials(url, study)
    complete = [t for t in all_trials if t.state.name == "COMPLETE"]
    assert len(complete) == budget, states(url, study)
    assert not [t for t in all_trials if t.state.name in ("RUNNING", "WAITING")]
    tune_ids = [t.user_attrs.get("tune_trial_id") for t in all_trials]
    assert len(tune_ids) == len(set(tune_ids)), tune_ids
    for trial in complete:
        stored = trial.user_attrs["checkpoint"]
        assert not Path(stored).is_absolute(), f"stored absolute, not relative: {stored}"
        assert (results / stored).is_dir(), trial.number
        assert trial.value == trial.user_attrs["metrics"]["sharpe"]  # objective of the kept checkpoint
    import optuna

    best = optuna.load_study(study_name=study, storage=url).best_value
    assert best == max(t.value for t in complete)


def add_study(url: str, results: Path, name: str, values: list[float], failed: int = 0,
              running_driver: bool = False, legacy: bool = False) -> Path:
    """A tradetune study with COMPLETE trials of ``values`` (each with metrics and a checkpoint
    folder under its results folder) and ``failed`` FAIL trials, created as ``launch`` does:
    with an id and a marked folder of its own (``legacy``: as before ids existed, no id and an
    unmarked ``results/name``). Returns the study's folder."""
    import optuna

    from conftest import make_tiny_sweep
    from search.study import folders
    from search.study.storage import open_storage
    from search.study.studies import create_study, data_fingerprint
    from spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = make_tiny_sweep(**{"study": name})
    space = get_space("ppo", config["search"]["space_overrides"])
    with pytest.MonkeyPatch.context() as patch:  # create_study records the results folder
        patch.setenv("TRADETUNE_RESULTS", str(results))
        uid, folder = None, results / name
        if not legacy:
            uid = folders.new_uid()
            folder, _ = folders.claim_new(name, uid, url)
        study = create_study(open_storage(url, create_dirs=True), config, space,
                             data_fingerprint(config["data"]), f"tradetune launch --study {name}",
                             uid=uid, folder=folder)
    for i, value in enumerate(values):
        trial = study.ask()
        space(trial)
        checkpoint = folder / "run-1" / f"trial_{i}" / "checkpoint_000000"
        checkpoint.mkdir(parents=True, exist_ok=legacy)  # legacy twins may share a folder
        (checkpoint / "state.pkl").write_bytes(b"weights")
        trial.set_user_attr("checkpoint", str(checkpoint))
        trial.set_user_attr("metrics", {"sharpe": value, "pnl_pct": 1.0, "sharpe_per_bar": 0.01,
                                        "bars": 200})
        trial.set_user_attr("stop_reason", "max_iterations")
        study.tell(trial, value)
    for _ in range(failed):
        trial = study.ask()
        space(trial)
        trial.set_user_attr("fail_reason", "training diverged")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if running_driver:  # a live driver (this test process) with a trial in flight
        study.set_user_attr("driver:here", {"host": socket.gethostname(), "pid": os.getpid(),
                                            "time": 1e12})
        space(study.ask())
    return folder


@pytest.fixture
def two_studies(tmp_path, monkeypatch):
    """``alpha`` (2 COMPLETE, 1 FAIL) and ``beta`` (1 COMPLETE) in one SQLite storage, their
    results folders, and an unrelated file in the results directory."""
    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    url = f"sqlite:///{results / 'tradetune.db'}"
    add_study(url, results, "alpha", [0.5, 1.5], failed=1)
    add_study(url, results, "beta", [0.25])
    (results / "notes.txt").write_text("mine")
    return {"results": results, "url": url, "root": tmp_path}
