"""Degenerate policies are named wherever trials are listed, and never called an edge."""
from __future__ import annotations

import json
import subprocess

import pytest

from search.results import degenerate
from sweep_helpers import REPO, TRADETUNE, add_study, cli_env


@pytest.mark.parametrize("metrics, kind", [
    ({"trades": 0, "time_in_market": 0.0}, degenerate.NEVER_IN),
    ({"trades": 1, "time_in_market": 0.998}, degenerate.ALWAYS_LONG),
    ({"trades": 1, "time_in_market": 0.5, "time_long": 1.0, "time_short": 0.0},
     degenerate.ALWAYS_LONG),  # long 50% all the time: a scaled buy-and-hold
    ({"trades": 1, "time_in_market": 1.0, "time_long": 0.0, "time_short": 1.0},
     degenerate.ALWAYS_SHORT),
    ({"trades": 4, "time_in_market": 0.005}, degenerate.ALMOST_NEVER_IN),
    ({"trades": 2, "time_in_market": 0.4}, "near-constant (2 trades)"),
    ({"trades": 1, "time_in_market": 0.4}, "near-constant (1 trade)"),
    ({"trades": 12, "time_in_market": 0.55}, None),
    ({"sharpe": 1.0}, None),  # figures from before time_in_market was recorded
    (None, None),
])
def test_label_names_each_kind_of_constant_policy(metrics, kind):
    assert degenerate.label(metrics) == kind


@pytest.fixture
def clone_study(tmp_path, monkeypatch):
    """A study whose best trial is a buy-and-hold clone on validation, the second a trader."""
    from search.study import studies
    from search.study.storage import open_storage
    from search.study.trials import optuna_trial_id, replace_finished_trial_attr

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    url = f"sqlite:///{results / 'tradetune.db'}"
    add_study(url, results, "c", [2.0, 1.0])
    study = studies.load_study(open_storage(url), "c")
    shapes = [{"trades": 1, "time_in_market": 0.999}, {"trades": 40, "time_in_market": 0.5}]
    for trial, shape in zip(sorted(study.trials, key=lambda t: -t.value), shapes):
        replace_finished_trial_attr(url, optuna_trial_id(trial), "metrics",
                                    {**trial.user_attrs["metrics"], **shape})
    return results


def _cli(args, results):
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=cli_env(results), text=True,
                          capture_output=True, timeout=120)


def test_best_and_status_name_the_clone_and_the_check_calls_it_no_edge(clone_study):
    rows = json.loads(_cli(["best", "--study", "c", "-f", "json"], clone_study).stdout)
    assert [r["degenerate"] for r in rows] == [degenerate.ALWAYS_LONG, None]
    assert rows[0]["overfitting"]["verdict"].startswith("no edge: the best trial is always long")
    table = _cli(["best", "--study", "c"], clone_study).stdout
    assert f"[DEGENERATE on validation: {degenerate.ALWAYS_LONG}]" in table
    status = _cli(["status", "--study", "c"], clone_study).stdout
    assert "buy-and-hold clone" in status
