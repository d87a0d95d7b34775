"""Fold racing (search.scheduler: racing): the decision, its rung records, its config checks,
and sweeps that race (slow): trials PRUNED with their partial scores, kill -9 and resume."""
from __future__ import annotations

import math
import os
import signal
from types import SimpleNamespace

import pytest

from conftest import make_tiny_sweep
from search.config.sweep_config import load_config
from search.errors import ConfigError
from search.sweep.racing import keeps, others_at, rung_scores, with_rung
from sweep_helpers import poll, run_cli, start_cli, states, trials, write_config


# -- the decision -------------------------------------------------------------------------------

def test_a_trial_goes_on_only_within_the_best_1_over_eta_of_its_rung():
    others = [5.0, 4.0, 3.0, 2.0, 1.0]  # with the trial: 6 finished the rung, eta 3 keeps 2
    assert keeps(4.5, others, eta=3, min_trials=1)
    assert keeps(4.0, others, eta=3, min_trials=1), "a tie with the last kept score goes on"
    assert not keeps(3.9, others, eta=3, min_trials=1)
    assert not keeps(1.0, others, eta=3, min_trials=1)
    assert keeps(6.0, others, eta=3, min_trials=1)
    # eta 2 keeps the best 3 of 6; eta 1.5 the best 4; a float eta floors.
    assert keeps(3.0, others, eta=2, min_trials=1) and not keeps(2.5, others, eta=2, min_trials=1)
    assert keeps(2.0, others, eta=1.5, min_trials=1)
    assert not keeps(1.5, others, eta=1.5, min_trials=1)


def test_the_best_trial_always_goes_on_however_few_or_large_eta():
    assert keeps(1.0, [], eta=3, min_trials=1), "alone at its rung, it is the best"
    assert keeps(2.0, [1.0], eta=100, min_trials=1)
    assert not keeps(0.5, [1.0], eta=100, min_trials=1)
    assert keeps(1.0, [1.0, 1.0, 1.0], eta=100, min_trials=1), "all tied: all go on"


def test_nothing_is_stopped_before_min_trials_finished_the_rung():
    assert keeps(-10.0, [1.0, 2.0, 3.0], eta=3, min_trials=5), "4 of 5 finished"
    assert not keeps(-10.0, [1.0, 2.0, 3.0, 4.0], eta=3, min_trials=5), "5 of 5 finished"
    assert not keeps(-10.0, [1.0, 2.0, 3.0, 4.0], eta=3, min_trials=4)


def test_non_finite_scores_do_not_count_and_a_non_finite_trial_stops():
    assert keeps(0.0, [math.nan, math.inf, 1.0], eta=3, min_trials=3), "only 2 count"
    assert not keeps(math.nan, [], eta=3, min_trials=1)


# -- rung records: what the study stores, and what a decision reads -------------------------------

def test_rung_records_overwrite_a_repeated_rung_and_fill_a_missing_one_with_null():
    assert with_rung([], 0, 1.5) == [1.5]
    assert with_rung([1.5], 1, 2.0) == [1.5, 2.0]
    assert with_rung([1.5, 2.0], 1, 2.5) == [1.5, 2.5], "a restarted run reports its rung again"
    assert with_rung([], 2, 3.0) == [None, None, 3.0]
    assert rung_scores({"rung_scores": [None, 2.0]})[1] == 2.0
    assert math.isnan(rung_scores({"rung_scores": [None, 2.0]})[0])
    assert rung_scores({}) == [] and rung_scores({"rung_scores": "x"}) == []


def test_a_rung_counts_every_other_trial_that_finished_it_whatever_its_state():
    def trial(number, scores, state="COMPLETE"):
        return SimpleNamespace(number=number, state=state,
                               user_attrs={} if scores is None else {"rung_scores": scores})

    study = [trial(0, [1.0, 2.0]), trial(1, [3.0], "PRUNED"), trial(2, [4.0], "FAIL"),
             trial(3, None, "RUNNING"), trial(4, [None, 5.0], "RUNNING"), trial(5, [9.0])]
    assert sorted(others_at(study, 0, exclude=5)) == [1.0, 3.0, 4.0]
    assert sorted(others_at(study, 1, exclude=5)) == [2.0, 5.0]
    assert others_at(study, 2, exclude=5) == []


# -- config ------------------------------------------------------------------------------------

def test_racing_defaults_and_settings():
    config = load_config(None, ["study=s", "search.scheduler=racing", "training.seeds=2"])
    assert config["search"]["racing"] == {"eta": 3, "min_trials": 5}
    config = load_config(None, ["study=s", "search.scheduler=racing",
                                "data.walk_forward={folds: 2}", "search.racing.eta=2.5",
                                "search.racing.min_trials=1e1"])
    assert config["search"]["racing"] == {"eta": 2.5, "min_trials": 10}


@pytest.mark.parametrize("sets, message", [
    (["search.scheduler=racing"], r"search.scheduler 'racing' needs several runs per trial .* "
                                  r"data.walk_forward .* training.seeds > 1"),
    (["search.scheduler=racing", "training.seeds=2", "training.objectives=[sharpe, max_drawdown]"],
     r"'racing' is not available for multi-objective studies .* until .* defined"),
    (["search.scheduler=racing", "training.objectives=[sharpe, max_drawdown]"],
     r"not available for multi-objective studies"),
    (["search.racing.eta=1"], r"search.racing.eta must be a number > 1"),
    (["search.racing.eta=.inf"], r"search.racing.eta must be a finite number"),
    (["search.racing.eta=.nan"], r"search.racing.eta must be a finite number"),
    (["search.racing.eta=true"], r"search.racing.eta must be a number > 1 .*, got True"),
    (["search.racing.eta=fast"], r"search.racing.eta must be a number > 1 .*, got 'fast'"),
    (["search.racing.min_trials=0"], r"search.racing.min_trials must be a whole number >= 1"),
    (["search.racing.min_trials=2.5"], r"search.racing.min_trials must be a whole number"),
    (["search.racing.min_trials=null"], r"search.racing.min_trials must be a whole number"),
    (["search.racing.rungs=2"], r"unknown config key 'search.racing.rungs'"),
    (["search.racing=3"], r"config key 'search.racing' must be a mapping"),
])
def test_bad_racing_configs_are_one_line_errors(sets, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, ["study=s", *sets])
    assert "\n" not in str(info.value)


# -- sweeps that race (slow) ----------------------------------------------------------------------

def _racing_sweep(study: str, num_samples: int) -> dict:
    """Two seeds per trial (one rung), and eta so large that only the best at the rung goes on:
    every trial that is not the best so far after its first run is pruned."""
    return make_tiny_sweep(**{"study": study, "search.num_samples": num_samples,
                              "training.seeds": 2, "training.max_iterations": 2,
                              "search.scheduler": "racing",
                              "search.racing": "{eta: 100, min_trials: 1}"})


def _check_raced(url: str, study: str, budget: int) -> list:
    """The study's trials after a racing sweep: the budget counts COMPLETE and PRUNED trials,
    nothing is left RUNNING, and every PRUNED trial was judged as racing says, with its partial
    scores stored."""
    all_trials = trials(url, study)
    done = [t for t in all_trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == budget, states(url, study)
    assert not [t for t in all_trials if t.state.name in ("RUNNING", "WAITING")]
    for trial in done:  # one rung (the first of the two runs), recorded for every trial
        assert len(trial.user_attrs["rung_scores"]) == 1, trial.number
    for trial in [t for t in done if t.state.name == "PRUNED"]:
        (rung,) = trial.user_attrs["rung_scores"]
        assert trial.user_attrs["stop_reason"] == "racing"
        assert trial.value == rung, "a PRUNED trial's value is the score it was judged on"
        # Partial per-run scores: [fold][seed index]; seed 1 ran first, seed 0 never did.
        assert trial.user_attrs["metrics"]["run_scores"] == [[None, rung]]
        assert trial.user_attrs["metrics"]["fold_scores"] == [rung]
        others = [t.user_attrs["rung_scores"][0] for t in all_trials
                  if t.number != trial.number and t.user_attrs.get("rung_scores")]
        assert rung < max(others), "pruned although it was the best at its rung"
    for trial in [t for t in done if t.state.name == "COMPLETE"]:
        assert trial.user_attrs["stop_reason"] != "racing"
        assert None not in trial.user_attrs["metrics"]["run_scores"][0]
    return all_trials


@pytest.mark.slow
def test_racing_sweep_prunes_trials_with_their_partial_scores(tmp_path, ray_session):
    from search.cli import main

    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    path = write_config(tmp_path / "sweep.yaml", _racing_sweep("race", 5))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADETUNE_RESULTS", str(results))
        patch.delenv("TRADETUNE_STORAGE", raising=False)
        assert main(["launch", str(path)]) == 0
    counts = states(url, "race")
    assert counts.get("PRUNED", 0) >= 1 and counts.get("COMPLETE", 0) >= 1, counts
    _check_raced(url, "race", 5)
    # Pruned trials count in the budget: the study is finished.
    again = run_cli(["resume", "--study", "race"], results)
    assert again.returncode == 0 and "already finished: 5 of 5" in again.stdout, again.stdout


def _running_after_a_rung(url: str, study: str) -> bool:
    """A trial RUNNING its second run: its rung recorded and judged (kept), and an evaluation
    of the second run reported (step 3 of 2 x 2). Checking the rung alone raced the judgement:
    a trial pruned right after its rung was recorded left nothing RUNNING to kill."""
    return any(t.state.name == "RUNNING" and t.user_attrs.get("rung_scores")
               and max(t.intermediate_values, default=0) > 2 for t in trials(url, study))


@pytest.mark.slow
def test_racing_survives_kill_9_and_resume(tmp_path):
    """SIGKILL the driver while a trial is between its runs (its rung already recorded), resume:
    the killed trial is FAIL with its rung record kept in the study, and exactly the budget of
    COMPLETE + PRUNED trials is counted, none RUNNING."""
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    path = write_config(tmp_path / "sweep.yaml", _racing_sweep("race-crash", 4))
    driver = start_cli(["launch", str(path)], results, log=tmp_path / "launch.log")
    try:
        poll(lambda: _running_after_a_rung(url, "race-crash"), 300, "a trial past its rung")
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    killed = [t for t in trials(url, "race-crash") if t.state.name == "RUNNING"]
    assert killed and killed[0].user_attrs.get("rung_scores")
    done = run_cli(["resume", "--study", "race-crash"], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    all_trials = _check_raced(url, "race-crash", 4)
    orphan = next(t for t in all_trials if t.number == killed[0].number)
    assert orphan.state.name == "FAIL"
    assert orphan.user_attrs["fail_reason"] == "driver stopped while the trial was running"
    assert orphan.user_attrs["rung_scores"] == killed[0].user_attrs["rung_scores"]
    assert len({t.user_attrs["driver"] for t in all_trials}) == 2
    again = run_cli(["resume", "--study", "race-crash"], results)
    assert again.returncode == 0 and "already finished" in again.stdout


# -- the scheduler reads the study, not its own memory ---------------------------------------------

def test_the_scheduler_judges_against_rungs_recorded_by_other_drivers(tmp_path):
    """Another driver's trials (any state) recorded their rungs in the study; this driver's
    scheduler, with an empty memory, prunes its trial against them, and the budget counts it."""
    import optuna
    from ray.tune.schedulers import TrialScheduler

    from search.sweep.racing import racing_scheduler
    from search.sweep.searcher import StudySearcher
    from spaces import get_space
    from trainables import metrics as M

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="race", storage=url, direction="maximize")
    for score, state in [(2.0, "COMPLETE"), (3.0, "FAIL"), (1.0, "PRUNED")]:
        other = study.ask()
        other.set_user_attr("rung_scores", [score])
        if state == "COMPLETE":
            study.tell(other, score)
        else:
            study.tell(other, state=optuna.trial.TrialState[state])
    searcher = StudySearcher(get_space("ppo"), study, optuna.samplers.RandomSampler(seed=0),
                             num_samples=6, sweep_seed=1, driver_id="this-driver")
    scheduler = racing_scheduler(searcher, {"racing": {"eta": 2, "min_trials": 4}})
    tune_trial = SimpleNamespace(trial_id="t1")
    searcher.suggest("t1")
    assert searcher.budget_left() == 6 - 3, "COMPLETE, PRUNED and RUNNING count; FAIL not"

    result = {M.RUN: 0, M.RUNS: 2, M.RUNG: 0, M.RUNG_SCORE: 1.5, M.BEST_VAL_SCORE: 1.5,
              M.VAL_SCORE: 1.2, M.EVALS: 2, M.STOP_REASON: "", M.ENV_STEPS: 400,
              M.RUN_SCORES: [[None, 1.5]], M.BEST_PREFIX + "sharpe": 1.5}
    # Mid-run reports are not rungs.
    assert scheduler.on_trial_result(None, tune_trial, {**result, M.RUNG: None}) == "CONTINUE"
    # 4 at rung 0 (3, 2, 1.5, 1): eta 2 keeps the best 2, so 1.5 is out.
    assert scheduler.on_trial_result(None, tune_trial, result) == TrialScheduler.STOP
    (mine,) = [t for t in study.get_trials() if t.user_attrs.get("driver") == "this-driver"]
    assert mine.state.name == "PRUNED" and mine.value == 1.5
    assert mine.user_attrs["rung_scores"] == [1.5]
    assert mine.user_attrs["stop_reason"] == "racing"
    assert mine.user_attrs["metrics"]["run_scores"] == [[None, 1.5]]
    assert searcher.budget_left() == 6 - 3
    searcher.on_trial_complete("t1", result)  # Tune's own end of the stopped trial: no change
    assert study.get_trials()[mine.number].state.name == "PRUNED"

    # With fewer trials at the rung than min_trials, the same score goes on.
    searcher.suggest("t2")
    lenient = racing_scheduler(searcher, {"racing": {"eta": 2, "min_trials": 6}})
    assert lenient.on_trial_result(None, SimpleNamespace(trial_id="t2"), result) == "CONTINUE"
