"""Search spaces, one module per algorithm, and the one registry that names them.

``get_space(algorithm, overrides=None, custom=None)`` returns a ``SearchSpace``: a pure
define-by-run function of an Optuna trial that returns ready-to-use RLlib settings
(``{"training": ..., "model": ..., "env": ...}``), plus what the service needs around it
(the tutorial's first trial, a fingerprint of the ranges, replay on stored parameters).
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from spaces import dqn, ppo
from spaces.dimensions import SpaceError, apply_overrides, fingerprint, sampler

SEARCH_SPACES = {"ppo": ppo, "dqn": dqn}


@dataclass(frozen=True)
class SearchSpace:
    """A ready-to-sample space for one algorithm."""

    algorithm: str
    sample: Callable[[Any], dict]
    fingerprint: str
    first_params: dict[str, Any] | None = None
    description: dict[str, str] = field(default_factory=dict)

    def __call__(self, trial: Any) -> dict:
        return self.sample(trial)

    def replay(self, params: dict[str, Any]) -> dict:
        """The settings a stored trial ran with, from its stored parameters."""
        import optuna

        return self.sample(optuna.trial.FixedTrial(params))


def check_algorithm(name: str) -> str:
    """Return ``name`` lower-cased if it is a registered algorithm, else raise with a hint."""
    key = str(name).lower()
    if key not in SEARCH_SPACES:
        close = difflib.get_close_matches(key, list(SEARCH_SPACES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpaceError(f"unknown algorithm {name!r}{hint} (choose one of "
                         f"{', '.join(SEARCH_SPACES)})")
    return key


def get_space(algorithm: str, overrides: dict[str, Any] | None = None,
              custom: str | None = None) -> SearchSpace:
    """The search space for ``algorithm``, with a sweep config's overrides applied.

    Args:
        algorithm: ``ppo`` or ``dqn``.
        overrides: ``{param: value}`` fixes a parameter, ``{param: {low, high, log}}`` or
            ``{param: {choices: [...]}}`` changes its range.
        custom: ``"module:function"``, a user's own define-by-run function returning the same
            settings dict; replaces the built-in space (overrides do not apply to it).
    """
    algorithm = check_algorithm(algorithm)
    if custom:
        if overrides:
            raise SpaceError("search.space_overrides cannot be combined with a custom "
                             "search.space; change the ranges in your own function instead")
        fn = load_custom(custom)
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = custom
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        return SearchSpace(algorithm, fn, digest, description={"custom": custom})
    module = SEARCH_SPACES[algorithm]
    searched, fixed = apply_overrides(module.DIMENSIONS, overrides)
    first = getattr(module, "TUTORIAL_PARAMS", None)
    if first is not None:
        # A tutorial value outside an overridden range is left to the sampler: enqueued as is,
        # Optuna would run it outside the user's range (or fail on a missing choice).
        first = {k: v for k, v in first.items() if k in searched and searched[k].contains(v)}
    description = {name: _describe(dim) for name, dim in searched.items()}
    description.update({name: f"fixed {value!r}" for name, value in fixed.items()})
    return SearchSpace(algorithm, sampler(searched, fixed, module.build),
                       fingerprint(searched, fixed, algorithm), first, description)


def _describe(dim: Any) -> str:
    if hasattr(dim, "choices"):
        return f"one of {list(dim.choices)}"
    return f"{dim.low}..{dim.high}{' (log)' if dim.log else ''}"


def load_custom(reference: str) -> Callable[[Any], dict]:
    """Import ``module:function`` as a user's search space."""
    module_name, _, attr = str(reference).partition(":")
    if not module_name or not attr:
        raise SpaceError(f"search.space {reference!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpaceError(f"search.space {reference!r}: cannot import {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SpaceError(f"search.space {reference!r}: {module_name!r} has no function {attr!r}")
    return fn


__all__ = ["SEARCH_SPACES", "SearchSpace", "SpaceError", "check_algorithm", "get_space"]
