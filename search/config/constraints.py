"""Constraints on a trial's validation figures (``search.constraints``): what a usable strategy
must at least do, however good its score.

    search:
      constraints: {min_trades: 10, max_drawdown: 0.25, min_time_in_market: 0.05}

Each is checked on the kept checkpoint's validation figures when a trial ends. The samplers get
them through the trial (``optuna.Trial.set_constraint``: TPE and GP steer away from infeasible
regions; random search ignores them), the trial records whether it is ``feasible`` and what it
broke, ``best``
ranks feasible trials first and labels the rest, and the report says which constraint each
infeasible trial broke. Pure Python: read by the sweep and by every reader of a study.
"""
from __future__ import annotations

from typing import Any

from search.errors import ConfigError, did_you_mean

# name: (metric, True for a lower bound, what the bound must be)
KINDS = {"min_trades": ("trades", True, "a whole number >= 0"),
         "max_drawdown": ("max_drawdown", False, "a fraction in (0, 1]"),
         "min_time_in_market": ("time_in_market", True, "a fraction in [0, 1]")}


def check(constraints: Any) -> dict[str, float]:
    """``search.constraints`` validated: ``{}`` for null; one line naming a bad key or value."""
    if constraints is None:
        return {}
    if not isinstance(constraints, dict):
        raise ConfigError(f"search.constraints must be a mapping such as {{min_trades: 10}}, "
                          f"got {constraints!r}")
    for name, bound in constraints.items():
        if name not in KINDS:
            raise ConfigError(f"unknown constraint search.constraints.{name}"
                              f"{did_you_mean(name, KINDS)} (known: {', '.join(KINDS)})")
        ok = (isinstance(bound, (int, float)) and not isinstance(bound, bool)
              and {"min_trades": lambda b: b >= 0 and float(b).is_integer(),
                   "max_drawdown": lambda b: 0 < b <= 1,
                   "min_time_in_market": lambda b: 0 <= b <= 1}[name](bound))
        if not ok:
            raise ConfigError(f"search.constraints.{name} must be {KINDS[name][2]}, got "
                              f"{bound!r}")
    return dict(constraints)


def values(constraints: dict[str, float], metrics: dict[str, Any]) -> list[float]:
    """Optuna's constraint values for ``metrics``: each <= 0 when met (how far it is missed
    otherwise); a missing figure counts as missed by 1."""
    result = []
    for name, bound in constraints.items():
        metric, lower, _ = KINDS[name]
        value = metrics.get(metric)
        if not isinstance(value, (int, float)):
            result.append(1.0)
        else:
            result.append(float(bound - value if lower else value - bound))
    return result


def broken(constraints: dict[str, float], metrics: dict[str, Any]) -> list[str]:
    """What each missed constraint says, e.g. "trades 2 < min_trades 10"; [] when feasible."""
    said = []
    for (name, bound), gap in zip(constraints.items(), values(constraints, metrics)):
        if gap > 0:
            metric, lower, _ = KINDS[name]
            said.append(f"{metric} {metrics.get(metric, 'missing')} {'<' if lower else '>'} "
                        f"{name} {bound}")
    return said
