"""Sweep config validation: every bad value is one ConfigError line naming the key."""
from __future__ import annotations

import pytest

from search.config import DEFAULTS, check_study_name, load_config, startup_trials
from search.errors import ConfigError
from search.tuner import _make_sampler


def test_defaults_plus_study_validate():
    config = load_config(None, ["study=demo"])
    assert config["algorithm"] == "ppo"
    assert config["search"]["num_samples"] == DEFAULTS["search"]["num_samples"]


def test_yaml_file_and_set_overrides(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("study: s1\nalgorithm: DQN\nsearch: {num_samples: 3}\n")
    config = load_config(path, ["search.num_samples=7", "training.objective=pnl_pct"])
    assert config["algorithm"] == "dqn"
    assert config["search"]["num_samples"] == 7
    assert config["training"]["objective"] == "pnl_pct"


def test_study_flag_overrides_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("study: from_file\n")
    assert load_config(path, study="from_flag")["study"] == "from_flag"


def test_relative_data_path_is_pinned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["study=s", "data.path=bars.csv"])
    assert config["data"]["path"] == str(tmp_path / "bars.csv")


@pytest.mark.parametrize("sets, message", [
    (["study=s", "serch.num_samples=3"], r"unknown config key 'serch'; did you mean 'search'\?"),
    (["study=s", "search.num_sample=3"], r"did you mean 'search.num_samples'"),
    (["study=s", "search.num_samples=0"], r"search.num_samples must be >= 1, got 0"),
    (["study=s", "search.num_samples=-2"], r"search.num_samples must be >= 1"),
    (["study=s", "search.num_samples=many"], r"search.num_samples must be a whole number"),
    (["study=s", "training.max_iterations=2", "training.eval_every=5"],
     r"training.eval_every \(5\) is larger than training.max_iterations \(2\)"),
    (["study=s", "algorithm=ppp"], r"unknown algorithm 'ppp'; did you mean 'ppo'\?"),
    (["study=s", "search.scheduler=hyperband"], r"search.scheduler is 'hyperband'.*asha"),
    (["study=s", "training.objective=sharp"], r"did you mean 'sharpe'"),
    (["study=s", "env.reward=pbrr"], r"env.reward is 'pbrr'; did you mean 'pbr'"),
    (["study=s", "env.commission=1.5"], r"env.commission is a fraction below 1"),
    (["study=s", "env.initial_cash=0"], r"env.initial_cash must be > 0"),
    (["study=s", "search.space_overrides={lr: {low: 0.1, high: 0.01}}"],
     r"parameter 'lr': low \(0.1\) is greater than high \(0.01\)"),
    (["study=s", "search.space_overrides={lr: {low: 0, high: 0.01}}"],
     r"parameter 'lr': a log range must be positive"),
    (["study=s", "search.space_overrides={learning_rate: 0.1}"],
     r"unknown search parameter 'learning_rate'"),
    (["study=s", "env=3"], r"config key 'env' must be a mapping"),
    (["study=s", "nonsense"], r"--set 'nonsense' must look like KEY=VALUE"),
    (["study=s", "training.seeds=0"], r"training.seeds must be >= 1, got 0"),
    (["study=s", "training.vector_env=tensortrade"], r"training.vector_env must be true or false"),
    (["study=s", "search.startup_trials=0"], r"search.startup_trials must be >= 1, got 0"),
    (["study=s", "training.aggregate=median"], r"training.aggregate is 'median'.*mean_minus_std"),
    (["study=s", "training.seeds=2", "search.scheduler=asha"],
     r"search.scheduler 'asha' cannot be used with data.walk_forward or training.seeds > 1"),
    (["study=s", "data.walk_forward={folds: 1}"], r"data.walk_forward.folds must be a whole "
                                                  r"number >= 2, got 1"),
    (["study=s", "training.objectives=sharpe"], r"training.objectives must be null or a list of "
                                                r"at least 2 objectives"),
    (["study=s", "training.objectives=[sharpe]"], r"at least 2 objectives"),
    (["study=s", "training.objectives=[sharpe, drawdown]"],
     r"unknown objective 'drawdown'; did you mean 'max_drawdown'\?"),
    (["study=s", "training.objectives=[sharpe, sharpe]"], r"lists an objective twice"),
    (["study=s", "training.objectives=[max_drawdown, sharpe]"],
     r"first of training.objectives .* must be a maximised score .* got 'max_drawdown'"),
    (["study=s", "training.objectives=[sharpe, max_drawdown]", "training.seeds=3"],
     r"takes one run per trial: it cannot be combined with data.walk_forward"),
    (["study=s", "training.objectives=[sharpe, max_drawdown]", "search.scheduler=asha"],
     r"takes one run per trial"),
    ([], r"study name is empty"),
    (["study=   "], r"study name is empty"),
    (["study=a/b"], r"invalid study name 'a/b'"),
    (["study=" + "x" * 300], r"invalid study name"),
])
def test_bad_values_are_one_line_errors(sets, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, sets)
    assert "\n" not in str(info.value)


def test_objectives_replace_the_single_objective():
    config = load_config(None, ["study=s", "training.objectives=[pnl_pct, max_drawdown]"])
    assert config["training"]["objective"] == "pnl_pct"
    assert load_config(None, ["study=s"])["training"]["objectives"] is None


@pytest.mark.parametrize("num_samples, chosen, expected", [
    (8, None, 2), (20, None, 6), (200, None, 10), (2, None, 1), (20, 15, 15)])
def test_startup_trials_default_to_a_third_of_the_budget(num_samples, chosen, expected):
    sets = ["study=s", f"search.num_samples={num_samples}"]
    if chosen is not None:
        sets.append(f"search.startup_trials={chosen}")
    assert startup_trials(load_config(None, sets)["search"]) == expected


def test_tpe_models_the_study_after_its_startup_trials():
    """The first `startup_trials` draws are the random sampler's; the next one is TPE's own.
    With Optuna's fixed 10 start-up trials, trial 4 would still be a random draw."""
    import optuna

    def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(lambda t: -(t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=4)
        return [t.params["x"] for t in study.trials]

    search = load_config(None, ["study=s", "search.num_samples=9"])["search"]  # 3 start-up
    tpe = draws(_make_sampler(search, seed=5))
    random = draws(optuna.samplers.RandomSampler(seed=5))
    assert tpe[:3] == random[:3]
    assert tpe[3] != random[3]
    search["sampler"] = "random"
    assert draws(_make_sampler(search, seed=5)) == random


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listing)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 20)
    with pytest.raises(ConfigError, match="not a text file|not valid YAML"):
        load_config(binary)


def test_study_name_rules():
    assert check_study_name("btc-ppo_v2.1") == "btc-ppo_v2.1"
    for bad in ("", " ", "../up", "a b", "-lead"):
        with pytest.raises(ConfigError):
            check_study_name(bad)
