"""Names of the values a trial reports, spelled once.

The searcher optimises ``BEST_VAL_SCORE`` (the best-so-far validation objective), because
OptunaSearch stores the last value reported for its metric: reporting the best-so-far makes the
study's value equal the score of the checkpoint the trial keeps.
"""
from __future__ import annotations

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

# Objective name -> function of an Evaluation's metrics. All are maximised.
OBJECTIVES = {
    "sharpe": lambda m: m["sharpe"],
    "pnl_pct": lambda m: m["pnl_pct"],
    "excess_pct": lambda m: m["pnl_pct"] - m["buy_and_hold_pct"],
    "calmar": lambda m: m["pnl_pct"] / max(m["max_drawdown"] * 100.0, 1.0),
}
DEFAULT_OBJECTIVE = "sharpe"
