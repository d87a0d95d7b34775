"""Tests for trainables.rllib_trainable: real RLlib trials run through real Ray Tune.

Every trial here is tiny (hidden [16], train batch 200, synthetic data, one env per runner, no
remote env runners) and uses the session's single Ray runtime.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
import pytest

from spaces import algorithm_of, get_space
from trainables import metrics as M
from trainables.rllib_trainable import (STATE_FILE, TrainingDiverged, _check_finite, env_config,
                                        load_module, train_trial)
from trainables.seeds import trial_seed

optuna.logging.set_verbosity(optuna.logging.WARNING)
SWEEP_SEED = 42
# Sampler seed of the tiny space whose trial improves after its first evaluation (seen:
# val_score -30.6, -27.7, -25.8, -27.1, ...), so the kept checkpoint is not simply the first.
IMPROVING = 3
DQN_OVERRIDES = json.dumps(algorithm_of("dqn").tiny)  # the tiny settings the DQN space declares


def space_of(sweep: dict):
    search = sweep["search"]
    return get_space(sweep["algorithm"], search["space_overrides"], search["space"])


def fixed_params(sweep: dict, sampler_seed: int = IMPROVING, trial_number: int = 0) -> dict:
    """The parameters of one trial of the sweep's space, as the searcher would hand them over."""
    space = space_of(sweep)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sampler_seed)).ask()
    space(trial)
    return {**trial.params, M.TRIAL_SEED: trial_seed(SWEEP_SEED, trial_number)}


def settings_of(sweep: dict, params: dict) -> dict:
    return space_of(sweep).replay({k: v for k, v in params.items() if k != M.TRIAL_SEED})


def tuner(sweep: dict, param_space: dict, results_dir: Path, name: str, max_failures: int = 0):
    from ray import tune

    return tune.Tuner(
        tune.with_parameters(train_trial, sweep=sweep),
        param_space=param_space,
        tune_config=tune.TuneConfig(num_samples=1, metric=M.BEST_VAL_SCORE, mode=M.SEARCH_MODE),
        run_config=tune.RunConfig(
            name=name, storage_path=str(results_dir), verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=M.BEST_VAL_SCORE,
                checkpoint_score_order=M.SEARCH_MODE),
            failure_config=tune.FailureConfig(max_failures=max_failures)))


def run_one(sweep: dict, params: dict, results_dir: Path, name: str, max_failures: int = 0):
    grid = tuner(sweep, params, results_dir, name, max_failures).fit()
    assert len(grid) == 1
    return grid, grid[0]


def rows(result) -> list[dict]:
    """Every result the trial reported, in order, as Tune wrote them to result.json."""
    path = Path(result.path) / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoints(result) -> list[Path]:
    return sorted(Path(result.path).glob("checkpoint_*"))


def rescore(sweep: dict, params: dict, checkpoint_path: str | Path) -> tuple[float, dict]:
    """Restore a kept checkpoint for inference and score it on the validation split again."""
    from trainables.evaluation import evaluate

    module = load_module(checkpoint_path)
    val_env = env_config(sweep, settings_of(sweep, params), "val")
    metrics = evaluate(module, val_env, "val").metrics()
    return M.OBJECTIVES[sweep["training"]["objective"]](metrics), metrics


# -- seeds (no training) ------------------------------------------------------------------------

def test_trial_seed_is_deterministic_and_distinct():
    seeds = [trial_seed(SWEEP_SEED, n) for n in range(200)]
    assert seeds == [trial_seed(SWEEP_SEED, n) for n in range(200)]
    assert len(set(seeds)) == len(seeds)
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert trial_seed(SWEEP_SEED, 0) != trial_seed(SWEEP_SEED + 1, 0)


# -- divergence detection (no training) ----------------------------------------------------------

def learner_result(**stats) -> dict:
    """A training result shaped like RLlib 2.60's (new API stack) ``algo.train()`` output."""
    return {"learners": {"__all_modules__": {"num_trainable_parameters": 1234.0},
                         "default_policy": {"total_loss": 0.5, "policy_loss": -0.1,
                                            "vf_loss": 0.3, "entropy": 0.69, **stats}},
            "env_runners": {"episode_return_mean": float("nan")}}


def test_check_finite_accepts_finite_losses_and_ignores_other_stats():
    _check_finite(learner_result())
    _check_finite(learner_result(entropy=float("nan"), curr_kl_coeff=float("inf")))
    _check_finite({})


@pytest.mark.parametrize("name, value", [("total_loss", float("nan")), ("vf_loss", float("inf")),
                                         ("policy_loss", float("-inf"))])
def test_check_finite_raises_on_a_nan_or_infinite_loss(name, value):
    with pytest.raises(TrainingDiverged, match=f"training diverged: default_policy/{name} = "):
        _check_finite(learner_result(**{name: value}))


# -- real trials ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_ppo_trial_keeps_the_best_checkpoint_and_it_reproduces_the_score(
        ray_session, results_dir, tiny_sweep):
    sweep = tiny_sweep(**{"training.max_iterations": 6, "training.patience": 100})
    params = fixed_params(sweep)
    grid, result = run_one(sweep, params, results_dir, "ppo")
    assert result.error is None
    reported = rows(result)
    scores = [r[M.VAL_SCORE] for r in reported]
    assert [r[M.ITERATIONS] for r in reported] == [1, 2, 3, 4, 5, 6]
    assert [r[M.EVALS] for r in reported] == [1, 2, 3, 4, 5, 6]
    assert reported[-1][M.STOP_REASON] == "max_iterations"
    assert all(r[M.STOP_REASON] == "" for r in reported[:-1])
    assert all(r[M.TRIAL_SEED] == params[M.TRIAL_SEED] for r in reported)
    assert [r[M.ENV_STEPS] for r in reported] == sorted({r[M.ENV_STEPS] for r in reported})
    assert all(math.isfinite(s) for s in scores)
    # The searcher's metric is the running best; at the end it is the best of all evaluations.
    assert [r[M.BEST_VAL_SCORE] for r in reported] == [max(scores[:i + 1])
                                                       for i in range(len(scores))]
    assert reported[-1][M.BEST_VAL_SCORE] == max(scores)
    best_row = max(reported, key=lambda r: r[M.VAL_SCORE])
    assert best_row[M.ITERATIONS] > 1, "pick a sampler seed whose trial improves later"
    assert reported[-1][M.BEST_PREFIX + "sharpe"] == best_row[M.VAL_PREFIX + "sharpe"]
    # A checkpoint comes only with an improvement, and only the best one is kept.
    improved = [r for i, r in enumerate(reported) if i == 0 or r[M.VAL_SCORE] > max(scores[:i])]
    assert [r["checkpoint_dir_name"] is not None for r in reported] == [
        r in improved for r in reported]
    kept = checkpoints(result)
    assert [p.name for p in kept] == [best_row["checkpoint_dir_name"]]
    best_checkpoint = grid.get_best_result().get_best_checkpoint(M.BEST_VAL_SCORE, M.SEARCH_MODE)
    assert Path(best_checkpoint.path) == kept[0] == Path(result.checkpoint.path)
    state = json.loads((kept[0] / STATE_FILE).read_text())
    assert state["iteration"] == best_row[M.ITERATIONS] and state["best"] == max(scores)
    # Restored for inference only and evaluated again: the very same validation score.
    score, metrics = rescore(sweep, params, kept[0])
    assert score == reported[-1][M.BEST_VAL_SCORE]
    assert metrics == {k[len(M.BEST_PREFIX):]: v for k, v in reported[-1].items()
                       if k.startswith(M.BEST_PREFIX) and k != M.BEST_VAL_SCORE}


@pytest.mark.slow
def test_same_trial_seed_gives_the_same_first_validation_score(ray_session, results_dir,
                                                               tiny_sweep):
    from ray import tune

    sweep = tiny_sweep(**{"training.max_iterations": 1})
    params = fixed_params(sweep, IMPROVING, trial_number=0)
    seed, other = params[M.TRIAL_SEED], trial_seed(SWEEP_SEED, 1)
    grid = tuner(sweep, {**params, M.TRIAL_SEED: tune.grid_search([seed, seed, other])},
                 results_dir, "seeds").fit()
    assert not grid.errors
    first = {}
    for result in grid:
        (row,) = rows(result)
        first.setdefault(row[M.TRIAL_SEED], []).append(row[M.VAL_SCORE])
    assert len(first[seed]) == 2 and first[seed][0] == first[seed][1]
    assert first[other][0] != first[seed][0], "another seed should start elsewhere"


@pytest.mark.slow
def test_dqn_trial_runs_validation_evaluations(ray_session, results_dir, tiny_sweep):
    sweep = tiny_sweep(**{"algorithm": "dqn", "search.space_overrides": DQN_OVERRIDES,
                          "training.max_iterations": 2, "training.patience": 100})
    # Sampler seed 4: the greedy policy starts trading by the second evaluation (seen: 0, 46
    # trades), so DQN's inference path is exercised on both actions.
    params = fixed_params(sweep, sampler_seed=4)
    assert "train_batch_size" not in params and "gamma" in params
    grid, result = run_one(sweep, params, results_dir, "dqn")
    assert result.error is None
    reported = rows(result)
    assert [r[M.EVALS] for r in reported] == [1, 2]
    assert reported[-1][M.STOP_REASON] == "max_iterations"
    assert reported[-1][M.ENV_STEPS] > reported[0][M.ENV_STEPS] > 0
    assert reported[-1][M.BEST_VAL_SCORE] == max(r[M.VAL_SCORE] for r in reported)
    assert max(r[M.VAL_PREFIX + "trades"] for r in reported) > 0
    (kept,) = checkpoints(result)
    score, _ = rescore(sweep, params, kept)
    assert score == reported[-1][M.BEST_VAL_SCORE]


@pytest.mark.slow
def test_early_stopping_fires_when_validation_cannot_improve(ray_session, results_dir,
                                                             tiny_sweep):
    # min_delta is so large that no evaluation after the first counts as an improvement.
    sweep = tiny_sweep(**{"training.min_delta": 1e9, "training.patience": 2,
                          "training.min_evals": 2, "training.max_iterations": 10})
    grid, result = run_one(sweep, fixed_params(sweep), results_dir, "patience")
    assert result.error is None
    reported = rows(result)
    assert reported[-1][M.STOP_REASON] == "patience"
    assert [r[M.ITERATIONS] for r in reported] == [1, 2, 3]  # 1 best + 2 stale evaluations
    assert [r[M.BEST_VAL_SCORE] for r in reported] == [reported[0][M.VAL_SCORE]] * 3
    assert [p.name for p in checkpoints(result)] == [reported[0]["checkpoint_dir_name"]]


@pytest.mark.slow
def test_without_patience_a_trial_trains_its_whole_budget(ray_session, results_dir, tiny_sweep):
    # The same hopeless validation as above, but training.patience null: no early stop.
    sweep = tiny_sweep(**{"training.min_delta": 1e9, "training.patience": "null",
                          "training.min_evals": 0, "training.max_iterations": 4})
    grid, result = run_one(sweep, fixed_params(sweep), results_dir, "no-patience")
    assert result.error is None
    reported = rows(result)
    assert [r[M.ITERATIONS] for r in reported] == [1, 2, 3, 4]
    assert reported[-1][M.STOP_REASON] != "patience"
    assert [p.name for p in checkpoints(result)] == [reported[0]["checkpoint_dir_name"]]


@pytest.mark.slow
def test_training_episode_metrics_are_reported(ray_session, results_dir, tiny_sweep):
    from trainables.env import TradingEnv

    loss = 0.02
    overrides = ("{train_batch_size: 200, num_minibatches: 2, num_epochs: 2, hidden_width: 16, "
                 f"hidden_layers: 1, window_size: 5, max_allowed_loss: {loss}}}")
    sweep = tiny_sweep(**{"search.space_overrides": overrides, "training.max_iterations": 2})
    params = fixed_params(sweep)
    grid, result = run_one(sweep, params, results_dir, "episodes")
    assert result.error is None
    reported = rows(result)
    train_env = TradingEnv(env_config(sweep, settings_of(sweep, params), "train"))
    shortest_episode = (train_env.end_bar - train_env.first_bar) // 2
    # So few steps cannot reach the end of the data: every finished episode hit the loss limit.
    assert reported[-1][M.ENV_STEPS] < shortest_episode
    finished = [r for r in reported if r[M.TRAIN_PNL_PCT] is not None]
    assert finished, "no training episode ended"
    cash = sweep["env"]["initial_cash"]
    for row in finished:
        assert row[M.TRAIN_PNL_PCT] < -100 * loss
        assert math.isclose(row[M.TRAIN_PNL], row[M.TRAIN_NET_WORTH] - cash)
        assert math.isclose(row[M.TRAIN_PNL_PCT], (row[M.TRAIN_NET_WORTH] / cash - 1) * 100)
        assert row[M.EPISODE_RETURN] < math.log(1 - loss)  # log-return reward sums to log(worth)


@pytest.mark.slow
def test_diverging_training_fails_the_trial_with_the_reason(ray_session, results_dir,
                                                            tiny_sweep):
    overrides = ("{train_batch_size: 200, num_minibatches: 2, num_epochs: 2, hidden_width: 16, "
                 "hidden_layers: 1, window_size: 5, lr: 1000.0}")
    sweep = tiny_sweep(**{"search.space_overrides": overrides})
    grid, result = run_one(sweep, fixed_params(sweep), results_dir, "diverge")
    assert len(grid.errors) == 1
    assert isinstance(result.error, TrainingDiverged)  # Ray's wrapper subclasses the cause
    assert "training diverged: default_policy/" in str(result.error)
    error_file = Path(result.path) / "error.txt"
    assert "TrainingDiverged: training diverged: default_policy/" in error_file.read_text()
    assert checkpoints(result) == []


@contextlib.contextmanager
def killing_worker(results_dir: Path, experiment: str,
                   condition: Callable[[dict], Any]) -> Iterator[dict]:
    """While the block runs, SIGKILL the trial worker of the first result row that meets
    ``condition``; yields that row (empty if none came), plus whether its checkpoint directory
    was on disk at that moment (``checkpoint_on_disk``)."""
    killed: dict = {}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            for path in results_dir.glob(f"{experiment}/*/result.json"):
                for line in path.read_text().splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:  # a line still being written
                        continue
                    if condition(row):
                        saved = row.get("checkpoint_dir_name")
                        killed.update(row, checkpoint_on_disk=bool(saved)
                                      and (path.parent / saved).is_dir())
                        os.kill(row["pid"], signal.SIGKILL)
                        return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        done.set()
        watcher.join(timeout=10)


@pytest.mark.slow
def test_killed_trial_resumes_from_its_checkpoint(ray_session, results_dir, tiny_sweep):
    sweep = tiny_sweep(**{"training.max_iterations": 6, "training.patience": 100})
    params = fixed_params(sweep)
    run = tuner(sweep, params, results_dir, "killed", max_failures=1)
    # The driver writes a result row (with its pid) once the worker has persisted the
    # checkpoint that goes with it: kill the worker right then.
    started = time.monotonic()
    with killing_worker(results_dir, "killed", lambda row: row.get("checkpoint_dir_name")) \
            as killed:
        grid = run.fit()
    elapsed = time.monotonic() - started
    assert killed, f"the trial ended before its first checkpoint ({elapsed:.0f}s)"
    assert killed["checkpoint_on_disk"]
    (result,) = grid
    assert result.error is None, "the restarted trial should have finished"
    reported = rows(result)
    assert reported[-1][M.STOP_REASON] == "max_iterations"
    assert reported[-1][M.ITERATIONS] == 6
    assert reported[-1]["pid"] != killed["pid"], "not restarted in a new worker"
    restart = next(i for i, r in enumerate(reported) if r["pid"] != killed["pid"])
    before, after = reported[:restart], reported[restart:]
    assert killed["iterations"] in [r[M.ITERATIONS] for r in before]
    last_checkpoint = max(r[M.ITERATIONS] for r in before if r["checkpoint_dir_name"])
    # Resumed from the checkpoint's iteration, not from 1 again.
    assert after[0][M.ITERATIONS] == last_checkpoint + 1 > 1
    assert after[0]["iterations_since_restore"] == 1
    assert [r[M.ITERATIONS] for r in after] == list(range(last_checkpoint + 1, 7))
    assert after[0][M.EVALS] == [r for r in before if r[M.ITERATIONS] == last_checkpoint][0][
        M.EVALS] + 1
    best = [r[M.BEST_VAL_SCORE] for r in reported]
    assert best == sorted(best), "best_val_score went down across the restart"
    assert best[-1] == max(r[M.VAL_SCORE] for r in reported)
    (kept,) = checkpoints(result)
    assert rescore(sweep, params, kept)[0] == best[-1]
