"""Service overhead: the same configurations trained (a) in the tutorial's plain RLlib loop and
(b) through `tradetune launch` with one trial at a time. Prints both wall times and b/a
for each of a few alternating pairs, and the median ratio.

Both sides run as whole processes (interpreter, Ray start-up, data loading included), train the
same N configurations for the same iterations, validate every ``eval_every`` iterations on the
whole validation split and save a checkpoint when validation improves. Target: b/a <= 1.10.

    ./tt python scripts/bench_overhead.py [--configs 4] [--iterations 6] [--repeats 3] [--csv PATH]

Trials per hour of a real sweep config, this tree against an older commit, alternating runs
on the same machine (each run: the config's first ``--trials`` trials, start to exit):

    ./tt python scripts/bench_overhead.py --throughput examples/coinbase_btc_1h.yaml \
        --trials 8 --baseline COMMIT [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
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

    from search.config.yaml_loader import read_yaml_file
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
    # Beside the service side's results, in the work folder that main() removes (untimed).
    work = Path(os.environ["TRADETUNE_RESULTS"]).parent
    out = Path(tempfile.mkdtemp(prefix="plain-", dir=work))
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


def timed(command: list[str], env: dict, cwd: Path = REPO) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return time.perf_counter() - start


def source_tree(commit: str, work: Path) -> Path:
    """The project's files at ``commit`` (``git archive``), to run an older version's code with
    this environment's packages."""
    tree = work / f"tree-{commit}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def throughput(args: argparse.Namespace) -> None:
    """Trials per hour of ``args.throughput``'s sweep: its first ``args.trials`` trials, timed
    from start to exit, for this tree and (``--baseline``) an older commit, alternating."""
    from search.config.yaml_loader import read_yaml_file

    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    sweep = read_yaml_file(args.throughput)
    data = sweep.get("data") or {}
    if data.get("path") and not Path(data["path"]).is_absolute():
        near = (Path.cwd() / data["path"]) if (Path.cwd() / data["path"]).exists() else \
            args.throughput.resolve().parent / data["path"]
        data["path"] = str(near.resolve())
    sweep["search"]["num_samples"] = args.trials
    config_path = work / "sweep.yaml"
    config_path.write_text(yaml.safe_dump(sweep))
    trees = [("this tree", REPO)]
    if args.baseline:
        trees.append((args.baseline, source_tree(args.baseline, work)))
    print(f"{args.throughput}: {args.trials} trials per run (max_concurrent "
          f"{sweep['search'].get('max_concurrent', 1)}), {args.repeats} alternating round(s)")
    rates: dict[str, list[float]] = {name: [] for name, _ in trees}
    for repeat in range(args.repeats):
        for index, (name, tree) in enumerate(trees):
            env = {**os.environ, "TRADETUNE_RESULTS": str(work / f"results-{index}"),
                   "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(tree)}
            env.pop("TRADETUNE_STORAGE", None)
            wall = timed([sys.executable, "-m", "search.cli", "launch", str(config_path),
                          "--study", f"throughput-{repeat}"], env, cwd=tree)
            rates[name].append(args.trials / wall * 3600)
            print(f"round {repeat + 1}, {name}: {wall:6.1f} s, {rates[name][-1]:6.1f} trials/hour",
                  flush=True)
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.1f} trials/hour")
    print(json.dumps({name: [round(v, 1) for v in values] for name, values in rates.items()}))
    shutil.rmtree(work, ignore_errors=True)


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
    parser.add_argument("--throughput", type=Path, metavar="CONFIG",
                        help="measure trials per hour of this sweep config instead")
    parser.add_argument("--trials", type=int, default=8,
                        help="--throughput: trials per run (the config's num_samples is cut)")
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="--throughput: also run this commit's code, alternating")
    args = parser.parse_args()
    if args.plain:
        plain_loop(args.plain)
        return
    if args.throughput:
        throughput(args)
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
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
