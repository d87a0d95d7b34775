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
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Union

from trainables.errors import SpaceError, did_you_mean
from trainables.settings import MARKET_KEYS


@dataclass(frozen=True)
class Domain:
    """The values a dimension can take at all (not its search range): a fixed value, a range's
    bounds and a numeric choice outside it would make every trial fail (a learning rate <= 0,
    a discount above 1, a window of 0 bars), so they are refused before anything is created.

    ``low``/``high``: the bounds (None: unbounded), each included unless ``*_open``;
    ``what``: what the parameter is, for the message."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    what: str = ""

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open
                                      else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """``> 0``, ``>= 1``, ``in (0, 1]``."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any number"

    def check(self, name: str, value: Any, role: str) -> None:
        """Raise ``SpaceError`` when ``value`` (a finite number) is outside the domain;
        ``role`` says which value it is ("a fixed value", "low", "a choice")."""
        if not self.contains(value):
            what = f" ({self.what})" if self.what else ""
            raise SpaceError(f"parameter {name!r}: {role} must be {self.describe()}{what}, "
                             f"got {value!r}")


ANY = Domain()
POSITIVE = Domain(0, low_open=True)
NON_NEGATIVE = Domain(0)
AT_LEAST_ONE = Domain(1)
UNIT = Domain(0, 1)


def _not_fingerprinted(default: Any) -> Any:
    """A dataclass field left out of ``fingerprint`` (so declaring it does not make stored
    studies look as if their space had changed)."""
    return field(default=default, compare=False, metadata={"fingerprint": False})


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    source: str = ""
    domain: Domain = _not_fingerprinted(ANY)

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
    domain: Domain = _not_fingerprinted(ANY)

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        return (_is_number(value) and float(value).is_integer() and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)


@dataclass(frozen=True)
class Categorical:
    choices: tuple
    source: str = ""
    domain: Domain = _not_fingerprinted(ANY)  # of numeric choices

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
        for choice in dim.choices:
            if _is_finite(choice):
                dim.domain.check(name, choice, "a choice")
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
    dim.domain.check(name, dim.low, "low")
    dim.domain.check(name, dim.high, "high")


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
    if _is_finite(value):
        dim.domain.check(name, value, "a choice")
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
        number = int(number)
    dim.domain.check(name, number, "a fixed value")
    return number


def apply_overrides(dimensions: dict[str, Dimension], overrides: dict[str, Any] | None,
                    rules: tuple[AtLeast, ...] = ()) -> tuple[dict[str, Dimension], dict]:
    """Return (searched dimensions, fixed values) after a sweep config's ``space_overrides``:
    each fixed value, range bound and choice within its dimension's domain, and ``rules``
    kept by the ranges."""
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
    for rule in rules:
        rule.check_ranges(searched, fixed)
    return searched, fixed


def fingerprint(dimensions: dict[str, Dimension], fixed: dict[str, Any], extra: str = "") -> str:
    """A short stable hash of the ranges and fixed values (sources excluded)."""
    def describe(dim: Dimension) -> dict:
        data = {f.name: getattr(dim, f.name) for f in fields(dim)
                if f.name != "source" and f.metadata.get("fingerprint", True)}
        return {"kind": type(dim).__name__, **{k: list(v) if isinstance(v, tuple) else v
                                               for k, v in data.items()}}

    blob = json.dumps({"dims": {k: describe(v) for k, v in sorted(dimensions.items())},
                       "fixed": fixed, "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AtLeast:
    """A rule between two dimensions: ``name`` must be at least ``other`` in every trial (e.g.
    PPO's ``train_batch_size >= num_minibatches``, else a minibatch holds no sample). Checked on
    the ranges (the smallest ``name`` against the largest ``other``) and on every trial's
    values (an enqueued point, a replayed trial)."""

    name: str
    other: str
    why: str

    def check_ranges(self, searched: dict[str, Dimension], fixed: dict[str, Any]) -> None:
        if self.name not in {**searched, **fixed} or self.other not in {**searched, **fixed}:
            return
        lowest = _extreme(self.name, searched, fixed, min)
        highest = _extreme(self.other, searched, fixed, max)
        if lowest < highest:
            raise SpaceError(self._message(lowest, highest, self.name in fixed,
                                           self.other in fixed))

    def check_values(self, params: dict[str, Any]) -> None:
        value, other = params.get(self.name), params.get(self.other)
        if _is_number(value) and _is_number(other) and value < other:
            raise SpaceError(self._message(value, other, True, True))

    def _message(self, value: Any, other: Any, value_fixed: bool, other_fixed: bool) -> str:
        this = f"{self.name} ({value})" if value_fixed else f"the lowest {self.name} ({value})"
        that = f"{self.other} ({other})" if other_fixed else f"the highest {self.other} ({other})"
        return f"parameter {self.name!r}: {this} must be at least {that}: {self.why}"


def _extreme(name: str, searched: dict[str, Dimension], fixed: dict[str, Any],
             pick: Callable) -> Any:
    if name in fixed:
        return fixed[name]
    dim = searched[name]
    if isinstance(dim, Categorical):
        return pick(c for c in dim.choices if _is_number(c))
    return dim.low if pick is min else dim.high


def check_params(dimensions: dict[str, Dimension], params: dict[str, Any],
                 rules: tuple[AtLeast, ...] = ()) -> None:
    """Raise ``SpaceError`` when a trial's parameters leave a dimension's domain or break a
    rule: Optuna runs an enqueued or replayed value as given, even outside the range."""
    for name, value in params.items():
        dim = dimensions.get(name)
        if dim is not None and _is_finite(value):
            dim.domain.check(name, value, "a value")
    for rule in rules:
        rule.check_values(params)


def sampler(dimensions: dict[str, Dimension], fixed: dict[str, Any],
            build: Callable[[dict[str, Any]], dict],
            rules: tuple[AtLeast, ...] = ()) -> Callable[[Any], dict]:
    """A define-by-run function: suggest every searched dimension, then build the settings."""
    def sample(trial: Any) -> dict:
        params = {name: dim.suggest(trial, name) for name, dim in dimensions.items()}
        check_params(dimensions, params, rules)
        return build({**params, **fixed})
    return sample

