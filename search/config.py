"""The sweep config: defaults, YAML file, ``--set`` overrides, and validation before Ray starts.

Every error names the key, the bad value and what is allowed, so a sweep never dies minutes
into a run on something that could have been checked up front.
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from search.errors import ConfigError
from trainables import metrics as M
from trainables.rllib_trainable import TRAINING_DEFAULTS
from trainables.settings import ENV_DEFAULTS, MARKET_KEYS, REWARDS

DEFAULTS: dict[str, Any] = {
    "study": None,
    "algorithm": "ppo",
    "data": {"path": None, "synthetic": None, "splits": None, "features": None,
             "walk_forward": None},
    "env": {key: ENV_DEFAULTS[key] for key in MARKET_KEYS},
    "search": {"num_samples": 20, "max_concurrent": 1, "scheduler": "none", "seed": 42,
               "space": None, "space_overrides": {}, "enqueue_tutorial": True, "enqueue": [],
               "sampler": "tpe", "startup_trials": None},
    "training": dict(TRAINING_DEFAULTS),
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    "storage": None,
}
# Sections whose contents are free-form (validated by their own modules).
_OPEN_SECTIONS = {("data", "synthetic"), ("data", "splits"), ("data", "walk_forward"),
                  ("search", "space_overrides"), ("search", "enqueue")}
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_study_name(name: Any) -> str:
    """Study names become directory names: letters, digits, '.', '_', '-', up to 100.
    A whole number is taken as its digits (YAML reads ``study: 2024`` as a number)."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if name is None or isinstance(name, str) and not name.strip():
        raise ConfigError("study name is empty; give one with --study NAME or 'study:' in "
                          "the config")
    if not isinstance(name, str):
        raise ConfigError(f"study name must be text, got {name!r}")
    if not STUDY_NAME.match(name):
        raise ConfigError(f"invalid study name {name[:60]!r}: use up to 100 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit")
    return name


def load_config(path: str | Path | None, sets: list[str] | None = None,
                study: str | None = None) -> dict[str, Any]:
    """Read, merge and validate a sweep config; raise ``ConfigError`` with one line."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        _merge(config, _read_yaml(Path(path)), ())
    for item in sets or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} must look like KEY=VALUE, e.g. "
                              "search.num_samples=10")
        _merge(config, _nested(key.strip().split("."), _parse_value(raw)), ())
    if study is not None:
        config["study"] = study
    validate(config)
    return config


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {what}")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got "
                          f"{type(data).__name__}")
    return data


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _nested(keys: list[str], value: Any) -> dict:
    for key in reversed(keys[1:]):
        value = {key: value}
    return {keys[0]: value}


def _merge(target: dict, source: dict, prefix: tuple) -> None:
    for key, value in source.items():
        path = (*prefix, str(key))
        dotted = ".".join(path)
        if path in _OPEN_SECTIONS or path[:2] in _OPEN_SECTIONS and len(path) > 2:
            target[key] = value
            continue
        if key not in target:
            close = difflib.get_close_matches(str(key), [str(k) for k in target], n=1)
            hint = f"; did you mean {'.'.join((*prefix, close[0]))!r}?" if close else ""
            raise ConfigError(f"unknown config key {dotted!r}{hint}")
        if isinstance(target[key], dict) and path not in _OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted!r} must be a mapping, got {value!r}")
            _merge(target[key], value, path)
        else:
            target[key] = value


def _number(config: dict, dotted: str, kind: type, low: float | None = None,
            optional: bool = False, strict_low: bool = False) -> None:
    section, key = dotted.split(".")
    value = config[section][key]
    if value is None and optional:
        return
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        want = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{dotted} must be {want}, got {value!r}")
    if low is not None and (value <= low if strict_low else value < low):
        op = ">" if strict_low else ">="
        raise ConfigError(f"{dotted} must be {op} {low}, got {value!r}")


def _choice(config: dict, dotted: str, allowed: list[str]) -> None:
    section, key = dotted.split(".")
    value = config[section][key]
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{dotted} is {value!r}{hint} (allowed: {', '.join(allowed)})")


def validate(config: dict[str, Any]) -> None:
    """Check every key that can be checked without loading data or starting Ray."""
    from spaces import SpaceError, check_algorithm, get_space

    config["study"] = check_study_name(config["study"])
    try:
        config["algorithm"] = check_algorithm(config["algorithm"])
        get_space(config["algorithm"], config["search"]["space_overrides"],
                  config["search"]["space"])
    except SpaceError as exc:
        raise ConfigError(str(exc)) from None
    for dotted in ("search.num_samples", "search.max_concurrent", "training.max_iterations",
                   "training.eval_every", "training.patience", "training.envs_per_runner",
                   "training.seeds"):
        _number(config, dotted, int, 1)
    for dotted in ("training.min_evals", "training.max_failures", "search.seed"):
        _number(config, dotted, int, 0)
    _number(config, "training.max_env_steps", int, 1, optional=True)
    _number(config, "search.startup_trials", int, 1, optional=True)
    _number(config, "training.min_delta", float, 0)
    _number(config, "training.aggregate_k", float, 0)
    _number(config, "env.commission", float, 0)
    _number(config, "env.initial_cash", float, 0, strict_low=True)
    _number(config, "resources.cpus_per_trial", float, 0, strict_low=True)
    _number(config, "resources.gpus_per_trial", float, 0)
    if config["env"]["commission"] >= 1:
        raise ConfigError(f"env.commission is a fraction below 1 (0.001 = 0.1%), got "
                          f"{config['env']['commission']!r}")
    _choice(config, "search.scheduler", ["none", "asha"])
    _choice(config, "search.sampler", ["tpe", "random"])
    _choice(config, "training.objective", list(M.OBJECTIVES))
    _choice(config, "training.aggregate", list(M.AGGREGATES))
    _choice(config, "env.reward", list(REWARDS))
    training = config["training"]
    if training["eval_every"] > training["max_iterations"]:
        raise ConfigError(f"training.eval_every ({training['eval_every']}) is larger than "
                          f"training.max_iterations ({training['max_iterations']}): the trial "
                          "would never be validated")
    _check_objectives(config, several_runs=_check_runs(config))
    path = config["data"]["path"]
    if path is not None:
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"data.path must be a file path, got {path!r}")
        # Trials run in their own working directories: pin the path now.
        config["data"]["path"] = str(Path(path).expanduser().resolve())
    if not isinstance(config["search"]["enqueue_tutorial"], bool):
        raise ConfigError("search.enqueue_tutorial must be true or false")
    if not isinstance(config["training"]["vector_env"], bool):
        raise ConfigError("training.vector_env must be true or false (false = the TensorTrade "
                          "env)")
    _check_enqueue(config)


def startup_trials(search: dict[str, Any]) -> int:
    """How many random trials TPE draws before it models the finished ones.

    Optuna's fixed 10 would leave a 20-trial sweep half random and an 8-trial one all random;
    by default a third of the budget, between 1 and 10."""
    chosen = search.get("startup_trials")
    if chosen is not None:
        return chosen
    return max(1, min(10, search["num_samples"] // 3))


def _check_runs(config: dict[str, Any]) -> bool:
    """``data.walk_forward`` and ``training.seeds``: the runs each trial makes; True when a
    trial makes more than one."""
    from trainables.data import DataError, walk_forward_settings

    try:
        walk_forward = walk_forward_settings(config["data"]["walk_forward"])
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    several = walk_forward is not None or config["training"]["seeds"] > 1
    if several and config["search"]["scheduler"] == "asha":
        raise ConfigError("search.scheduler 'asha' cannot be used with data.walk_forward or "
                          "training.seeds > 1: ASHA would judge trials on their first run alone "
                          "(allowed: scheduler none, or a single run per trial)")
    return several


def _check_objectives(config: dict[str, Any], several_runs: bool) -> None:
    """``training.objectives``: a multi-objective study. Its first objective replaces
    ``training.objective`` (it picks the kept checkpoint), so it must be a maximised score."""
    training = config["training"]
    objectives = training.get("objectives")
    if objectives is None:
        return
    if not isinstance(objectives, list) or len(objectives) < 2:
        raise ConfigError("training.objectives must be null or a list of at least 2 objectives "
                          f"such as [sharpe, max_drawdown], got {objectives!r}")
    allowed = [*M.OBJECTIVES, *M.MINIMISED]
    for name in objectives:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"training.objectives has unknown objective {name!r}{hint} "
                              f"(allowed: {', '.join(allowed)})")
    if len(set(objectives)) < len(objectives):
        raise ConfigError(f"training.objectives lists an objective twice: {objectives}")
    if objectives[0] not in M.OBJECTIVES:
        raise ConfigError(f"the first of training.objectives picks each trial's kept checkpoint "
                          f"and must be a maximised score ({', '.join(M.OBJECTIVES)}), got "
                          f"{objectives[0]!r}; put it later in the list")
    if several_runs or config["search"]["scheduler"] == "asha":
        raise ConfigError("training.objectives (a multi-objective study) takes one run per "
                          "trial: it cannot be combined with data.walk_forward, training.seeds "
                          "> 1 or search.scheduler 'asha'")
    training["objective"] = objectives[0]


def _check_enqueue(config: dict[str, Any]) -> None:
    """``search.enqueue``: parameter sets to run first, each a mapping of searched names."""
    from spaces import SpaceError, get_space

    points = config["search"]["enqueue"]
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError("search.enqueue must be a list of parameter mappings, e.g. "
                          "[{lr: 0.0001, gamma: 0.99}]")
    if config["search"]["space"]:
        return  # a custom space's parameter names are only known when it runs
    space = get_space(config["algorithm"], config["search"]["space_overrides"])
    known = set(space.description)
    for index, point in enumerate(points):
        unknown = sorted(set(point) - known)
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"search.enqueue[{index}] has unknown parameter "
                              f"{unknown[0]!r}{hint}")
        try:
            space.replay({**_sampled_defaults(space), **point})
        except (SpaceError, ValueError, TypeError) as exc:
            raise ConfigError(f"search.enqueue[{index}] is not valid: {exc}") from None


def _sampled_defaults(space: Any) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space(trial)
    return trial.params
