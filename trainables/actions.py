"""The action sets an agent trades with (``env.actions``): each action is an exposure level.

Action index ``i`` means "hold ``levels[i]`` of net worth in the asset from this bar's close to
the next one's": 1.0 is all in, 0.0 is cash, -1.0 is a short worth the whole net worth, 0.5
half the net worth long and the rest in cash. The levels are sorted ascending, so index order
and exposure order agree.

- ``long_only`` (the default): levels (0, 1), cash or all in, as TradeTune always traded;
- ``long_short``: levels (-1, 0, 1);
- ``{"sizes": [...]}`` (or the bare list): any exposure levels, each in [-1, 1], at least two,
  no duplicates, and one of them 0 so that an agent can always stand aside (the flat position
  every episode starts from). Leverage above 1 is refused: nothing here models margin calls.

The action set is a product choice fixed per study, like commission: it is never searched.
This module imports nothing heavy, so the CLI validates configs with it.
"""
from __future__ import annotations

import math
from typing import Any

from trainables.errors import ConfigError, did_you_mean

ACTION_SETS = ("long_only", "long_short")
_NAMED_LEVELS = {"long_only": (0.0, 1.0), "long_short": (-1.0, 0.0, 1.0)}


def action_levels(actions: str | dict | list | tuple) -> tuple[float, ...]:
    """The exposure levels of an ``env.actions`` value, ascending.

    ``actions`` is a name of ``ACTION_SETS``, ``{"sizes": [...]}`` or a bare list of sizes.
    Raises ``ConfigError`` (one line) on an unknown name, an empty or one-level list, a
    non-number, a level outside [-1, 1], a duplicate level or a list without 0.
    """
    if isinstance(actions, str):
        if actions not in _NAMED_LEVELS:
            raise ConfigError(f"unknown env.actions {actions!r}"
                              f"{did_you_mean(actions, ACTION_SETS)}; choose one of "
                              f"{list(ACTION_SETS)} or {{sizes: [-1, -0.5, 0, 0.5, 1]}}")
        return _NAMED_LEVELS[actions]
    if isinstance(actions, dict):
        unknown = sorted(set(actions) - {"sizes"})
        if unknown or "sizes" not in actions:
            raise ConfigError(f"env.actions as a mapping takes one key, sizes (a list of "
                              f"exposure levels), got keys {sorted(actions)}")
        sizes = actions["sizes"]
    else:
        sizes = actions
    if not isinstance(sizes, (list, tuple)):
        raise ConfigError(f"env.actions sizes must be a list of exposure levels in [-1, 1], "
                          f"got {sizes!r}")
    levels = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size):
            raise ConfigError(f"env.actions sizes must be numbers in [-1, 1], got {size!r}")
        if not -1.0 <= float(size) <= 1.0:
            raise ConfigError(f"env.actions size {size} is outside [-1, 1] (leverage above 1 "
                              "is not modelled)")
        if size and abs(float(size)) < MIN_SIZE:
            raise ConfigError(f"env.actions size {size} is below {MIN_SIZE:g} (1% of net worth) "
                              "in size: a position that small trades nothing but fees; use 0 "
                              "for flat")
        levels.append(float(size))
    if len(levels) < 2:
        raise ConfigError(f"env.actions sizes needs at least two exposure levels, got {levels}")
    if len(set(levels)) != len(levels):
        duplicates = sorted({x for x in levels if levels.count(x) > 1})
        raise ConfigError(f"env.actions sizes lists {duplicates} more than once")
    if 0.0 not in levels:
        raise ConfigError(f"env.actions sizes {levels} must include 0 (flat: where every "
                          "episode starts and an agent can always stand aside)")
    return tuple(sorted(levels))


MIN_SIZE = 0.01  # the smallest exposure other than flat: 1% of net worth


def action_meanings(levels: tuple[float, ...] | list[float]) -> list[str]:
    """One label per action index: ``"short 100%"``, ``"cash"``, ``"long 50%"``, ..."""
    return [_meaning(float(level)) for level in levels]


def _meaning(level: float) -> str:
    if level == 0:
        return "cash"
    percent = f"{abs(level) * 100:g}%"
    return f"long {percent}" if level > 0 else f"short {percent}"


def is_long_only(levels: tuple[float, ...]) -> bool:
    """Whether ``levels`` are today's long-or-cash actions (0, 1)."""
    return tuple(levels) == _NAMED_LEVELS["long_only"]


def describe_actions(actions: Any) -> str:
    """A short label of an ``env.actions`` value for tables: the name, or ``sizes[-1,0,1]``."""
    if isinstance(actions, str):
        return actions
    return "sizes[" + ",".join(f"{level:g}" for level in action_levels(actions)) + "]"
