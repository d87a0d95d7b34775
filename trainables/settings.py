"""Env and training settings and their defaults (no tensortrade import, so the CLI can validate
configs fast).

The market frictions (commission, slippage, the borrow rate of shorts, initial cash), the action
set and the reward are fixed per sweep and never searched (``MARKET_KEYS``): they describe the
market and the product, not the agent. ``window_size`` and ``max_allowed_loss`` are searched by
the spaces.

- ``actions``: the exposure levels an agent chooses from (``trainables/actions.py``):
  ``long_only`` (cash or all in, the default), ``long_short`` (-1, 0, 1) or
  ``{sizes: [-1, -0.5, 0, 0.5, 1]}``.
- ``borrow_rate``: the annual fee of a short position, as a fraction of the short notional,
  charged per bar (``rate / bars per year``). The default 0.05 (5% a year) sits between an
  easy-to-borrow stock at a retail broker (well under 1%) and crypto margin borrowing
  (typically 5-20% a year for BTC, more in squeezes); set it for your venue.
- ``slippage``: a cost per unit of turnover (traded notional / net worth) on top of commission:
  ``bps`` basis points fixed, plus ``vol_mult`` times the standard deviation of the last
  ``vol_window`` close-to-close log returns (a rough market-impact term that grows in volatile
  markets). Both default to 0 (no slippage).
"""
from __future__ import annotations

from typing import Any

from trainables import metrics as M
from trainables.actions import action_levels, is_long_only
from trainables.errors import ConfigError, did_you_mean

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
    "actions": "long_only",
    "borrow_rate": 0.05,
    "slippage": {"bps": 0.0, "vol_mult": 0.0, "vol_window": 24},
}
MARKET_KEYS = ("commission", "initial_cash", "reward", "actions", "borrow_rate", "slippage")
SLIPPAGE_KEYS = tuple(ENV_DEFAULTS["slippage"])
# Commission allowed where trainables.accounting keeps the books (any action set but long_only,
# or slippage): with its slippage cap, every trade's sizing stays well defined.
MAX_COMMISSION = 0.25
# Cash is kept in whole cents (TensorTrade's USD precision, and the vector env's books): 0.001
# is 0 cents, and the first reward divides by a net worth of 0 (ZeroDivisionError). Above
# that, a cent of rounding per trade is 1% of a $1 account (TensorTrade also raises any
# commission below a cent to a cent); from 100 on it is at most 0.01% of the account.
MIN_INITIAL_CASH = 100


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
    if float(settings["initial_cash"]) < MIN_INITIAL_CASH:
        raise ConfigError(f"env.initial_cash must be at least {MIN_INITIAL_CASH:g}, got "
                          f"{settings['initial_cash']}: the books keep cash in whole cents "
                          "(below 0.01 it is 0 and every step divides by zero; below "
                          f"{MIN_INITIAL_CASH:g} rounding to a cent distorts each trade's cost)")
    if not is_long_only(action_levels(settings["actions"])) and settings["reward"] == "pbr":
        raise ConfigError("reward 'pbr' (the tutorial's position-based return) only knows "
                          "long-or-cash; use reward log_return with env.actions "
                          f"{settings['actions']!r}")
    rate = settings["borrow_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 10:
        raise ConfigError(f"env.borrow_rate is an annual fraction in [0, 10) (0.05 = 5% a "
                          f"year), got {rate!r}")
    settings["slippage"] = slippage_settings(settings["slippage"])
    if not on_tensortrade(settings) and float(settings["commission"]) >= MAX_COMMISSION:
        raise ConfigError(f"commission must be below {MAX_COMMISSION} with env.actions "
                          f"{settings['actions']!r} or slippage, got {settings['commission']}")
    return settings


def slippage_settings(slippage: Any) -> dict[str, Any]:
    """``env.slippage`` checked and completed with the defaults: ``bps`` >= 0 (basis points per
    unit of turnover), ``vol_mult`` >= 0 and ``vol_window`` a whole number >= 2 (bars)."""
    if slippage is None:
        slippage = {}
    if not isinstance(slippage, dict):
        raise ConfigError(f"env.slippage must be a mapping such as {{bps: 5, vol_mult: 0.1}}, "
                          f"got {slippage!r}")
    for key in slippage:
        if key not in SLIPPAGE_KEYS:
            raise ConfigError(f"unknown env.slippage key {key!r}"
                              f"{did_you_mean(key, SLIPPAGE_KEYS)}; known: {list(SLIPPAGE_KEYS)}")
    settings = {**ENV_DEFAULTS["slippage"], **slippage}
    for key in ("bps", "vol_mult"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e4:
            raise ConfigError(f"env.slippage.{key} must be a number in [0, 10000), got {value!r}")
    window = settings["vol_window"]
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ConfigError(f"env.slippage.vol_window must be a whole number >= 2 (bars), got "
                          f"{window!r}")
    return settings


def on_tensortrade(settings: dict[str, Any]) -> bool:
    """Whether TensorTrade's order machinery can model completed env settings: long-or-cash
    without slippage. Otherwise both envs keep their books with ``trainables.accounting``."""
    slippage = settings["slippage"]
    return (is_long_only(action_levels(settings["actions"]))
            and not (slippage["bps"] > 0 or slippage["vol_mult"] > 0))


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
    "patience": 4,
    "min_evals": 3,
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
