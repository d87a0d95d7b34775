"""Tests for spaces: every space gives settings RLlib accepts, replays exactly, and overrides,
custom spaces and their errors behave as the sweep config promises."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap

import optuna
import pytest

from search.config.sweep_config import load_config
from search.errors import ConfigError
from spaces import ALGORITHMS, SEARCH_SPACES, SpaceError, algorithm_of, get_space
from spaces import ppo as ppo_space
from trainables.rllib_trainable import algorithm_config
from trainables.settings import MARKET_KEYS

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEEDS = range(50)
FRICTIONS = ("commission", "initial_cash", "splits", "split", "data", "actions", "borrow_rate",
             "slippage")


def ask(seed: int, sampler: str = "random") -> optuna.trial.Trial:
    """A fresh trial of a throw-away study, sampled by a seeded Optuna sampler."""
    make = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}[sampler]
    return optuna.create_study(sampler=make(seed=seed)).ask()


def sample(space, seed: int, sampler: str = "random") -> tuple[dict, dict]:
    trial = ask(seed, sampler)
    return space(trial), trial.params


def sweep_for(algorithm: str) -> dict:
    return load_config(None, ["study=spaces", f"algorithm={algorithm}"])


# -- every space gives RLlib-valid settings ---------------------------------------------------

@pytest.mark.parametrize("algorithm", sorted(SEARCH_SPACES))
def test_sampled_settings_pass_rllib_validation(algorithm):
    from trainables.env import ENV_DEFAULTS

    sweep = sweep_for(algorithm)
    space = get_space(algorithm)
    seen_batches = set()
    for seed in SEEDS:
        settings, _ = sample(space, seed, "random" if seed % 2 else "tpe")
        assert set(settings) == {"training", "model", "env"}
        assert set(settings["env"]) <= set(ENV_DEFAULTS), "env settings TradingEnv rejects"
        config = algorithm_config(algorithm, settings, sweep, seed=seed)
        config.validate()  # raises on anything RLlib would refuse at build time
        assert config.lr == settings["training"]["lr"]
        assert config.model_config["fcnet_hiddens"] == settings["model"]["fcnet_hiddens"]
        training = settings["training"]
        seen_batches.add(training["train_batch_size_per_learner"])
        if algorithm == "ppo":
            batch, minibatch = training["train_batch_size_per_learner"], training["minibatch_size"]
            assert 0 < minibatch <= batch
            assert batch % minibatch == 0
            assert config.minibatch_size == minibatch
    assert len(seen_batches) > 1, "the batch size is not being searched"


# -- the registry: one space module per algorithm ---------------------------------------------

def test_the_registry_lists_ppo_and_dqn_first_in_that_order():
    assert ALGORITHMS[:2] == ("ppo", "dqn") and list(SEARCH_SPACES) == list(ALGORITHMS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_space_declares_its_algorithm_and_the_trainable_builds_that_class(algorithm):
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    declared = algorithm_of(algorithm.upper())
    assert declared is SEARCH_SPACES[algorithm].ALGORITHM and declared.name == algorithm
    assert issubclass(declared.config_class(), AlgorithmConfig)
    space = get_space(algorithm, declared.tiny)  # its tiny settings are valid overrides
    settings, _ = sample(space, declared.tiny_seed)
    config = algorithm_config(algorithm, settings, sweep_for(algorithm), seed=0)
    assert type(config) is declared.config_class()
    assert config.num_env_runners == 0  # every trial samples in its own process
    for method, kwargs in declared.rllib_calls.items():
        assert all(getattr(config, key) == value for key, value in kwargs.items()), method
    config.validate()


def test_each_greedy_output_column_is_read_one_way():
    """Evaluation picks a reading by the column a module's output has (spaces.greedy_readings):
    two algorithms reading one column differently would change how the other is scored."""
    from spaces import greedy_readings

    keys = [reading.key for reading in greedy_readings()]
    assert len(keys) == len(set(keys)), keys
    assert [r.argmax for r in greedy_readings()] == sorted(r.argmax for r in greedy_readings())


def test_the_spaces_import_no_ray():
    """The query commands read the registry: naming a config class must not import RLlib."""
    code = "import sys, spaces; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ppo_validation_would_catch_a_minibatch_larger_than_the_batch():
    # The check above is only meaningful if RLlib's validate() looks at the minibatch.
    space = get_space("ppo")
    settings = space.replay(space.first_params)
    training = settings["training"]
    training["minibatch_size"] = training["train_batch_size_per_learner"] + 1
    with pytest.raises(ValueError, match="minibatch_size"):
        algorithm_config("ppo", settings, sweep_for("ppo")).validate()


# -- replay -----------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", sorted(SEARCH_SPACES))
def test_replay_gives_what_the_trial_sampled(algorithm):
    space = get_space(algorithm)
    outcomes = []
    for seed in range(20):
        settings, params = sample(space, seed)
        assert space.replay(params) == settings
        assert space.replay(dict(params)) == space.replay(params)
        outcomes.append(settings)
    assert len({repr(s) for s in outcomes}) == len(outcomes), "seeds gave identical settings"


def test_replay_with_overrides_keeps_the_fixed_values():
    space = get_space("ppo", {"train_batch_size": 200, "num_minibatches": 2, "hidden_width": 16})
    settings, params = sample(space, 3)
    assert {"train_batch_size", "num_minibatches", "hidden_width"}.isdisjoint(params)
    assert space.replay(params) == settings
    assert settings["training"]["train_batch_size_per_learner"] == 200
    assert settings["training"]["minibatch_size"] == 100
    assert settings["model"]["fcnet_hiddens"][0] == 16


# -- the tutorial's configuration ---------------------------------------------------------------

def test_tutorial_params_are_the_first_trial_and_replay_to_the_tutorial_settings():
    space = get_space("ppo")
    assert space.first_params == ppo_space.TUTORIAL_PARAMS
    settings = space.replay(space.first_params)
    training = settings["training"]
    assert training["lr"] == 3.29e-05
    assert training["gamma"] == 0.992
    assert training["lambda_"] == 0.9
    assert training["clip_param"] == 0.123
    assert training["entropy_coeff"] == 0.015
    assert training["num_epochs"] == 7
    assert training["train_batch_size_per_learner"] == 2000
    assert training["minibatch_size"] == 250
    assert settings["model"] == {"fcnet_hiddens": [128, 128], "fcnet_activation": "tanh"}
    assert settings["env"] == {"window_size": 17, "max_allowed_loss": 0.32}
    algorithm_config("ppo", settings, sweep_for("ppo")).validate()


def test_dqn_has_no_tutorial_trial():
    assert get_space("dqn").first_params is None


def test_tutorial_params_drop_the_ones_an_override_fixes():
    space = get_space("ppo", {"train_batch_size": 200, "hidden_width": 16})
    assert space.first_params == {k: v for k, v in ppo_space.TUTORIAL_PARAMS.items()
                                  if k not in ("train_batch_size", "hidden_width")}
    settings = space.replay(space.first_params)
    assert settings["training"]["train_batch_size_per_learner"] == 200
    assert settings["model"]["fcnet_hiddens"] == [16, 16]
    assert settings["training"]["lr"] == 3.29e-05


def test_enqueued_tutorial_trial_respects_narrowed_ranges_and_choices():
    # The service enqueues first_params into the study; a tutorial value outside the user's
    # range must then be sampled inside it (not run outside it, not crash on a missing choice).
    space = get_space("ppo", {"lr": {"low": 1e-4, "high": 1e-3},
                              "hidden_width": {"choices": [16, 32]}})
    assert "lr" not in space.first_params and "hidden_width" not in space.first_params
    assert space.first_params["gamma"] == 0.992
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(space.first_params)
    trial = study.ask()
    settings = space(trial)
    assert 1e-4 <= settings["training"]["lr"] <= 1e-3
    assert settings["model"]["fcnet_hiddens"][0] in (16, 32)
    assert settings["training"]["gamma"] == 0.992
    assert settings["env"]["window_size"] == 17


# -- market frictions are never searched --------------------------------------------------------

@pytest.mark.parametrize("algorithm", sorted(SEARCH_SPACES))
def test_frictions_are_not_search_dimensions(algorithm):
    module = SEARCH_SPACES[algorithm]
    space = get_space(algorithm)
    for name in FRICTIONS:
        assert not any(name in dim for dim in module.DIMENSIONS)
        assert not any(name in key for key in space.description)
    settings, params = sample(space, 0)
    assert not set(FRICTIONS) & set(params)
    assert not set(FRICTIONS) & set(settings["env"])
    for name in MARKET_KEYS:
        with pytest.raises(SpaceError, match=f"^'{name}' cannot be searched: it is a market "
                                             f"friction or product choice, fixed per study"):
            get_space(algorithm, {name: 0.0001})


# -- overrides ------------------------------------------------------------------------------------

def test_fixing_a_value():
    default, space = get_space("ppo"), get_space("ppo", {"lr": 1e-4})
    assert space.fingerprint != default.fingerprint
    assert space.description["lr"] == "fixed 0.0001"
    for seed in range(10):
        settings, params = sample(space, seed)
        assert "lr" not in params
        assert settings["training"]["lr"] == 1e-4


def test_fixing_a_value_written_the_yaml_way():
    # YAML 1.1 reads 1e-5 (no dot) as the string '1e-5'; the config's loader reads it as a
    # number, and a quoted number is still taken as one (RLlib would reject text in a trial).
    config = load_config(None, ["study=s", "search.space_overrides={lr: 1e-5, num_epochs: '4'}"])
    assert config["search"]["space_overrides"]["lr"] == 1e-5
    space = get_space("ppo", config["search"]["space_overrides"])
    settings, _ = sample(space, 0)
    assert settings["training"]["lr"] == 1e-5 and isinstance(settings["training"]["lr"], float)
    assert settings["training"]["num_epochs"] == 4 and isinstance(
        settings["training"]["num_epochs"], int)
    algorithm_config("ppo", settings, config).validate()


def test_narrowing_a_range():
    default = get_space("ppo")
    space = get_space("ppo", {"lr": {"low": 1e-4, "high": 2e-4},
                              "num_epochs": {"low": 4, "high": 5}})
    assert space.fingerprint != default.fingerprint
    assert space.description["lr"] == "0.0001..0.0002 (log)"  # log kept from the built-in range
    epochs = set()
    for seed in range(30):
        settings, _ = sample(space, seed)
        assert 1e-4 <= settings["training"]["lr"] <= 2e-4
        epochs.add(settings["training"]["num_epochs"])
    assert epochs == {4, 5}


def test_widening_a_range_and_turning_log_off():
    space = get_space("ppo", {"clip_param": {"low": 0.5, "high": 0.9}, "lr": {"log": False}})
    assert space.description["lr"] == "1e-05..0.001"
    for seed in range(10):
        settings, _ = sample(space, seed)
        assert 0.5 <= settings["training"]["clip_param"] <= 0.9


def test_changing_choices():
    default = get_space("dqn")
    space = get_space("dqn", {"hidden_width": {"choices": [16, 24]},
                              "dueling": {"choices": [False]}})
    assert space.fingerprint != default.fingerprint
    widths = set()
    for seed in range(30):
        settings, _ = sample(space, seed)
        widths.add(settings["model"]["fcnet_hiddens"][0])
        assert settings["training"]["dueling"] is False
    assert widths == {16, 24}


def test_fingerprint_is_stable_and_tracks_every_change():
    overrides = [None, {"lr": 1e-4}, {"lr": 2e-4}, {"lr": {"low": 1e-4, "high": 1e-3}},
                 {"lr": {"low": 1e-4, "high": 1e-3, "log": False}},
                 {"activation": {"choices": ["relu"]}}, {"activation": "relu"}]
    prints = [get_space("ppo", o).fingerprint for o in overrides]
    assert prints == [get_space("ppo", o).fingerprint for o in overrides]
    assert len(set(prints)) == len(prints)
    assert get_space("ppo").fingerprint != get_space("dqn").fingerprint


@pytest.mark.parametrize("overrides, match", [
    ({"lr": {"low": 1e-3, "high": 1e-4}},
     r"parameter 'lr': low \(0\.001\) is greater than high \(0\.0001\)"),
    ({"lr": {"low": 0, "high": 1e-3}}, r"parameter 'lr': a log range must be positive, got low=0"),
    ({"gamma": {"low": -1.0, "high": 0.99, "log": True}}, r"parameter 'gamma': a log range"),
    ({"lrr": 1e-4}, r"unknown search parameter 'lrr'; did you mean 'lr'\?"),
    ({"gama": {"low": 0.9, "high": 0.99}},
     r"unknown search parameter 'gama'; did you mean 'gamma'\?"),
    ({"gamma": {"lo": 0.9, "high": 0.99}},
     r"parameter 'gamma': unknown override key\(s\) \['lo'\]; allowed: \['high', 'log', 'low'\]"),
    ({"activation": {"low": 1}}, r"parameter 'activation': unknown override key\(s\) \['low'\]"),
    ({"gamma": {"low": "abc", "high": 0.99}},
     r"parameter 'gamma': override values must be numbers"),
    ({"gamma": {"low": None, "high": 0.99}}, r"parameter 'gamma': override values must be numbers"),
    ({"gamma": {"low": float("nan"), "high": 0.99}},
     r"parameter 'gamma': low and high must be finite"),
    ({"activation": {"choices": []}}, r"parameter 'activation': choices must not be empty"),
    ({"activation": {}}, r"parameter 'activation': choices must be a list, got None"),
    ({"activation": {"choices": "relu"}}, r"parameter 'activation': choices must be a list"),
    ({"num_epochs": {"low": 2.5, "high": 10}},
     r"parameter 'num_epochs': integer range needs whole"),
    ({"num_epochs": 2.5}, r"parameter 'num_epochs': a fixed value must be a whole number"),
    ({"lr": "fast"}, r"parameter 'lr': a fixed value must be a number, got 'fast'"),
    ({"lr": True}, r"parameter 'lr': a fixed value must be a number, got True"),
])
def test_bad_overrides_are_one_line_errors_naming_the_parameter(overrides, match):
    with pytest.raises(SpaceError, match=match) as error:
        get_space("ppo", overrides)
    assert "\n" not in str(error.value)


# Values outside a dimension's domain (not just its search range): every trial would fail on
# them, so they are refused before a study is created.
@pytest.mark.parametrize("algorithm, overrides, match", [
    ("ppo", {"window_size": 0},
     r"^parameter 'window_size': a fixed value must be >= 1 \(bars in an observation\), got 0$"),
    ("ppo", {"lr": -0.1}, r"^parameter 'lr': a fixed value must be > 0 \(a learning rate\), "
                          r"got -0\.1$"),
    ("ppo", {"gamma": 1.5}, r"^parameter 'gamma': a fixed value must be in \(0, 1\] "),
    ("ppo", {"train_batch_size": 1, "num_minibatches": 4},
     r"^parameter 'train_batch_size': train_batch_size \(1\) must be at least "
     r"num_minibatches \(4\): a minibatch holds"),
    # the variants: a range bound, a choice, a rule between two ranges, other algorithms
    ("ppo", {"gamma": {"low": 0.9, "high": 1.2}}, r"^parameter 'gamma': high must be in \(0, 1\]"),
    ("ppo", {"lr": {"low": 0, "high": 1e-3, "log": False}},
     r"^parameter 'lr': low must be > 0 \(a learning rate\), got 0"),
    ("ppo", {"hidden_width": {"choices": [0, 64]}},
     r"^parameter 'hidden_width': a choice must be >= 1 \(units per layer\), got 0$"),
    ("ppo", {"hidden_width": -8}, r"^parameter 'hidden_width': a choice must be >= 1"),
    ("ppo", {"max_allowed_loss": 0}, r"^parameter 'max_allowed_loss': a fixed value must be in "
                                     r"\(0, 1\]"),
    ("ppo", {"train_batch_size": {"low": 8, "high": 64}, "num_minibatches": {"low": 1, "high": 16}},
     r"^parameter 'train_batch_size': the lowest train_batch_size \(8\) must be at least the "
     r"highest num_minibatches \(16\)"),
    ("dqn", {"epsilon_final": 1.5}, r"^parameter 'epsilon_final': a fixed value must be in "
                                    r"\[0, 1\]"),
    ("dqn", {"n_step": 0}, r"^parameter 'n_step': a fixed value must be >= 1"),
    ("appo", {"vf_loss_coeff": -1}, r"^parameter 'vf_loss_coeff': a fixed value must be >= 0"),
    ("appo", {"circular_buffer_num_batches": 0},
     r"^parameter 'circular_buffer_num_batches': a fixed value must be >= 1"),
])
def test_values_outside_a_dimension_s_domain_are_refused(algorithm, overrides, match):
    with pytest.raises(SpaceError, match=match) as error:
        get_space(algorithm, overrides)
    assert "\n" not in str(error.value)


def test_domain_edges_that_are_valid_pass_and_domains_leave_fingerprints_alone():
    space = get_space("ppo", {"gamma": 1.0, "lambda_": 0.0, "entropy_coeff": 0, "window_size": 1,
                              "train_batch_size": 4, "num_minibatches": 4,
                              "max_allowed_loss": 1.0})
    assert space.replay({k: v for k, v in sample(space, 0)[1].items()})["training"][
        "minibatch_size"] == 1
    # Stored studies keep their space's fingerprint (resume compares it): the values below
    # are the fingerprints before the domains were declared.
    assert get_space("ppo").fingerprint == "f92032cc0b5ac609"
    assert get_space("dqn").fingerprint == "5a89f03eb489d0c6"
    assert get_space("appo").fingerprint == "50c71fa61d7db397"
    assert get_space("ppo", {"lr": 1e-4, "gamma": {"low": 0.9, "high": 0.99}}).fingerprint \
        == "3502942f587c0cc5"


def test_every_dimension_declares_its_domain():
    from spaces.dimensions import ANY, Categorical

    for algorithm, module in SEARCH_SPACES.items():
        for name, dim in module.DIMENSIONS.items():
            numeric = not isinstance(dim, Categorical) or all(
                isinstance(c, int) and not isinstance(c, bool) for c in dim.choices)
            assert (dim.domain != ANY) == numeric, (algorithm, name)
            if not isinstance(dim, Categorical):
                assert dim.domain.contains(dim.low) and dim.domain.contains(dim.high)


@pytest.mark.parametrize("point, match", [
    ("{gamma: 1.5}", r"search.enqueue\[0\] is not valid: parameter 'gamma': a value must be in "
                     r"\(0, 1\] \(a discount factor\), got 1\.5$"),
    ("{train_batch_size: 1000, num_minibatches: 2000}",
     r"search.enqueue\[0\] is not valid: parameter 'train_batch_size': train_batch_size "
     r"\(1000\) must be at least num_minibatches \(2000\)"),
])
def test_an_enqueued_point_outside_the_domain_is_refused(point, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["study=s", f"search.enqueue=[{point}]"])


def test_dqn_rejects_ppo_only_parameters():
    with pytest.raises(SpaceError, match=r"unknown search parameter 'num_minibatches'.*known: "):
        get_space("dqn", {"num_minibatches": 2})


def test_unknown_algorithm_suggests_the_closest():
    with pytest.raises(SpaceError, match=r"unknown algorithm 'ppp'; did you mean 'ppo'\? "
                                         + re.escape(f"(choose one of {', '.join(ALGORITHMS)})")):
        get_space("ppp")
    with pytest.raises(SpaceError, match=r"unknown algorithm 'sac' \(choose one of"):
        get_space("sac")
    assert get_space("PPO").algorithm == "ppo"


# -- custom spaces ------------------------------------------------------------------------------

CUSTOM = """
def sample(trial):
    lr = trial.suggest_float("lr", {low}, 1e-3, log=True)
    width = trial.suggest_categorical("width", [16, 32])
    epochs = trial.suggest_int("epochs", 1, 3)
    return {{"training": {{"lr": lr, "num_epochs": epochs, "train_batch_size_per_learner": 200,
                          "minibatch_size": 100}},
             "model": {{"fcnet_hiddens": [width], "fcnet_activation": "relu"}},
             "env": {{"window_size": 5, "max_allowed_loss": 0.3}}}}

not_a_function = 3
"""


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    """Factory: write a module defining ``sample(trial)`` on a fresh sys.path entry."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, low: float = 1e-4) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(CUSTOM.format(low=low)))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    yield write


def test_custom_space_samples_replays_and_validates(custom_module):
    name = custom_module("tt_custom_space_a")
    space = get_space("ppo", custom=f"{name}:sample")
    assert space.description == {"custom": f"{name}:sample"}
    assert space.first_params is None and len(space.fingerprint) == 16
    sweep = sweep_for("ppo")
    widths = set()
    for seed in range(10):
        settings, params = sample(space, seed)
        assert set(params) == {"lr", "width", "epochs"}
        assert space.replay(params) == settings
        widths.add(settings["model"]["fcnet_hiddens"][0])
        algorithm_config("ppo", settings, sweep).validate()
    assert widths == {16, 32}
    assert get_space("ppo", custom=f"{name}:sample").fingerprint == space.fingerprint


def test_custom_space_fingerprint_follows_its_source(custom_module):
    first = get_space("ppo", custom=f"{custom_module('tt_custom_space_b')}:sample")
    second = get_space("ppo", custom=f"{custom_module('tt_custom_space_c', low=1e-5)}:sample")
    assert first.fingerprint != second.fingerprint


def test_custom_space_through_the_sweep_config(custom_module):
    name = custom_module("tt_custom_space_d")
    config = load_config(None, ["study=s", f"search.space={name}:sample"])
    assert config["search"]["space"] == f"{name}:sample"
    with pytest.raises(ConfigError, match="cannot be combined with a custom search.space"):
        load_config(None, ["study=s", f"search.space={name}:sample",
                           "search.space_overrides={lr: 0.001}"])


def test_custom_space_with_overrides_is_refused(custom_module):
    name = custom_module("tt_custom_space_e")
    with pytest.raises(SpaceError, match=r"search.space_overrides cannot be combined with a "
                                         r"custom search.space"):
        get_space("ppo", {"lr": 1e-4}, custom=f"{name}:sample")


@pytest.mark.parametrize("reference, match", [
    ("nocolon", r"search.space 'nocolon' must look like 'package.module:function'"),
    (":sample", r"must look like 'package.module:function'"),
    ("os:", r"must look like 'package.module:function'"),
    ("tt_missing_mod_xyz:f", r"search.space 'tt_missing_mod_xyz:f': cannot import "
                             r"'tt_missing_mod_xyz'"),
    ("os:nope", r"search.space 'os:nope': 'os' has no function 'nope'"),
    ("os:sep", r"'os' has no function 'sep'"),
])
def test_bad_custom_references(reference, match):
    with pytest.raises(SpaceError, match=match) as error:
        get_space("ppo", custom=reference)
    assert "\n" not in str(error.value)


def test_custom_reference_to_a_non_function(custom_module):
    name = custom_module("tt_custom_space_f")
    with pytest.raises(SpaceError, match=f"'{name}' has no function 'not_a_function'"):
        get_space("ppo", custom=f"{name}:not_a_function")


# -- the sweep config turns space errors into ConfigError one-liners ------------------------------

@pytest.mark.parametrize("sets, match", [
    (["search.space_overrides={lr: {low: 1, high: 0}}"],
     r"parameter 'lr': low \(1\.0\) is greater than high \(0\.0\)"),
    (["search.space_overrides={lr: {low: 0, high: 0.001}}"], r"parameter 'lr': a log range"),
    (["search.space_overrides={lrr: 0.001}"], r"unknown search parameter 'lrr'; did you mean 'lr'"),
    (["search.space_overrides={gamma: {min: 0.9}}"], r"parameter 'gamma': unknown override key"),
    (["search.space_overrides={gamma: {low: x, high: 0.99}}"],
     r"parameter 'gamma': override values must be numbers"),
    (["search.space_overrides={activation: {choices: []}}"],
     r"parameter 'activation': choices must not be empty"),
    (["search.space_overrides={lr: fast}"], r"parameter 'lr': a fixed value must be a number"),
    (["algorithm=ppp"], r"unknown algorithm 'ppp'; did you mean 'ppo'"),
    (["algorithm=dqn", "search.space_overrides={num_minibatches: 2}"],
     r"unknown search parameter 'num_minibatches'"),
    (["search.space=nocolon"], r"search.space 'nocolon' must look like"),
    (["search.space=os:nope"], r"'os' has no function 'nope'"),
])
def test_sweep_config_reports_space_errors_as_one_line(sets, match):
    with pytest.raises(ConfigError, match=match) as error:
        load_config(None, ["study=s", *sets])
    assert "\n" not in str(error.value)


def test_sweep_config_file_with_overrides(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent("""
        study: from-file
        algorithm: DQN
        search:
          space_overrides:
            lr: 1e-4
            train_batch_size: 32
            hidden_width: {choices: [16]}
            gamma: {low: 0.97, high: 0.98}
    """))
    config = load_config(path)
    assert config["algorithm"] == "dqn"
    space = get_space(config["algorithm"], config["search"]["space_overrides"])
    settings, params = sample(space, 1)
    assert settings["training"]["lr"] == 1e-4
    assert settings["training"]["train_batch_size_per_learner"] == 32
    assert settings["model"]["fcnet_hiddens"][0] == 16
    assert 0.97 <= settings["training"]["gamma"] <= 0.98
    assert math.isclose(space.replay(params)["training"]["gamma"], settings["training"]["gamma"])
    algorithm_config("dqn", settings, config).validate()


@pytest.mark.parametrize("overrides, match", [
    ({"lr": 10 ** 400}, r"parameter 'lr': a fixed value must be a number"),
    ({"lr": {"low": 1e-5, "high": 10 ** 400}}, r"parameter 'lr': low and high must be finite"),
    ({"num_epochs": {"low": 1, "high": 10 ** 400}}, r"integer range needs whole numbers"),
    ({"hidden_width": 10 ** 400}, r"parameter 'hidden_width': a choice must be a whole number"),
    ({"hidden_width": {"choices": [64, float("nan")]}}, r"a choice must be a whole number"),
    ({"lr": {"low": True, "high": 1e-3}}, r"override values must be numbers, got low=True"),
    ({"lr": {"log": "yes"}}, r"parameter 'lr': log must be true or false, got 'yes'"),
])
def test_overrides_too_large_for_a_float_or_not_numbers_are_one_line_errors(overrides, match):
    """Python ints have no bound: 10**400 made float() raise OverflowError (a traceback)."""
    with pytest.raises(SpaceError, match=match):
        get_space("ppo", overrides)


# -- the dry run of a custom space before a study is created or resumed ---------------------------

BROKEN = {
    "not_a_dict": ("def sample(trial):\n    return [trial.suggest_float('lr', 1e-4, 1e-3)]\n",
                   r"is not a valid space: it returned list, not a dict"),
    "flat_params": ("def sample(trial):\n    return {'lr': trial.suggest_float('lr', 0, 1)}\n",
                    r"is not a valid space: unknown key\(s\) \['lr'\]"),
    "no_model": ("def sample(trial):\n    return {'training': {}, 'env': {}}\n",
                 r"'model' is missing, not a dict"),
    "numpy_value": ("import numpy as np\ndef sample(trial):\n    return {'training': {'lr': "
                    "np.float32(trial.suggest_float('lr', 1e-4, 1e-3))}, 'model': {}}\n",
                    r"training.lr is a numpy.float32 .*use plain Python values"),
    "nan_value": ("def sample(trial):\n    trial.suggest_int('n', 1, 2)\n    return {'training': "
                  "{'gamma': float('nan')}, 'model': {}}\n",
                  r"training.gamma is nan, not a finite"),
    "friction": ("def sample(trial):\n    return {'training': {}, 'model': {}, 'env': "
                 "{'commission': trial.suggest_float('c', 0, 0.01)}}\n",
                 r"env setting\(s\) \['commission'\] cannot be searched"),
    "raises": ("def sample(trial):\n    raise KeyError('hidden_width')\n",
               r"raised KeyError: 'hidden_width' when called on a test trial"),
    "no_argument": ("def sample():\n    return {}\n", r"raised TypeError: sample\(\) takes 0 "),
    "impure": ("import itertools\n_calls = itertools.count()\ndef sample(trial):\n    return "
               "{'training': {'lr': 1e-4 * (1 + next(_calls))}, 'model': {}}\n",
               r"is not a pure function of the trial"),
    "rllib_refuses": ("def sample(trial):\n    return {'training': {'not_an_rllib_key': 1}, "
                      "'model': {}}\n", r"returned settings RLlib refuses for ppo: TypeError"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_dry_run_refuses_an_invalid_custom_space_in_one_line(case, tmp_path, monkeypatch):
    from trainables.rllib_trainable import check_custom_space as dry_run

    code, match = BROKEN[case]
    module = f"tt_broken_space_{case}"
    (tmp_path / f"{module}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    space = get_space("ppo", custom=f"{module}:sample")
    with pytest.raises(SpaceError, match=match) as error:
        dry_run(space, sweep_for("ppo"))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"search.space '{module}:sample'")


def test_dry_run_accepts_a_valid_custom_space_and_ignores_built_ins(custom_module):
    from trainables.rllib_trainable import check_custom_space as dry_run

    dry_run(get_space("ppo", custom=f"{custom_module('tt_custom_space_g')}:sample"),
            sweep_for("ppo"))
    dry_run(get_space("ppo"), {})  # built-in spaces are checked by the tests above, not here


@pytest.mark.parametrize("algorithm", sorted(SEARCH_SPACES))
def test_the_shape_check_accepts_every_built_in_space(algorithm):
    from spaces import settings_problem

    space = get_space(algorithm)
    for seed in range(10):
        assert settings_problem(sample(space, seed)[0]) is None


def test_a_module_that_fails_on_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "tt_import_fails.py").write_text("import json\nx = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpaceError, match=r"search.space 'tt_import_fails:f': importing "
                                         r"'tt_import_fails' raised ZeroDivisionError: division "
                                         r"by zero$"):
        get_space("ppo", custom="tt_import_fails:f")
    with pytest.raises(SpaceError, match=r"cannot import 'tt_no_such_module_q' .*PYTHONPATH"):
        get_space("ppo", custom="tt_no_such_module_q:f")
