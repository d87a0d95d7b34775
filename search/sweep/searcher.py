"""OptunaSearch that owns the link between Tune's trials and the study in SQL.

Stock OptunaSearch loses that link when the driver dies (see README, "Resume"). This searcher
claims each trial atomically against the study-wide budget (counting, asking and tagging under
the study's claim lock, ``search/study/claims.py``, so drivers started together never run more than
``num_samples`` trials), tags every Optuna trial with its Tune trial id and its driver, fails
trials whose scores are missing or not finite, or whose search space raised, instead of leaving
them RUNNING, and tolerates duplicate or late callbacks. Resuming never unpickles it: a resume
starts a fresh searcher on the same study.
"""
from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import re
import socket
import time
from typing import Any, Callable, NoReturn

from ray.tune.callback import Callback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from search.config.constraints import broken as broken_constraints
from search.config.constraints import values as constraint_values
from search.errors import SpaceError, StorageUnavailable
from search.study.claims import claim_lock, storage_backend
from search.study.schema import (
    ATTR_CHECKPOINT,
    ATTR_DRIVER,
    ATTR_ENV_STEPS,
    ATTR_FAIL,
    ATTR_BROKEN,
    ATTR_FEASIBLE,
    ATTR_METRICS,
    FLAT_METRIC_PREFIX,
    FLAT_METRICS,
    ATTR_NODE,
    ATTR_SEED,
    ATTR_STOP,
    ATTR_TUNE_ID,
    HEARTBEAT_PREFIX,
)
from search.study.storage import relative_to_results
from search.study.studies import next_command
from search.study.trials import optuna_trial_id, storage_of
from spaces import exception_line
from trainables import metrics as M
from trainables.seeds import trial_seed

log = logging.getLogger(__name__)

COUNTED_STATES = ("COMPLETE", "PRUNED", "RUNNING")


def unless_storage_lost(fallback: Any = None) -> Callable:
    """For Tune callbacks that write to the study: once the storage has given up retrying
    (``StorageUnavailable``), do nothing and return ``fallback``; ``StopWhenStorageLost`` then
    ends the sweep and the driver prints one line saying how to resume. Raised inside Tune,
    the error would instead fail trials or end the run with Tune's traceback."""
    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except StorageUnavailable:
                return fallback
        return guarded
    return decorate


class StopWhenStorageLost(Stopper):
    """Stops every trial once the study's storage is marked unavailable."""

    def __init__(self, study: Any):
        self._storage = storage_backend(study)

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(getattr(self._storage, "unavailable", None))


def driver_identity() -> dict[str, Any]:
    """This driver's heartbeat: host, process id and time, stored on the study."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}


class StudySearcher(OptunaSearch):
    """OptunaSearch on an existing study, with a study-wide budget of ``num_samples`` trials."""

    def __init__(self, space: Callable[[Any], dict], study: Any, sampler: Any, num_samples: int,
                 sweep_seed: int, driver_id: str, objectives: list[str] | None = None,
                 constraints: dict[str, float] | None = None):
        def define_by_run(trial: Any) -> None:
            space(trial)

        # A multi-objective study's later objectives are measured on the kept checkpoint.
        self._secondary = list(objectives or [])[1:]
        metric: str | list[str] = M.SEARCH_METRIC
        mode: str | list[str] = M.SEARCH_MODE
        if self._secondary:
            metric = [M.SEARCH_METRIC, *(M.BEST_PREFIX + name for name in self._secondary)]
            mode = [M.SEARCH_MODE, *("min" if M.objective_direction(name) == "minimize" else "max"
                                     for name in self._secondary)]
        super().__init__(space=define_by_run, metric=metric, mode=mode,
                         storage=storage_of(study), study_name=study.study_name, sampler=sampler)
        self._num_samples = num_samples
        self._sweep_seed = sweep_seed
        self._driver_id = driver_id
        self._awaiting_reason: dict[str, Any] = {}
        custom, algorithm = getattr(space, "custom", None), getattr(space, "algorithm", None)
        self._space_name = (f"search.space {custom!r}" if custom else
                            f"the {algorithm} search space" if algorithm else "the search space")
        self._stopped: str | None = None
        self._constraints = constraints or {}

    @property
    def study(self):
        return self._ot_study

    def trial_number(self, trial_id: str) -> int | None:
        """The study trial number of a Tune trial of this driver (None if unknown)."""
        ot_trial = self._ot_trials.get(trial_id)
        return None if ot_trial is None else ot_trial.number

    def trial_params(self, trial_id: str) -> dict[str, Any] | None:
        """The parameters the study's trial was given (None for a trial of another driver)."""
        ot_trial = self._ot_trials.get(trial_id)
        return dict(ot_trial.params) if ot_trial is not None else None

    def budget_left(self) -> int:
        """Trials still to start, counting every driver's finished and running trials. Without
        the claim lock this is an estimate: another driver may take a trial a moment later."""
        from optuna.trial import TrialState

        states = tuple(TrialState[s] for s in COUNTED_STATES)
        used = len(self._ot_study.get_trials(deepcopy=False, states=states))
        return self._num_samples - used

    def claim(self, trial_id: str) -> Any | None:
        """Take one trial of the study-wide budget for Tune trial ``trial_id``, or None when the
        budget is used. Counting, asking and tagging happen under the study's claim lock, so
        drivers claiming at the same moment never take more than ``num_samples`` trials.
        What counts is unchanged: COMPLETE, PRUNED and RUNNING trials; a FAIL trial does not
        (resume re-runs it)."""
        study = self._ot_study
        asked: list[Any] = []

        def take(_storage: Any = None) -> Any | None:
            with claim_lock(study):
                if not asked:  # a retry after a lost connection keeps the trial it asked for
                    if self.budget_left() <= 0:
                        return None
                    asked.append(study.ask())
                ot_trial = asked[0]
                # Tagged before the lock is released: a resume failing orphans under the same
                # lock never sees this trial without its driver.
                ot_trial.set_user_attr(ATTR_TUNE_ID, trial_id)
                ot_trial.set_user_attr(ATTR_DRIVER, self._driver_id)
                ot_trial.set_user_attr(ATTR_SEED, trial_seed(self._sweep_seed, ot_trial.number))
                return ot_trial

        # search/study/storage.py retries
        retrying = getattr(storage_backend(study), "_call", None)
        return retrying(take, (), {}) if retrying else take()

    @unless_storage_lost(Searcher.FINISHED)
    def suggest(self, trial_id: str) -> dict | str | None:
        if self._stopped:
            return Searcher.FINISHED
        if trial_id not in self._ot_trials:
            ot_trial = self.claim(trial_id)
            if ot_trial is None:
                return Searcher.FINISHED
            self._ot_trials[trial_id] = ot_trial
        ot_trial = self._ot_trials[trial_id]
        try:
            config = super().suggest(trial_id)
        except StorageUnavailable:
            raise
        except Exception as exc:  # the space's own code raised: the user's to fix
            self._space_failed(trial_id, ot_trial, exc)
        return {**config, M.TRIAL_SEED: trial_seed(self._sweep_seed, ot_trial.number)}

    def _space_failed(self, trial_id: str, ot_trial: Any, exc: Exception) -> NoReturn:
        """The search space raised while sampling a trial: that trial becomes FAIL with the
        reason, and the sweep stops with one line (FAIL trials do not use the budget, so
        sampling on could fail trial after trial without end). ``fail_all_awaiting`` then
        fails this driver's trials still in flight."""
        reason = f"{self._space_name} raised {exception_line(exc)}"
        self._fail_now(trial_id, ot_trial, reason)
        self._stopped = reason
        raise SpaceError(f"{reason} while sampling trial {ot_trial.number} (marked FAIL); the "
                         "sweep stopped. Fix the space, then continue with "
                         f"`{next_command('resume', self._ot_study.study_name)}`")

    @unless_storage_lost()
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Intermediate values are each evaluation's own validation score (not the best so far),
        # so Optuna's plots and the dashboard show how validation moved during training.
        ot_trial = self._ot_trials.get(trial_id)
        value = result.get(M.VAL_SCORE)
        if ot_trial is None or trial_id in self._completed_trials or value is None:
            return
        step = int(result.get(M.EVALS) or result["training_iteration"])
        if not _finite(value):  # never stored as a number; the trial fails with the reason
            self._fail_now(trial_id, ot_trial, f"validation {M.VAL_SCORE} of evaluation {step} "
                                               f"is {value!r}")
            return
        if self._secondary:  # Optuna keeps no intermediate values for several objectives
            return
        ot_trial.report(float(value), step)

    @unless_storage_lost()
    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        value = (result or {}).get(M.SEARCH_METRIC)
        if result:
            best = self._store_result(ot_trial, result, result.get(M.STOP_REASON) or "scheduler")
            if self._secondary:
                value = [value, *(_objective_or_none(name, best) for name in self._secondary)]
        if error:
            # Tune tells the searcher before the callbacks that carry the error message.
            self._awaiting_reason[trial_id] = ot_trial
        elif not all(map(_finite, value if isinstance(value, list) else [value])):
            self._fail_now(trial_id, ot_trial, f"final {self.metric} is {value!r}")
        else:
            values = [float(v) for v in value] if isinstance(value, list) else float(value)
            self._ot_study.tell(ot_trial, values, skip_if_finished=True)

    def _store_result(self, ot_trial: Any, result: dict, stop_reason: str) -> dict[str, Any]:
        """The final result's figures onto the study's trial; returns its ``best_val_`` ones."""
        best = {k[len(M.BEST_PREFIX):]: v for k, v in result.items()
                if k.startswith(M.BEST_PREFIX)}
        self._set_attr(ot_trial, ATTR_METRICS, best)
        for name in FLAT_METRICS:
            if isinstance(best.get(name), (int, float)) and _finite(best[name]):
                self._set_attr(ot_trial, FLAT_METRIC_PREFIX + name, best[name])
        if self._constraints:  # before the tell: the sampler reads them from the trial
            for name, value in zip(self._constraints, constraint_values(self._constraints, best)):
                ot_trial.set_constraint(name, value)
            missed = broken_constraints(self._constraints, best)
            self._set_attr(ot_trial, ATTR_FEASIBLE, not missed)
            self._set_attr(ot_trial, ATTR_BROKEN, missed)
        self._set_attr(ot_trial, ATTR_STOP, stop_reason)
        self._set_attr(ot_trial, ATTR_NODE, result.get(M.NODE_ID))
        self._set_attr(ot_trial, ATTR_ENV_STEPS, result.get(M.ENV_STEPS))
        return best

    @unless_storage_lost()
    def prune(self, trial_id: str, result: dict, value: float, reason: str) -> None:
        """Finish a trial that a scheduler stops early as PRUNED, with its partial figures
        stored as for a completed one; Optuna keeps ``value`` (the score it was judged on) as
        its last intermediate value, which is what a PRUNED trial's value is."""
        from optuna.trial import TrialState

        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        self._store_result(ot_trial, result, reason)
        # At this evaluation's step, or after the last one reported (a restarted run repeats
        # steps, and Optuna ignores a second report at a step).
        stored = storage_of(self._ot_study).get_trial(optuna_trial_id(ot_trial))
        reported = stored.intermediate_values
        step = max([int(result.get(M.EVALS) or 0), *(s + 1 for s in reported)])
        ot_trial.report(float(value), step)
        self._ot_study.tell(ot_trial, state=TrialState.PRUNED, skip_if_finished=True)

    @unless_storage_lost()
    def fail(self, trial_id: str, reason: str) -> None:
        """Finish an errored trial as FAIL with its reason."""
        ot_trial = self._awaiting_reason.pop(trial_id, None)
        if ot_trial is not None:
            self._fail_now(trial_id, ot_trial, reason)

    @unless_storage_lost()
    def fail_all_awaiting(self) -> None:
        """At the end of a run: errored trials still waiting for their reason become FAIL, and
        after the search space raised, so does every trial of this driver still in flight."""
        for trial_id in list(self._awaiting_reason):
            self.fail(trial_id, "trial failed")
        if self._stopped:
            for trial_id, ot_trial in list(self._ot_trials.items()):
                if trial_id not in self._completed_trials:
                    self._fail_now(trial_id, ot_trial, f"sweep stopped: {self._stopped}")

    def _fail_now(self, trial_id: str, ot_trial: Any, reason: str) -> None:
        from optuna.trial import TrialState

        self._completed_trials.add(trial_id)
        self._set_attr(ot_trial, ATTR_FAIL, reason)
        self._ot_study.tell(ot_trial, state=TrialState.FAIL, skip_if_finished=True)

    @unless_storage_lost()
    def record(self, trial_id: str, key: str, value: Any) -> None:
        """Attach a user attribute to the Optuna trial of a Tune trial (if still running)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            self._set_attr(ot_trial, key, value)

    @staticmethod
    def _set_attr(ot_trial: Any, key: str, value: Any) -> None:
        try:
            ot_trial.set_user_attr(key, _without_non_finite(value))
        except StorageUnavailable:
            raise
        except Exception as exc:  # a finished trial cannot change; keep the sweep going
            log.warning("could not record %s on trial %s: %s", key, ot_trial.number, exc)

    # Resume starts a fresh searcher on the study; nothing of this object is ever restored,
    # and pickling it would write closures and storage handles into the experiment directory.
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as handle:
            handle.write("tradetune: searcher state lives in the Optuna study\n")

    def restore(self, checkpoint_path: str) -> None:
        pass


class StudyBookkeeping(Callback):
    """Driver-side Tune callback: checkpoint paths and failure reasons onto the study's trials,
    and a heartbeat that tells ``resume`` whether this driver is still alive."""

    def __init__(self, searcher: StudySearcher, driver_id: str, every_s: float = 10.0):
        self._searcher = searcher
        self._driver_id = driver_id
        self._every_s = every_s
        self._last_beat = 0.0

    @unless_storage_lost()
    def beat(self) -> None:
        self._searcher.study.set_user_attr(HEARTBEAT_PREFIX + self._driver_id, driver_identity())
        self._last_beat = time.time()

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.time() - self._last_beat >= self._every_s:
            self.beat()

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info) -> None:
        # Relative to the results directory, so a results folder can be moved or shared.
        self._searcher.record(trial.trial_id, ATTR_CHECKPOINT,
                              relative_to_results(checkpoint.path))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._searcher.fail(trial.trial_id, error_line(trial))

    def on_experiment_end(self, trials: list, **info) -> None:
        self._searcher.fail_all_awaiting()


def error_line(trial: Any) -> str:
    """A failed trial's error as ``Type: message``, for the study and the progress lines.

    Tune gives the worker's traceback as text. Its last line is the outermost exception, which
    can be a bare wrapper: RLlib re-raises an env's error as ``raise RuntimeError from e``, so
    the last line says "RuntimeError" while the cause (``ZeroDivisionError: float division by
    zero``) sits above it. The reason is the outermost exception that carries a message, under
    its own short type name."""
    message = getattr(trial, "error_message", None) or ""
    if not message:
        path = getattr(trial, "error_file", None)
        try:
            message = open(path).read() if path else ""
        except OSError:
            message = ""
    return exception_from_traceback(str(message)) or "trial failed"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# ``pkg.mod.Type: message`` or ``Type``, and Ray's ``ray.exceptions.RayTaskError(Type): ...``
_EXCEPTION = re.compile(r"(?:[A-Za-z_]\w*\.)*(?P<type>[A-Z]\w*)"
                        r"(?:\((?:[A-Za-z_]\w*\.)*(?P<inner>[A-Z]\w*)\))?"
                        r"(?::\s?(?P<message>.*))?", re.DOTALL)
_NOT_EXCEPTIONS = ("Traceback (most recent call last)", "The above exception",
                   "During handling of the above exception", "Failure # ")


def exception_from_traceback(text: str) -> str | None:
    """``Type: first line of the message`` of the outermost exception in a printed traceback
    (chained ones included) that has a message; a bare ``Type`` when none has; None when the
    text holds no traceback frame. At most 500 characters."""
    found: list[tuple[str, str]] = []
    after_frame = False
    for raw in _ANSI.sub("", text).splitlines():
        if not raw.strip():
            continue
        if raw[0].isspace():  # a frame, its source line or a caret line (Ray trims frames)
            after_frame = True
            continue
        if after_frame and not raw.startswith(_NOT_EXCEPTIONS):
            match = _EXCEPTION.fullmatch(raw.strip())
            if match:
                kind = match["inner"] or match["type"]
                found.append((kind, (match["message"] or "").strip()))
        after_frame = False
    if not found:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:500] if lines else None
    kind, said = next(((k, m) for k, m in reversed(found) if m), found[-1])
    return (f"{kind}: {said}" if said else kind)[:500]


def _objective_or_none(name: str, metrics: dict[str, Any]) -> float | None:
    try:
        return M.objective_value(name, metrics)
    except (KeyError, TypeError, ValueError):
        return None


def _finite(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (numpy scalars included; bools not)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _without_non_finite(value: Any) -> Any:
    """``value`` with every NaN or infinite number replaced by None and numpy numbers made
    plain: Optuna stores user attributes as JSON, where NaN and Infinity are not numbers any
    reader accepts."""
    if isinstance(value, dict):
        return {k: _without_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_non_finite(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if math.isfinite(value) else None

