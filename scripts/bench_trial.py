"""Wall time of one training iteration and one validation evaluation inside a trial.

The tutorial's tuned PPO config on the real Coinbase data (hourly; default 70/15/15 splits, so
about 3,000 validation bars), measured in one process: train() iterations, then greedy
evaluations of the whole validation split, and the share of a trial's time that validation
takes at the default ``eval_every``.

    ./tt python scripts/bench_trial.py [--csv PATH] [--iterations 3] [--envs 4]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=COINBASE)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--envs", type=int, default=None,
                        help="envs per env runner (default: the trial's default)")
    parser.add_argument("--eval-every", type=int, default=2)
    args = parser.parse_args()

    import logging
    import warnings

    import ray

    warnings.filterwarnings("ignore")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    from spaces import get_space
    from trainables.market import prepare_market
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import algorithm_config, env_config
    from trainables.settings import TRAINING_DEFAULTS

    args.envs = args.envs or TRAINING_DEFAULTS["envs_per_runner"]

    sweep = {"algorithm": "ppo", "data": {"path": str(args.csv)}, "env": {},
             "training": {"envs_per_runner": args.envs}}
    market = prepare_market(sweep["data"])
    start, end = market.splits["val"]
    space = get_space("ppo")
    settings = space.replay(space.first_params)
    algo = algorithm_config("ppo", settings, sweep, seed=0).build_algo()
    algo.train()  # warm-up: first iteration includes lazy initialisation
    iterations = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        algo.train()
        iterations.append(time.perf_counter() - t0)
    val = env_config(sweep, settings, "val")
    evaluations = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = evaluate(algo, val, "val")
        evaluations.append(time.perf_counter() - t0)
    algo.stop()
    it, ev = statistics.median(iterations), statistics.median(evaluations)
    share = ev / (args.eval_every * it + ev)
    print(f"data: {args.csv.name}, validation split {end - start} bars "
          f"({result.bars} evaluated), envs per runner {args.envs}")
    print(f"train() iteration (tutorial PPO, batch 2000, 7 epochs): {it:.2f} s (median of "
          f"{args.iterations})")
    print(f"validation evaluation (greedy, whole split):            {ev:.3f} s (median of 3)")
    print(f"validation share of trial time at eval_every={args.eval_every}:   {share:.1%} "
          f"(validation / training = {ev / (args.eval_every * it):.1%})")
    ray.shutdown()


if __name__ == "__main__":
    main()
