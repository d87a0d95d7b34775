"""Query speed on a large study: `tradetune best --top 10` versus `optuna best-trial`.

Builds (once, cached under --dir) a SQLite study of --trials COMPLETE trials shaped like a
TradeTune PPO study (13 params, --steps intermediate values, TradeTune user attrs), then times
both commands as whole processes, side by side, and prints the ratio.

    ./tt python scripts/bench_query.py --trials 10000
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(url: str, name: str, n_trials: int, steps: int) -> None:
    import optuna
    from optuna.trial import create_trial

    from search.config.sweep_config import load_config
    from spaces import get_space
    from search.study.storage import open_storage
    from search.study.studies import create_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    config = load_config(None, [f"study={name}"])
    space = get_space("ppo")
    study = create_study(storage, config, space, "bench", "scripts/bench_query.py")
    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rng = random.Random(0)
    batch = []
    for number in range(n_trials):
        trial = sampler_study.ask()
        space(trial)
        value = rng.gauss(0, 1)
        batch.append(create_trial(
            params=trial.params, distributions=trial.distributions, value=value,
            intermediate_values={s: value - rng.random() for s in range(steps)},
            user_attrs={"checkpoint": f"/nowhere/{number}", "stop_reason": "patience",
                        "metrics": {"sharpe": value, "pnl_pct": value * 3}}))
        if len(batch) == 500:
            study.add_trials(batch)
            batch = []
            print(f"  built {number + 1}/{n_trials} trials", file=sys.stderr)
    study.add_trials(batch)


def timed(command: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10, help="intermediate values per trial")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tradetune-bench-query"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"query-{args.trials}x{args.steps}.db"
    url, name = f"sqlite:///{db}", "bench-query"
    if not db.exists():
        print(f"building {args.trials} trials in {db} (once) ...", file=sys.stderr)
        build(url, name, args.trials, args.steps)
    env = {**os.environ, "TRADETUNE_STORAGE": url}
    bindir = Path(sys.executable).parent
    ours = timed([str(bindir / "tradetune"), "best", "--study", name, "--top", "10", "-f", "json"],
                 env, args.repeat)
    theirs = timed([str(bindir / "optuna"), "best-trial", "--study-name", name, "--storage", url,
                    "-f", "json"], env, args.repeat)
    print(f"study: {args.trials} COMPLETE trials x {args.steps} intermediate values (SQLite)")
    print(f"tradetune best --top 10: {ours:.2f} s (whole process, median of {args.repeat})")
    print(f"optuna best-trial:       {theirs:.2f} s (whole process, median of {args.repeat})")
    print(f"ratio optuna/tradetune:  {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
