"""Fold racing (search.scheduler: racing): the decision, its rung records, its config checks,
and sweeps that race (slow): trials PRUNED with their partial scores, kill -9 and resume."""
from __future__ import annotations

import math
import os
import signal
from types import SimpleNamespace

import pytest

from conftest import make_tiny_sweep
from search.config import load_config
from search.errors import ConfigError
from search.racing import keeps, others_at, rung_scores, with_rung
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
