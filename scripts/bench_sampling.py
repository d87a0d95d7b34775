"""Sampling speed of a trial against the bare TensorTrade env, side by side in one run.

(a) the bare TensorTrade env (the tutorial's factory) stepping random actions: what one Python
    env can do;
(b) one training iteration of the tutorial's PPO config as a trial runs it, split into sampling
    and learning time (RLlib's own timers), for several envs per env runner, sampling from the
    TensorTrade env (``training.vector_env: false``) and from the vectorised env (the default).
Prints sampled steps/s as a multiple of (a). Target: at least 2x (a) for the trial's default
setup (8 envs per runner, vectorised env), so learning, not sampling, is most of an iteration.

    ./tt python scripts/bench_sampling.py [--csv PATH] [--envs 1 4 8 16] [--iterations 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def iteration_timers(envs: int, csv: Path, iterations: int,
                     vector_env: bool) -> tuple[float, float, float]:
    """Median (sampling s, learning s, sampled steps) per train() of the tutorial's PPO."""
    from spaces import get_space
    from trainables.rllib_trainable import algorithm_config
    from trainables.settings import TRAINING_DEFAULTS

    space = get_space("ppo")
    settings = space.replay(space.first_params)
    sweep = {"algorithm": "ppo", "data": {"path": str(csv)}, "env": {},
             "training": {**TRAINING_DEFAULTS, "envs_per_runner": envs,
                          "vector_env": vector_env}}
    algo = algorithm_config("ppo", settings, sweep, seed=0).build_algo()
    samples, learns, steps = [], [], []
    try:
        algo.train()  # warm-up
        for _ in range(iterations):
            result = algo.train()
            timers = result["timers"]
            samples.append(timers["env_runner_sampling_timer"])
            learns.append(timers["learner_update_timer"])
            steps.append(result["env_runners"]["num_env_steps_sampled"])
    finally:
        algo.stop()
    return statistics.median(samples), statistics.median(learns), statistics.median(steps)


def main() -> None:
    import bench_env

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=bench_env.DEFAULT_CSV)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20_000, help="bare env steps to time")
    args = parser.parse_args()

    import logging
    import warnings

    import ray
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # as in a one-CPU trial (Ray sets OMP_NUM_THREADS=1 there)
    from trainables.market import prepare_market

    market = prepare_market({"path": str(args.csv)})
    start, end = market.splits["train"]
    bare = bench_env.plain_tutorial_env(market.bars["close"].iloc[start:end],
                                        market.features.iloc[start:end], 0.001)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    from trainables.settings import TRAINING_DEFAULTS

    print(f"data: {args.csv.name} train split, tutorial PPO (batch 2000, 7 epochs, [128,128])")
    for envs in args.envs:
        # (a) again before each group, so a busy machine skews both sides of a ratio alike.
        limit, _ = bench_env.time_random_steps(bare, args.steps, seed=0)
        print(f"(a) bare TensorTrade env, random actions: {limit:8,.0f} steps/s")
        for vector_env, name in ((False, "TensorTrade"), (True, "vectorised ")):
            sampling, learning, steps = iteration_timers(envs, args.csv, args.iterations,
                                                         vector_env)
            rate = steps / sampling
            default = (envs == TRAINING_DEFAULTS["envs_per_runner"]
                       and vector_env == TRAINING_DEFAULTS["vector_env"])
            mark = "  <- trial default" if default else ""
            print(f"(b) {envs:2d} envs/runner, {name} env: sampling {sampling:5.2f} s + learning "
                  f"{learning:5.2f} s per iteration; sampled {rate:7,.0f} steps/s = "
                  f"{rate / limit:5.2f}x (a){mark}")
    ray.shutdown()


if __name__ == "__main__":
    main()
