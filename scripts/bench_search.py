"""Search efficiency for an equal budget of environment steps, side by side.

(a) random search, trials trained to the full budget (no early stopping);
(b) the tutorial's approach: Optuna TPE + median pruner in a plain RLlib loop, each trial's value
    is its last validation score;
(c) TradeTune's default: TPE on the best-so-far score, patience early stopping, ASHA.
For each dataset and sweep seed, the equal budget B is the smallest number of env steps any of
the three used; the script prints each method's best validation score at 25/50/100% of B, the
share of B that (c) needs to reach (a)'s final best (target: at most half), and the test-split
score of each method's best trial (a validation win that does not carry to test is no win).

    ./tt python scripts/bench_search.py [--trials 30] [--seeds 0 1 2] [--data synthetic coinbase]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
# A faster corner of the PPO space, the same for every method.
OVERRIDES = {"train_batch_size": {"low": 500, "high": 1500}, "num_epochs": {"low": 3, "high": 8},
             "hidden_width": {"choices": [32, 64]}, "hidden_layers": {"low": 1, "high": 2}}


def data_section(name: str) -> dict:
    if name == "coinbase":
        return {"path": str(COINBASE),
                "splits": {"train_bars": 3000, "val_bars": 720, "test_bars": 720}}
    return {"synthetic": {"n_bars": 4000, "seed": 42}}


def sweep(name: str, data: str, seed: int, args, sampler: str, scheduler: str,
          patience: int, concurrent: int = 1) -> dict:
    return {"study": name, "algorithm": "ppo", "data": data_section(data),
            "search": {"num_samples": args.trials, "seed": seed, "sampler": sampler,
                       "scheduler": scheduler, "space_overrides": OVERRIDES,
                       "enqueue_tutorial": False, "max_concurrent": concurrent},
            "training": {"max_iterations": args.iterations, "eval_every": 2,
                         "patience": patience, "min_evals": 2, "max_failures": 0}}


def run_service(config: dict, work: Path) -> list[dict]:
    """Launch through the CLI; return trials as (env_steps, value, test score) in finish order."""
    path = work / f"{config['study']}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled"}
    env.pop("TRADETUNE_STORAGE", None)
    done = subprocess.run([sys.executable, "-m", "search.cli", "launch", str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    import optuna

    study = optuna.load_study(study_name=config["study"],
                              storage=f"sqlite:///{work / 'results' / 'tradetune.db'}")
    finished = sorted((t for t in study.trials if t.datetime_complete),
                      key=lambda t: t.datetime_complete)
    return [{"steps": t.user_attrs.get("env_steps") or 0,
             "value": t.value if t.state.name == "COMPLETE" else None,
             "checkpoint": t.user_attrs.get("checkpoint"), "params": t.params}
            for t in finished]


def run_tutorial_loop(config: dict, work: Path) -> list[dict]:
    """(b): the tutorial's plain loop in a subprocess (its own Ray)."""
    path = work / f"{config['study']}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = work / f"{config['study']}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, __file__, "--tutorial-loop", str(path), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return json.loads(out.read_text())


def tutorial_loop(config_path: Path, out: Path) -> None:
    import logging

    import optuna
    import ray

    from search.config.yaml_loader import read_yaml_file
    from spaces import get_space
    from trainables.evaluation import evaluate
    from trainables.metrics import OBJECTIVES
    from trainables.rllib_trainable import _lifetime_env_steps, algorithm_config, env_config

    config = read_yaml_file(config_path)
    config["env"] = {}
    ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space("ppo", config["search"]["space_overrides"])
    checkpoints = Path(tempfile.mkdtemp(prefix="tutorial-"))
    records: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        settings = space(trial)
        algo = algorithm_config("ppo", settings, config, seed=trial.number).build_algo()
        record = {"steps": 0, "value": None, "checkpoint": None, "params": trial.params}
        records.append(record)
        try:
            score = -math.inf
            for iteration in range(1, config["training"]["max_iterations"] + 1):
                result = algo.train()
                record["steps"] = _lifetime_env_steps(result)
                if iteration % config["training"]["eval_every"]:
                    continue
                score = OBJECTIVES["sharpe"](
                    evaluate(algo, env_config(config, settings, "val"), "val").metrics())
                trial.report(score, iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            path = checkpoints / f"trial{trial.number}"
            algo.save_to_path(str(path / "algorithm"))
            record.update(value=score, checkpoint=str(path))
            return score
        finally:
            algo.stop()

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=config["search"]["seed"]),
                                pruner=optuna.pruners.MedianPruner(n_warmup_steps=2))
    study.optimize(objective, n_trials=config["search"]["num_samples"])
    ray.shutdown()
    out.write_text(json.dumps(records))


def best_within(trials: list[dict], budget: float) -> float | None:
    best, used = None, 0
    for trial in trials:
        used += trial["steps"]
        if used > budget:
            break
        if trial["value"] is not None and (best is None or trial["value"] > best):
            best = trial["value"]
    return best


def share_to_reach(trials: list[dict], target: float | None, budget: float) -> float | None:
    used = 0
    for trial in trials:
        used += trial["steps"]
        if used > budget:
            return None
        if target is not None and trial["value"] is not None and trial["value"] >= target:
            return used / budget
    return None


def test_score(trials: list[dict], config: dict, budget: float) -> float | None:
    """Test-split Sharpe of the best trial within the budget."""
    from spaces import get_space
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import env_config, load_module

    chosen, used = None, 0
    for trial in trials:
        used += trial["steps"]
        if used > budget:
            break
        if trial["value"] is not None and (chosen is None or trial["value"] > chosen["value"]):
            chosen = trial
    if chosen is None or not chosen["checkpoint"]:
        return None
    settings = get_space("ppo", OVERRIDES).replay(chosen["params"])
    module = load_module(chosen["checkpoint"])
    return evaluate(module, env_config(config, settings, "test"), "test").sharpe


def fmt(value: float | None) -> str:
    return "   -   " if value is None else f"{value:7.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30,
                        help="trials per method and seed (TPE's start-up: a third, at most 10)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["synthetic", "coinbase"])
    parser.add_argument("--out", type=Path, help="also write every trial and figure as JSON")
    parser.add_argument("--tutorial-loop", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tutorial_loop:
        tutorial_loop(*args.tutorial_loop)
        return
    import warnings

    warnings.filterwarnings("ignore")
    rows: list[dict] = []
    for data in args.data:
        if data == "coinbase" and not COINBASE.is_file():
            print(f"skipping coinbase: {COINBASE} not found")
            continue
        for seed in args.seeds:
            work = Path(tempfile.mkdtemp(prefix=f"bench-search-{data}-{seed}-"))
            # Random search is embarrassingly parallel: (a) runs 2 trials at a time to save
            # wall time; its budget is counted in env steps, which concurrency does not change.
            configs = {
                "a": sweep(f"random-{seed}", data, seed, args, "random", "none", 10_000, 2),
                "b": sweep(f"tutorial-{seed}", data, seed, args, "tpe", "none", 10_000),
                "c": sweep(f"tradetune-{seed}", data, seed, args, "tpe", "asha", 3),
            }
            runs = {}
            for key, runner in (("a", run_service), ("b", run_tutorial_loop),
                                ("c", run_service)):
                started = time.monotonic()
                runs[key] = runner(configs[key], work)
                print(f"[{data} seed {seed}] ({key}) {len(runs[key])} trials, "
                      f"{sum(t['steps'] for t in runs[key]):,} env steps, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
            budget = min(sum(t["steps"] for t in trials) for trials in runs.values())
            row = {"data": data, "seed": seed, "budget": budget}
            print(f"\n{data}, sweep seed {seed}: equal budget {budget:,.0f} env steps")
            print("method                         25%     50%    100%   test Sharpe of best")
            names = {"a": "(a) random, no early stop", "b": "(b) tutorial TPE+median",
                     "c": "(c) tradetune default"}
            for key, trials in runs.items():
                scores = [best_within(trials, budget * f) for f in (0.25, 0.5, 1.0)]
                test = test_score(trials, configs[key], budget)
                row[key] = {"scores": scores, "test": test, "trials": trials}
                print(f"{names[key]:28s} {' '.join(fmt(s) for s in scores)}  {fmt(test)}")
            target = best_within(runs["a"], budget)
            share = share_to_reach(runs["c"], target, budget)
            row["share"] = share
            print(f"(c) reaches (a)'s final best {fmt(target).strip()} at "
                  f"{'never within B' if share is None else f'{share:.0%} of B'} (target <= 50%)",
                  flush=True)
            rows.append(row)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
