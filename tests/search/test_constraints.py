"""search.constraints: the samplers steer by them, trials record them, best ranks by them."""
from __future__ import annotations

import json
import subprocess

import pytest

from search.config import constraints
from search.config.sweep_config import load_config
from search.errors import ConfigError
from sweep_helpers import REPO, TRADETUNE, add_study, cli_env


@pytest.mark.parametrize("value, match", [
    ("{min_trade: 5}", r"unknown constraint search.constraints.min_trade; did you mean "
                       r"'min_trades'"),
    ("{max_drawdown: 0}", r"max_drawdown must be a fraction in \(0, 1\], got 0"),
    ("{min_trades: 2.5}", r"min_trades must be a whole number >= 0"),
    ("{min_time_in_market: true}", r"min_time_in_market must be a fraction in \[0, 1\]"),
    ("[min_trades]", r"search.constraints must be a mapping"),
])
def test_bad_constraints_are_one_line_config_errors(value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["study=s", f"search.constraints={value}"])


def test_constraint_values_are_met_at_or_below_zero_and_say_what_they_miss():
    limits = {"min_trades": 10, "max_drawdown": 0.2, "min_time_in_market": 0.1}
    good = {"trades": 12, "max_drawdown": 0.1, "time_in_market": 0.5}
    assert all(v <= 0 for v in constraints.values(limits, good))
    assert constraints.broken(limits, good) == []
    bad = {"trades": 2, "max_drawdown": 0.3}
    assert constraints.values(limits, bad) == [8.0, pytest.approx(0.1), 1.0]
    assert constraints.broken(limits, bad) == [
        "trades 2 < min_trades 10", "max_drawdown 0.3 > max_drawdown 0.2",
        "time_in_market missing < min_time_in_market 0.1"]


def test_a_finished_trial_carries_its_constraints_for_the_sampler(tmp_path):
    """The searcher sets them on the trial before telling Optuna: the samplers (and Optuna's
    own feasibility) read ``FrozenTrial.constraints``; the study records feasible and why."""
    import optuna

    from search.sweep.searcher import StudySearcher
    from spaces import get_space

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="c", storage=storage, direction="maximize")
    searcher = StudySearcher(get_space("ppo"), study, optuna.samplers.TPESampler(seed=1), 2, 42,
                             "drv", constraints={"min_trades": 10, "max_drawdown": 0.3})
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"best_val_score": 1.0, "best_val_trades": 4,
                                      "best_val_max_drawdown": 0.1})
    trial = study.trials[0]
    assert trial.constraints == {"min_trades": 6.0, "max_drawdown": pytest.approx(-0.2)}
    assert trial.user_attrs["feasible"] is False
    assert trial.user_attrs["constraints_broken"] == ["trades 4 < min_trades 10"]


def test_best_ranks_feasible_trials_first_and_labels_the_rest(tmp_path, monkeypatch):
    from search.study import studies
    from search.study.storage import open_storage
    from search.study.trials import optuna_trial_id, replace_finished_trial_attr

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    url = f"sqlite:///{results / 'tradetune.db'}"
    add_study(url, results, "c", [3.0, 1.0, 2.0])
    study = studies.load_study(open_storage(url), "c")
    for trial in study.trials:  # the best by value broke min_trades
        feasible = trial.value != 3.0
        replace_finished_trial_attr(url, optuna_trial_id(trial), "feasible", feasible)
        replace_finished_trial_attr(url, optuna_trial_id(trial), "constraints_broken",
                                    [] if feasible else ["trades 2 < min_trades 10"])
    env = cli_env(results)
    rows = json.loads(subprocess.run([*TRADETUNE, "best", "--study", "c", "-f", "json"],
                                     cwd=REPO, env=env, capture_output=True, text=True,
                                     timeout=120).stdout)
    assert [(r["value"], r["feasible"]) for r in rows] == [(2.0, True), (1.0, True),
                                                          (3.0, False)]
    table = subprocess.run([*TRADETUNE, "best", "--study", "c"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120).stdout
    assert "value 3 [INFEASIBLE: trades 2 < min_trades 10]" in table


@pytest.mark.slow
def test_a_real_sweep_records_and_ranks_by_its_constraints(tmp_path, tiny_sweep):
    import optuna

    from sweep_helpers import run_cli, write_config

    results = tmp_path / "results"
    config = write_config(tmp_path / "c.yaml", tiny_sweep(**{
        "study": "c", "search.num_samples": 2, "training.max_iterations": 1,
        "search.constraints": "{min_trades: 100000}"}))
    done = run_cli(["launch", str(config)], results)
    assert done.returncode == 0, done.stdout + done.stderr
    study = optuna.load_study(study_name="c", storage=f"sqlite:///{results / 'tradetune.db'}")
    assert all(t.constraints["min_trades"] > 0 for t in study.trials)
    rows = json.loads(run_cli(["best", "--study", "c", "-f", "json"], results).stdout)
    assert [r["feasible"] for r in rows] == [False, False]
    assert rows[0]["constraints_broken"][0].endswith("< min_trades 100000")
