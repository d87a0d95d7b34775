"""Service overhead: the same configurations trained (a) in the tutorial's plain RLlib loop and
(b) through `tradetune launch` with one trial at a time. Prints both wall times and b/a
for each of a few alternating pairs, and the median ratio.

Both sides run as whole processes (interpreter, Ray start-up, data loading included), train the
same N configurations for the same iterations, validate every ``eval_every`` iterations on the
whole validation split and save a checkpoint when validation improves. Target: b/a <= 1.10.

    ./tt python scripts/bench_overhead.py [--configs 4] [--iterations 6] [--repeats 3] [--csv PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
LEARNING_RATES = [3.29e-05, 1e-4, 3e-4, 1e-5, 5e-5, 2e-4, 5e-4, 2e-5]


def configurations(n: int) -> list[dict]:
    """The tutorial's tuned PPO parameters, varied only in the learning rate."""
    from spaces import get_space

    base = get_space("ppo").first_params
    return [{**base, "lr": LEARNING_RATES[i % len(LEARNING_RATES)]} for i in range(n)]


def sweep_config(args: argparse.Namespace, results: Path) -> dict:
    data = {"path": str(args.csv)} if args.csv else {"synthetic": {"n_bars": 6000, "seed": 42}}
    return {
        "study": "bench-overhead", "algorithm": "ppo", "data": data,
        "search": {"num_samples": args.configs, "max_concurrent": 1, "enqueue_tutorial": False,
                   "enqueue": configurations(args.configs)},
        "training": {"max_iterations": args.iterations, "eval_every": args.eval_every,
                     "patience": 10_000, "min_evals": 10_000, "envs_per_runner": args.envs,
                     "max_failures": 0},
    }


def plain_loop(config_path: Path) -> None:
    """Side (a): build, train, validate every few iterations, save best; one after another."""
    import logging

    import ray

    from search.config import read_yaml_file
    from spaces import get_space
    from trainables.evaluation import evaluate
    from trainables.metrics import OBJECTIVES
    from trainables.rllib_trainable import algorithm_config, env_config

    import torch

    # A one-CPU Tune trial runs torch with one thread (Ray sets OMP_NUM_THREADS=1); give the plain
    # loop the same, so the ratio measures the service, not torch's thread contention.
    torch.set_num_threads(1)
    sweep = read_yaml_file(config_path)
    sweep["env"] = {}
    ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    space = get_space("ppo")
    out = Path(tempfile.mkdtemp(prefix="plain-"))
    for index, params in enumerate(sweep["search"]["enqueue"]):
        settings = space.replay(params)
        algo = algorithm_config("ppo", settings, sweep, seed=index).build_algo()
        best = -math.inf
        for iteration in range(1, sweep["training"]["max_iterations"] + 1):
            algo.train()
            if iteration % sweep["training"]["eval_every"] == 0:
                score = OBJECTIVES["sharpe"](
                    evaluate(algo, env_config(sweep, settings, "val"), "val").metrics())
                if score > best:
                    best = score
                    algo.save_to_path(str(out / f"config{index}"))
        algo.stop()
    ray.shutdown()


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--envs", type=int, default=4, help="envs per env runner, both sides")
    parser.add_argument("--csv", type=Path, default=COINBASE if COINBASE.is_file() else None)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating (a)/(b) pairs; run-to-run noise here is +-5 s")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_loop(args.plain)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    config_path = work / "sweep.yaml"
    config_path.write_text(yaml.safe_dump(sweep_config(args, work / "results")))
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"),
           "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    env.pop("TRADETUNE_STORAGE", None)
    data = args.csv.name if args.csv else "synthetic"
    print(f"{args.configs} configs x {args.iterations} iterations (tutorial PPO, {data}, "
          f"validation every {args.eval_every}, {args.envs} envs per runner), "
          f"{args.repeats} alternating pair(s)")
    pairs = []
    for repeat in range(args.repeats):
        plain = timed([sys.executable, __file__, "--plain", str(config_path)], env)
        study = f"bench-overhead-{repeat}"
        service = timed([sys.executable, "-m", "search.cli", "launch", str(config_path),
                         "--study", study], env)
        pairs.append((plain, service))
        print(f"pair {repeat + 1}: (a) plain RLlib loop {plain:6.1f} s, (b) tradetune launch "
              f"{service:6.1f} s, b/a {service / plain:.3f}", flush=True)
    median = statistics.median(service / plain for plain, service in pairs)
    print(f"overhead ratio b/a, median of {len(pairs)}: {median:.3f}  (target <= 1.10)")
    print(json.dumps({"pairs": [[round(p, 1), round(s, 1)] for p, s in pairs],
                      "median_ratio": round(median, 3)}))


if __name__ == "__main__":
    main()
