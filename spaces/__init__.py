"""Search spaces, one module per algorithm, and the one registry that names them.

``get_space(algorithm, overrides=None, custom=None)`` returns a ``SearchSpace``: a pure
define-by-run function of an Optuna trial that returns ready-to-use RLlib settings
(``{"training": ..., "model": ..., "env": ...}``), plus what the service needs around it
(the tutorial's first trial, a fingerprint of the ranges, replay on stored parameters).
A custom space (``search.space: "package.module:function"``) is the user's own code: ``dry_run``
calls it once before a study is created or resumed and checks what it returns.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from spaces.algorithm import Algorithm, Greedy
from spaces.dimensions import apply_overrides, fingerprint, sampler
from trainables.errors import SpaceError, did_you_mean

# The registered algorithms, in the order they are listed to users: one space module each
# (``spaces/<name>.py``), which declares its dimensions, ``build`` and ``ALGORITHM``.
ALGORITHMS = ("ppo", "dqn", "appo")
SEARCH_SPACES = {name: importlib.import_module(f"spaces.{name}") for name in ALGORITHMS}


@dataclass(frozen=True)
class SearchSpace:
    """A ready-to-sample space for one algorithm."""

    algorithm: str
    sample: Callable[[Any], dict]
    fingerprint: str
    first_params: dict[str, Any] | None = None
    description: dict[str, str] = field(default_factory=dict)
    custom: str | None = None  # "module:function" of a user's own space

    def __call__(self, trial: Any) -> dict:
        return self.sample(trial)

    def replay(self, params: dict[str, Any]) -> dict:
        """The settings a stored trial ran with, from its stored parameters."""
        import optuna

        return self.sample(optuna.trial.FixedTrial(params))


def algorithm_of(name: str) -> Algorithm:
    """What the trainable, evaluation and export must know about a registered algorithm."""
    return SEARCH_SPACES[check_algorithm(name)].ALGORITHM


def greedy_readings() -> list[Greedy]:
    """The registered algorithms' greedy readings, each once: those reading the ``actions`` a
    module picked itself first (RLlib's env runner prefers them too), then argmax readings."""
    readings = {space.ALGORITHM.greedy: None for space in SEARCH_SPACES.values()}
    return sorted(readings, key=lambda reading: reading.argmax)


def check_algorithm(name: str) -> str:
    """Return ``name`` lower-cased if it is a registered algorithm, else raise with a hint."""
    key = str(name).lower()
    if key not in SEARCH_SPACES:
        raise SpaceError(f"unknown algorithm {name!r}{did_you_mean(key, SEARCH_SPACES)} (choose one of "
                         f"{', '.join(SEARCH_SPACES)})")
    return key


def get_space(algorithm: str, overrides: dict[str, Any] | None = None,
              custom: str | None = None) -> SearchSpace:
    """The search space for ``algorithm``, with a sweep config's overrides applied.

    Args:
        algorithm: a registered algorithm (``ALGORITHMS``).
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
        return SearchSpace(algorithm, fn, digest, description={"custom": custom}, custom=custom)
    module = SEARCH_SPACES[algorithm]
    rules = getattr(module, "RULES", ())
    searched, fixed = apply_overrides(module.DIMENSIONS, overrides, rules)
    first = getattr(module, "TUTORIAL_PARAMS", None)
    if first is not None:
        # A tutorial value outside an overridden range is left to the sampler: enqueued as is,
        # Optuna would run it outside the user's range (or fail on a missing choice).
        first = {k: v for k, v in first.items() if k in searched and searched[k].contains(v)}
    description = {name: _describe(dim) for name, dim in searched.items()}
    description.update({name: f"fixed {value!r}" for name, value in fixed.items()})
    return SearchSpace(algorithm, sampler(searched, fixed, module.build, rules),
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
        raise SpaceError(f"search.space {reference!r}: cannot import {module_name!r} ({exc}); "
                         "install it, or add its folder to PYTHONPATH on every machine of the "
                         "sweep (README, \"Custom search spaces\")") from None
    except Exception as exc:  # noqa: BLE001 - the module's own code failed on import
        raise SpaceError(f"search.space {reference!r}: importing {module_name!r} raised "
                         f"{exception_line(exc)}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SpaceError(f"search.space {reference!r}: {module_name!r} has no function {attr!r}")
    return fn


SETTINGS_SHAPE = ('{"training": {...}, "model": {...}, "env": {...}} of plain values (numbers, '
                  'strings, booleans, None, lists)')
# The env settings a space may set; the market frictions and the reward are the sweep config's.
SEARCHED_ENV_KEYS = ("window_size", "max_allowed_loss", "max_episode_steps")


def dry_run(space: SearchSpace, sweep: dict[str, Any]) -> dict[str, Any] | None:
    """Call a custom space once on a throwaway in-memory trial and check what it returns: the
    documented shape, plain values, a pure function of the trial (replaying its parameters
    gives the same settings) and env settings a space may set. Returns those settings, for
    RLlib's own validation (``trainables.rllib_trainable.check_settings_with_rllib``, as the
    built-in spaces are checked in the tests); None for a built-in space. Raises
    ``SpaceError`` with one line."""
    if not space.custom:
        return None
    import optuna

    name = f"search.space {space.custom!r}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory" line
    try:
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    finally:
        optuna.logging.set_verbosity(verbosity)
    try:
        settings = space(trial)
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise SpaceError(f"{name} raised {exception_line(exc)} when called on a test "
                         "trial") from None
    problem = settings_problem(settings)
    if problem:
        raise SpaceError(f"{name} is not a valid space: {problem}; it must return "
                         f"{SETTINGS_SHAPE}")
    try:
        replayed = space.replay(trial.params)
    except Exception as exc:  # noqa: BLE001
        replayed = exc
    if replayed != settings:
        raise SpaceError(f"{name} is not a pure function of the trial: called again with the "
                         "same parameters it returned other settings; take every searched "
                         "value from trial.suggest_* and nothing from elsewhere")
    return settings


def settings_problem(settings: Any) -> str | None:
    """What is wrong with a space's settings dict, or None."""
    if not isinstance(settings, dict):
        return f"it returned {type(settings).__name__}, not a dict"
    unknown = sorted(str(k) for k in set(settings) - {"training", "model", "env"})
    if unknown:
        return f"unknown key(s) {unknown}"
    for part in ("training", "model", "env"):
        value = settings.get(part, {}) if part == "env" else settings.get(part)
        if not isinstance(value, dict):
            return f"{part!r} is {'missing' if value is None else type(value).__name__}, not a dict"
        problem = _plain_problem(value, part)
        if problem:
            return problem
    refused = sorted(set(settings.get("env", {})) - set(SEARCHED_ENV_KEYS))
    if refused:
        return (f"env setting(s) {refused} cannot be searched (a space may set "
                f"{', '.join(SEARCHED_ENV_KEYS)}; commission, slippage, borrow rate, actions, "
                "cash and reward are set in the sweep config's env section)")
    window = settings.get("env", {}).get("window_size", 1)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        return f"env.window_size must be a whole number >= 1, got {window!r}"
    return None


def _plain_problem(value: Any, path: str) -> str | None:
    """Settings are stored, printed as JSON and replayed: plain Python values only."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a non-string key {key!r}"
            problem = _plain_problem(item, f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _plain_problem(item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if value is None or type(value) in (str, bool, int):
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"{path} is {value!r}, not a finite number"
    return (f"{path} is a {type(value).__module__}.{type(value).__name__} ({value!r}); use "
            "plain Python values (int(...), float(...), str(...))")


def exception_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)[:300]


__all__ = ["ALGORITHMS", "SEARCH_SPACES", "Algorithm", "SearchSpace", "SpaceError",
           "algorithm_of", "check_algorithm", "dry_run", "greedy_readings",
           "exception_line", "get_space", "settings_problem"]
