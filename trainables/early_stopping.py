"""Early stopping on validation scores: a pure object, fed one score per evaluation.

The training loop evaluates; this decides. As Stable-Baselines3 separates ``EvalCallback`` from
``StopTrainingOnNoModelImprovement``, it knows nothing of Ray or RLlib: it observes a score and
says whether it improved on the best so far (by more than ``min_delta``), and whether to stop
and why. Patience is counted in evaluations: training stops once ``patience`` evaluations in a
row brought no improvement, but never before ``min_evals`` evaluations; ``patience`` None never
stops (every run trains its whole budget, still keeping its best checkpoint). Its state is plain JSON
(``state()``), saved with each checkpoint so a restarted trial keeps counting where it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PATIENCE = "patience"  # the stop reason this object gives


@dataclass(frozen=True)
class Verdict:
    """What one observed score means: ``improved`` on the best so far; ``stop`` training, and
    the ``reason`` (``"patience"``), or None to go on."""

    improved: bool
    stop: bool
    reason: str | None


class EarlyStopping:
    """Patience on a score to maximise.

    Args:
        patience: evaluations in a row without improvement that stop training; None: never.
        min_evals: evaluations before patience may stop training.
        min_delta: how much a score must beat the best so far to count as an improvement.
        state: ``state()`` of an earlier instance, to go on counting after a restart.
    """

    def __init__(self, patience: int | None, min_evals: int, min_delta: float = 0.0,
                 state: dict[str, Any] | None = None) -> None:
        self.patience, self.min_evals, self.min_delta = patience, min_evals, min_delta
        state = state or {}
        self.best: float = state.get("best", -math.inf)
        self.evals: int = state.get("evals", 0)
        self.stale_evals: int = state.get("stale_evals", 0)

    def observe(self, score: float) -> Verdict:
        """Count one evaluation's score."""
        self.evals += 1
        improved = score > self.best + self.min_delta
        if improved:
            self.best, self.stale_evals = score, 0
        else:
            self.stale_evals += 1
        stop = (self.patience is not None and self.stale_evals >= self.patience
                and self.evals >= self.min_evals)
        return Verdict(improved, stop, PATIENCE if stop else None)

    def state(self) -> dict[str, Any]:
        """What a restart needs: the best score, evaluations and stale evaluations so far."""
        return {"best": self.best, "evals": self.evals, "stale_evals": self.stale_evals}
