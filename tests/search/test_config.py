"""Sweep config validation: every bad value is one ConfigError line naming the key."""
from __future__ import annotations

import json
import os
import re
import textwrap
import time

import pandas as pd
import pytest

from search.config.keys import DEFAULTS
from search.config.sweep_config import check_study_name, load_config, startup_trials
from search.config.yaml_loader import parse_value
from search.errors import ConfigError
from search.sweep.runtime import make_sampler


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
    (["study=s", "env.actions=long_shrot"],
     r"^unknown env.actions 'long_shrot'; did you mean 'long_short'\?"),
    (["study=s", "env.actions={sizes: [-1, -0.5, 0.5, 1]}"], r"must include 0"),
    (["study=s", "env.actions={sizes: [0, 2]}"], r"env.actions size 2 is outside \[-1, 1\]"),
    (["study=s", "env.actions=[0, 0.5, 0.5]"], r"env.actions sizes lists \[0.5\] more than once"),
    (["study=s", "env.actions={sizes: []}"], r"needs at least two exposure levels"),
    (["study=s", "env.actions.sizes=[0, 1]"], r"env.actions is 'long_only', not a mapping"),
    (["study=s", "env.actions=long_short", "env.reward=pbr"], r"reward 'pbr' .* long-or-cash"),
    (["study=s", "env.borrow_rate=5%"], r"env.borrow_rate is an annual fraction in \[0, 10\)"),
    (["study=s", "env.slippage.bp=5"], r"unknown config key 'env.slippage.bp'; did you mean "
                                       r"'env.slippage.bps'\?"),
    (["study=s", "env.slippage=5"], r"config key 'env.slippage' must be a mapping"),
    (["study=s", "env.slippage.vol_mult=-1"], r"env.slippage.vol_mult must be a number"),
    (["study=s", "env.slippage.vol_window=1.5"], r"env.slippage.vol_window must be a whole"),
    (["study=s", "env.actions=long_short", "env.commission=0.3"],
     r"commission must be below 0.25 with env.actions 'long_short' or slippage"),
    (["study=s", "search.space_overrides={actions: long_short}"],
     r"'actions' cannot be searched: it is a market friction or product choice"),
    (["study=s", "search.space_overrides={slippage: {bps: 5}}"], r"'slippage' cannot be searched"),
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


@pytest.mark.parametrize("sets, scheduler", [
    ([], "asha"),                                             # one run per trial: ASHA
    (["data.walk_forward={folds: 2}"], "none"),               # several runs: no ASHA
    (["training.seeds=2"], "none"),
    (["training.objectives=[sharpe, max_drawdown]"], "none"),  # several objectives
    (["search.scheduler=none"], "none"),                      # a choice is kept as given
    (["training.seeds=2", "search.scheduler=racing"], "racing"),
])
def test_the_default_scheduler_is_the_measured_one_for_the_studys_shape(sets, scheduler):
    """search.scheduler auto (the default) resolves in the config the study stores."""
    assert DEFAULTS["search"]["scheduler"] == "auto"
    config = load_config(None, ["study=s", *sets])
    assert config["search"]["scheduler"] == scheduler


def test_the_default_early_stopping_is_the_benchmarked_one():
    """TPE + ASHA with patience 4 after at least 3 evaluations: bench_selection's arm (b)."""
    config = load_config(None, ["study=s"])
    assert (config["search"]["sampler"], config["search"]["scheduler"]) == ("tpe", "asha")
    assert (config["training"]["patience"], config["training"]["min_evals"]) == (4, 3)


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


@pytest.mark.parametrize("name, kind, grouped", [
    ("tpe", "TPESampler", False), ("tpe_grouped", "TPESampler", True),
    ("gp", "GPSampler", None), ("random", "RandomSampler", None)])
def test_each_sampler_is_optunas_own(name, kind, grouped):
    search = load_config(None, ["study=s", f"search.sampler={name}"])["search"]
    sampler = make_sampler(search, seed=1)
    assert type(sampler).__name__ == kind
    if grouped is not None:
        assert sampler._group is grouped


def test_an_unknown_sampler_names_the_choices():
    with pytest.raises(ConfigError, match=r"search.sampler .*did you mean 'tpe_grouped'"):
        load_config(None, ["study=s", "search.sampler=tpe_gruoped"])


def test_tpe_models_the_study_after_its_startup_trials():
    """The first `startup_trials` draws are the random sampler's; the next one is TPE's own.
    With Optuna's fixed 10 start-up trials, trial 4 would still be a random draw."""
    import optuna

    def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(lambda t: -(t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=4)
        return [t.params["x"] for t in study.trials]

    search = load_config(None, ["study=s", "search.num_samples=9"])["search"]  # 3 start-up
    tpe = draws(make_sampler(search, seed=5))
    random = draws(optuna.samplers.RandomSampler(seed=5))
    assert tpe[:3] == random[:3]
    assert tpe[3] != random[3]
    search["sampler"] = "random"
    assert draws(make_sampler(search, seed=5)) == random


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


@pytest.mark.parametrize("name", ["nl\n", "abc\n", "x" * 100 + "\n", "a\nb"])
def test_a_study_name_with_a_newline_is_refused_everywhere(name, tmp_path):
    """Issue 22 row 9: the pattern's ``$`` matched before a trailing newline, so the folder
    'nl\n' was created and the printed command could not be copied."""
    from search import api

    with pytest.raises(ConfigError, match="^invalid study name "):
        check_study_name(name)
    with pytest.raises(ConfigError, match="^invalid study name "):
        api.sweep_config(None, study=name)
    with pytest.raises(ConfigError, match="^invalid study name "):
        api.open_study(name, storage=f"sqlite:///{tmp_path / 'none.db'}", check=False)
    assert list(tmp_path.iterdir()) == []


def test_yaml_numbers_and_decimal_commas_end_at_the_end_of_the_text():
    from search.config.yaml_loader import ConfigLoader
    from trainables.bar_files import _DECIMAL_COMMA

    for tag, first, regexp in [(t, f, r) for f, rs in ConfigLoader.yaml_implicit_resolvers.items()
                               for t, r in rs if t.endswith((":int", ":float"))]:
        assert not regexp.match("12\n") and not regexp.match("1.5\n"), (tag, first)
    assert _DECIMAL_COMMA.match("1,5") and not _DECIMAL_COMMA.match("1,5\nx")


# -- issue 12 row 5: no key takes NaN or infinity; true/false is not a number ---------------------

def _numeric_keys(section: dict, prefix: str = "") -> list[str]:
    """Every key of DEFAULTS that holds a number, found by walking DEFAULTS itself."""
    keys = []
    for key, value in section.items():
        if isinstance(value, dict):
            keys += _numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            keys.append(f"{prefix}{key}")
    return keys


NUMERIC_KEYS = [*_numeric_keys(DEFAULTS), "training.max_env_steps", "search.startup_trials"]
# Numbers inside the free-form sections, as KEY=VALUE with {} standing for the bad number.
OPEN_NUMBERS = [
    ("data.synthetic.n_bars", "data.synthetic.n_bars={}"),
    ("data.synthetic.seed", "data.synthetic={{seed: {}}}"),
    ("data.splits.train", "data.splits={{train: {}, val: 0.15, test: 0.15}}"),
    ("data.splits.val_bars", "data.splits={{val_bars: {}, test_bars: 500}}"),
    ("data.walk_forward.folds", "data.walk_forward.folds={}"),
    ("search.space_overrides.gamma", "search.space_overrides.gamma={}"),
    ("search.space_overrides.lr.low", "search.space_overrides.lr={{low: {}, high: 0.001}}"),
    ("search.space_overrides.lr.high", "search.space_overrides.lr.high={}"),
    ("search.space_overrides.hidden_width.choices[1]",
     "search.space_overrides.hidden_width={{choices: [64, {}]}}"),
    ("search.enqueue[0].gamma", "search.enqueue=[{{gamma: {}}}]"),
]


def test_every_number_key_is_covered():
    assert {"env.commission", "env.initial_cash", "training.min_delta", "training.aggregate_k",
            "resources.gpus_per_trial", "resources.cpus_per_trial", "search.num_samples",
            "search.seed", "training.max_iterations", "search.racing.eta",
            "search.racing.min_trials", "env.borrow_rate", "env.slippage.bps",
            "env.slippage.vol_mult", "env.slippage.vol_window"} <= set(NUMERIC_KEYS)
    assert len(NUMERIC_KEYS) == 24


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_non_finite_numbers_are_refused_in_every_number_key(key, bad):
    with pytest.raises(ConfigError, match=rf"^{key} must be a finite number, got -?(nan|inf)$"):
        load_config(None, ["study=s", f"{key}={bad}"])


@pytest.mark.parametrize("bad", [".nan", ".inf"])
@pytest.mark.parametrize("key, item", OPEN_NUMBERS, ids=[key for key, _ in OPEN_NUMBERS])
def test_non_finite_numbers_are_refused_in_free_form_sections(key, item, bad):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a finite number"):
        load_config(None, ["study=s", item.format(bad)])


def test_non_finite_numbers_in_a_config_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("study: s\nenv:\n  commission: .NaN\n")
    with pytest.raises(ConfigError, match=r"^env.commission must be a finite number, got nan$"):
        load_config(path)


@pytest.mark.parametrize("sets, message", [
    (["search.num_samples=true"], r"search.num_samples must be a whole number, got True"),
    (["env.commission=false"], r"env.commission must be a number, got False"),
    (["env.borrow_rate=true"], r"env.borrow_rate is an annual fraction .* got True"),
    (["env.slippage.bps=true"], r"env.slippage.bps must be a number in \[0, 10000\), got True"),
    (["resources.gpus_per_trial=yes"], r"resources.gpus_per_trial must be a number, got True"),
    (["search.space_overrides.lr={low: true, high: 0.001}"],
     r"parameter 'lr': override values must be numbers, got low=True"),
    (["search.space_overrides.num_epochs.high=true"],
     r"parameter 'num_epochs': override values must be numbers, got high=True"),
    (["search.space_overrides.lr.log=0.5"], r"parameter 'lr': log must be true or false, got 0.5"),
    (["search.space_overrides.hidden_width=true"],
     r"parameter 'hidden_width': a choice must be a whole number like its built-in choices "
     r"\[32, 64, 128, 256\], got True"),
    (["search.space_overrides.hidden_width.choices=[64, '128']"],
     r"parameter 'hidden_width': a choice must be a whole number .* got '128'"),
    (["search.space_overrides.activation.choices=[relu, 1]"],
     r"parameter 'activation': a choice must be text .* got 1"),
    (["algorithm=dqn", "search.space_overrides.dueling=1"],
     r"parameter 'dueling': a choice must be true or false .* got 1"),
    (["search.space_overrides=[lr]"], r"search.space_overrides must be a mapping"),
])
def test_true_false_is_not_a_number_and_choices_keep_their_kind(sets, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, ["study=s", *sets])
    assert "\n" not in str(info.value)


def test_whole_float_choices_and_numbers_become_ints():
    config = load_config(None, ["study=s", "search.space_overrides.hidden_width={choices: "
                                "[6.4e1, 128]}", "training.max_env_steps=2e5"])
    assert config["training"]["max_env_steps"] == 200_000
    assert isinstance(config["training"]["max_env_steps"], int)
    from spaces import get_space

    space = get_space("ppo", config["search"]["space_overrides"])
    assert space.description["hidden_width"] == "one of [64, 128]"


# -- issue 12 row 6: --set a.b.c=v changes exactly one key, at any depth --------------------------

def test_set_changes_one_key_and_keeps_the_files_others(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent("""
        study: s
        data:
          synthetic: {n_bars: 3000, seed: 7}
        search:
          space_overrides:
            lr: {low: 1.0e-5, high: 1.0e-4}
            gamma: 0.99
        training: {max_iterations: 6, patience: 5}
    """))
    config = load_config(path, ["search.space_overrides.window_size=20",
                                "search.space_overrides.lr.high=2e-4",
                                "data.synthetic.seed=8", "training.max_iterations=4"])
    assert config["search"]["space_overrides"] == {
        "lr": {"low": 1e-5, "high": 2e-4}, "gamma": 0.99, "window_size": 20}
    assert config["data"]["synthetic"] == {"n_bars": 3000, "seed": 8}
    assert config["training"]["max_iterations"] == 4 and config["training"]["patience"] == 5


def test_set_creates_the_mappings_on_the_way():
    config = load_config(None, ["study=s", "data.splits.val_start=2020-06-01",
                                "data.splits.test_start=2020-07-15",
                                "search.space_overrides.lr.low=1e-4"])
    assert config["data"]["splits"] == {"val_start": "2020-06-01", "test_start": "2020-07-15"}
    assert config["search"]["space_overrides"] == {"lr": {"low": 1e-4}}


def test_set_with_a_mapping_value(tmp_path):
    """A mapping sets the keys it names in a section of fixed keys (the others stay) and
    replaces the mapping anywhere else, as README's "Sweep config" says."""
    path = tmp_path / "sweep.yaml"
    path.write_text("study: s\ntraining: {max_iterations: 6, patience: 5}\nsearch:\n"
                    "  space_overrides: {gamma: 0.99, lr: {low: 1.0e-5, high: 1.0e-4}}\n"
                    "data: {splits: {train: 0.6, val: 0.2, test: 0.2}}\n")
    config = load_config(path, ["training={max_iterations: 4}",
                                "search.space_overrides.lr={high: 1e-3}",
                                "data.splits={val_start: 2020-06-01, test_start: 2020-07-15}"])
    assert config["training"]["max_iterations"] == 4 and config["training"]["patience"] == 5
    assert config["search"]["space_overrides"] == {"gamma": 0.99, "lr": {"high": 1e-3}}
    assert config["data"]["splits"] == {"val_start": "2020-06-01", "test_start": "2020-07-15"}
    config = load_config(path, ["search.space_overrides={window_size: 20}"])
    assert config["search"]["space_overrides"] == {"window_size": 20}


def test_set_null_clears_a_free_form_section(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("study: s\nsearch: {space_overrides: {gamma: 0.99}, enqueue: [{gamma: 0.98}]}\n"
                    "data: {splits: {train: 0.6, val: 0.2, test: 0.2}, synthetic: {seed: 3}}\n")
    config = load_config(path, ["search.space_overrides=null", "search.enqueue=null",
                                "data.splits=null", "data.synthetic=null"])
    assert config["search"]["space_overrides"] == {} and config["search"]["enqueue"] == []
    assert config["data"]["splits"] is None and config["data"]["synthetic"] is None


@pytest.mark.parametrize("sets, message", [
    (["search.space_overrides.gamma=0.99", "search.space_overrides.gamma.low=0.9"],
     r"--set search.space_overrides.gamma.low: search.space_overrides.gamma is 0.99, not a "
     r"mapping; set search.space_overrides.gamma itself instead"),
    (["training.max_iterations.low=3"], r"training.max_iterations is 20, not a mapping"),
    (["trainig.max_iterations=3"], r"unknown config key 'trainig'; did you mean 'training'\?"),
    (["training.max_iteration=3"], r"did you mean 'training.max_iterations'\?"),
    (["training..max_iterations=3"], r"--set 'training..max_iterations=3' must look like"),
    ([".x=3"], r"must look like KEY=VALUE"),
])
def test_set_errors_name_the_key(sets, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, ["study=s", *sets])
    assert "\n" not in str(info.value)


# -- issue 12 row 7: text keys keep what was typed ----------------------------------------------

@pytest.mark.parametrize("typed", ["0123", "2024-01-01", "1e3", "0x1F", "1_000", "0o17", "12.50",
                                   "yes", "off"])
def test_study_name_keeps_what_was_typed(typed, tmp_path):
    if typed in ("yes", "off"):
        typed = typed + "-study"  # plain 'yes' reads as true; not a number either way
    assert load_config(None, [f"study={typed}"])["study"] == typed
    path = tmp_path / "sweep.yaml"
    path.write_text(f"study: {typed}\n")
    assert load_config(path)["study"] == typed


def test_text_keys_keep_what_was_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text("study: 2024-01-01\ndata: {path: 20240101, features: [1, 2e3, close]}\n"
                    "storage: 0123\n")
    config = load_config(path)
    assert config["study"] == "2024-01-01"
    assert config["data"]["path"] == str(tmp_path / "20240101")
    assert config["data"]["features"] == ["1", "2e3", "close"]
    assert config["storage"] == "0123"
    config = load_config(None, ["study=s", "data.features=[007, open]", "storage=null"])
    assert config["data"]["features"] == ["007", "open"] and config["storage"] is None


@pytest.mark.parametrize("sets, message", [
    (["search.space=12"], r"search.space '12' must look like 'package.module:function'"),
    (["algorithm=1"], r"unknown algorithm '1'"),
    (["training.objectives=[sharpe, 1]"], r"unknown objective '1'"),
    (["env.reward=0.5"], r"env.reward is '0.5'"),
    (["search.sampler=2024-01-01"], r"search.sampler is '2024-01-01'"),
])
def test_text_keys_given_numbers_are_refused_as_typed(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["study=s", *sets])


# -- issue 12 row 8: scientific notation is a number everywhere -----------------------------------

def test_scientific_notation_in_a_file_and_in_set(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("study: s\ntraining: {min_delta: 1e-3, aggregate_k: 5E-1, max_env_steps: 1e6}\n"
                    "env: {commission: 2.5e-4, initial_cash: 1e+4}\n"
                    "search: {num_samples: 0123, space_overrides: {lr: {low: 1e-5, high: 1E-3}}}\n")
    config = load_config(path, ["resources.gpus_per_trial=5e-1", "search.seed=1e1"])
    assert config["training"]["min_delta"] == 1e-3 and config["training"]["aggregate_k"] == 0.5
    assert config["training"]["max_env_steps"] == 1_000_000
    assert config["env"] == {"commission": 2.5e-4, "initial_cash": 1e4, "reward": "log_return",
                             "actions": "long_only", "borrow_rate": 0.05,
                             "slippage": {"bps": 0.0, "vol_mult": 0.0, "vol_window": 24}}
    assert config["search"]["num_samples"] == 123  # YAML 1.2: not octal 83
    assert config["search"]["space_overrides"]["lr"] == {"low": 1e-5, "high": 1e-3}
    assert config["resources"]["gpus_per_trial"] == 0.5 and config["search"]["seed"] == 10
    with pytest.raises(ConfigError, match=r"search.num_samples must be a whole number, got 2.5"):
        load_config(path, ["search.num_samples=2.5e0"])


def test_command_line_yaml_options_read_scientific_notation_and_dates():
    assert parse_value("{train: 7e-1, val: 1.5e-1, test: 1.5E-1}", "data.splits") == {
        "train": 0.7, "val": 0.15, "test": 0.15}
    assert parse_value("{train_bars: 3e3, val_bars: 7.2e2, test_bars: 720}", "data.splits") == {
        "train_bars": 3000, "val_bars": 720, "test_bars": 720}
    assert parse_value("{folds: 3e0}", "data.walk_forward") == {"folds": 3}
    assert parse_value("{val_start: 2019-08-01, test_start: 2019-09-01 12:00:00}",
                       "data.splits") == {"val_start": "2019-08-01",
                                          "test_start": "2019-09-01T12:00:00"}
    assert parse_value("{unclosed", "data.splits") == "{unclosed"


# -- issue 12 row 9: YAML dates in date splits ---------------------------------------------------

def test_readme_date_splits_load_and_store_as_json(tmp_path):
    from trainables.market import prepare_market

    path = tmp_path / "sweep.yaml"
    path.write_text("study: s\ndata:\n  synthetic: {n_bars: 6000}\n"
                    "  splits: {val_start: 2020-06-01, test_start: 2020-07-15 12:00:00+02:00}\n")
    config = load_config(path)
    assert config["data"]["splits"] == {"val_start": "2020-06-01",
                                        "test_start": "2020-07-15T12:00:00+02:00"}
    json.dumps(config)  # the study stores its config as JSON
    market = prepare_market(config["data"])
    assert market.bars.index[market.splits["val"][0]] == pd.Timestamp("2020-06-01")
    assert market.bars.index[market.splits["test"][0]] == pd.Timestamp("2020-07-15 10:00")
    config = load_config(None, ["study=s", "data.splits={val_start: 2020-06-01, "
                                "test_start: 2020-07-15}", "data.splits.test_end=2020-08-01"])
    assert config["data"]["splits"]["test_end"] == "2020-08-01"


def test_dates_elsewhere_become_text_and_integer_dates_stay_text():
    config = load_config(None, ["study=s", "data.splits={val_start: 20200601, "
                                "test_start: 2020-07-15}"])
    assert config["data"]["splits"]["val_start"] == "20200601"  # never epoch seconds
    config = load_config(None, ["study=2019-02-30", "data.splits.val_start=2019-02-30"])
    assert config["study"] == "2019-02-30"  # not a date: text, not a traceback
    assert config["data"]["splits"]["val_start"] == "2019-02-30"
    with pytest.raises(ConfigError, match=r"training.min_delta must be a number, got '\.'"):
        load_config(None, ["study=s", "training.min_delta=."])
    with pytest.raises(ConfigError, match=r"^env.initial_cash must be a finite number, got a "
                                          r"400-digit number$"):
        load_config(None, ["study=s", "env.initial_cash=" + "9" * 400])
    with pytest.raises(ConfigError, match=r"search.num_samples must be a whole number"):
        load_config(None, ["study=s", "search.num_samples=" + "9" * 5000])  # no traceback
    with pytest.raises(ConfigError, match=r"parameter 'activation': a choice must be text"):
        load_config(None, ["study=s", "search.space_overrides.activation={choices: [relu, 1]}"])


# -- issue 12 row 14 and bad files: one line, bounded, no hang -------------------------------------

def test_yaml_anchors_and_aliases_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ["study: s", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 12):
        lines.append(f"{chr(97 + level)}: &{chr(97 + level)} [" + ", ".join(
            [f"*{chr(96 + level)}"] * 10) + "]")
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1000  # 10**12 leaves once expanded
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(str(bomb))}: YAML anchors "
                                          r"and aliases \(&name, \*name\) are not supported; "
                                          r"write the values out \(line 2\)$"):
        load_config(bomb)
    assert time.monotonic() - started < 5
    merged = tmp_path / "merge.yaml"
    merged.write_text("study: s\nbase: &base {max_iterations: 3}\ntraining:\n  <<: *base\n")
    with pytest.raises(ConfigError, match=r"anchors and aliases .* \(line 2\)"):
        load_config(merged)
    with pytest.raises(ConfigError, match=r"^--set search.enqueue: YAML anchors"):
        load_config(None, ["study=s", "search.enqueue=[&p {gamma: 0.99}, *p]"])


def test_a_fifo_as_config_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "sweep.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"is not a regular file \(a pipe, socket or device\)"):
        load_config(fifo)  # opening it would wait for a writer forever


def test_huge_deep_or_odd_config_files_are_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("study: s\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"is larger than 1024 KB"):
        load_config(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("study: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"is nested too deeply"):
        load_config(deep)
    nul = tmp_path / "nul.yaml"
    nul.write_text("study: s\x00\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML: special characters are not "
                                          r"allowed$"):
        load_config(nul)
    binary = tmp_path / "binary.yaml"
    binary.write_text("study: s\nenv: {commission: !!binary aGVsbG8=}\n")
    with pytest.raises(ConfigError, match=r"^env.commission holds a bytes \(\"b'hello'\"\); "
                                          r"use text"):
        load_config(binary)
    two = tmp_path / "two.yaml"
    two.write_text("study: a\n---\nstudy: b\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 2: but found another"):
        load_config(two)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfstudy: with-bom\n")
    assert load_config(bom)["study"] == "with-bom"
