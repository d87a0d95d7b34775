"""Names of the values a trial reports, spelled once.

The searcher optimises ``BEST_VAL_SCORE`` (the best-so-far validation objective), because
OptunaSearch stores the last value reported for its metric: reporting the best-so-far makes the
study's value equal the score of the checkpoint the trial keeps. A trial of several runs
(walk-forward folds, repeated seeds; see ``trainables/runs.py``) reports the aggregate of its
runs' best scores there instead, and the kept checkpoint's own score as
``BEST_VAL_CHECKPOINT_SCORE``.
"""
from __future__ import annotations

import statistics

VAL_SCORE = "val_score"
BEST_VAL_SCORE = "best_val_score"
SEARCH_METRIC = BEST_VAL_SCORE
SEARCH_MODE = "max"

EVALS = "evals"
ITERATIONS = "iterations"
ENV_STEPS = "env_steps"
STOP_REASON = "stop_reason"
EPISODE_RETURN = "episode_return_mean"
TRAIN_PNL_PCT = "train_episode_pnl_pct"
TRAIN_PNL = "train_episode_pnl"
TRAIN_NET_WORTH = "train_episode_net_worth"
TRIAL_SEED = "trial_seed"
NODE_ID = "node_id"
VAL_PREFIX = "val_"
BEST_PREFIX = "best_val_"

# Trials of several runs only. The searcher stores every BEST_PREFIX key of the final result in
# the trial's ``metrics`` (without the prefix: ``fold_scores``, ``seed_scores``, ...).
RUN = "run"                    # index of the run this report belongs to, from 0
RUNS = "runs"                  # how many runs the trial makes
FOLD = "fold"                  # the run's walk-forward fold (None: the plain train/val split)
SEED_INDEX = "seed_index"      # the run's seed index (0 = the trial seed)
RUN_SEED = "run_seed"          # the run's RLlib seed
RUN_STOP_REASON = "run_stop_reason"
RUNG = "rung"                  # only on the report that ends a run before the last: its index
RUNG_SCORE = "rung_score"      # ...and the aggregate of the runs done, what racing judges
FOLD_SCORES = BEST_PREFIX + "fold_scores"        # per fold: mean over its seeds
SEED_SCORES = BEST_PREFIX + "seed_scores"        # per seed index: mean over the folds
RUN_SCORES = BEST_PREFIX + "run_scores"          # [fold][seed index]: each run's best score
SCORE_STD = BEST_PREFIX + "score_std"            # spread of the values the aggregate combines
CHECKPOINT_SCORE = BEST_PREFIX + "checkpoint_score"  # the kept checkpoint's own score

# Objective name -> function of an Evaluation's metrics. All are maximised.
OBJECTIVES = {
    "sharpe": lambda m: m["sharpe"],
    "pnl_pct": lambda m: m["pnl_pct"],
    "excess_pct": lambda m: m["pnl_pct"] - m["buy_and_hold_pct"],
    "calmar": lambda m: m["pnl_pct"] / max(m["max_drawdown"] * 100.0, 1.0),
}
DEFAULT_OBJECTIVE = "sharpe"
# Later objectives of a multi-objective study (``training.objectives``) may also be these, which
# are minimised; they are measured on the trial's kept checkpoint.
MINIMISED = {"max_drawdown": lambda m: m["max_drawdown"]}


def objective_direction(name: str) -> str:
    """Optuna's direction for an objective name."""
    return "minimize" if name in MINIMISED else "maximize"


def objective_value(name: str, metrics: dict) -> float:
    """An objective (of ``OBJECTIVES`` or ``MINIMISED``) of an evaluation's metrics."""
    return float({**OBJECTIVES, **MINIMISED}[name](metrics))


# How a trial of several runs combines scores (``training.aggregate``); ``k`` is
# ``training.aggregate_k``. The standard deviation is the population one (defined for one value).
AGGREGATES = {
    "mean": lambda values, k: statistics.fmean(values),
    "mean_minus_std": lambda values, k: statistics.fmean(values) - k * statistics.pstdev(values),
    "worst": lambda values, k: min(values),
}
DEFAULT_AGGREGATE = "mean"
