"""A progress line a person can read while a sweep runs."""
from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune.callback import Callback

from search.searcher import unless_storage_lost
from trainables import metrics as M


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _reason(trial: Any) -> str:
    from search.searcher import error_line

    return error_line(trial)


class Progress(Callback):
    """Prints done/running/failed, best value, elapsed and estimated remaining time, whenever a
    trial finishes and at most every ``every_s`` seconds otherwise."""

    def __init__(self, study: Any, budget: int, every_s: float = 30.0,
                 score_name: str = M.SEARCH_METRIC):
        self._study = study
        self._score_name = score_name
        self._budget = budget
        self._every_s = every_s
        self._start = time.time()
        self._done_at_start: int | None = None
        self._last = 0.0
        self._best: float | None = None
        self._completed = 0
        self._failed = 0
        self._ended: set[str] = set()

    def _line(self, trials: list) -> str:
        done, failed = self._completed, self._failed
        running = max(sum(t.status == "RUNNING" for t in trials) - self._pending_end(trials), 0)
        previous = self._done_at_start or 0
        elapsed = time.time() - self._start
        left = max(self._budget - previous - done - running, 0) + running
        eta = f"~{_clock(elapsed / done * left)}" if done else "?"
        best = f"{self._best:.4f}" if self._best is not None else "-"
        return (f"[{_clock(elapsed)}] trials done {previous + done}/{self._budget}, running "
                f"{running}, failed {failed}, best {self._score_name} {best}, remaining {eta}")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self._count_previous()
        if time.time() - self._last >= self._every_s:
            self._print(trials)

    @unless_storage_lost()
    def _count_previous(self) -> None:
        if self._done_at_start is None:
            from optuna.trial import TrialState

            self._done_at_start = len(self._study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info) -> None:
        value = result.get(M.SEARCH_METRIC)
        if isinstance(value, (int, float)) and (self._best is None or value > self._best):
            self._best = float(value)

    def _pending_end(self, trials: list) -> int:
        """Trials Tune still lists as RUNNING although their end was just announced."""
        return sum(t.status == "RUNNING" and t.trial_id in self._ended for t in trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._completed += 1
        self._ended.add(trial.trial_id)
        self._print(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._failed += 1
        self._ended.add(trial.trial_id)
        print(f"trial {trial.trial_id} failed: {_reason(trial)}", file=sys.stdout, flush=True)
        self._print(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info) -> None:
        print(f"trial {trial.trial_id} failed ({_reason(trial)}); retrying from its last "
              "checkpoint", file=sys.stdout, flush=True)

    def _print(self, trials: list) -> None:
        self._last = time.time()
        print(self._line(trials), file=sys.stdout, flush=True)
