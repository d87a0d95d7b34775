"""A progress line a person can read while a sweep runs."""
from __future__ import annotations

import time
from typing import Any

from ray.tune.callback import Callback

from search.events import ProgressCallback, ProgressEvent
from search.sweep.searcher import unless_storage_lost
from trainables import metrics as M


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _reason(trial: Any) -> str:
    from search.sweep.searcher import error_line

    return error_line(trial)


def study_figures(study: Any) -> tuple[dict[str, int], float | None]:
    """Trial counts by state and the best value (first objective) of COMPLETE trials, read
    from the study: every driver's trials, earlier runs included. A trial's value is its
    aggregate over folds and seeds, not one run's score."""
    counts = {"COMPLETE": 0, "PRUNED": 0, "RUNNING": 0, "FAIL": 0, "WAITING": 0}
    values = []
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        if trial.state.name == "COMPLETE" and trial.values:
            values.append(trial.values[0])
    maximise = study.directions[0].name == "MAXIMIZE"
    best = (max(values) if maximise else min(values)) if values else None
    return counts, best


class Progress(Callback):
    """Says (through ``say``) done/running/failed, best value, elapsed and estimated remaining
    time, whenever a trial finishes and at most every ``every_s`` seconds otherwise. The
    figures are the study's own (see ``study_figures``). A trial that cannot start because no
    node has the resources it ``needs`` free is named on the line, with what the cluster has
    free."""

    def __init__(self, study: Any, budget: int, say: ProgressCallback,
                 every_s: float = 30.0, score_name: str = M.SEARCH_METRIC,
                 needs: dict[str, float] | None = None,
                 waiting_after_s: float = 5.0):
        self._study = study
        self._say = say
        self._score_name = score_name
        self._budget = budget
        self._every_s = every_s
        self._needs = needs or {}
        self._waiting_after_s = waiting_after_s
        self._start = time.time()
        self._last = 0.0
        self._completed = 0  # by this run: the pace of the estimate
        self._pending_since: dict[str, float] = {}
        self._asked_at = 0.0
        self._unplaced = 0
        self._waiting_said = 0

    @unless_storage_lost()
    def _line(self, trials: list) -> str | None:
        counts, best = study_figures(self._study)
        done = counts["COMPLETE"] + counts["PRUNED"]
        elapsed = time.time() - self._start
        left = max(self._budget - done, 0)
        eta = f"~{_clock(elapsed / self._completed * left)}" if self._completed else "?"
        shown = f"{best:.4f}" if best is not None else "-"
        running = max(counts["RUNNING"] - self._waiting_said, 0)  # asked, not yet placed
        return (f"[{_clock(elapsed)}] trials done {done}/{self._budget}, running "
                f"{running}, failed {counts['FAIL']}, best {self._score_name} "
                f"{shown}, remaining {eta}{self._waiting_note()}")

    def _waiting_note(self) -> str:
        """"; 1 trial waiting for resources: ..." while Ray cannot place trials Tune holds."""
        from search.sweep.cluster import describe, free_resources

        waiting = self._waiting_said
        if not waiting:
            return ""
        needs = describe(self._needs, zero=False) if self._needs else "its resources"
        return (f"; {waiting} trial{'s' if waiting > 1 else ''} waiting for resources: needs "
                f"{needs} on one node, cluster has {describe(free_resources())} free")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        waiting = self._count_waiting(trials)
        news = waiting > self._waiting_said  # more trials waiting: said at once
        self._waiting_said = waiting
        if news or time.time() - self._last >= self._every_s:
            self._print(trials)

    def _count_waiting(self, trials: list) -> int:
        """Trials PENDING for ``waiting_after_s`` whose resources Ray cannot place (a trial
        also shows PENDING while its worker starts; that is not waiting for resources)."""
        from search.sweep.cluster import waiting_for_resources

        now = time.time()
        pending = [t.trial_id for t in trials if t.status == "PENDING"]
        self._pending_since = {tid: self._pending_since.get(tid, now) for tid in pending}
        long = sum(now - since >= self._waiting_after_s for since in self._pending_since.values())
        if not long:
            return 0
        if now - self._asked_at >= self._waiting_after_s:  # asks the cluster every few seconds
            self._asked_at = now
            self._unplaced = waiting_for_resources()
        return min(long, self._unplaced)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._completed += 1
        self._print(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._say(ProgressEvent("trial_failed", f"trial {trial.trial_id} failed: "
                                                f"{_reason(trial)}"))
        self._print(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._say(ProgressEvent("trial_retrying", f"trial {trial.trial_id} failed "
                                f"({_reason(trial)}); retrying from its last checkpoint"))

    def _print(self, trials: list) -> None:
        self._last = time.time()
        line = self._line(trials)
        if line is not None:
            self._say(ProgressEvent("progress", line))

