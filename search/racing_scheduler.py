"""The Tune side of fold racing: a driver-side scheduler that judges a trial after each run.

The trainable marks the report that ends a run before the last with ``rung`` and ``rung_score``
(``trainables/rllib_trainable.py``). On such a report this scheduler stores the score on the
study's trial (``rung_scores``), reads every trial's rung scores from the study (so the trials
of other drivers and of earlier runs of a resumed study count), and either lets the trial go on
or ends it: the searcher tells Optuna PRUNED, then Tune stops the trial. The decision itself is
``search.racing.keeps``.
"""
from __future__ import annotations

from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search import racing
from search.errors import StorageUnavailable
from trainables import metrics as M


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
        recorded = racing.rung_scores(own.user_attrs) if own is not None else []
        self._searcher.record(trial_id, racing.ATTR_RUNG_SCORES,
                              racing.with_rung(recorded, rung, score))
        others = racing.others_at(trials, rung, exclude=number)
        if racing.keeps(score, others, self._eta, self._min_trials):
            return TrialScheduler.CONTINUE
        self._searcher.prune(trial_id, result, score, racing.STOP_REASON)
        return TrialScheduler.STOP


def racing_scheduler(searcher: Any, search: dict[str, Any]) -> RacingScheduler:
    """The scheduler for the ``search`` section of a sweep config (a study stored before
    ``search.racing`` existed gets the defaults)."""
    settings = {**racing.DEFAULTS, **(search.get("racing") or {})}
    return RacingScheduler(searcher, settings["eta"], settings["min_trials"])
