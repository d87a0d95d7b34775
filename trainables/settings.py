"""Env and training settings and their defaults (no tensortrade import, so the CLI can validate
configs fast).

The market frictions (commission, initial cash) and the reward are fixed per sweep and never
searched; ``window_size`` and ``max_allowed_loss`` are searched by the spaces.
"""
from __future__ import annotations

from typing import Any

from trainables import metrics as M
from trainables.errors import ConfigError

# log_return: log change of net worth per bar (scale-free, net of commission, 0 in cash).
# pbr: the TensorTrade tutorial's position-based return (fake short in cash, no commission).
REWARDS = ("log_return", "pbr")
ENV_DEFAULTS: dict[str, Any] = {
    "split": "train",
    "window_size": 17,
    "commission": 0.001,
    "initial_cash": 10_000.0,
    "reward": "log_return",
    "max_allowed_loss": 0.32,
    "random_start": False,
    "max_episode_steps": None,
}
MARKET_KEYS = ("commission", "initial_cash", "reward")


def env_settings(config: dict[str, Any]) -> dict[str, Any]:
    """An env config checked and completed with ``ENV_DEFAULTS`` (``data`` passes through).

    Shared by both envs (``trainables/env.py``, ``trainables/vector_env.py``), so they accept
    and reject exactly the same configs. Raises ``ConfigError`` (a ``ValueError``) naming the
    bad setting.
    """
    unknown = sorted(set(config) - set(ENV_DEFAULTS) - {"data"})
    if unknown:
        raise ConfigError(f"unknown env setting(s) {unknown}; known: {sorted(ENV_DEFAULTS)}")
    settings = {**ENV_DEFAULTS, **config}
    if settings["reward"] not in REWARDS:
        raise ConfigError(f"unknown reward {settings['reward']!r}; choose one of {list(REWARDS)}")
    if int(settings["window_size"]) < 1:
        raise ConfigError(f"window_size must be >= 1, got {settings['window_size']}")
    if not 0 <= float(settings["commission"]) < 1:
        raise ConfigError(f"commission must be in [0, 1), got {settings['commission']}")
    if float(settings["initial_cash"]) <= 0:
        raise ConfigError(f"initial_cash must be > 0, got {settings['initial_cash']}")
    return settings


def trial_env(sweep: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A trial's env config: the sweep's market (``data``) and fixed ``env`` settings, then the
    trial's searched env settings, which win. The trainable, ``evaluate``, ``export``, the
    report and the ONNX bundle all build a trial's env with this, so they see the same env."""
    return {"data": sweep.get("data"), **(sweep.get("env") or {}), **(settings.get("env") or {})}


def fold_names(fold: int) -> tuple[str, str]:
    """The split names of walk-forward fold ``fold``: ``("fold{i}_train", "fold{i}_val")``
    (here, not in trainables.splits, so the trainable's run plan imports no pandas)."""
    return f"fold{fold}_train", f"fold{fold}_val"


# A sweep config's ``training`` section: budget, evaluation and early stopping (patience counted
# in evaluations), the objective and how a trial's runs combine, and how a trial samples.
TRAINING_DEFAULTS: dict[str, Any] = {
    "max_iterations": 20,
    "max_env_steps": None,
    "eval_every": 2,
    "patience": 3,
    "min_evals": 2,
    "min_delta": 0.0,
    "objective": M.DEFAULT_OBJECTIVE,
    "objectives": None,
    "envs_per_runner": 8,
    "vector_env": True,
    "max_failures": 2,
    "seeds": 1,
    "aggregate": M.DEFAULT_AGGREGATE,
    "aggregate_k": 1.0,
}


def training_settings(sweep: dict[str, Any]) -> dict[str, Any]:
    """A sweep's ``training`` section completed with ``TRAINING_DEFAULTS``."""
    return {**TRAINING_DEFAULTS, **(sweep.get("training") or {})}
