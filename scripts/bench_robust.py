"""Does robust selection close the validation-to-test gap? Single split against walk-forward
plus repeated seeds, for the same compute budget, on the real Coinbase BTC/USD hourly bars.

(a) single split: ``--trials`` trials, each one run on train/validation;
(b) walk-forward (``--folds`` expanding folds) times ``--repeats`` seeds per configuration:
    ``--trials / (folds * repeats)`` trials, each ``folds * repeats`` runs, so both arms train
    the same number of runs of the same length (no early stopping in either arm).

For each sweep seed the script prints, for the best trial of each arm: its selection score (the
study value: one validation Sharpe in (a), the mean over folds of the mean over seeds in (b)),
the Sharpe of its kept checkpoint on the test split nobody saw, the gap between the two, and the
test P&L against buy-and-hold; then the means over sweep seeds. It reports whatever it sees.

    ./tt python scripts/bench_robust.py [--trials 12] [--seeds 0 1 2] [--folds 3] [--repeats 2]
"""
from __future__ import annotations

import argparse
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
# A fast corner of the PPO space, the same in both arms.
OVERRIDES = {"train_batch_size": {"low": 500, "high": 1500}, "num_epochs": {"low": 3, "high": 8},
             "hidden_width": {"choices": [32, 64]}, "hidden_layers": {"low": 1, "high": 2}}
SPLITS = {"train_bars": 3000, "val_bars": 720, "test_bars": 720}


def sweep(name: str, seed: int, trials: int, args: argparse.Namespace,
          robust: bool) -> dict:
    data = {"path": str(COINBASE), "splits": SPLITS}
    training = {"max_iterations": args.iterations, "eval_every": 2, "patience": 1000,
                "min_evals": 1, "max_failures": 0}
    if robust:
        data["walk_forward"] = {"folds": args.folds, "mode": "expanding"}
        training["seeds"] = args.repeats
    return {"study": name, "algorithm": "ppo", "data": data, "training": training,
            "search": {"num_samples": trials, "seed": seed, "max_concurrent": 2,
                       "space_overrides": OVERRIDES, "enqueue_tutorial": False}}


def launch(config: dict, work: Path) -> float:
    """Run one sweep through the CLI; return its wall time."""
    path = work / f"{config['study']}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled"}
    env.pop("TRADETUNE_STORAGE", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "search.cli", "launch", str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return time.perf_counter() - started


def best_on_test(url: str, study: str) -> dict:
    """The study's best trial: selection score, test Sharpe and P&L, buy-and-hold, env steps."""
    import optuna

    from search.results.evaluate import evaluate_trial

    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    test = evaluate_trial(url, study, None, "test")
    return {"value": test["validation_value"], "test_sharpe": test["sharpe"],
            "test_pnl_pct": test["pnl_pct"], "test_bh_pct": test["buy_and_hold_pct"],
            "env_steps": sum(t.user_attrs.get("env_steps") or 0 for t in trials),
            "complete": sum(t.state.name == "COMPLETE" for t in trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12, help="runs per arm and sweep seed")
    parser.add_argument("--iterations", type=int, default=6, help="training iterations per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep seeds")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="training seeds per config (b)")
    args = parser.parse_args()
    if not COINBASE.is_file():
        raise SystemExit(f"missing {COINBASE}: this benchmark runs on the real Coinbase data")
    runs_per_trial = args.folds * args.repeats
    if args.trials % runs_per_trial:
        raise SystemExit(f"--trials ({args.trials}) must be a multiple of folds x repeats "
                         f"({runs_per_trial}) so both arms get the same budget")
    work = Path(tempfile.mkdtemp(prefix="bench-robust-"))
    url = f"sqlite:///{work / 'results' / 'tradetune.db'}"
    arms = {"single split": (args.trials, False),
            f"walk-forward {args.folds} x {args.repeats} seeds": (args.trials // runs_per_trial,
                                                                  True)}
    print(f"Coinbase BTC/USD 1h, splits {SPLITS}; {args.trials} runs of {args.iterations} "
          f"iterations per arm and sweep seed; results under {work}")
    print(f"{'arm':<28} {'seed':>4} {'trials':>6} {'env steps':>10} {'wall s':>7} "
          f"{'selected':>9} {'test Sh':>8} {'gap':>7} {'test P&L%':>9} {'B&H%':>7}")
    table: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, (trials, robust) in arms.items():
            name = f"{'robust' if robust else 'single'}-{seed}"
            wall = launch(sweep(name, seed, trials, args, robust), work)
            row = {**best_on_test(url, name), "wall": wall}
            row["gap"] = row["value"] - row["test_sharpe"]
            table[arm].append(row)
            print(f"{arm:<28} {seed:>4} {trials:>6} {row['env_steps']:>10} {wall:>7.0f} "
                  f"{row['value']:>9.3f} {row['test_sharpe']:>8.3f} {row['gap']:>7.3f} "
                  f"{row['test_pnl_pct']:>9.2f} {row['test_bh_pct']:>7.2f}", flush=True)
    print("\nmeans over sweep seeds")
    for arm, rows in table.items():
        mean = {key: statistics.fmean(r[key] for r in rows)
                for key in ("value", "test_sharpe", "gap", "test_pnl_pct", "test_bh_pct")}
        beat = sum(r["test_pnl_pct"] > r["test_bh_pct"] for r in rows)
        print(f"{arm:<28} selected {mean['value']:.3f}  test Sharpe {mean['test_sharpe']:.3f}  "
              f"gap {mean['gap']:.3f}  test P&L {mean['test_pnl_pct']:.2f}% vs buy-and-hold "
              f"{mean['test_bh_pct']:.2f}%  (beat buy-and-hold in {beat}/{len(rows)} seeds)")


if __name__ == "__main__":
    main()
