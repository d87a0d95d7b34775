"""Rules that several commands share, each written once."""
from __future__ import annotations

from search.formats import number
from trainables.rllib_trainable import env_config
from trainables.settings import trial_env


def test_a_trials_searched_env_settings_win_over_the_sweeps():
    sweep = {"data": {"synthetic": {"seed": 1}}, "env": {"window_size": 10, "commission": 0.01}}
    settings = {"env": {"window_size": 30}}
    assert trial_env(sweep, settings) == {"data": {"synthetic": {"seed": 1}}, "window_size": 30,
                                          "commission": 0.01}
    assert trial_env({"env": None}, {}) == {"data": None}
    assert env_config(sweep, settings, "val") == {**trial_env(sweep, settings), "split": "val"}


def test_numbers_are_shown_with_four_significant_digits():
    assert number(1.23456789) == "1.235"
    assert number(12) == "12"
    assert number(None) == "-"
    assert number(None, missing="n/a") == "n/a"


def test_fail_trial_finishes_a_running_trial_with_its_reason(tmp_path):
    import optuna

    from search.study.schema import ATTR_FAIL
    from search.study.storage import open_storage
    from search.study.trials import fail_trial

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    running = study.ask()
    fail_trial(study, running._trial_id, "driver stopped while the trial was running")
    trial = study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs[ATTR_FAIL] == "driver stopped while the trial was running"
