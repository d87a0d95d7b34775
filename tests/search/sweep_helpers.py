"""Helpers shared by the sweep tests: tiny configs on disk, CLI subprocesses, study reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

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
    from search.storage import open_storage

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
