"""Tests for trainables.runs and the trainable's walk-forward folds and repeated seeds.

The fast tests check the run plan, the score aggregation, the checkpoint state and, with a
fixed policy, that a fold's score never depends on data after its validation period. The slow
ones train real tiny trials through Ray Tune (see test_trainable.py for the sizes).
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_data import random_walk, write_bars
from test_trainable import (checkpoints, fixed_params, killing_worker, rescore, rows, run_one,
                            tuner)
from trainables import metrics as M
from trainables.market import prepare_market
from trainables.synthetic import synthetic_bars
from trainables.evaluation import evaluate
from trainables.runs import Run, RunResult, TrialRuns, plan_runs

PRICES = ["open", "high", "low", "close"]


def perturbed_from(bars: pd.DataFrame, first: pd.Timestamp) -> pd.DataFrame:
    """``bars`` with every price from ``first`` on scaled by a ramp (returns change too)."""
    out = bars.copy()
    later = out.index >= first
    out.loc[later, PRICES] *= np.linspace(1.0, 1.6, int(later.sum()))[:, None]
    return out


# -- the run plan and seeds ------------------------------------------------------------------

def test_one_run_without_folds_or_seeds():
    assert plan_runs(None, 1) == [Run(0, None, 0)]
    (run,) = plan_runs(None, 1)
    assert (run.train_split, run.val_split) == ("train", "val")
    assert run.seed(1234) == 1234 and run.seed(None) is None


def test_runs_start_with_the_most_recent_fold_and_end_with_seed_0_of_the_last_fold():
    runs = plan_runs(3, 2)
    # Seed by seed, every fold from the most recent back; the kept run (2, 0) last.
    assert [(r.fold, r.seed_index) for r in runs] == [(2, 1), (1, 1), (0, 1), (1, 0), (0, 0),
                                                      (2, 0)]
    assert [r.index for r in runs] == list(range(6))
    assert (runs[-1].train_split, runs[-1].val_split) == ("fold2_train", "fold2_val")
    assert [(r.fold, r.seed_index) for r in plan_runs(3, 1)] == [(1, 0), (0, 0), (2, 0)]
    assert [(r.fold, r.seed_index) for r in plan_runs(None, 3)] == [(None, 2), (None, 1),
                                                                    (None, 0)]


def test_seed_0_is_the_trial_seed_and_the_others_derive_from_it():
    seeds = [Run(0, None, i).seed(42) for i in range(5)]
    assert seeds[0] == 42
    assert len(set(seeds)) == 5 and all(0 <= s < 2**32 for s in seeds)
    assert seeds == [Run(9, 3, i).seed(42) for i in range(5)], "the fold does not change it"
    assert Run(0, None, 1).seed(43) != seeds[1]
    assert Run(0, None, 1).seed(None) is None


# -- aggregation -----------------------------------------------------------------------------

def finished(runs: list[Run], scores: list[float]) -> TrialRuns:
    """A TrialRuns whose first ``len(scores)`` runs finished with these scores."""
    state = {"run": len(scores), "finished": [
        {"index": i, "score": s, "metrics": {}, "iterations": 2, "evals": 2, "env_steps": 400,
         "stop_reason": "max_iterations"} for i, s in enumerate(scores)]}
    return TrialRuns(runs, "mean", 1.0, state)


@pytest.mark.parametrize("aggregate, expected", [
    ("mean", 2.0), ("worst", 1.0), ("mean_minus_std", 2.0 - 0.5 * math.sqrt(2 / 3))])
def test_aggregates(aggregate, expected):
    assert M.AGGREGATES[aggregate]([1.0, 2.0, 3.0], 0.5) == pytest.approx(expected)


def test_folds_are_the_mean_over_seeds_then_the_aggregate_over_folds():
    runs = plan_runs(2, 2)  # (1, 1), (0, 1), (0, 0), (1, 0)
    trial = TrialRuns(runs, "worst", 1.0, finished(runs, [1.0, 3.0, 10.0]).checkpoint_state(
        runs[2], {}, RunResult(2, 10.0, {}, 1, 1, 1, "patience")))
    scores = trial.scores(runs[3], 20.0)
    assert scores[M.RUN_SCORES] == [[10.0, 3.0], [20.0, 1.0]]  # [fold][seed index]
    assert scores[M.FOLD_SCORES] == [6.5, 10.5]
    assert scores[M.SEED_SCORES] == [15.0, 2.0]
    assert scores[M.BEST_VAL_SCORE] == 6.5  # the worst fold
    assert scores[M.SCORE_STD] == pytest.approx(2.0)
    assert scores[M.CHECKPOINT_SCORE] == 20.0
    # While a run is under way: the finished runs plus the current one's best so far.
    early = finished(runs, [1.0]).scores(runs[1], 5.0)
    assert early[M.RUN_SCORES] == [[None, 5.0], [None, 1.0]]
    assert early[M.FOLD_SCORES] == [5.0, 1.0] and early[M.BEST_VAL_SCORE] == 3.0  # mean
    assert early[M.CHECKPOINT_SCORE] is None, "the kept run has not started"


def test_one_fold_aggregates_over_its_seeds():
    runs = plan_runs(None, 3)  # seed indices 2, 1, 0
    trial = TrialRuns(runs, "mean_minus_std", 2.0, finished(runs, [4.0, 6.0]).checkpoint_state(
        runs[1], {}, None))
    scores = trial.scores(runs[2], 2.0)
    assert scores[M.SEED_SCORES] == [2.0, 6.0, 4.0] and scores[M.FOLD_SCORES] == [4.0]
    std = statistics.pstdev([2.0, 6.0, 4.0])
    assert scores[M.SCORE_STD] == std and scores[M.BEST_VAL_SCORE] == 4.0 - 2.0 * std


def test_a_single_run_reports_only_its_best():
    (run,) = plan_runs(None, 1)
    trial = TrialRuns([run], "worst", 1.0)
    assert not trial.several and trial.is_last(run)
    assert trial.scores(run, 1.5) == {M.BEST_VAL_SCORE: 1.5}
    assert trial.totals(3, 2, 600) == {M.ITERATIONS: 3, M.EVALS: 2, M.ENV_STEPS: 600}


# -- checkpoint state: a restarted trial goes on where it was ----------------------------------

def test_a_checkpoint_inside_a_run_resumes_that_run():
    runs = plan_runs(2, 1)
    trial = TrialRuns(runs, "mean", 1.0)
    trial.finish(RunResult(0, 1.0, {"sharpe": 1.0}, 4, 2, 800, "patience"))
    loop = {"iteration": 2, "evals": 1, "stale_evals": 0, "best": 0.5, "best_metrics": {},
            "scores": [0.5]}
    state = json.loads(json.dumps(trial.checkpoint_state(runs[1], loop)))
    assert state["iteration"] == 2 and state["best"] == 0.5 and state["run"] == 1
    restarted = TrialRuns(runs, "mean", 1.0, state)
    assert restarted.remaining() == [runs[1]]
    assert restarted.finished == trial.finished
    assert restarted.resume_state(runs[1]) == loop
    assert restarted.totals(3, 2, 100) == {M.ITERATIONS: 7, M.EVALS: 4, M.ENV_STEPS: 900}


def test_a_checkpoint_at_the_end_of_a_run_goes_on_with_the_next():
    runs = plan_runs(None, 2)
    trial = TrialRuns(runs, "mean", 1.0)
    done = RunResult(0, 1.0, {}, 4, 2, 800, "max_iterations")
    state = json.loads(json.dumps(trial.checkpoint_state(runs[0], {"iteration": 4}, done)))
    restarted = TrialRuns(runs, "mean", 1.0, state)
    assert restarted.remaining() == [runs[1]] and restarted.finished == [done]
    assert restarted.resume_state(runs[1]) is None, "the next run starts from scratch"


def test_a_checkpoint_of_the_single_run_format_resumes_run_0():
    state = {"iteration": 3, "evals": 3, "stale_evals": 1, "best": 0.2, "best_metrics": {},
             "scores": [0.1, 0.2, 0.0]}
    trial = TrialRuns(plan_runs(None, 1), "mean", 1.0, state)
    assert trial.remaining() == plan_runs(None, 1)
    assert trial.resume_state(trial.runs[0]) == state


# -- folds never see later data: a fixed policy --------------------------------------------

def test_a_fixed_policy_scores_each_fold_the_same_whatever_comes_after_it(tmp_path):
    bars = random_walk(1600, seed=5)
    walk_forward = {"folds": 3, "mode": "expanding"}
    original = {"path": str(write_bars(tmp_path, bars, "a.csv")), "walk_forward": walk_forward}
    market = prepare_market(original)
    cut = market.splits["fold1_val"][1]  # perturb everything after fold 1's validation period
    later = perturbed_from(bars, market.bars.index[cut])
    changed = {"path": str(write_bars(tmp_path, later, "b.csv")), "walk_forward": walk_forward}
    assert prepare_market(changed).splits == market.splits

    def momentum(obs: np.ndarray) -> np.ndarray:
        return (obs[:, :-1].sum(axis=1) > 0).astype(np.int64)

    def score(data: dict, split: str) -> dict:
        return evaluate(momentum, {"data": data, "window_size": 5}, split).metrics()

    for fold in (0, 1):
        for part in ("train", "val"):
            split = f"fold{fold}_{part}"
            assert score(original, split) == score(changed, split), split
    assert score(original, "fold2_val") != score(changed, "fold2_val")
    assert score(original, "test") != score(changed, "test")


# -- real trials -----------------------------------------------------------------------------

def csv_sweep(tiny_sweep, path: Path, **changes):
    return tiny_sweep(**{"data.synthetic": "null", "data.path": str(path), **changes})


@pytest.mark.slow
def test_walk_forward_trial_fold_scores_ignore_data_after_the_fold(ray_session, results_dir,
                                                                   tiny_sweep, tmp_path):
    bars = synthetic_bars(1500, seed=7)
    original = write_bars(tmp_path, bars, "original.csv")
    changes = {"data.walk_forward": "{folds: 2}", "training.max_iterations": 2,
               "training.patience": 100}
    sweep = csv_sweep(tiny_sweep, original, **changes)
    market = prepare_market(sweep["data"])
    changed = write_bars(tmp_path, perturbed_from(bars, market.bars.index[
        market.splits["fold0_val"][1]]), "changed.csv")
    other = csv_sweep(tiny_sweep, changed, **changes)
    params = fixed_params(sweep)

    _, result = run_one(sweep, params, results_dir, "folds")
    _, moved = run_one(other, params, results_dir, "folds-changed")
    assert result.error is None and moved.error is None
    reported, reported_moved = rows(result), rows(moved)
    assert [(r[M.RUN], r[M.FOLD], r[M.SEED_INDEX]) for r in reported] == [
        (0, 0, 0), (0, 0, 0), (1, 1, 0), (1, 1, 0)]
    assert [r[M.ITERATIONS] for r in reported] == [1, 2, 3, 4]
    assert [r[M.EVALS] for r in reported] == [1, 2, 3, 4]
    assert [r[M.RUN_STOP_REASON] for r in reported] == ["", "max_iterations"] * 2
    assert [r[M.STOP_REASON] for r in reported] == ["", "", "", "max_iterations"]
    assert all(r[M.RUN_SEED] == params[M.TRIAL_SEED] for r in reported)
    fold_best = [max(r[M.VAL_SCORE] for r in reported if r[M.FOLD] == f) for f in (0, 1)]
    final = reported[-1]
    assert final[M.FOLD_SCORES] == fold_best and final[M.RUN_SCORES] == [[s] for s in fold_best]
    assert final[M.BEST_VAL_SCORE] == pytest.approx(statistics.fmean(fold_best))
    assert final[M.SCORE_STD] == pytest.approx(statistics.pstdev(fold_best))
    assert final[M.CHECKPOINT_SCORE] == fold_best[1]

    # Fold 0 trained and validated on bars before the change: the very same scores. Fold 1
    # validates on changed bars.
    fold0 = [r[M.VAL_SCORE] for r in reported if r[M.FOLD] == 0]
    assert fold0 == [r[M.VAL_SCORE] for r in reported_moved if r[M.FOLD] == 0]
    assert reported_moved[-1][M.FOLD_SCORES][0] == fold_best[0]
    assert reported_moved[-1][M.FOLD_SCORES][1] != fold_best[1]

    # The kept checkpoint is fold 1's best; "val" is fold 1's validation period, so scoring it
    # again there (as `tradetune evaluate --split val` does) gives its own score and metrics.
    kept = Path(result.path) / [r for r in reported if r["checkpoint_dir_name"]][-1][
        "checkpoint_dir_name"]
    assert kept in checkpoints(result)
    state = json.loads((kept / "trial_state.json").read_text())
    assert state["run"] == 1 and [r["index"] for r in state["finished"]] == [0]
    assert state["finished"][0]["score"] == fold_best[0]
    score, metrics = rescore(sweep, params, kept)
    assert score == final[M.CHECKPOINT_SCORE]
    assert metrics["sharpe"] == final[M.BEST_PREFIX + "sharpe"]


@pytest.mark.slow
def test_seeds_are_aggregated_and_seed_0_is_the_single_run(ray_session, results_dir,
                                                           tiny_sweep):
    common = {"training.max_iterations": 3, "training.patience": 100}
    sweep = tiny_sweep(**common, **{"training.seeds": 2, "training.aggregate": "mean_minus_std",
                                    "training.aggregate_k": 0.5})
    params = fixed_params(sweep)
    _, result = run_one(sweep, params, results_dir, "seeds")
    _, single = run_one(tiny_sweep(**common), params, results_dir, "single")
    assert result.error is None and single.error is None
    reported, alone = rows(result), rows(single)
    assert [r[M.SEED_INDEX] for r in reported] == [1, 1, 1, 0, 0, 0]
    assert all(r[M.FOLD] is None and r[M.RUNS] == 2 for r in reported)
    seeds = {r[M.SEED_INDEX]: r[M.RUN_SEED] for r in reported}
    assert seeds[0] == params[M.TRIAL_SEED] != seeds[1]
    # Seed 0 trains exactly as the single-run trial does, even after another run.
    assert [r[M.VAL_SCORE] for r in reported if r[M.SEED_INDEX] == 0] == [
        r[M.VAL_SCORE] for r in alone]
    best = [max(r[M.VAL_SCORE] for r in reported if r[M.SEED_INDEX] == s) for s in (0, 1)]
    assert best[0] == alone[-1][M.BEST_VAL_SCORE]
    final = reported[-1]
    assert final[M.SEED_SCORES] == best and final[M.RUN_SCORES] == [best]
    assert final[M.FOLD_SCORES] == [statistics.fmean(best)]
    assert final[M.SCORE_STD] == pytest.approx(statistics.pstdev(best))
    assert final[M.BEST_VAL_SCORE] == pytest.approx(
        statistics.fmean(best) - 0.5 * statistics.pstdev(best))
    assert final[M.CHECKPOINT_SCORE] == best[0]
    assert final[M.ENV_STEPS] == 2 * alone[-1][M.ENV_STEPS]
    # The single-run trial reports none of the several-run keys.
    assert not {M.FOLD_SCORES, M.SEED_SCORES, M.RUN, M.CHECKPOINT_SCORE} & set(alone[-1])


@pytest.mark.slow
def test_a_killed_trial_goes_on_with_its_remaining_runs(ray_session, results_dir, tiny_sweep):
    sweep = tiny_sweep(**{"training.max_iterations": 3, "training.patience": 100,
                          "training.seeds": 2})
    params = fixed_params(sweep)
    run = tuner(sweep, params, results_dir, "killed-runs", max_failures=1)
    with killing_worker(results_dir, "killed-runs",
                        lambda row: row.get(M.RUN_STOP_REASON) and row.get("checkpoint_dir_name")
                        ) as killed:
        grid = run.fit()
    assert killed and killed[M.RUN] == 0
    (result,) = grid
    assert result.error is None, "the restarted trial should have finished"
    reported = rows(result)
    after = [r for r in reported if r["pid"] != killed["pid"]]
    assert after, "not restarted in a new worker"
    # The restart skipped the finished run: run 1 from its first iteration, run 0's score kept.
    assert [r[M.RUN] for r in after] == [1, 1, 1]
    assert [r[M.ITERATIONS] for r in after] == [4, 5, 6]
    assert after[-1][M.STOP_REASON] == "max_iterations"
    assert after[-1][M.RUN_SCORES][0][1] == killed[M.RUN_SCORES][0][1]
    assert after[-1][M.SEED_SCORES] == [max(r[M.VAL_SCORE] for r in after),
                                        killed[M.SEED_SCORES][1]]
