"""The Ray Tune function trainable: one sampled configuration, trained and validated.

Top to bottom: build the train env and the RLlib algorithm from the sampled parameters, train,
evaluate the greedy policy on the whole validation split every ``eval_every`` iterations, keep a
checkpoint only when the validation objective improves, stop when it has not improved for
``patience`` evaluations (``trainables/early_stopping.py`` decides; the settings and their
defaults are in ``trainables/settings.py``, every seed comes from ``trainables/seeds.py``).
Everything the trial writes goes under its own trial directory. One Tune report per
evaluation, each carrying the best-so-far score the searcher optimises.
With walk-forward folds or repeated seeds, that loop is one run of several, and the trial is
scored on their aggregate (``trainables/runs.py``).
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from trainables import metrics as M
from trainables.early_stopping import EarlyStopping
from trainables.runs import Run, RunResult, TrialRuns, plan_runs
from trainables.settings import training_settings, trial_env

STATE_FILE = "trial_state.json"
# The kept checkpoint's bar returns on its validation split, float32: the study's
# trials x bars matrix for the probability of backtest overfitting (search/results/verdict.py).
RETURNS_FILE = "val_returns.npy"
ALGORITHM_DIR = "algorithm"


def load_module(checkpoint_dir: str | Path):
    """The trained RLModule of a trial checkpoint, for inference only (no env runners)."""
    import logging

    from ray.rllib.core.rl_module import RLModule

    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    # RLlib's own RLModule constructor warns about its own deprecated config object.
    logging.getLogger("ray._common.deprecation").setLevel(logging.ERROR)
    path = Path(checkpoint_dir) / ALGORITHM_DIR / "learner_group" / "learner" / "rl_module"
    return RLModule.from_checkpoint(path / "default_policy")


class TrainingDiverged(RuntimeError):
    """Raised inside a trial whose losses or scores became NaN/inf; the trial fails with it."""


def env_config(sweep: dict[str, Any], settings: dict[str, Any], split: str) -> dict[str, Any]:
    """The env config of a split: fixed market settings, then the trial's searched env settings."""
    return {**trial_env(sweep, settings), "split": split}


def train_env_maker(vector_env: bool) -> tuple[Any, str]:
    """How a trial's env runner builds its envs: (RLlib env, ``gym_env_vectorize_mode``).

    ``vector_env``: in the ``vector_entry_point`` mode RLlib's env runner calls the env class
    once, with ``env_config | {"num_envs": N}``, for one ``VectorTradingEnv`` of N markets.
    Otherwise it builds N TensorTrade-backed ``TradingEnv`` and steps them one by one in a
    ``SyncVectorEnv`` (the ``sync`` mode).
    """
    if vector_env:
        from trainables.vector_env import VectorTradingEnv

        return VectorTradingEnv, "vector_entry_point"
    from trainables.env import TradingEnv

    return TradingEnv, "sync"


def algorithm_config(algorithm: str, settings: dict[str, Any], sweep: dict[str, Any],
                     seed: int | None = None, split: str = "train", lean: bool = True):
    """The full RLlib AlgorithmConfig for one trial (new API stack, torch), training on
    ``split``. ``lean``: PPO with the cheaper module and connectors of
    ``trainables/fast_ppo.py`` (same algorithm; False gives RLlib's stock ones, for
    benchmarks)."""
    from spaces import algorithm_of
    from trainables.callbacks import TradingMetrics

    training = training_settings(sweep)
    declared = algorithm_of(algorithm)
    train_env = {**env_config(sweep, settings, split), "random_start": True}
    env, vectorize = train_env_maker(bool(training["vector_env"]))
    config = (
        declared.config_class()()
        # Discrete actions need no unsquashing; RLlib would still deep-copy every action batch.
        .environment(env, env_config=train_env, normalize_actions=False)
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=int(training["envs_per_runner"]),
                     gym_env_vectorize_mode=vectorize)
    )
    for method, kwargs in declared.rllib_calls.items():
        config = getattr(config, method)(**kwargs)
    config = (
        config
        .training(**settings["training"])
        .rl_module(model_config=settings["model"])
        .callbacks(TradingMetrics)
        # log_sys_usage: RLlib's default system-usage monitor samples CPU and RAM every 0.7 s
        # in a thread for metrics nothing reads, and ``algo.stop()`` waits out its sleep
        # (about 0.5 s per run).
        .debugging(seed=seed, log_level="ERROR", log_sys_usage=False)
        .reporting(metrics_num_episodes_for_smoothing=10)
    )
    if lean and declared.name == "ppo":
        from trainables.fast_ppo import speed_up

        config = speed_up(config)
    return config


def train_trial(config: dict[str, Any], sweep: dict[str, Any]) -> None:
    """Ray Tune function trainable. ``config`` holds the sampled parameters (plus ``seed``).

    One run on the train/val split unless ``data.walk_forward`` or ``training.seeds`` ask for
    more; then the runs train one after the other and the trial reports their aggregate. A
    trial restarted from a checkpoint after a crash goes on with the run it was in.
    """
    import ray.tune as tune

    from spaces import get_space
    from trainables.splits import walk_forward_settings

    training = training_settings(sweep)
    search = sweep.get("search") or {}
    space = get_space(sweep["algorithm"], search.get("space_overrides"), search.get("space"))
    settings = space.replay({k: v for k, v in config.items() if k != M.TRIAL_SEED})
    walk_forward = walk_forward_settings((sweep.get("data") or {}).get("walk_forward"))
    plan = plan_runs(walk_forward and walk_forward[0], int(training["seeds"]))

    checkpoint = tune.get_checkpoint()
    state = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = json.loads((Path(directory) / STATE_FILE).read_text())
    trial = TrialRuns(plan, training["aggregate"], training["aggregate_k"], state)
    for run in trial.remaining():
        trial.finish(_train_run(run, trial, config.get(M.TRIAL_SEED), sweep, settings,
                                training, checkpoint))


def _train_run(run: Run, trial: TrialRuns, trial_seed: int | None, sweep: dict[str, Any],
               settings: dict[str, Any], training: dict[str, Any], checkpoint) -> RunResult:
    """One run: train on its split, validate every ``eval_every`` iterations, checkpoint on
    improvement (and at the end of a run that is not the last), stop on patience or budget."""
    import ray.tune as tune

    from trainables.evaluation import evaluate

    seed = run.seed(trial_seed)
    algo = algorithm_config(sweep["algorithm"], settings, sweep, seed,
                            run.train_split).build_algo()
    val_env = env_config(sweep, settings, run.val_split)
    # What the loop carries besides the stopper's counts; saved with each checkpoint.
    loop: dict[str, Any] = {"iteration": 0, "best_metrics": {}, "scores": []}
    resumed = trial.resume_state(run)
    if resumed is not None:
        with checkpoint.as_directory() as directory:
            algo.restore_from_path(str(Path(directory) / ALGORITHM_DIR))
        loop = {**resumed, "restored_from_iteration": resumed["iteration"]}
    stopper = EarlyStopping(training["patience"], training["min_evals"], training["min_delta"],
                            resumed)

    try:
        while loop["iteration"] < training["max_iterations"]:
            result = algo.train()
            loop["iteration"] += 1
            _check_finite(result)
            env_steps = _lifetime_env_steps(result)
            budget_reason = _budget_spent(training, loop["iteration"], env_steps)
            if loop["iteration"] % training["eval_every"] and not budget_reason:
                continue
            evaluated = evaluate(algo, val_env, run.val_split)
            evaluation = evaluated.metrics()
            score = _score(evaluation, training["objective"])
            verdict = stopper.observe(score)
            loop["scores"].append(score)
            if verdict.improved:
                loop["best_metrics"] = evaluation
            state = {**loop, **stopper.state()}
            stop_reason = budget_reason or verdict.reason
            done = None
            if stop_reason:
                done = RunResult(run.index, stopper.best, loop["best_metrics"], loop["iteration"],
                                 stopper.evals, env_steps, stop_reason)
            report = _run_report(result, evaluation, score, state, env_steps, trial, run,
                                 trial_seed, seed, stop_reason, done)
            # A run that is not the last checkpoints its end too, so a restart goes on with the
            # next run; only the last run's best checkpoint is kept (see trainables/runs.py).
            if verdict.improved or (done and not trial.is_last(run)):
                _report_with_checkpoint(algo, report, trial.checkpoint_state(run, state, done),
                                        evaluated.bar_returns() if verdict.improved else None)
            else:
                tune.report(report)
            if done:
                return done
    finally:
        algo.stop()
    # Only reached by a run restored from a checkpoint of its very last iteration.
    return RunResult(run.index, stopper.best, loop["best_metrics"], loop["iteration"],
                     stopper.evals, 0, "max_iterations")


def _budget_spent(training: dict[str, Any], iteration: int, env_steps: int) -> str | None:
    """``max_env_steps`` or ``max_iterations`` once that budget is spent (env steps first)."""
    if training["max_env_steps"] is not None and env_steps >= training["max_env_steps"]:
        return "max_env_steps"
    if iteration >= training["max_iterations"]:
        return "max_iterations"
    return None


def _score(evaluation: dict[str, float], objective: str) -> float:
    """The validation objective of an evaluation; a non-finite one fails the trial."""
    score = float(M.OBJECTIVES[objective](evaluation))
    if not math.isfinite(score):
        raise TrainingDiverged(f"validation {objective} is {score}")
    return score


def _run_report(result: dict, evaluation: dict, score: float, state: dict, env_steps: int,
                trial: TrialRuns, run: Run, trial_seed: int | None, seed: int | None,
                stop_reason: str | None, done: RunResult | None) -> dict[str, Any]:
    """The Tune report of one evaluation: this run's metrics, the trial's totals and scores
    so far, and with several runs, which run it is (and at a run's end, the racing rung)."""
    report = _report(result, evaluation, score, state, trial_seed,
                     stop_reason if trial.is_last(run) else None)
    report.update(trial.totals(state["iteration"], state["evals"], env_steps))
    report.update(trial.scores(run, state["best"]))
    if trial.several:
        report.update({M.RUN: run.index, M.RUNS: len(trial.runs), M.FOLD: run.fold,
                       M.SEED_INDEX: run.seed_index, M.RUN_SEED: seed,
                       M.RUN_STOP_REASON: stop_reason or ""})
        if done and not trial.is_last(run):
            report.update({M.RUNG: run.index, M.RUNG_SCORE: report[M.BEST_VAL_SCORE]})
    return report


def _report_with_checkpoint(algo, report: dict[str, Any], state: dict[str, Any],
                            returns: Any = None) -> None:
    """Report to Tune with a checkpoint: the algorithm and the trial's state to restart from,
    and (an improved validation score) the bar returns that scored it."""
    import numpy as np
    import ray.tune as tune

    with tempfile.TemporaryDirectory() as tmp:
        algo.save_to_path(str(Path(tmp) / ALGORITHM_DIR))
        (Path(tmp) / STATE_FILE).write_text(json.dumps(state))
        if returns is not None:
            np.save(Path(tmp) / RETURNS_FILE, np.asarray(returns, dtype=np.float32))
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))


def _report(result: dict, evaluation: dict, score: float, state: dict, seed: int | None,
            stop_reason: str | None) -> dict[str, Any]:
    runners = result.get("env_runners", {})
    report = {
        M.VAL_SCORE: score,
        M.STOP_REASON: stop_reason or "",
        M.TRIAL_SEED: seed,
        M.NODE_ID: _node_id(),
        M.EPISODE_RETURN: _finite_or_none(runners.get("episode_return_mean")),
        M.TRAIN_PNL_PCT: _finite_or_none(runners.get(M.TRAIN_PNL_PCT)),
        M.TRAIN_PNL: _finite_or_none(runners.get(M.TRAIN_PNL)),
        M.TRAIN_NET_WORTH: _finite_or_none(runners.get(M.TRAIN_NET_WORTH)),
    }
    report.update({M.VAL_PREFIX + k: v for k, v in evaluation.items()})
    report.update({M.BEST_PREFIX + k: v for k, v in state["best_metrics"].items()})
    return report


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _finite_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _lifetime_env_steps(result: dict) -> int:
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    return int(result.get(NUM_ENV_STEPS_SAMPLED_LIFETIME)
               or result.get("env_runners", {}).get(NUM_ENV_STEPS_SAMPLED_LIFETIME) or 0)


def _check_finite(result: dict) -> None:
    """Fail the trial with a reason when a learner loss is NaN or infinite."""
    for module, stats in (result.get("learners") or {}).items():
        if not isinstance(stats, dict):
            continue
        for name, value in stats.items():
            if "loss" in name and isinstance(value, (int, float)) and not math.isfinite(value):
                raise TrainingDiverged(f"training diverged: {module}/{name} = {value}")


def check_custom_space(space: Any, sweep: dict[str, Any]) -> None:
    """Call a custom space once and check what it returns (``spaces.dry_run``), then put its
    settings to RLlib's own validation, as the tests apply it to the built-in spaces (that
    imports RLlib and torch: a few seconds, paid only by custom spaces). Nothing for a built-in
    space; a one-line ``SpaceError`` naming the space otherwise."""
    import logging

    from spaces import dry_run, exception_line
    from trainables.errors import SpaceError

    settings = dry_run(space, sweep)
    if settings is None:
        return
    name, algorithm = f"search.space {space.custom!r}", space.algorithm

    def refused(exc: Exception) -> SpaceError:
        return SpaceError(f"{name} returned settings RLlib refuses for {algorithm}: "
                          f"{exception_line(exc)}")

    try:
        config = algorithm_config(algorithm, settings, sweep)  # imports RLlib
    except Exception as exc:  # noqa: BLE001 - RLlib's own message names the setting
        raise refused(exc) from None
    rllib_log = logging.getLogger("ray.rllib")  # RLlib set its level when imported
    level = rllib_log.level
    rllib_log.setLevel(logging.ERROR)  # its new-API-stack notice is not the user's problem
    try:
        config.validate()
    except Exception as exc:  # noqa: BLE001
        raise refused(exc) from None
    finally:
        rllib_log.setLevel(level)
