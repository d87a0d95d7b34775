"""The sweep config: defaults, YAML file, ``--set`` overrides, and validation before Ray starts.

Every error names the key, the bad value and what is allowed, so a sweep never dies minutes
into a run on something that could have been checked up front.
"""
from __future__ import annotations

import copy
import datetime
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.config.keys import (
    DEFAULTS,
    NUMBER_KEYS,
    OPEN_SECTIONS,
    SAMPLERS,
    STUDY_NAME,
    WHOLE_KEYS,
)
from search.config.constraints import check as check_constraints
from search.config.racing import check_config as check_racing
from search.config.yaml_loader import parse_value, read_yaml_file
from search.errors import ConfigError, DataError, SpaceError, both, did_you_mean
from trainables import metrics as M
from trainables.settings import REWARDS, env_settings


def _read_yaml(path: Path) -> dict:
    data = read_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got "
                          f"{type(data).__name__}")
    return data


def check_study_name(name: Any) -> str:
    """Study names become directory names: letters, digits, '.', '_', '-', up to 100.
    A whole number is taken as its digits (YAML reads ``study: 2024`` as a number)."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if name is None or isinstance(name, str) and not name.strip():
        raise ConfigError("study name is empty; give one with "
                          f"{both('--study NAME', 'study=NAME')} "
                          "or 'study:' in "
                          "the config")
    if not isinstance(name, str):
        raise ConfigError(f"study name must be text, got {name!r}")
    if not STUDY_NAME.fullmatch(name):
        raise ConfigError(f"invalid study name {name[:60]!r}: use up to 100 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit")
    return name


def load_config(source: str | Path | Mapping[str, Any] | None, sets: list[str] | None = None,
                study: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read, merge and validate a sweep config; raise ``ConfigError`` with one line.

    ``source`` is a YAML file's path, or a mapping holding what such a file would (or None:
    the defaults alone). Its sections merge over the defaults; then each ``--set KEY=VALUE``
    changes the one key it names, at any depth (see :func:`apply_set`); then each entry of
    ``overrides`` does the same with its value as given (not read as YAML), its key dotted
    (``{"training.max_iterations": 3}``) or not (``{"search": {"num_samples": 4}}`` sets
    ``search.num_samples`` alone: a mapping merges into a section with fixed keys)."""
    config = copy.deepcopy(DEFAULTS)
    if isinstance(source, Mapping):
        _merge(config, copy.deepcopy(dict(source)), ())
    elif source is not None:
        from_file = _read_yaml(Path(source))
        _data_path_beside(from_file, Path(source))
        _merge(config, from_file, ())
    for item in sets or []:
        apply_set(config, item)
    for key, value in (overrides or {}).items():
        keys = [part.strip() for part in key.split(".")] if isinstance(key, str) else []
        if not keys or not all(keys):
            raise ConfigError(f"override key {key!r} must be a config key such as "
                              "'search.num_samples' or 'training'")
        set_key(config, keys, copy.deepcopy(value), f"override {key.strip()!r}")
    if study is not None:
        config["study"] = study
    validate(config)
    return config


def apply_set(config: dict[str, Any], item: str) -> None:
    """Apply one ``--set a.b.c=VALUE``: the VALUE read as YAML (see :func:`parse_value`), then
    set as :func:`set_key` says."""
    key, sep, raw = item.partition("=")
    keys = [part.strip() for part in key.split(".")]
    if not sep or not all(keys):
        raise ConfigError(f"--set {item!r} must look like KEY=VALUE, e.g. "
                          "search.num_samples=10")
    value = parse_value(raw, ".".join(keys), f"--set {'.'.join(keys)}")
    set_key(config, keys, value, f"--set {key.strip()}")


def set_key(config: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    """Set the key ``keys`` (a dotted key's parts, e.g. ``["training", "patience"]``) to
    ``value``: only that key changes; its parents keep every other key. A mapping given to a
    section with fixed keys (``training``, ``env``, ...) sets the keys it names; anywhere else
    (``search.space_overrides``, ``data.splits``, one parameter's range, ...) it replaces what
    was at that key. Errors start with ``where`` (e.g. ``--set training.patience``)."""
    parent = config
    for depth, name in enumerate(keys[:-1]):
        path = tuple(keys[:depth + 1])
        if not _is_open(path) and name not in parent:
            _unknown_key(parent, path)
        child = parent.get(name)
        if child is None and _is_open(path):
            child = parent[name] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(path)} is {child!r}, not a "
                              f"mapping; set {'.'.join(path)} itself instead")
        parent = child
    _merge(parent, {keys[-1]: value}, tuple(keys[:-1]))


def _is_open(path: tuple) -> bool:
    return any(path[:len(section)] == section for section in OPEN_SECTIONS)


def _data_path_beside(from_file: dict, config_path: Path) -> None:
    """A relative ``data.path`` written in a config file is found from the current directory
    or, when it is not there, from the config file's own directory (so a config and its data
    can travel together, e.g. examples/coinbase_btc_1h.yaml and examples/data/)."""
    section = from_file.get("data")
    if not isinstance(section, dict) or not isinstance(section.get("path"), str):
        return
    given = Path(section["path"]).expanduser()
    beside = config_path.parent / given
    if not given.is_absolute() and not given.exists() and beside.exists():
        section["path"] = str(beside)


def _unknown_key(section: dict, path: tuple) -> None:
    hint = did_you_mean(path[-1], section, spell=lambda k: repr(".".join((*path[:-1], k))))
    raise ConfigError(f"unknown config key {'.'.join(map(str, path))!r}{hint}")


def _merge(target: dict, source: dict, prefix: tuple) -> None:
    for key, value in source.items():
        path = (*prefix, str(key))
        if _is_open(path):
            target[key] = value
            continue
        if key not in target:
            _unknown_key(target, path)
        if isinstance(target[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {'.'.join(path)!r} must be a mapping, got "
                                  f"{value!r}")
            _merge(target[key], value, path)
        else:
            target[key] = value


def _plain(value: Any, dotted: str) -> Any:
    """``value`` checked for what no config key allows: NaN or infinity (no key means it, and
    every trial would fail on it), and values JSON cannot store (the study keeps the config
    as JSON). A date left anywhere becomes its ISO text, and a numpy scalar (a value taken
    from an array or a DataFrame) the plain Python value it holds."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{dotted} must be a finite number, got {value!r}")
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        raise ConfigError(f"{dotted} must be a finite number, got a {len(str(value))}-digit "
                          "number")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item, f"{dotted}.{key}" if dotted else str(key))
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{dotted}[{index}]") for index, item in enumerate(value)]
    if value is not None and not isinstance(value, (str, int, float)):
        raise ConfigError(f"{dotted} holds a {type(value).__name__} ({str(value)[:40]!r}); "
                          "use text, numbers, true/false, lists or mappings")
    return value


def _whole(config: dict, dotted: str, low: int, optional: bool) -> None:
    section, key = dotted.split(".")
    value = config[section][key]
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{dotted} must be a whole number, got {value!r}")
    if value < low:
        raise ConfigError(f"{dotted} must be >= {low}, got {value!r}")


def _number(config: dict, dotted: str, low: float, strict_low: bool) -> None:
    section, key = dotted.split(".")
    value = config[section][key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{dotted} must be a number, got {value!r}")
    if value <= low if strict_low else value < low:
        raise ConfigError(f"{dotted} must be {'>' if strict_low else '>='} {low}, got {value!r}")


def _choice(config: dict, dotted: str, allowed: list[str]) -> None:
    section, key = dotted.split(".")
    value = config[section][key]
    if value not in allowed:
        raise ConfigError(f"{dotted} is {value!r}{did_you_mean(value, allowed)} "
                          f"(allowed: {', '.join(allowed)})")


def validate(config: dict[str, Any]) -> None:
    """Check every key that can be checked without loading data or starting Ray."""
    from spaces import check_algorithm, get_space

    config.update(_plain(config, ""))
    config["study"] = check_study_name(config["study"])
    overrides = config["search"]["space_overrides"]
    if overrides is None:
        config["search"]["space_overrides"] = {}
    elif not isinstance(overrides, dict):
        raise ConfigError(f"search.space_overrides must be a mapping such as {{lr: {{low: 1e-5, "
                          f"high: 1e-3}}, gamma: 0.99}}, got {overrides!r}")
    try:
        config["algorithm"] = check_algorithm(config["algorithm"])
        get_space(config["algorithm"], config["search"]["space_overrides"],
                  config["search"]["space"])
    except SpaceError as exc:
        raise ConfigError(str(exc)) from None
    for dotted, (low, optional) in WHOLE_KEYS.items():
        _whole(config, dotted, low, optional)
    for dotted, (low, strict_low) in NUMBER_KEYS.items():
        _number(config, dotted, low, strict_low)
    if config["env"]["commission"] >= 1:
        raise ConfigError(f"env.commission is a fraction below 1 (0.001 = 0.1%), got "
                          f"{config['env']['commission']!r}")
    _choice(config, "search.scheduler", ["auto", "none", "asha", "racing"])
    _choice(config, "search.sampler", list(SAMPLERS))
    _choice(config, "training.objective", list(M.OBJECTIVES))
    _choice(config, "training.aggregate", list(M.AGGREGATES))
    _choice(config, "env.reward", list(REWARDS))
    env_settings(dict(config["env"]))  # actions, borrow_rate, slippage: as both envs check them
    training = config["training"]
    if training["eval_every"] > training["max_iterations"]:
        raise ConfigError(f"training.eval_every ({training['eval_every']}) is larger than "
                          f"training.max_iterations ({training['max_iterations']}): the trial "
                          "would never be validated")
    several_runs = _check_runs(config)
    _check_objectives(config, several_runs)
    _resolve_scheduler(config["search"], several_runs, config["training"]["objectives"])
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
    _check_warm_start(config)
    config["search"]["constraints"] = check_constraints(config["search"]["constraints"]) or None
    _check_tracking(config["tracking"])


def _check_tracking(tracking: dict[str, Any]) -> None:
    """``tracking``: two switches and two texts; a URI or experiment without MLflow on is a
    mistake worth one line (nothing would be logged), not a setting quietly ignored."""
    for key in ("mlflow", "tensorboard"):
        if not isinstance(tracking[key], bool):
            raise ConfigError(f"tracking.{key} must be true or false, got {tracking[key]!r}")
    for key in ("mlflow_uri", "mlflow_experiment"):
        value = tracking[key]
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"tracking.{key} must be text or null, got {value!r}")
        if value is not None and not tracking["mlflow"]:
            raise ConfigError(f"tracking.{key} is set but tracking.mlflow is false: set "
                              "tracking.mlflow=true to log to MLflow")


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
    from trainables.splits import walk_forward_settings

    try:
        walk_forward = walk_forward_settings(config["data"]["walk_forward"])
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    several = walk_forward is not None or config["training"]["seeds"] > 1
    check_racing(config, several)
    if several and config["search"]["scheduler"] == "asha":
        raise ConfigError("search.scheduler 'asha' cannot be used with data.walk_forward or "
                          "training.seeds > 1: ASHA would judge trials on their first run alone "
                          "(allowed: scheduler none, or a single run per trial)")
    return several


def _resolve_scheduler(search: dict[str, Any], several_runs: bool,
                       objectives: list[str] | None) -> None:
    """``search.scheduler: auto`` (the default) becomes the early stopping that
    scripts/bench_selection.py measured best on test at equal compute for the study's shape:
    ASHA for one run per trial on one objective; none with several runs (ASHA would judge a
    trial on its first run; racing did not pay for itself there) or several objectives. The
    study stores the resolved name."""
    if search["scheduler"] == "auto":
        search["scheduler"] = "none" if several_runs or objectives is not None else "asha"


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
            raise ConfigError(f"training.objectives has unknown objective {name!r}"
                              f"{did_you_mean(name, allowed)} "
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
    from spaces import get_space

    points = config["search"]["enqueue"]
    if points is None:
        points = config["search"]["enqueue"] = []
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
            raise ConfigError(f"search.enqueue[{index}] has unknown parameter "
                              f"{unknown[0]!r}{did_you_mean(unknown[0], sorted(known))}")
        try:
            space.replay({**_sampled_defaults(space), **point})
        except (SpaceError, ValueError, TypeError) as exc:
            raise ConfigError(f"search.enqueue[{index}] is not valid: {exc}") from None


def _check_warm_start(config: dict[str, Any]) -> None:
    """``search.warm_start``: null, or ``{study: NAME, top: K}`` (K defaults to 5)."""
    warm = config["search"]["warm_start"]
    if warm is None:
        return
    if not isinstance(warm, dict) or set(warm) - {"study", "top"} or "study" not in warm:
        raise ConfigError(f"search.warm_start must be null or {{study: NAME, top: K}}, got "
                          f"{warm!r}")
    warm["study"] = check_study_name(warm["study"])
    top = warm.setdefault("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"search.warm_start.top must be a whole number >= 1, got {top!r}")
    if warm["study"] == config["study"]:
        raise ConfigError(f"search.warm_start names the study being launched "
                          f"({warm['study']!r}); name an earlier study")


def _sampled_defaults(space: Any) -> dict[str, Any]:
    import optuna

    from search.scoped import optuna_quiet

    with optuna_quiet():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space(trial)
    return trial.params
