"""Fold racing (``search.scheduler: racing``): early stopping on the aggregate of a trial's runs.

A trial of several runs (walk-forward folds and/or seeds, ``trainables/runs.py``) trains them one
after the other; each finished run that is not the last is a rung. At rung r the trial's score is
its running aggregate: ``training.aggregate`` over the runs done so far, the same rule as its
final value. The trial goes on only if that score is among the best ``1/eta`` of the trials that
finished rung r (itself included), once at least ``min_trials`` trials have; otherwise it ends
PRUNED. Unlike ASHA on a single split, every rung judges the honest signal (out-of-sample runs),
not an early evaluation of one split.

The rung scores live in the study (user attribute ``rung_scores`` of each trial, written by the
driver that runs the trial), so drivers sharing a PostgreSQL study race against each other's
trials too, and a resumed study keeps the scores of its earlier runs.

The Tune side is a driver-side scheduler that judges a trial after each run: the trainable marks
the report that ends a run before the last with ``rung`` and ``rung_score``
(``trainables/rllib_trainable.py``). On such a report the scheduler stores the score on the
study's trial, reads every trial's rung scores from the study, and either lets the trial go on
or ends it: the searcher tells Optuna PRUNED, then Tune stops the trial. The settings and their
check are in ``search/config/racing.py``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.config.racing import DEFAULTS as RACING_DEFAULTS
from search.errors import StorageUnavailable
from search.study.schema import ATTR_RUNG_SCORES
from trainables import metrics as M

STOP_REASON = "racing"


def keeps(score: float, others: Iterable[float], eta: float, min_trials: int) -> bool:
    """Whether a trial with running aggregate ``score`` at a rung goes on.

    Args:
        score: the trial's running aggregate at this rung.
        others: the same rung's scores of the other trials that finished it (non-finite ignored).
        eta: the trial goes on if it is within the best ``max(1, floor(n / eta))`` of the ``n``
            trials that finished the rung, itself included.
        min_trials: below this many trials at the rung (itself included), every trial goes on.

    A tie with the last kept score goes on: racing never stops a trial that is as good as one
    it keeps.
    """
    if not math.isfinite(score):
        return False
    finished = sorted([s for s in others if math.isfinite(s)] + [score], reverse=True)
    if len(finished) < min_trials:
        return True
    kept = max(1, math.floor(len(finished) / eta))
    return score >= finished[kept - 1]


def rung_scores(user_attrs: dict[str, Any]) -> list[float]:
    """A study trial's recorded rung scores (index = rung), as stored by :func:`with_rung`."""
    stored = user_attrs.get(ATTR_RUNG_SCORES)
    if not isinstance(stored, list):
        return []
    return [float(s) if isinstance(s, (int, float)) else math.nan for s in stored]


def with_rung(recorded: list[float], rung: int, score: float) -> list[float | None]:
    """What to store after rung ``rung``: ``recorded`` up to that rung, then ``score``. A
    repeated report (a trial restarted from a checkpoint inside that run) replaces its rung
    instead of adding one; a rung never recorded is stored as null (JSON has no NaN)."""
    kept = [s if math.isfinite(s) else None for s in recorded[:rung]]
    return kept + [None] * (rung - len(kept)) + [float(score)]


def others_at(trials: Iterable[Any], rung: int, exclude: int) -> list[float]:
    """Rung ``rung``'s scores of every study trial but the one numbered ``exclude``: any trial
    that finished the rung, whatever happened to it later (completed, pruned, failed or still
    running), since its score there measured its configuration on those runs."""
    found = []
    for trial in trials:
        if trial.number == exclude:
            continue
        scores = rung_scores(trial.user_attrs)
        if len(scores) > rung and math.isfinite(scores[rung]):
            found.append(scores[rung])
    return found


class RacingScheduler(FIFOScheduler):
    """Stops a trial whose running aggregate falls out of the best ``1/eta`` at a rung.

    Args:
        searcher: the sweep's ``StudySearcher`` (the study and the Tune-to-Optuna trial link).
        eta: ``search.racing.eta``.
        min_trials: ``search.racing.min_trials``.
    """

    def __init__(self, searcher: Any, eta: float, min_trials: int):
        super().__init__()
        self._searcher = searcher
        self._eta = float(eta)
        self._min_trials = int(min_trials)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        rung = result.get(M.RUNG)
        score = result.get(M.RUNG_SCORE)
        if rung is None or not isinstance(score, (int, float)):
            return TrialScheduler.CONTINUE
        try:
            return self._judge(trial.trial_id, int(rung), float(score), result)
        except StorageUnavailable:
            return TrialScheduler.CONTINUE  # StopWhenStorageLost ends the sweep

    def _judge(self, trial_id: str, rung: int, score: float, result: dict) -> str:
        number = self._searcher.trial_number(trial_id)
        if number is None:
            return TrialScheduler.CONTINUE
        trials = self._searcher.study.get_trials(deepcopy=False)
        own = next((t for t in trials if t.number == number), None)
        recorded = rung_scores(own.user_attrs) if own is not None else []
        self._searcher.record(trial_id, ATTR_RUNG_SCORES,
                              with_rung(recorded, rung, score))
        others = others_at(trials, rung, exclude=number)
        if keeps(score, others, self._eta, self._min_trials):
            return TrialScheduler.CONTINUE
        self._searcher.prune(trial_id, result, score, STOP_REASON)
        return TrialScheduler.STOP


def racing_scheduler(searcher: Any, search: dict[str, Any]) -> RacingScheduler:
    """The scheduler for the ``search`` section of a sweep config (a study stored before
    ``search.racing`` existed gets the defaults)."""
    settings = {**RACING_DEFAULTS, **(search.get("racing") or {})}
    return RacingScheduler(searcher, settings["eta"], settings["min_trials"])
