"""Many drivers on one PostgreSQL study: six ``tradetune resume`` processes started at the same
moment share the study's budget and together run exactly ``num_samples`` trials."""
from __future__ import annotations

import subprocess
import time
import uuid

import optuna
import pytest

from conftest import make_tiny_sweep
from search.study.storage import open_storage
from search.study.studies import create_study, data_fingerprint
from spaces import get_space
from sweep_helpers import REPO, TRADETUNE, cli_env, trials

pytestmark = pytest.mark.slow
PG = "postgresql://postgres@127.0.0.1:5432/test"
DRIVERS = 6
BUDGET = 3  # fewer trials than drivers: every driver races for the same few places


def test_drivers_resuming_at_once_run_exactly_the_budget(tmp_path, ray_session):
    study = f"many-drivers-{uuid.uuid4().hex[:8]}"
    config = make_tiny_sweep(**{"study": study, "search.num_samples": BUDGET,
                                "training.max_iterations": 1, "training.min_evals": 1,
                                "training.patience": 1})
    space = get_space("ppo", config["search"]["space_overrides"])
    create_study(open_storage(PG), config, space, data_fingerprint(config["data"]), "test")
    # One small Ray for every driver (the test session's, 2 CPUs): six private Rays would not
    # fit two cores. Each driver connects to it as its own Ray job.
    address = ray_session.get_runtime_context().gcs_address
    drivers: list = []
    try:
        for index in range(DRIVERS):
            log = open(tmp_path / f"driver{index}.log", "w")
            drivers.append((subprocess.Popen(
                [*TRADETUNE, "resume", "--study", study, "--storage", PG, "--address", address],
                cwd=REPO, env=cli_env(tmp_path / "results"), stdout=log,
                stderr=subprocess.STDOUT), log))
        deadline = time.time() + 600
        for index, (driver, log) in enumerate(drivers):
            code = driver.wait(timeout=max(deadline - time.time(), 1))
            log.close()
            assert code == 0, (tmp_path / f"driver{index}.log").read_text()[-3000:]
        all_trials = trials(PG, study)
        by_state = {}
        for trial in all_trials:
            by_state.setdefault(trial.state.name, []).append(trial.number)
        assert len(by_state.get("COMPLETE", [])) + len(by_state.get("PRUNED", [])) == BUDGET, \
            by_state
        assert not by_state.get("RUNNING") and not by_state.get("WAITING"), by_state
        tune_ids = [t.user_attrs["tune_trial_id"] for t in all_trials]
        assert len(set(tune_ids)) == len(tune_ids)
    finally:
        for driver, _ in drivers:
            if driver.poll() is None:
                driver.kill()
        try:
            optuna.delete_study(study_name=study, storage=PG)
        except KeyError:
            pass
