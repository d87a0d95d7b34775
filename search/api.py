"""TradeTune's Python API: everything the ``tradetune`` command does, for notebooks and programs.
Users import it as ``tradetune`` (``tradetune/__init__.py``); it is the same functions.

    import tradetune as api

    result = api.launch("examples/quickstart.yaml", {"search.num_samples": 4},
                        storage="sqlite:///sweeps.db", progress=print)
    study = api.open_study(result.study, storage="sqlite:///sweeps.db")
    study.best(3)                  # the 3 best trials, as dicts
    study.evaluate(split="test")   # the best trial's kept checkpoint on the test split

The rules every function keeps:

- it returns plain data: dataclasses (``SweepResult``, ``Study``), dicts and lists, the same
  dicts ``--format json`` prints;
- bad input or state raises a ``UserError`` subclass (``search.errors``) with one line that
  names the problem; nothing calls ``sys.exit``;
- it prints nothing: sweeps, promotions and reports say what happens through an optional
  ``progress`` callback that receives ``ProgressEvent``s (``search.events``); ``print``
  works as one;
- ``storage`` is a study storage URL (``sqlite:///PATH`` or ``postgresql://USER@HOST/DB``),
  by default ``$TRADETUNE_STORAGE`` or the SQLite file in ``$TRADETUNE_RESULTS``, as for the CLI.

Importing this module, ``open_study`` and the reading methods of a study (``best``,
``status``, ``export`` without ONNX) import neither ray nor torch; ``launch``, ``resume``,
``evaluate``, ``compare``, ``promote`` and ``report`` load them when called.

The ``tradetune`` command (search/cli/commands.py) only parses its arguments, calls these
functions and formats what they return.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from search.errors import (
    ArgumentError,
    ClusterError,
    ConfigError,
    DataError,
    OutputError,
    PromotionError,
    SpaceError,
    StorageError,
    StorageUnavailable,
    StudyError,
    SweepFailed,
    TradeTuneError,
    UserError,
    both,
)
from search.events import (
    COMPLETED,
    NOTHING_TO_RUN,
    STOPPED,
    ProgressCallback,
    ProgressEvent,
    SweepResult,
    no_progress,
)

__all__ = [
    "launch", "dry_run", "resume", "open_study", "Study", "studies", "status_all",
    "describe_data", "sweep_config", "mask_passwords", "SweepResult", "ProgressEvent",
    "ProgressCallback",
    "COMPLETED", "NOTHING_TO_RUN", "STOPPED",
    # the errors the functions raise
    "TradeTuneError", "UserError", "ArgumentError", "ConfigError", "DataError", "SpaceError",
    "StudyError", "StorageError", "StorageUnavailable", "OutputError", "ClusterError",
    "SweepFailed", "PromotionError",
]

ConfigSource = str | Path | Mapping[str, Any] | None


def mask_passwords(text: str) -> str:
    """``text`` with the password of any database URL in it masked. Every message and value
    the API gives is masked already; this is for text a caller composes around them."""
    from search.study.storage import redact

    return redact(text)


def _quiet(function: Callable) -> Callable:
    """Optuna logs each study it creates or loads at INFO; the API prints nothing, and leaves
    the caller's Optuna verbosity as it found it."""
    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        from search.scoped import optuna_quiet

        with optuna_quiet():
            return function(*args, **kwargs)
    return quiet


@_quiet
def sweep_config(config_or_path: ConfigSource, overrides: Mapping[str, Any] | None = None, *,
                 sets: Sequence[str] = (), study: str | None = None,
                 num_samples: int | None = None) -> dict[str, Any]:
    """The validated sweep config that ``launch`` would run, every default filled in.

    Args:
        config_or_path: a YAML file's path, or a mapping holding what such a file would (None:
            the defaults alone).
        overrides: config keys to change, as a mapping; keys may be dotted
            (``{"training.max_iterations": 3}``), and a mapping merges into a section with
            fixed keys (``{"search": {"num_samples": 4}}`` changes only ``num_samples``) but
            replaces a free-form value (``search.space_overrides``, ``data.splits``, ...) whole,
            the README's rule for ``--set``.
        sets: ``"KEY=VALUE"`` strings, applied before ``overrides``, as ``--set`` (the value
            read as YAML).
        study: the study name (default: ``study`` in the config).
        num_samples: the study-wide number of trials (default: ``search.num_samples``).

    Raises:
        ConfigError: the file or a key is invalid (the message names it).
    """
    from search.config.sweep_config import load_config

    config_or_path = _check_source(config_or_path)
    overrides = _check_mapping("overrides", overrides,
                               "{'training.max_iterations': 3}")
    sets = _check_sets(sets)
    study = _check_text("study", study, "a study name")
    num_samples = _whole(both("--num-samples", "num_samples"), num_samples, "a number of trials",
                         optional=True)
    if num_samples is not None:
        overrides = {**(overrides or {}), "search.num_samples": num_samples}
    return load_config(config_or_path, sets, study=study, overrides=overrides)


@_quiet
def dry_run(config_or_path: ConfigSource, overrides: Mapping[str, Any] | None = None, *,
            sets: Sequence[str] = (), study: str | None = None, num_samples: int | None = None,
            storage: str | None = None, address: str | None = None) -> dict[str, Any]:
    """Every check ``launch`` makes before it creates anything, and nothing else: no study, no
    file, no folder, no Ray. Returns the effective config (``config``, its storage masked), the
    data summary (``data``, as ``describe_data``), the storage and what is there
    (``storage``, ``storage_state``) and the results folder (``results``,
    ``results_exists``). Raises what ``launch`` would."""
    from search.sweep.preflight import dry_run as check

    _check_text("storage", storage, "a storage URL")
    _check_text("address", address, "a Ray address")
    config = sweep_config(config_or_path, overrides, sets=sets, study=study,
                          num_samples=num_samples)
    return check(config, storage, address)


@_quiet
def launch(config_or_path: ConfigSource, overrides: Mapping[str, Any] | None = None, *,
           sets: Sequence[str] = (), study: str | None = None, num_samples: int | None = None,
           storage: str | None = None, address: str | None = None,
           progress: ProgressCallback | None = None,
           command: str = "search.api.launch") -> SweepResult:
    """Create a study from a sweep config and run its sweep to the end; return how it ended.

    The config is given as for ``sweep_config`` (the same ``overrides``, ``sets``, ``study``
    and ``num_samples``). ``address`` is a Ray cluster (default: ``$RAY_ADDRESS``, else a
    local Ray started and stopped here). ``progress`` receives each line the CLI would print
    (the launch, the progress line, failed trials, the end). ``command`` is recorded in the
    study as what launched it.

    A stop signal (Ctrl-C, a notebook's interrupt, SIGTERM) ends the sweep cleanly: the result
    says ``reason == "stopped"`` and ``resume`` continues it. As for the command, a stop that
    takes longer than 15 s (Ray's own processes killed under it) ends the process after the
    study's bookkeeping (search/sweep/stopping.py); a second signal stops at once.

    Raises:
        ConfigError, DataError, SpaceError: the config, its data or its space is invalid.
        StudyError: a study of that name exists already.
        StorageError: the storage cannot be used (``StorageUnavailable``: it stopped
            answering during the sweep; ``resume`` continues once it is back).
        ClusterError: the Ray cluster cannot be reached or cannot run one trial.
        OutputError: the results folder cannot be written.
        SweepFailed: no trial completed (the message gives the most common reason).
    """
    from search.sweep.launch import launch as run_sweep

    _check_text("storage", storage, "a storage URL")
    _check_text("address", address, "a Ray address")
    _check_callable("progress", progress)
    config = sweep_config(config_or_path, overrides, sets=sets, study=study,
                          num_samples=num_samples)
    return run_sweep(config, storage, address, command=command, progress=progress or no_progress)


@_quiet
def resume(study: str, *, storage: str | None = None, address: str | None = None,
           progress: ProgressCallback | None = None) -> SweepResult:
    """Continue a stopped or crashed sweep of ``study``, running only its remaining budget;
    return how it ended, as ``launch`` (``reason == "nothing_to_run"`` when nothing was left).
    Raises what ``launch`` raises, and ``StudyError`` when the study does not exist or its
    space or data changed since launch."""
    from search.config.sweep_config import check_study_name
    from search.sweep.launch import resume as run_sweep

    _check_text("storage", storage, "a storage URL")
    _check_text("address", address, "a Ray address")
    _check_callable("progress", progress)
    return run_sweep(check_study_name(study), storage, address, progress=progress or no_progress)


@_quiet
def open_study(name: str, storage: str | None = None, *, check: bool = True) -> "Study":
    """A handle on an existing study, to read, evaluate, export, report or promote it.

    With ``check=False`` the study is not looked up here: each method raises the errors below
    itself, after checking its own arguments (the order of the command's errors).

    Raises:
        ConfigError: ``name`` is not a valid study name.
        StudyError: the storage has no study of that name (the message suggests close names).
        StorageError: the storage cannot be opened.
    """
    from search.config.sweep_config import check_study_name
    from search.study import studies
    from search.study.storage import open_existing, resolve_url

    _check_text("storage", storage, "a storage URL")
    check = _check_flag("check", check)
    url = resolve_url(storage)
    name = check_study_name(name)
    if not check:
        return Study(name, url)
    opened = open_existing(url)
    try:
        studies.load_study(opened, name)
    finally:
        opened.engine.dispose()
    return Study(name, url)


@_quiet
def studies(storage: str | None = None) -> list[dict[str, Any]]:
    """One row per study of the storage (oldest first): ``study``, ``created``, ``algorithm``,
    ``data``, ``trials``, ``counts`` by state, ``best_value``, ``best_trial``."""
    from search.study.manage import list_studies
    from search.study.storage import resolve_url

    _check_text("storage", storage, "a storage URL")
    return list_studies(resolve_url(storage))


@_quiet
def status_all(storage: str | None = None) -> list[dict[str, Any]]:
    """``Study.status`` of every study of the storage, without the config and storage keys."""
    from search.results.summaries import status
    from search.study.storage import resolve_url

    _check_text("storage", storage, "a storage URL")
    return status(resolve_url(storage), None)


@_quiet
def describe_data(path: str | Path, *, splits: Mapping[str, Any] | None = None,
                  walk_forward: Mapping[str, Any] | None = None, date_column: str | None = None,
                  sep: str | None = None, decimal: str | None = None) -> dict[str, Any]:
    """Check a market CSV and describe it as ``tradetune data`` does: rows, dates, interval,
    gaps, warm-up, splits (and walk-forward folds) and features. The keyword arguments are the
    ``data.*`` config keys of the same names. Raises ``DataError`` naming the problem."""
    from search.results.data_summary import describe
    from trainables.market import prepare_market

    path = _check_path("path", path)
    _check_mapping("splits", splits, "{'train': 0.7, 'val': 0.15, 'test': 0.15}")
    _check_mapping("walk_forward", walk_forward, "{'folds': 3}")
    for name, value in (("date_column", date_column), ("sep", sep), ("decimal", decimal)):
        _check_text(name, value, "text")
    reading = {"date_column": date_column, "sep": sep, "decimal": decimal}
    return describe(prepare_market({"path": str(path), "splits": splits,
                                    "walk_forward": walk_forward,
                                    **{k: v for k, v in reading.items() if v is not None}}))


@dataclass(frozen=True)
class Study:
    """An existing study (see ``open_study``). Each method reads the study afresh, so a handle
    on a running study sees its latest trials. ``trial=None`` means the best COMPLETE trial (in
    a multi-objective study, the Pareto trial with the highest first objective)."""

    name: str
    _url: str = field(repr=False)  # may hold a password: shown only masked, as ``storage``

    @property
    def storage(self) -> str:
        """The study's storage URL, its password masked."""
        from search.study.storage import redact

        return redact(self._url)

    @_quiet
    def best(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` best COMPLETE trials, best first (a multi-objective study: its Pareto
        front), each with ``number``, ``value``, ``params``, ``settings`` (ready to use),
        validation ``metrics``, ``checkpoint``, ``stop_reason`` and the study's test-split
        audit count; the first also carries the ``overfitting`` check. ``[]`` before any
        trial completed."""
        from search.results.summaries import best

        return best(self._url, self.name, _check_count("k", k))

    @_quiet
    def status(self) -> dict[str, Any]:
        """Trial ``counts`` by state, ``best_value``, ``best_trial``, the stored ``config``,
        the masked ``storage`` and the test-split audit count (``test_looks``)."""
        from search.results.summaries import status

        return status(self._url, self.name)

    @_quiet
    def evaluate(self, trial: int | None = None, split: str = "test",
                 actions: str | Path | None = None, force: bool = False,
                 stress: bool = False) -> dict[str, Any]:
        """Score a trial's kept checkpoint on ``split`` ("test" or "val") against buy-and-hold:
        Sharpe, P&L, buy-and-hold, drawdown, trades, ``beats_buy_and_hold``. With
        ``actions``, also write one CSV row per bar there (timestamp, close, action, position,
        portfolio value, buy-and-hold value): a new file, or with ``force`` over an existing
        one (never a storage file or a study's folder). With ``stress``, also ``stress``: the
        checkpoint re-scored with commission x2, one bar of execution delay and 10 bps more
        slippage, each saying whether the edge over buy-and-hold ``survives``. A look at the
        test split is recorded in the study (see ``status()["test_looks"]``)."""
        from search.results.evaluate import evaluate_trial

        trial = _check_trial(trial)
        if not isinstance(split, str) or split not in ("val", "test"):
            raise ArgumentError(f"split must be 'test' or 'val', got {split!r}")
        actions = _check_path(both("--actions", "actions"), actions, optional=True)
        force = _check_flag("force", force)
        if force and actions is None:
            raise ArgumentError("force replaces an existing actions file; it goes with actions")
        return evaluate_trial(self._url, self.name, trial, split, actions, force=force,
                              stress=_check_flag("stress", stress))

    @_quiet
    def compare(self, k: int = 5) -> dict[str, Any]:
        """Validation against test, side by side, for the ``k`` best trials (``trials``), with
        the ``overfitting`` check of the best: how much of the ranking survives unseen data.
        Recorded in the study as one look at the test split."""
        from search.results.evaluate import compare_top

        return compare_top(self._url, self.name, _check_count("k", k))

    @_quiet
    def export(self, out: str | Path, trial: int | None = None, onnx: bool = False,
               force: bool = False) -> dict[str, Any]:
        """Write a trial's RLlib config, sweep config and checkpoint to the folder ``out``
        (new, empty, or an earlier export of this study; any folder with ``force``); with
        ``onnx`` also the deployable bundle (policy.onnx, policy_obs.onnx, policy.json,
        MODEL_CARD.md). Returns ``study``, ``trial``, ``value``, ``out``, ``files``."""
        from search.results.export import export

        return export(self._url, self.name, _check_trial(trial),
                      _check_path(both("--out", "out"), out), onnx=_check_flag("onnx", onnx),
                      force=_check_flag("force", force))

    @_quiet
    def report(self, out: str | Path, force: bool = False,
               progress: ProgressCallback | None = None) -> Path:
        """Write the HTML report (``index.html`` and its plots) to the folder ``out`` and
        return the page's path; works while the study runs. ``progress`` is told what the
        report leaves out, if anything."""
        from search.results.report import write_report

        return write_report(self._url, self.name, _check_path(both("--out", "out"), out),
                            force=_check_flag("force", force),
                            progress=_check_callable("progress", progress) or no_progress)

    @_quiet
    def promote(self, seeds: int, trial: int | None = None, address: str | None = None,
                progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Retrain a trial's configuration on ``seeds`` fresh seeds (1..100) the study never
        used and judge whether its score reproduces (``verdict``); the result is stored on the
        trial and returned."""
        from search.sweep.promote import promote

        seeds = _whole(both("--seeds", "seeds"), seeds, "a number of seeds")
        trial = _check_trial(trial)
        _check_text("address", address, "a Ray address")
        return promote(self._url, self.name, trial, seeds, address,
                       progress=_check_callable("progress", progress) or no_progress)

    @_quiet
    def delete(self, confirm: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """Delete the study from its storage and its results folder; nothing else. ``confirm``
        is asked the question (what will be removed) first, and a False answer raises
        ``UserError`` with nothing removed; by default nothing is asked."""
        from search.study.manage import delete_study

        return delete_study(self._url, self.name,
                            _check_callable("confirm", confirm) or (lambda _question: True))


# -- arguments, checked at the door ----------------------------------------------------------
# Each public function checks its arguments before it does anything, with the one-line
# ``ArgumentError`` a caller can act on: a wrong type used to surface as an AttributeError or
# TypeError from deep inside, or be taken for something else (``trial=True`` as trial 1,
# ``sets="k=v"`` as the three settings 'k', '=', 'v'). numpy scalars (a value read from an
# array or a DataFrame) are taken as the plain Python values they hold.

def _plain_scalar(value: Any) -> Any:
    """A numpy scalar (``numpy.int64(3)``, ``numpy.float32(0.5)``, ``numpy.bool_(True)``) as
    the plain Python value it holds; anything else as it is."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _whole(name: str, value: Any, what: str, low: int | None = None,
           optional: bool = False) -> int | None:
    """``value`` as an int (True is not 1, 1.0 is not a trial number); ``low``: the least
    allowed, where the function called does not say it itself."""
    value = _plain_scalar(value)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{name} must be {what} (an int){' or None' if optional else ''}, "
                            f"got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        raise ArgumentError(f"{name} must be {what} >= {low}, got {value!r}")
    return value


def _check_count(name: str, value: Any) -> int:
    value = _plain_scalar(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{name} must be a whole number of trials >= 1, got {value!r}")
    return value


def _check_trial(trial: Any) -> int | None:
    return _whole(both("--trial", "trial"), trial, "a trial number", optional=True)


def _check_flag(name: str, value: Any) -> bool:
    value = _plain_scalar(value)
    if not isinstance(value, bool):
        raise ArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def _check_text(name: str, value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ArgumentError(f"{name} must be {what} (a str) or None, got {value!r} "
                            f"({type(value).__name__})")
    return value


def _check_path(name: str, value: Any, optional: bool = False) -> Path | None:
    import os

    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = os.fspath(value)
        if isinstance(path, str) and path.strip():
            return Path(path)
    raise ArgumentError(f"{name} must be a path (a non-empty str or pathlib.Path)"
                        f"{' or None' if optional else ''}, got {value!r}")


def _check_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ArgumentError(f"{name} must be a function or None, got {value!r}")
    return value


def _check_mapping(name: str, value: Any, example: str) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ArgumentError(f"{name} must be a mapping such as {example} or None, got a "
                            f"{type(value).__name__}: {repr(value)[:60]}")
    return value


def _check_source(value: Any) -> ConfigSource:
    import os

    if value is None or isinstance(value, Mapping):
        return value
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        return _check_path("config_or_path", value)
    raise ArgumentError(f"config_or_path must be a YAML file's path (a str or pathlib.Path), "
                        f"a mapping of config keys or None, got a {type(value).__name__}: "
                        f"{repr(value)[:60]}")


def _check_sets(sets: Any) -> list[str]:
    if isinstance(sets, (str, bytes)) or not isinstance(sets, (list, tuple)) \
            or not all(isinstance(item, str) for item in sets):
        raise ArgumentError(f"sets must be a list of 'KEY=VALUE' strings, e.g. "
                            f"['training.max_iterations=3'], got {sets!r}"[:300])
    return list(sets)
