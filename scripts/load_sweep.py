"""Load: a sweep of many short trials against PostgreSQL, then how fast the study queries are.

    ./tt python scripts/load_sweep.py --trials 200
    ./tt python scripts/load_sweep.py --trials 200 --storage postgresql://user@host:5432/db

Runs ``tradetune launch`` on a tiny sweep (1 training iteration and 1 validation per trial,
1,000 synthetic bars, a 16-unit network) with ``--trials`` trials, checks every trial is
accounted for (COMPLETE == budget, nothing RUNNING or WAITING, one Optuna trial per Tune trial,
every COMPLETE trial's kept checkpoint on disk), then times ``tradetune best`` and
``tradetune status`` as a user runs them (fresh processes, median of 5). The study is deleted
at the end unless ``--keep``. Exit code 1 if a check fails.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_STORAGE = "postgresql://postgres@127.0.0.1:5432/test"


def config(study: str, trials: int, concurrent: int) -> dict:
    return {
        "study": study,
        "algorithm": "ppo",
        "data": {"synthetic": {"n_bars": 1000, "seed": 7, "freq": "1h"}},
        "search": {"num_samples": trials, "max_concurrent": concurrent, "seed": 42,
                   "enqueue_tutorial": False,
                   "space_overrides": {"train_batch_size": 200, "num_minibatches": 2,
                                       "num_epochs": 1, "hidden_width": 16, "hidden_layers": 1,
                                       "window_size": {"low": 5, "high": 8}}},
        "training": {"max_iterations": 1, "eval_every": 1, "patience": 1, "min_evals": 1,
                     "envs_per_runner": 1},
    }


def timed(command: list[str], env: dict, repeat: int = 5) -> tuple[float, float]:
    """Median and max wall seconds of ``tradetune COMMAND`` in fresh processes."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "search.cli", *command], cwd=REPO,
                              env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"load: {' '.join(command)} failed: {done.stderr.strip()}")
    return statistics.median(times), max(times)


def check(url: str, study_name: str, budget: int) -> list[str]:
    import optuna

    from search.study.storage import open_storage

    trials = optuna.load_study(study_name=study_name,
                               storage=open_storage(url, read_only=True)).get_trials()
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    ids = [t.user_attrs.get("tune_trial_id") for t in trials]
    problems = []
    if len(complete) != budget:
        problems.append(f"{len(complete)} COMPLETE, expected {budget}")
    if states.get("RUNNING") or states.get("WAITING"):
        problems.append(f"trials left RUNNING/WAITING: {states}")
    if None in ids or len(set(ids)) != len(ids):
        problems.append("a trial without, or with a shared, Tune trial id")
    missing = [t.number for t in complete if not Path(t.user_attrs.get("checkpoint", "")).is_dir()]
    if missing:
        problems.append(f"COMPLETE trials without a checkpoint on disk: {missing[:10]}")
    print(f"load: trial states {states}", flush=True)
    return problems


def main() -> int:
    import yaml

    from search.study.storage import redact

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--storage", default=os.environ.get("TRADETUNE_STORAGE", DEFAULT_STORAGE),
                        help=f"PostgreSQL URL (default {DEFAULT_STORAGE})")
    parser.add_argument("--results", help="results directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the study afterwards")
    args = parser.parse_args()
    results = Path(args.results or tempfile.mkdtemp(prefix="tradetune-load-"))
    results.mkdir(parents=True, exist_ok=True)
    study = f"load-{args.trials}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TRADETUNE_RESULTS": str(results), "TRADETUNE_STORAGE": args.storage,
           "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    os.environ.update(TRADETUNE_RESULTS=str(results))
    path = results / "load.yaml"
    path.write_text(yaml.safe_dump(config(study, args.trials, args.concurrent)))
    log = results / "launch.log"
    print(f"load: study {study} in {redact(args.storage)}, {args.trials} trials, "
          f"{args.concurrent} at a time; log {log}", flush=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run([sys.executable, "-m", "search.cli", "launch", str(path)], cwd=REPO,
                            env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    print(f"load: launch exited {rc} after {wall:.0f} s "
          f"({args.trials / wall * 3600:.0f} trials/hour)", flush=True)
    problems = [f"launch exited {rc}"] if rc else []
    try:
        problems += check(args.storage, study, args.trials)
        for command in (["best", "--study", study, "--top", "10"],
                        ["best", "--study", study, "--top", "10", "-f", "json"],
                        ["status", "--study", study], ["status"]):
            median, worst = timed(command, env)
            print(f"load: tradetune {' '.join(command).replace(study, 'STUDY')}: "
                  f"median {median:.2f} s, max {worst:.2f} s", flush=True)
        from search.results.summaries import best, status

        for name, call in (("best(top=10)", lambda: best(args.storage, study, 10)),
                           ("status(study)", lambda: status(args.storage, study))):
            call()
            start = time.perf_counter()
            for _ in range(5):
                call()
            print(f"load: {name} in-process: {(time.perf_counter() - start) / 5:.3f} s",
                  flush=True)
    finally:
        if not args.keep:
            import optuna

            optuna.delete_study(study_name=study, storage=args.storage)
    for problem in problems:
        print(f"load: PROBLEM {problem}", flush=True)
    print("load: every trial accounted for" if not problems else "load: FAILED", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
