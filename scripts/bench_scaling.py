"""Parallel scaling on this machine: trials per hour with 1 and with 2 concurrent trials, and
the peak memory of one trial's processes. Both runs train the same fixed configurations.

    ./tt python scripts/bench_scaling.py [--trials 4] [--iterations 4] [--csv PATH]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def trial_memory_peak(stop: threading.Event, peak: list[float]) -> None:
    """Largest RSS of a Ray worker process running a trial (``ray::ImplicitFunc``: a trial
    samples in its own process, ``num_env_runners=0``), sampled every 0.5 s."""
    import psutil

    while not stop.wait(0.5):
        workers = []
        for proc in psutil.process_iter(["cmdline", "memory_info"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if cmdline.startswith("ray::ImplicitFunc"):
                workers.append(proc.info["memory_info"].rss)
        if workers:
            peak[0] = max(peak[0], max(workers) / 2**30)


def run(config: dict, concurrent: int, work: Path) -> tuple[float, float]:
    config = {**config, "study": f"scaling-{concurrent}",
              "search": {**config["search"], "max_concurrent": concurrent}}
    path = work / f"scaling-{concurrent}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled"}
    env.pop("TRADETUNE_STORAGE", None)
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=trial_memory_peak, args=(stop, peak), daemon=True)
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "search.cli", "launch", str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return elapsed, peak[0], trials_span(work / "results" / config["study"])


def trials_span(experiment: Path) -> float:
    """Seconds from the first trial's start to the last trial's end (Tune's result rows), i.e.
    the sweep without the driver's one-off start-up; what a long sweep's rate converges to."""
    import json

    starts, ends = [], []
    for result in experiment.glob("run-*/*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            ends.append(rows[-1]["timestamp"])
            starts.append(rows[-1]["timestamp"] - rows[-1]["time_total_s"])
    return max(ends) - min(starts)


def main() -> None:
    from bench_overhead import COINBASE, configurations

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--csv", type=Path, default=COINBASE if COINBASE.is_file() else None)
    args = parser.parse_args()
    data = {"path": str(args.csv)} if args.csv else {"synthetic": {"n_bars": 6000}}
    config = {"algorithm": "ppo", "data": data,
              "search": {"num_samples": args.trials, "enqueue_tutorial": False,
                         "enqueue": configurations(args.trials)},
              "training": {"max_iterations": args.iterations, "eval_every": 2,
                           "patience": 10_000, "min_evals": 10_000, "max_failures": 0}}
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    one, memory_one, span_one = run(config, 1, work)
    two, memory_two, span_two = run(config, 2, work)
    per_hour_one, per_hour_two = args.trials * 3600 / one, args.trials * 3600 / two
    print(f"{args.trials} trials x {args.iterations} iterations, tutorial PPO, "
          f"{os.cpu_count()} CPUs")
    print(f"1 concurrent trial:  {one:6.1f} s  {per_hour_one:6.0f} trials/hour "
          f"(trials alone: {span_one:5.1f} s)")
    print(f"2 concurrent trials: {two:6.1f} s  {per_hour_two:6.0f} trials/hour "
          f"(trials alone: {span_two:5.1f} s)")
    print(f"scaling ratio, whole command: {per_hour_two / per_hour_one:.2f}; "
          f"first trial start to last trial end: {span_one / span_two:.2f} (target >= 1.7)")
    print(f"peak memory of one trial's worker process: {max(memory_one, memory_two):.2f} GiB "
          f"(target < 1.5 GB)")


if __name__ == "__main__":
    main()
