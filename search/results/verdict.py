"""Can I trust the best trial? Its edge over holding the asset, and the chance its selection
overfit. The answer ``best``, ``status``, the report, the model card and the API give.

Traders judge a strategy against holding the asset, not against cash: on a rising market a
policy that only holds beats cash with no skill at all. So the primary figure is about the
*active* returns of the best trial's kept checkpoint on validation (its bar returns minus
buy-and-hold's, bar by bar), with the figure against cash kept beside it:

- **edge over buy-and-hold**: the deflated Sharpe ratio (Bailey & López de Prado 2014,
  ``search/results/overfitting.py``) of the active returns, deflated by every configuration the
  study tried (COMPLETE and PRUNED trials; ASHA's early stops are COMPLETE): the probability
  that the best trial's true active Sharpe ratio is above zero after accounting for the best
  of that many unskilled configurations, each spread only by sampling;
- **PBO**, the probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu 2015,
  combinatorially symmetric cross-validation) over the trials x validation-bars matrix of the
  kept checkpoints' returns: the bars are cut into S blocks; for every choice of half the
  blocks as in-sample, the trial with the best in-sample Sharpe is found and its out-of-sample
  Sharpe ranked among all trials; PBO is the share of those splits where it ranks at or below
  the median. Near 0: the selection generalises; 0.5 or more: picking the best adds nothing
  over picking any trial (the trials are alike, or the best is overfit). It judges the choice
  among the trials, not whether they have an edge: trials that all found the same real edge
  give a PBO near 0.5 too, so it never denies an edge. It can confirm one: "weak evidence"
  (deflated Sharpe 0.5-0.95) whose selection also holds across the validation blocks (PBO
  below 0.25, where its reading says the in-sample best mostly stays above the median) is an
  edge: two checks on different questions (is the best above luck? does picking it carry over
  from one half of the bars to the other?) that agree;
- a degenerate best trial (``search/results/degenerate.py``) is never an edge.

Per-bar figures come from the trials' stored metrics; the matrix from ``val_returns.npy`` in
each kept checkpoint (studies trained before it existed get no PBO). Pure numpy, no torch.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from search.results import degenerate
from search.results.overfitting import expected_max_sharpe, probabilistic_sharpe

EDGE_DSR = 0.95      # the deflated Sharpe of the active returns an edge must reach
WEAK_DSR = 0.5       # below this, no evidence at all
PBO_OVERFIT = 0.5    # at or above this PBO, picking the best adds nothing over any trial
PBO_CONSISTENT = 0.25  # below this, the in-sample best mostly stays above the median
MAX_BLOCKS = 16      # CSCV's S: C(16, 8) = 12,870 in-sample/out-of-sample splits
MIN_BLOCK_BARS = 4   # fewer bars per block and S shrinks (to 2 at the least)
RETURNS_FILE = "val_returns.npy"  # written by trainables/rllib_trainable.py beside the checkpoint


def active_edge(best: dict[str, Any], tried: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The deflated Sharpe ratio of the best trial's active returns (``best``: its validation
    metrics), deflated by the active Sharpe ratios of every tried configuration (``tried``:
    their metrics). None when the metrics predate active returns."""
    if "active_sharpe_per_bar" not in best:
        return None
    sharpes = [m["active_sharpe_per_bar"] for m in tried if "active_sharpe_per_bar" in m]
    n_trials = max(len(sharpes), 1)
    returns = int(best.get("bars", 0)) - 1
    # The null: every configuration unskilled, its Sharpe estimate spread only by sampling,
    # variance 1/(T-1) over T returns (Lo 2002). The trials' own spread would count skill that
    # some configurations found as luck, and deflate a real edge away (measured on the planted
    # markets of scripts/bench_verdict.py; BENCHMARKS.md).
    sr0 = expected_max_sharpe(n_trials, 1.0 / (returns - 1)) if returns > 1 else 0.0
    sharpe = best["active_sharpe_per_bar"]
    dsr = probabilistic_sharpe(sharpe, sr0, returns, best.get("active_skew", 0.0),
                               best.get("active_kurtosis", 3.0))
    return {"active_sharpe_per_bar": sharpe, "deflated_sharpe": None if math.isnan(dsr) else dsr,
            "expected_max_active_sharpe_per_bar": sr0, "n_trials": n_trials,
            "buy_and_hold_sharpe_per_bar": best.get("buy_and_hold_sharpe_per_bar")}


def pbo(returns: np.ndarray, max_blocks: int = MAX_BLOCKS) -> dict[str, Any] | None:
    """Probability of backtest overfitting of choosing the best of ``returns``' rows (trials x
    bars) by Sharpe ratio, by combinatorially symmetric cross-validation. None with fewer than
    two trials or too few bars for two blocks."""
    n_trials, n_bars = returns.shape
    blocks = min(max_blocks, n_bars // MIN_BLOCK_BARS)
    blocks -= blocks % 2
    if n_trials < 2 or blocks < 2:
        return None
    size = n_bars // blocks
    cut = returns[:, :size * blocks].reshape(n_trials, blocks, size).astype(np.float64)
    sums, squares = cut.sum(axis=2).T, (cut ** 2).sum(axis=2).T  # blocks x trials
    splits = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    inside = np.zeros((len(splits), blocks))
    inside[np.arange(len(splits))[:, None], splits] = 1.0
    is_sharpe = _sharpe(inside @ sums, inside @ squares, size * blocks // 2)
    oos_sharpe = _sharpe((1 - inside) @ sums, (1 - inside) @ squares, size * blocks // 2)
    chosen = np.argmax(is_sharpe, axis=1)
    chosen_oos = oos_sharpe[np.arange(len(splits)), chosen][:, None]
    rank = (oos_sharpe < chosen_oos).sum(axis=1) + 0.5 * ((oos_sharpe == chosen_oos).sum(axis=1)
                                                         + 1)
    omega = rank / (n_trials + 1)
    logits = np.log(omega / (1 - omega))
    value = float(np.mean(logits <= 0))
    return {"pbo": value, "trials": int(n_trials), "blocks": int(blocks),
            "splits": int(len(splits)), "reading": _pbo_reading(value)}


def _sharpe(sums: np.ndarray, squares: np.ndarray, count: int) -> np.ndarray:
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)


def _pbo_reading(value: float) -> str:
    if value >= PBO_OVERFIT:
        return ("the in-sample best ranks at or below the median out of sample in most splits: "
                "picking the best adds nothing over any trial (alike trials, or overfitting)")
    if value >= PBO_CONSISTENT:
        return "the in-sample best often falls to the median out of sample: some overfitting"
    return "the in-sample best mostly stays above the median out of sample"


def returns_matrix(checkpoints: list[Path]) -> np.ndarray | None:
    """The trials x bars matrix of the kept checkpoints' validation returns, from the trials
    whose checkpoint holds them and whose validation split has the most common length."""
    rows = []
    for checkpoint in checkpoints:
        try:
            rows.append(np.load(checkpoint / RETURNS_FILE))
        except (OSError, ValueError):
            continue
    if len(rows) < 2:
        return None
    lengths = [len(r) for r in rows]
    common = max(set(lengths), key=lengths.count)
    kept = [r for r in rows if len(r) == common]
    return np.vstack(kept) if len(kept) >= 2 else None


def judge(best: dict[str, Any], tried: list[dict[str, Any]],
          checkpoints: list[Path]) -> dict[str, Any]:
    """The verdict on a study's best trial: ``verdict`` ("edge", "weak evidence", "no edge" or
    "cannot judge"), ``text`` (a reading with what to do next), the active-return figures
    (``edge``), ``pbo`` and ``degenerate``."""
    kind = degenerate.label(best)
    edge = active_edge(best, tried)
    matrix = returns_matrix(checkpoints)
    overfit = pbo(matrix) if matrix is not None else None
    result: dict[str, Any] = {"edge": edge, "pbo": overfit, "degenerate": kind}
    dsr = edge["deflated_sharpe"] if edge else None
    where = f"after {edge['n_trials']} configurations" if edge else ""
    pbo_text = (f"; PBO {overfit['pbo']:.2f} over {overfit['trials']} trials and "
                f"{overfit['blocks']} blocks: {overfit['reading']}" if overfit else "")
    if kind is not None:
        verdict, text = "no edge", (f"no edge: the best trial is {kind} on validation; its score "
                                    "is the market's or cash's, not a strategy's")
    elif edge is None or dsr is None:
        verdict, text = "cannot judge", ("cannot judge the edge over buy-and-hold: this study's "
                                         "trials recorded no active returns (trained before "
                                         "they existed, or too few bars)")
    elif edge["active_sharpe_per_bar"] <= 0:
        verdict, text = "no edge", (f"no edge over buy-and-hold: the best trial did not beat "
                                    f"holding the asset on validation {where} (deflated Sharpe "
                                    f"of its active returns {dsr:.2f}); widen the budget or "
                                    "give up on this market")
    elif dsr >= EDGE_DSR:
        verdict, text = "edge", (f"edge over buy-and-hold: the best trial's active returns hold "
                                 f"up {where} (deflated Sharpe {dsr:.2f}); confirm with "
                                 "`promote`, then one look at the test split")
    elif dsr >= WEAK_DSR and overfit is not None and overfit["pbo"] < PBO_CONSISTENT:
        verdict, text = "edge", (f"edge over buy-and-hold: the best trial's active returns are "
                                 f"above luck {where} (deflated Sharpe {dsr:.2f}) and picking it "
                                 f"carries over between halves of the validation bars (PBO "
                                 f"{overfit['pbo']:.2f} < {PBO_CONSISTENT}); confirm with "
                                 "`promote`, then one look at the test split")
    elif dsr >= WEAK_DSR:
        verdict, text = "weak evidence", (f"weak evidence of an edge over buy-and-hold {where} "
                                          f"(deflated Sharpe of the active returns {dsr:.2f}); "
                                          "`promote` it on fresh seeds before trusting it")
    else:
        verdict, text = "no edge", (f"no edge over buy-and-hold: {where} this active Sharpe is "
                                    f"what luck gives (deflated Sharpe {dsr:.2f}); widen the "
                                    "budget or give up on this market")
    return {**result, "verdict": verdict, "text": text + pbo_text}


# `promote`'s verdict on the same footing as the study's: against holding the asset, defined
# for every sign of the trial's own figure, and never passing a seed that is no strategy.
PROMOTION_RULE = ("reproduces when no fresh seed collapses to a degenerate policy and the fresh "
                  "seeds' mean active Sharpe (against buy-and-hold, on validation) is above 0, "
                  "at least half the trial's own, with most seeds above 0; a trial that did not "
                  "beat buy-and-hold, or is itself a degenerate policy, has no edge to reproduce")
PROMOTION_RATIO = 0.5


def promotion(study_metrics: dict[str, Any], fresh: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The verdict on fresh seeds (``fresh``: each seed's validation metrics) against the
    trial's own (``study_metrics``), with their spread; None when either lacks active figures
    (trained before they existed: the score rule of ``summaries.promotion_verdict`` applies)."""
    own = study_metrics.get("active_sharpe_per_bar")
    actives = [m.get("active_sharpe_per_bar") for m in fresh]
    if own is None or not actives or any(a is None for a in actives):
        return None
    kinds = [degenerate.label(m) for m in fresh]
    collapsed = [k for k in kinds if k]
    mean = float(np.mean(actives))
    above = sum(a > 0 for a in actives)
    itself = degenerate.label(study_metrics)
    if itself:  # what `best` says of it: no strategy, so nothing its seeds could reproduce
        verdict = (f"no edge to reproduce: the trial is {itself} on validation; its score is "
                   "the market's or cash's, not a strategy's")
    elif collapsed:
        verdict = (f"does not reproduce: {len(collapsed)} of {len(fresh)} fresh seeds collapse to "
                   f"a degenerate policy ({collapsed[0]})")
    elif own <= 0:
        verdict = ("no edge to reproduce: the trial did not beat holding the asset on validation "
                   f"(active Sharpe per bar {own:.4g})")
    elif mean > 0 and mean >= PROMOTION_RATIO * own and above * 2 > len(actives):
        verdict = "reproduces"
    else:
        verdict = "does not reproduce"
    return {"verdict": verdict, "rule": PROMOTION_RULE, "study_active_sharpe_per_bar": own,
            "fresh_active_sharpe_per_bar": actives, "mean_active_sharpe_per_bar": mean,
            "std_active_sharpe_per_bar": float(np.std(actives, ddof=1)) if len(actives) > 1
            else None, "fresh_degenerate": kinds}
