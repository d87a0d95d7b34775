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
