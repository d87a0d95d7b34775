"""Driver-kill soak: SIGKILL a sweep's driver K times at random moments, resume after each kill,
then prove nothing was lost, duplicated or left RUNNING.

    ./tt python scripts/soak_resume.py --kills 20 --seed 1

A tiny sweep (synthetic bars, one 16-unit hidden layer, train batch 200, 4 iterations with a
validation every iteration) runs as a real ``tradetune launch`` subprocess. At a moment drawn at
random from the seeded generator (just after a trial starts, mid-training after a random delay,
just as a checkpoint directory appears, just after a trial completes) the driver is killed with
SIGKILL, then ``tradetune resume`` is started, which is killed the same way, until K kills are
done; the last resume runs to the end. Then, from the study and the disk:

- COMPLETE trials == --num-samples, none RUNNING or WAITING;
- no Tune trial recorded twice (distinct ``tune_trial_id``), no trial number twice;
- every trial seen COMPLETE before a kill is still COMPLETE with the same value;
- every COMPLETE trial's kept checkpoint restores and, rescored on the validation split, gives
  the trial's value (the sweep's objective);
- the study's best value equals the best rescored checkpoint.

The last line is the summary ``kills=K resumes=K complete=N lost=0 duplicated=0
stale_running=0``; the exit code is non-zero if any check fails.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MOMENTS = ("trial_started", "mid_training", "checkpoint", "trial_completed")


def tiny_config(study: str, num_samples: int) -> dict[str, Any]:
    return {
        "study": study,
        "algorithm": "ppo",
        "data": {"synthetic": {"n_bars": 1500, "seed": 7, "freq": "1h"}},
        "search": {"num_samples": num_samples, "seed": 42, "enqueue_tutorial": False,
                   "space_overrides": {"train_batch_size": 200, "num_minibatches": 2,
                                       "num_epochs": 2, "hidden_width": 16, "hidden_layers": 1,
                                       "window_size": {"low": 5, "high": 8}}},
        "training": {"max_iterations": 4, "eval_every": 1, "patience": 2, "min_evals": 2,
                     "envs_per_runner": 1},
    }


class Soak:
    def __init__(self, args: argparse.Namespace):
        import yaml

        from search.study.storage import resolve_url

        self.args = args
        self.rng = random.Random(args.seed)
        self.results = Path(args.results or tempfile.mkdtemp(prefix="tradetune-soak-"))
        self.results.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "TRADETUNE_RESULTS": str(self.results),
                    "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
        self.env.pop("RAY_ADDRESS", None)
        self.env.pop("TRADETUNE_STORAGE", None)
        if args.storage:  # through the environment: no password on a command line
            self.env["TRADETUNE_STORAGE"] = args.storage
        os.environ["TRADETUNE_RESULTS"] = str(self.results)
        self.url = args.storage or resolve_url()
        self.config = self.results / "soak.yaml"
        self.config.write_text(yaml.safe_dump(tiny_config(args.study, args.num_samples)))
        self.seen_complete: dict[int, float] = {}
        self.log = self.results / "soak.log"
        self.kills = self.resumes = 0

    # -- reading the study -------------------------------------------------------------------

    def trials(self) -> list:
        """The study's trials, or [] while the driver has not created it yet."""
        import optuna

        from search.errors import UserError
        from search.study.storage import open_storage, sqlite_path

        path = sqlite_path(self.url)
        if path is not None and not path.is_file():
            return []
        try:
            storage = open_storage(self.url, read_only=True)
            study = optuna.load_study(study_name=self.args.study, storage=storage)
            return study.get_trials(deepcopy=False)
        except (UserError, KeyError):
            return []

    def remember_complete(self) -> None:
        for trial in self.trials():
            if trial.state.name == "COMPLETE":
                self.seen_complete.setdefault(trial.number, trial.value)

    # -- one driver process ------------------------------------------------------------------

    def start(self, command: list[str]) -> subprocess.Popen:
        with open(self.log, "a") as log:
            log.write(f"\n=== {' '.join(command)}\n")
        return subprocess.Popen([sys.executable, "-m", "search.cli", *command], cwd=REPO,
                                env=self.env, stdout=open(self.log, "a"),
                                stderr=subprocess.STDOUT)

    def moment(self, name: str, driver: subprocess.Popen) -> Callable[[], bool]:
        """A condition that becomes true at the kill moment ``name`` of this driver."""
        tag = str(driver.pid)
        complete_before = sum(t.state.name == "COMPLETE" for t in self.trials())
        checkpoints_before = set(self.results.glob("*/run-*/*/checkpoint_*"))
        delay = self.rng.uniform(0.5, 8.0)
        started: list[float] = []

        def own_running() -> bool:
            return any(t.state.name == "RUNNING"
                       and str(t.user_attrs.get("driver", "")).split("-")[-2:-1] == [tag]
                       for t in self.trials())

        def mid_training() -> bool:
            if not started and own_running():
                started.append(time.monotonic())
            return bool(started) and time.monotonic() - started[0] >= delay

        return {
            "trial_started": own_running,
            "mid_training": mid_training,
            "checkpoint": lambda: bool(set(self.results.glob("*/run-*/*/checkpoint_*"))
                                       - checkpoints_before),
            "trial_completed": lambda: sum(t.state.name == "COMPLETE"
                                           for t in self.trials()) > complete_before,
        }[name]

    def kill_at_random_moment(self, driver: subprocess.Popen) -> str | None:
        """Wait for a random moment and SIGKILL the driver; None if it finished first."""
        name = self.rng.choice(MOMENTS)
        condition = self.moment(name, driver)
        deadline = time.monotonic() + self.args.phase_timeout
        while not condition():
            if driver.poll() is not None:
                return None
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: no {name} moment within {self.args.phase_timeout} s")
            time.sleep(0.05)
        self.remember_complete()
        kill_tree(driver)
        self.kills += 1
        return name

    def run(self) -> int:
        started = time.monotonic()
        print(f"soak: results in {self.results}, storage {redacted(self.url)}, "
              f"seed {self.args.seed}", flush=True)
        driver = self.start(["launch", str(self.config)])
        while self.kills < self.args.kills:
            moment = self.kill_at_random_moment(driver)
            if moment is None:
                print(f"soak: the driver finished (rc {driver.returncode}) before kill "
                      f"{self.kills + 1}; raise --num-samples", flush=True)
                break
            print(f"soak: kill {self.kills} at {moment} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            driver = self.start(["resume", "--study", self.args.study])
            self.resumes += 1
        rc = driver.wait(timeout=self.args.phase_timeout * 4)
        ok = rc == 0 and self.kills == self.args.kills
        if rc != 0:
            print(f"soak: the last resume exited with {rc}; see {self.log}", flush=True)
        ok = self.check() and ok
        print(f"soak: wall time {time.monotonic() - started:.0f} s", flush=True)
        print(self.summary, flush=True)
        return 0 if ok else 1

    # -- the checks ---------------------------------------------------------------------------

    def check(self) -> bool:
        import optuna

        trials = self.trials()
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        stale = [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
        ids = [t.user_attrs.get("tune_trial_id") for t in trials]
        tagged = [i for i in ids if i is not None]
        numbers = [t.number for t in trials]
        duplicated = (len(tagged) - len(set(tagged))) + (len(numbers) - len(set(numbers)))
        final = {t.number: t.value for t in complete}
        lost = [n for n, v in self.seen_complete.items() if final.get(n) != v]
        problems = []
        scores = {}
        for trial in complete:
            try:
                scores[trial.number] = self.rescore(trial.number)
            except Exception as exc:  # noqa: BLE001 - any failure to restore is a finding
                problems.append(f"trial {trial.number}: checkpoint does not restore: {exc}")
                lost.append(trial.number)
                continue
            if not math.isclose(scores[trial.number], trial.value, rel_tol=1e-9,
                                abs_tol=1e-12):
                problems.append(f"trial {trial.number}: value {trial.value} but its checkpoint "
                                f"rescores {scores[trial.number]}")
        if complete:
            from search.study.storage import open_storage

            best = optuna.load_study(study_name=self.args.study,
                                     storage=open_storage(self.url, read_only=True)).best_value
            if scores and best != max(scores.values()):
                problems.append(f"study best {best} != best checkpoint {max(scores.values())}")
        if len(complete) != self.args.num_samples:
            problems.append(f"{len(complete)} COMPLETE trials, expected {self.args.num_samples}")
        if stale:
            problems.append(f"trials left RUNNING/WAITING: {stale}")
        if duplicated:
            problems.append(f"duplicated tune trial ids or numbers: {sorted(ids, key=str)}")
        if lost:
            problems.append(f"lost COMPLETE trials: {sorted(set(lost))}")
        states: dict[str, int] = {}
        for trial in trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        print(f"soak: trial states {states}; {len(scores)} checkpoint(s) rescored on val",
              flush=True)
        for problem in problems:
            print(f"soak: PROBLEM {problem}", flush=True)
        self.summary = (f"kills={self.kills} resumes={self.resumes} complete={len(complete)} "
                        f"lost={len(set(lost))} duplicated={duplicated} "
                        f"stale_running={len(stale)}")
        return not problems

    def rescore(self, number: int) -> float:
        """Restore the trial's kept checkpoint and score it on val, as `tradetune evaluate`."""
        from search.results.evaluate import evaluate_trial
        from search.study.trials import get_trial
        from search.study.studies import stored_config
        from trainables import metrics as M

        result = evaluate_trial(self.url, self.args.study, number, "val")
        study = get_trial(self.url, self.args.study, number)[0]
        objective = stored_config(study)["training"]["objective"]
        return float(M.OBJECTIVES[objective](result))


def kill_tree(driver: subprocess.Popen) -> None:
    """SIGKILL the driver, then whatever of the Ray processes it started outlives it for a few
    seconds (by pid: they are this soak's own processes)."""
    import psutil

    try:
        children = psutil.Process(driver.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    gone, alive = psutil.wait_procs(children, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


def redacted(url: str) -> str:
    from search.study.storage import redact

    return redact(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="driver kills (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="study budget (default: kills // 2 + 4)")
    parser.add_argument("--results", help="results directory (default: a new temp dir)")
    parser.add_argument("--storage", help="study storage URL (default: SQLite in --results)")
    parser.add_argument("--study", default="soak")
    parser.add_argument("--phase-timeout", type=float, default=300.0,
                        help="seconds to wait for one kill moment")
    args = parser.parse_args(argv)
    if args.kills < 0:
        parser.error("--kills must be >= 0")
    if args.num_samples is None:
        args.num_samples = args.kills // 2 + 4
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
