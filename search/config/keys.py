"""The sweep config's keys: their defaults, and which keys hold whole numbers, bounded numbers,
free-form sections or text that YAML must not reinterpret.

One table per fact, read by the YAML loader (``search/config/yaml_loader.py``) and by validation
(``search/config/sweep_config.py``).
"""
from __future__ import annotations

import re
from typing import Any

from search.config.racing import DEFAULTS as RACING_DEFAULTS
from trainables.settings import ENV_DEFAULTS, MARKET_KEYS, TRAINING_DEFAULTS

DEFAULTS: dict[str, Any] = {
    "study": None,
    "algorithm": "ppo",
    "data": {"path": None, "synthetic": None, "splits": None, "features": None,
             "walk_forward": None, "date_column": None, "sep": None, "decimal": None},
    "env": {key: ENV_DEFAULTS[key] for key in MARKET_KEYS},
    "search": {"num_samples": 20, "max_concurrent": 1, "scheduler": "auto", "seed": 42,
               "space": None, "space_overrides": {}, "enqueue_tutorial": True, "enqueue": [],
               "sampler": "tpe", "startup_trials": None, "warm_start": None,
               "constraints": None,
               "racing": dict(RACING_DEFAULTS)},
    "training": dict(TRAINING_DEFAULTS),
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    # Experiment tracking, off by default (search/sweep/tracking.py): MLflow runs and
    # TensorBoard event files, written by the driver. Off, nothing of either is imported.
    "tracking": {"mlflow": False, "mlflow_uri": None, "mlflow_experiment": None,
                 "tensorboard": False},
    "storage": None,
}


# Sections whose contents are free-form (validated by their own modules).
OPEN_SECTIONS = {("data", "synthetic"), ("data", "splits"), ("data", "walk_forward"),
                  ("search", "space_overrides"), ("search", "enqueue"), ("search", "warm_start"),
                  ("search", "constraints")}


# search.sampler: Optuna's samplers, none of which downloads code at run time (machines may be
# offline). tpe is Optuna 5's TPESampler as it comes: multivariate for one objective,
# independent for several; tpe_grouped also models the parameters that appear together (a
# conditional space) as groups; gp is Optuna's Gaussian-process sampler.
SAMPLERS = ("tpe", "tpe_grouped", "gp", "random")
# Used with fullmatch: ``$`` also matches before a trailing newline, so "abc\n" passed a
# ``match`` against ``...$`` and became a folder name with a newline in it.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# Whole-number keys: the lowest value allowed, and whether null is allowed.
WHOLE_KEYS: dict[str, tuple[int, bool]] = {
    "search.num_samples": (1, False), "search.max_concurrent": (1, False),
    "training.max_iterations": (1, False), "training.eval_every": (1, False),
    "training.patience": (1, True), "training.envs_per_runner": (1, False),
    "training.seeds": (1, False), "training.min_evals": (0, False),
    "training.max_failures": (0, False), "search.seed": (0, False),
    "training.max_env_steps": (1, True), "search.startup_trials": (1, True),
}


# Number keys: the bound, and whether the bound itself is excluded.
NUMBER_KEYS: dict[str, tuple[float, bool]] = {
    "training.min_delta": (0, False), "training.aggregate_k": (0, False),
    "env.commission": (0, False), "env.initial_cash": (0, True),
    "resources.cpus_per_trial": (0, True), "resources.gpus_per_trial": (0, False),
}


# What YAML must not change in some keys ('*' is any entry of a list):
#   text  - keeps the text as typed (YAML reads `study: 0123` as 83, `2024-01-01` as a date);
#   date  - a YAML date or datetime becomes its ISO text (JSON-able, and pandas reads it);
#   whole - a whole float such as 1e6 becomes the int 1000000.
KEY_KINDS: dict[tuple[str, ...], str] = {
    **{tuple(key.split(".")): "text" for key in (
        "study", "algorithm", "storage", "data.path", "data.features.*", "data.synthetic.freq",
        "data.walk_forward.mode", "search.space", "search.scheduler", "search.sampler",
        "training.objective", "training.objectives.*", "training.aggregate", "env.reward",
        "env.actions", "tracking.mlflow_uri", "tracking.mlflow_experiment")},
    **{("data", "splits", key): "date"
       for key in ("train_start", "val_start", "test_start", "test_end")},
    **{tuple(key.split(".")): "whole" for key in (
        *WHOLE_KEYS, "search.racing.min_trials", "data.synthetic.n_bars", "data.synthetic.seed",
        "data.splits.train_bars",
        "data.splits.val_bars", "data.splits.test_bars", "data.walk_forward.folds")},
}
