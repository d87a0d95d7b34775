"""The study-owning searcher and study bookkeeping, on a real SQLite Optuna study."""
from __future__ import annotations

import math

import optuna
import pytest

from search.errors import StudyError
from search.sweep.searcher import StudySearcher
from search.study.storage import open_storage
from search.study.studies import check_unchanged, create_study, data_fingerprint, load_study
from search.study.trials import fail_orphaned_trials
from spaces import get_space

SEARCH_METRIC = "best_val_score"


@pytest.fixture
def study(tmp_path, tiny_sweep):
    config = tiny_sweep(**{"study": "unit"})
    storage = open_storage(f"sqlite:///{tmp_path / 'unit.db'}")
    space = get_space("ppo", config["search"]["space_overrides"])
    return create_study(storage, config, space, data_fingerprint(config["data"]), "test"), space


def _searcher(study, space, budget=3):
    return StudySearcher(space, study, optuna.samplers.TPESampler(seed=1), budget, 42, "drv")


def test_suggest_tags_trials_and_derives_seeds(study):
    study, space = study
    searcher = _searcher(study, space)
    config = searcher.suggest("tune-a")
    trial = study.trials[0]
    assert trial.user_attrs["tune_trial_id"] == "tune-a"
    assert trial.user_attrs["driver"] == "drv"
    assert config["trial_seed"] == trial.user_attrs["seed"]
    assert space.replay({k: v for k, v in config.items() if k != "trial_seed"})


@pytest.mark.parametrize("value", [math.nan, math.inf, None])
def test_non_finite_or_missing_final_score_fails_the_trial(study, value):
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {SEARCH_METRIC: value, "stop_reason": "patience"})
    trial = study.trials[0]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == f"final {SEARCH_METRIC} is {value!r}"


def test_duplicate_and_unknown_callbacks_are_ignored(study):
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {SEARCH_METRIC: 0.5, "val_score": 0.5, "evals": 1,
                                    "training_iteration": 1})
    searcher.on_trial_result("t1", {SEARCH_METRIC: 0.5, "val_score": 0.2, "evals": 2,
                                    "training_iteration": 2})
    searcher.on_trial_complete("t1", {SEARCH_METRIC: 0.5})
    searcher.on_trial_complete("t1", {SEARCH_METRIC: 0.9})
    searcher.on_trial_result("t1", {SEARCH_METRIC: 0.9, "val_score": 0.9, "evals": 3,
                                    "training_iteration": 3})
    searcher.on_trial_complete("never-suggested", {SEARCH_METRIC: 1.0})
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE" and trial.value == 0.5
    assert trial.intermediate_values == {1: 0.5, 2: 0.2}  # each evaluation's own score


def test_errored_trial_waits_for_its_reason(study):
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", None, error=True)
    searcher.fail("t1", "TrainingDiverged: training diverged: default_policy/total_loss = nan")
    trial = study.trials[0]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"].startswith("TrainingDiverged")


def test_budget_is_study_wide(study):
    study, space = study
    first = _searcher(study, space, budget=2)
    second = _searcher(study, space, budget=2)
    assert isinstance(first.suggest("a"), dict)
    assert isinstance(second.suggest("b"), dict)
    assert first.suggest("c") == "FINISHED" and second.suggest("d") == "FINISHED"
    assert len(study.trials) == 2


def test_orphans_of_a_dead_driver_fail_but_live_ones_stay(study):
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("dead")
    study.set_user_attr("driver:drv", {"host": "elsewhere", "pid": 1, "time": 0.0})
    assert fail_orphaned_trials(study) == 1
    trial = study.trials[0]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == "driver stopped while the trial was running"
    import time

    live = _searcher(study, space)
    live.suggest("alive")
    study.set_user_attr("driver:drv", {"host": "elsewhere", "pid": 1, "time": time.time()})
    assert fail_orphaned_trials(study) == 0
    assert study.trials[1].state.name == "RUNNING"


def test_strict_create_and_load(study, tiny_sweep):
    study, space = study
    config = tiny_sweep(**{"study": "unit"})
    with pytest.raises(StudyError, match=r"study 'unit' already exists .*tradetune.resume\('unit'\)"
                       ) as taken:
        create_study(study._storage, config, space, "x", "test")
    assert "continue it with `tradetune resume --study unit`" in taken.value.cli_message
    with pytest.raises(StudyError, match=r"no study named 'unti' .*did you mean 'unit'\?"):
        load_study(study._storage, "unti")
    assert optuna.get_all_study_names(study._storage) == ["unit"]


def test_resume_refuses_changed_data(study, tmp_path):
    study, space = study
    with pytest.raises(StudyError, match=r"the data of study 'unit' changed since launch"):
        check_unchanged(study, space, "0123456789abcdef")
    csv = tmp_path / "bars.csv"
    csv.write_text("date,close\n2020-01-01,1\n")
    before = data_fingerprint({"path": str(csv)})
    csv.write_text("date,close\n2020-01-01,2\n")
    assert data_fingerprint({"path": str(csv)}) != before


def test_a_space_that_raises_fails_its_trial_and_stops_the_sweep(study):
    from spaces import SpaceError

    study, space = study

    def flaky(trial):
        if trial.number == 1:
            raise ValueError("no settings for this combination\nsecond line")
        return space(trial)

    searcher = StudySearcher(flaky, study, optuna.samplers.RandomSampler(seed=1), 3, 42, "drv")
    assert isinstance(searcher.suggest("t0"), dict)
    with pytest.raises(SpaceError, match=r"^the search space raised ValueError: no settings for "
                                         r"this combination while sampling trial 1 \(marked "
                                         r"FAIL\); the sweep stopped.*resume\('unit'\)`$") as stopped:
        searcher.suggest("t1")
    assert stopped.value.cli_message.endswith("`tradetune resume --study unit`")
    assert study.trials[1].state.name == "FAIL"
    assert (study.trials[1].user_attrs["fail_reason"]
            == "the search space raised ValueError: no settings for this combination")
    searcher.fail_all_awaiting()  # the end of the run: this driver's trials still in flight
    assert study.trials[0].state.name == "FAIL"
    assert study.trials[0].user_attrs["fail_reason"].startswith("sweep stopped: the search space")
    assert searcher.suggest("t2") == "FINISHED" and len(study.trials) == 2


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_intermediate_score_fails_the_trial(study, value):
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {"val_score": 0.3, "evals": 1, "training_iteration": 1})
    searcher.on_trial_result("t1", {"val_score": value, "evals": 2, "training_iteration": 2})
    searcher.on_trial_complete("t1", {SEARCH_METRIC: 0.3})
    trial = study.trials[0]
    assert trial.state.name == "FAIL"
    assert trial.intermediate_values == {1: 0.3}
    assert trial.user_attrs["fail_reason"] == f"validation val_score of evaluation 2 is {value!r}"


def test_non_finite_metrics_are_stored_as_null_and_numpy_scores_count(study):
    import numpy as np

    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {SEARCH_METRIC: np.float32(0.5), "best_val_sharpe": 0.5,
                                      "best_val_return_skew": math.nan,
                                      "best_val_calmar": math.inf})
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE" and trial.value == 0.5
    assert trial.user_attrs["metrics"] == {"score": 0.5, "sharpe": 0.5, "return_skew": None,
                                           "calmar": None}


def test_key_figures_are_also_flat_numbers_for_optuna_dashboard(study):
    """optuna-dashboard plots and filters only flat numeric user attributes: the key
    validation figures are stored again as ``val_<name>``; missing or non-finite ones are not."""
    study, space = study
    searcher = _searcher(study, space)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {SEARCH_METRIC: 0.5, "best_val_sharpe": 1.5,
                                      "best_val_pnl_pct": 3.25, "best_val_trades": 12,
                                      "best_val_max_drawdown": math.nan,
                                      "best_val_active_sharpe_per_bar": 0.02})
    attrs = study.trials[0].user_attrs
    assert {k: v for k, v in attrs.items() if k.startswith("val_")} == {
        "val_sharpe": 1.5, "val_pnl_pct": 3.25, "val_trades": 12,
        "val_active_sharpe_per_bar": 0.02}


def test_a_failed_trial_s_reason_is_the_real_exception_type_and_message(ray_session, tmp_path):
    """Issue 22 row 8: a ZeroDivisionError inside the env was stored as 'RuntimeError' (the
    last line of Tune's traceback, RLlib's bare wrapper)."""
    from ray import tune
    from ray.tune.callback import Callback

    from search.sweep.searcher import error_line

    def fails(config):
        """Fails as RLlib's env runner does (a bare wrapper raised from the env's error), or
        with a message of its own. Defined here so that Ray ships it to the worker by value."""
        if config["how"] == "wrapped":
            try:
                1.0 / 0.0
            except ZeroDivisionError as exc:
                raise RuntimeError from exc
        from trainables.rllib_trainable import TrainingDiverged

        raise TrainingDiverged("training diverged: default_policy/vf_loss_unclipped = inf")

    reasons = {}

    class Reasons(Callback):
        def on_trial_error(self, iteration, trials, trial, **info):
            reasons[trial.config["how"]] = error_line(trial)

    tune.Tuner(fails, param_space={"how": tune.grid_search(["wrapped", "own"])},
               run_config=tune.RunConfig(storage_path=str(tmp_path), callbacks=[Reasons()],
                                         verbose=0)).fit()
    assert reasons == {
        "wrapped": "ZeroDivisionError: float division by zero",
        "own": "TrainingDiverged: training diverged: default_policy/vf_loss_unclipped = inf"}
