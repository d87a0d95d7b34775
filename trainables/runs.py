"""The runs of one trial (walk-forward folds times repeated seeds) and how their scores combine.

A trial with ``data.walk_forward: {folds: K}`` and/or ``training.seeds: N`` trains K x N runs,
one after the other. Each run is the single-split loop of ``rllib_trainable._train_run`` on its
own splits (``fold{i}_train``/``fold{i}_val``; the plain ``train``/``val`` without folds) with its
own seed, and its score is its best validation score. The trial's score is the mean over seeds
of each fold, then ``training.aggregate`` over the folds (with one fold: over its seeds):
``mean``, ``mean_minus_std`` (mean minus ``aggregate_k`` population standard deviations) or
``worst``.

While runs are still to come, the reported ``best_val_score`` is that aggregate over the runs
finished so far plus the current run's best so far; after the last run it is the final
aggregate, which is the value Optuna stores.

The trial keeps one checkpoint: the best of seed 0 on the last fold (the most training data).
Runs start with the most recent fold (see :func:`plan_runs`), but that run comes last, because
Tune never deletes the latest checkpoint and the study records the latest one's path. Its own score is reported as
``best_val_checkpoint_score``, and the ``best_val_<metric>`` figures are its validation metrics.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from trainables import metrics as M
from trainables.seeds import run_seed
from trainables.settings import fold_names


@dataclass(frozen=True)
class Run:
    """One run of a trial: a walk-forward fold (None: the plain train/val split) and a seed."""

    index: int
    fold: int | None
    seed_index: int

    @property
    def train_split(self) -> str:
        return "train" if self.fold is None else fold_names(self.fold)[0]

    @property
    def val_split(self) -> str:
        return "val" if self.fold is None else fold_names(self.fold)[1]

    def seed(self, trial_seed: int | None) -> int | None:
        """Seed index 0 is the trial seed itself, so a one-run trial trains as it always did."""
        return run_seed(trial_seed, self.seed_index)


def plan_runs(folds: int | None, seeds: int) -> list[Run]:
    """The runs of a trial in training order: seed by seed from the highest index down, and
    within a seed every fold from the most recent back; then seed 0 of the last fold (the kept
    checkpoint's run), which always trains last.

    Why: after each run the trial's score is the aggregate of the runs done so far, and fold
    racing (``search.scheduler: racing``) stops trials on it. The most recent fold is the period
    closest to the test split, and covering every fold once before repeating a seed makes the
    running aggregate an estimate of the final one (an aggregate over folds) as early as
    possible. The kept run comes last because Tune never deletes a trial's latest checkpoint.

    Args:
        folds: walk-forward folds, or None for the plain train/val split.
        seeds: runs per fold (``training.seeds``).
    """
    fold_ids = [None] if folds is None else list(reversed(range(folds)))
    kept = (fold_ids[0], 0)
    pairs = [(fold, s) for s in reversed(range(seeds)) for fold in fold_ids
             if (fold, s) != kept]
    return [Run(i, fold, s) for i, (fold, s) in enumerate([*pairs, kept])]


@dataclass
class RunResult:
    """What a finished run leaves behind; plain JSON, since checkpoints carry it."""

    index: int
    score: float
    metrics: dict[str, float]
    iterations: int
    evals: int
    env_steps: int
    stop_reason: str


class TrialRuns:
    """The runs of one trial, those finished, and the aggregate score they make.

    Args:
        runs: from :func:`plan_runs`.
        aggregate: ``training.aggregate`` (a key of ``metrics.AGGREGATES``).
        k: ``training.aggregate_k``.
        state: the state saved with the checkpoint a crashed trial restarts from, if any.
    """

    def __init__(self, runs: list[Run], aggregate: str, k: float,
                 state: dict[str, Any] | None = None):
        self.runs = runs
        self._aggregate = M.AGGREGATES[aggregate]
        self._k = float(k)
        state = state or {}
        self.finished = [RunResult(**r) for r in state.get("finished", [])]
        # A checkpoint saved inside a run (not at its end) resumes that run where it was.
        self._resume = {}
        if state and state.get("run", 0) == len(self.finished):
            self._resume[len(self.finished)] = {key: value for key, value in state.items()
                                                if key not in ("run", "finished")}

    @property
    def several(self) -> bool:
        return len(self.runs) > 1

    def remaining(self) -> list[Run]:
        """The runs still to train (a restored trial skips those its checkpoint had finished)."""
        return self.runs[len(self.finished):]

    def resume_state(self, run: Run) -> dict[str, Any] | None:
        """The loop state to continue ``run`` from, when the trial restarts inside it."""
        return self._resume.pop(run.index, None)

    def is_last(self, run: Run) -> bool:
        return run.index == len(self.runs) - 1

    def finish(self, result: RunResult) -> None:
        self.finished.append(result)

    def checkpoint_state(self, run: Run, loop_state: dict[str, Any],
                         result: RunResult | None = None) -> dict[str, Any]:
        """What a checkpoint must hold to restart the trial where it was: the run's own loop
        state, its index, and the finished runs (this one too once it has its ``result``)."""
        finished = [*self.finished, *([result] if result else [])]
        return {**loop_state, "run": run.index, "finished": [asdict(r) for r in finished]}

    def totals(self, iterations: int, evals: int, env_steps: int) -> dict[str, int]:
        """Training iterations, evaluations and env steps of the whole trial so far."""
        return {M.ITERATIONS: iterations + sum(r.iterations for r in self.finished),
                M.EVALS: evals + sum(r.evals for r in self.finished),
                M.ENV_STEPS: env_steps + sum(r.env_steps for r in self.finished)}

    def scores(self, run: Run, best_so_far: float) -> dict[str, Any]:
        """The searcher's score, plus per fold/seed scores when the trial has several runs,
        counting the current run at its best so far."""
        if not self.several:
            return {M.BEST_VAL_SCORE: best_so_far}
        by_run = {r.index: r.score for r in self.finished}
        by_run[run.index] = best_so_far
        folds = sorted({r.fold for r in self.runs}, key=lambda f: -1 if f is None else f)
        n_seeds = 1 + max(r.seed_index for r in self.runs)
        index = {(r.fold, r.seed_index): r.index for r in self.runs}
        matrix = [[by_run.get(index[fold, s]) for s in range(n_seeds)] for fold in folds]
        fold_scores = [_mean(row) for row in matrix]
        seed_scores = [_mean(column) for column in zip(*matrix)]
        values = [v for v in (fold_scores if len(folds) > 1 else matrix[0]) if v is not None]
        return {
            M.BEST_VAL_SCORE: self._aggregate(values, self._k),
            M.SCORE_STD: statistics.pstdev(values),
            M.FOLD_SCORES: fold_scores,
            M.SEED_SCORES: seed_scores,
            M.RUN_SCORES: matrix,
            M.CHECKPOINT_SCORE: best_so_far if self.is_last(run) else None,
        }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None
