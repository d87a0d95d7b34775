"""Env settings and their defaults (no tensortrade import, so the CLI can validate configs fast).

The market frictions (commission, initial cash) and the reward are fixed per sweep and never
searched; ``window_size`` and ``max_allowed_loss`` are searched by the spaces.
"""
from __future__ import annotations

from typing import Any

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


def fold_names(fold: int) -> tuple[str, str]:
    """The split names of walk-forward fold ``fold``: ``("fold{i}_train", "fold{i}_val")``
    (here, not in trainables.data, so the trainable's run plan imports no pandas)."""
    return f"fold{fold}_train", f"fold{fold}_val"
