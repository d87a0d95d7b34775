"""Search dimensions and the machinery shared by every search space.

A space is a set of named dimensions plus a pure ``build(params) -> settings`` function.
Keeping the ranges as data (not buried in ``trial.suggest_*`` calls) is what lets a sweep config
fix, narrow, widen or re-choose any of them without touching code, and lets the service
fingerprint a space to refuse resuming a study with different ranges.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Union

from trainables.errors import SpaceError, did_you_mean
from trainables.settings import MARKET_KEYS


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    source: str = ""

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    step: int = 1
    source: str = ""

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        return (_is_number(value) and float(value).is_integer() and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)


@dataclass(frozen=True)
class Categorical:
    choices: tuple
    source: str = ""

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A number (not true/false) a float can hold: not NaN, infinity or a 400-digit int."""
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:
        return False


Dimension = Union[Float, Int, Categorical]


def check_dimension(name: str, dim: Dimension) -> None:
    """Raise ``SpaceError`` for an empty or ill-formed range."""
    if isinstance(dim, Categorical):
        if not dim.choices:
            raise SpaceError(f"parameter {name!r}: choices must not be empty")
        return
    if not all(_is_finite(v) for v in (dim.low, dim.high)):
        raise SpaceError(f"parameter {name!r}: low and high must be finite numbers, got "
                         f"{dim.low!r} and {dim.high!r}")
    if dim.low > dim.high:
        raise SpaceError(f"parameter {name!r}: low ({dim.low}) is greater than high ({dim.high})")
    if dim.log and dim.low <= 0:
        raise SpaceError(f"parameter {name!r}: a log range must be positive, got low={dim.low}")
    if isinstance(dim, Int) and (dim.low != int(dim.low) or dim.high != int(dim.high)):
        raise SpaceError(f"parameter {name!r}: integer range needs whole numbers, got "
                         f"{dim.low}..{dim.high}")


def _override(name: str, dim: Dimension, change: Any) -> Dimension | Any:
    """One override: a plain value fixes the parameter; a mapping changes its range."""
    if not isinstance(change, dict):
        if isinstance(dim, Categorical):
            return _choice(name, dim, change)
        return _fixed_number(name, dim, change)
    allowed = {"choices"} if isinstance(dim, Categorical) else {"low", "high", "log"}
    unknown = sorted(set(change) - allowed)
    if unknown:
        raise SpaceError(f"parameter {name!r}: unknown override key(s) {unknown}; "
                         f"allowed: {sorted(allowed)} (or a plain value to fix it)")
    if isinstance(dim, Categorical):
        choices = change.get("choices")
        if not isinstance(choices, (list, tuple)):
            raise SpaceError(f"parameter {name!r}: choices must be a list, got {choices!r}")
        new = replace(dim, choices=tuple(_choice(name, dim, c) for c in choices),
                      source="sweep config")
    else:
        values = {}
        for key, value in change.items():
            if key == "log":
                if not isinstance(value, bool):
                    raise SpaceError(f"parameter {name!r}: log must be true or false, got "
                                     f"{value!r}")
                values[key] = value
                continue
            try:  # a number, or text that reads as one ('1e-5')
                values[key] = float(value) if not isinstance(value, bool) else None
            except OverflowError:
                values[key] = math.inf  # refused below as not finite
            except (TypeError, ValueError):
                values[key] = None
            if values[key] is None:
                raise SpaceError(f"parameter {name!r}: override values must be numbers, got "
                                 f"{key}={value!r}")
        if isinstance(dim, Int):
            # int() would silently truncate 2.5 to 2: whole numbers only.
            if not all(math.isfinite(v) and v.is_integer()
                       for k, v in values.items() if k != "log"):
                raise SpaceError(f"parameter {name!r}: integer range needs whole numbers, "
                                 f"got {change}")
            values = {k: int(v) if k != "log" else v for k, v in values.items()}
        new = replace(dim, **values, source="sweep config")
    check_dimension(name, new)
    return new


def _choice(name: str, dim: Categorical, value: Any) -> Any:
    """A choice (or fixed value) of a categorical parameter, of the kind of its built-in
    choices: true/false, whole numbers (``1.28e2`` is 128) or text. A 'true' for a layer width
    or a NaN would pass Optuna and fail inside every trial."""
    kinds = {type(c) for c in dim.choices}
    if kinds == {bool}:
        ok, want = isinstance(value, bool), "true or false"
    elif kinds == {int}:
        ok = _is_finite(value) and float(value).is_integer()
        value, want = int(value) if ok else value, "a whole number"
    elif kinds <= {int, float}:
        ok, want = _is_finite(value), "a finite number"
    elif kinds == {str}:
        ok, want = isinstance(value, str), "text"
    else:
        ok, want = not (isinstance(value, float) and not math.isfinite(value)), "finite"
    if not ok:
        raise SpaceError(f"parameter {name!r}: a choice must be {want} like its built-in "
                         f"choices {list(dim.choices)}, got {value!r}")
    return value


def _fixed_number(name: str, dim: Float | Int, value: Any) -> float | int:
    """A numeric parameter fixed by the config: a number, or text that reads as one."""
    try:
        number = value if _is_number(value) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not _is_finite(number):
        raise SpaceError(f"parameter {name!r}: a fixed value must be a number, got {value!r}")
    if isinstance(dim, Int):
        if not float(number).is_integer():
            raise SpaceError(f"parameter {name!r}: a fixed value must be a whole number, "
                             f"got {value!r}")
        return int(number)
    return number


def apply_overrides(dimensions: dict[str, Dimension],
                    overrides: dict[str, Any] | None) -> tuple[dict[str, Dimension], dict]:
    """Return (searched dimensions, fixed values) after a sweep config's ``space_overrides``."""
    searched, fixed = dict(dimensions), {}
    for name, change in (overrides or {}).items():
        if name in MARKET_KEYS:
            raise SpaceError(f"{name!r} cannot be searched: it is a market friction or product "
                             f"choice, fixed per study; set env.{name} in the sweep config")
        if name not in dimensions:
            raise SpaceError(f"unknown search parameter {name!r}{did_you_mean(name, dimensions)} "
                             f"(known: {', '.join(sorted(dimensions))})")
        result = _override(name, dimensions[name], change)
        if isinstance(result, (Float, Int, Categorical)):
            searched[name] = result
        else:
            del searched[name]
            fixed[name] = result
    return searched, fixed


def fingerprint(dimensions: dict[str, Dimension], fixed: dict[str, Any], extra: str = "") -> str:
    """A short stable hash of the ranges and fixed values (sources excluded)."""
    def describe(dim: Dimension) -> dict:
        data = {k: v for k, v in vars(dim).items() if k != "source"}
        return {"kind": type(dim).__name__, **{k: list(v) if isinstance(v, tuple) else v
                                               for k, v in data.items()}}

    blob = json.dumps({"dims": {k: describe(v) for k, v in sorted(dimensions.items())},
                       "fixed": fixed, "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sampler(dimensions: dict[str, Dimension], fixed: dict[str, Any],
            build: Callable[[dict[str, Any]], dict]) -> Callable[[Any], dict]:
    """A define-by-run function: suggest every searched dimension, then build the settings."""
    def sample(trial: Any) -> dict:
        params = {name: dim.suggest(trial, name) for name, dim in dimensions.items()}
        return build({**params, **fixed})
    return sample

