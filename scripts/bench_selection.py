"""Selection measured where it matters: on test periods nothing saw, many of them.

Rolling origin on the real Coinbase BTC/USD hourly bars: ``--windows`` non-overlapping test
months (720 bars) taken back from the end of the file, each with its own protocol (the 3,000
training and 720 validation bars just before it, expressed as date splits over the whole file,
so the features' warm-up uses real earlier bars); plus the ``regimes`` positive-control market
(``data.synthetic.kind: regimes``) with ``--regimes-seeds`` market seeds, same bar counts.

Arms, each given the same budget of env steps per window (``--budget``), on the same space:

(a) random search on one split, no early stopping;
(b) TPE + ASHA on one split: the selection of examples/coinbase_btc_1h.yaml (ASHA on the
    validation score, patience 4, min_evals 3);
(c) TPE on walk-forward folds x seeds (``--folds`` expanding folds x ``--run-seeds``), no early
    stopping;
(d) the same with ``search.scheduler: racing`` (``search.racing: {eta, min_trials}``);
(e) arm (b) warm-started (``search.warm_start``, top 5) from the arm-(b) study of the month
    before (the next older window; for the regimes markets, the next seed's): the monthly
    re-tune. Reported as the trials and env steps it needs to select a trial whose test Sharpe
    is at least what arm (b) selected on the same window, against arm (b)'s own;
(f) arm (b) with ``search.sampler: tpe_grouped`` (multivariate TPE, grouped);
(g) arm (b) with ``search.sampler: gp`` (Optuna's GP sampler).
Arms (e)-(g) are opt-in (``--arms b e f g``); (e) runs after every other arm, and needs (b).

An arm's sweep is launched through the CLI and stopped (Ctrl-C, as a user would) once its
finished trials have used the budget; the trials that count are those finished, in finish
order, up to and including the one that reached the budget. The selected trial is the one
``tradetune evaluate`` would pick (highest value among COMPLETE trials). Every COMPLETE trial
that counts is scored on the test split directly with ``trainables.evaluation`` (not through
``tradetune evaluate``, so no test look is recorded in the benchmark's throw-away studies).
PRUNED trials (racing) count in the env steps but are not candidates: the service never picks
them, and their checkpoint is not a finished model.

Per window and arm: the selected trial's test Sharpe and P&L, buy-and-hold, the median test
Sharpe of the candidates (what a random pick gets), the best test Sharpe in hindsight, the
Spearman correlation between selection score and test Sharpe over the candidates, the
validation-to-test gap of the selected trial, env steps used. Then the means, the wins per arm,
and the issue's targets, met or not.

    ./tt python scripts/bench_selection.py --smoke            # everything tiny, a few minutes
    ./tt python scripts/bench_selection.py --out selection.json   # the full default run
    ./tt python scripts/bench_selection.py --out selection.json --resume   # go on after a stop

The full run takes hours. ``--out`` is rewritten after every finished sweep (window x arm), and
``--resume`` keeps the sweeps already in that file (when it was written with the same settings)
and runs only the others, so the run can be spread over several sittings; each sweep's row
records the commit and the time it ran.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
BARS = {"train": 3000, "val": 720, "test": 720}
SPLITS = {"train_bars": BARS["train"], "val_bars": BARS["val"], "test_bars": BARS["test"]}
# A fast corner of the PPO space, the same for every arm (as in bench_search/bench_robust).
OVERRIDES = {"train_batch_size": {"low": 500, "high": 1500}, "num_epochs": {"low": 3, "high": 8},
             "hidden_width": {"choices": [32, 64]}, "hidden_layers": {"low": 1, "high": 2}}
SMOKE_OVERRIDES = {"train_batch_size": {"low": 256, "high": 512},
                   "num_epochs": {"low": 3, "high": 4}, "hidden_width": {"choices": [32]},
                   "hidden_layers": 1}
MEAN_BATCH = {"default": 1100, "smoke": 400}  # env steps per iteration, as measured
ARMS = {"a": "random, one split", "b": "TPE + ASHA, one split",
        "c": "walk-forward x seeds", "d": "walk-forward + racing",
        "e": "(b) warm-started", "f": "(b) multivariate TPE", "g": "(b) GP sampler"}
DEFAULT_ARMS = ["a", "b", "c", "d"]
SAMPLERS = {"a": "random", "f": "tpe_grouped", "g": "gp"}  # the other arms: "tpe"
WARM_START_TOP = 5
# The example config's early stopping (examples/coinbase_btc_1h.yaml), arm (b).
EXAMPLE_PATIENCE, EXAMPLE_MIN_EVALS = 4, 3
NO_PATIENCE = 1_000_000
STOP_GRACE_S = 180  # after Ctrl-C, how long a sweep may take to stop before it is killed
# The settings a resumed run must share with the file it continues (the rest is bookkeeping).
RESUME_KEYS = ("budget", "windows", "regimes_seeds", "trials", "iterations", "eval_every",
               "folds", "run_seeds", "racing_eta", "racing_min_trials", "concurrent", "seed",
               "smoke")


# -- markets ---------------------------------------------------------------------------------

def coinbase_windows(count: int) -> list[dict[str, Any]]:
    """``count`` rolling-origin windows, latest first: test months back from the end of the
    file, each with its 3,000 / 720 training / validation bars before it, as date splits."""
    from trainables.market import prepare_market

    market = prepare_market({"path": str(COINBASE), "splits": SPLITS})
    return [{"market": "coinbase", "label": label, "data": data}
            for label, data in window_splits(market.bars.index, count, str(COINBASE))]


def window_splits(index, count: int, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, data section) of each window over the bar ``index`` (warm-up dropped)."""
    span = BARS["train"] + BARS["val"] + BARS["test"]
    n = len(index)
    if n - (count - 1) * BARS["test"] < span:
        fit = (n - span) // BARS["test"] + 1
        raise SystemExit(f"--windows {count}: the file's {n} bars fit at most {fit} windows of "
                         f"{span} bars stepped by {BARS['test']}")
    windows = []
    for k in range(count):
        end = n - k * BARS["test"]
        test, val, train = end - BARS["test"], end - BARS["test"] - BARS["val"], end - span
        splits = {"train_start": str(index[train]), "val_start": str(index[val]),
                  "test_start": str(index[test])}
        if end < n:
            splits["test_end"] = str(index[end])
        label = f"W{k + 1} {index[test]:%Y-%m-%d}..{index[end - 1]:%Y-%m-%d}"
        windows.append((label, {"path": path, "splits": splits}))
    return windows


def regimes_markets(seeds: list[int]) -> list[dict[str, Any]]:
    from trainables.features import FEATURE_WARMUP

    n_bars = sum(BARS.values()) + FEATURE_WARMUP
    return [{"market": "regimes", "label": f"regimes seed {seed}",
             "data": {"synthetic": {"kind": "regimes", "n_bars": n_bars, "seed": seed},
                      "splits": SPLITS}}
            for seed in seeds]


def warm_source(markets: list[dict[str, Any]], index: int) -> int | None:
    """The market whose arm-(b) study arm (e) warm-starts from on market ``index``: the month
    before (the next, older, Coinbase window; none for the oldest), or for the regimes
    markets the next seed's (cyclic; none when there is only one)."""
    kind = markets[index]["market"]
    same = [i for i, m in enumerate(markets) if m["market"] == kind]
    position = same.index(index)
    if kind == "coinbase":
        return same[position + 1] if position + 1 < len(same) else None
    return same[(position + 1) % len(same)] if len(same) > 1 else None


def study_exists(url: str, name: str) -> bool:
    import optuna

    return name in optuna.get_all_study_names(storage=url)


# -- sweeps ----------------------------------------------------------------------------------

def runs_per_trial(arm: str, args: argparse.Namespace) -> int:
    return args.folds * args.run_seeds if arm in "cd" else 1


def arm_config(name: str, window: dict[str, Any], arm: str,
               args: argparse.Namespace, warm_from: str | None = None) -> dict[str, Any]:
    """The sweep config of one arm on one window (``warm_from``: arm (e)'s source study)."""
    data = dict(window["data"])
    full_trial = runs_per_trial(arm, args) * args.iterations * args.mean_batch
    expected = max(1, round(args.budget / full_trial))  # trials without early stopping
    search = {"num_samples": args.trials or max(10, 6 * expected), "seed": args.seed,
              "max_concurrent": args.concurrent, "space_overrides": args.overrides,
              "enqueue_tutorial": False, "sampler": SAMPLERS.get(arm, "tpe"),
              "scheduler": {"a": "none", "c": "none", "d": "racing"}.get(arm, "asha"),
              # TPE models after a third of the trials the budget buys without early stopping
              # (the service's rule, a third of num_samples, applied to what is really run).
              "startup_trials": max(1, min(10, expected // 3))}
    training = {"max_iterations": args.iterations, "eval_every": args.eval_every,
                "patience": NO_PATIENCE, "min_evals": 1, "max_failures": 0}
    if arm in "befg":
        training.update(patience=EXAMPLE_PATIENCE, min_evals=EXAMPLE_MIN_EVALS)
    if arm == "e":
        search["warm_start"] = {"study": warm_from, "top": WARM_START_TOP}
    if arm in "cd":
        data["walk_forward"] = {"folds": args.folds, "mode": "expanding"}
        training["seeds"] = args.run_seeds
        search["racing"] = {"eta": args.racing_eta, "min_trials": args.racing_min_trials}
    return {"study": name, "algorithm": "ppo", "data": data, "search": search,
            "training": training}


def finished_steps(db: Path, study: str) -> tuple[int, int]:
    """(env steps, trials) of a study's finished trials, read from its SQLite file read-only
    while the sweep writes it."""
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            rows = connection.execute(
                "SELECT a.value_json FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                "AND a.key = 'env_steps' WHERE s.study_name = ? "
                "AND t.state IN ('COMPLETE', 'PRUNED')", (study,)).fetchall()
    except sqlite3.Error:  # the tables do not exist yet
        return 0, 0
    return sum(int(json.loads(v) or 0) for (v,) in rows if v is not None), len(rows)


def drop_partial_study(work: Path, name: str) -> None:
    """Delete what a stopped earlier sitting left of sweep ``name`` in a reused ``--work``
    folder, so the sweep starts afresh (its row was never written)."""
    db = work / "results" / "tradetune.db"
    if not db.exists():
        return
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO)}
    env.pop("TRADETUNE_STORAGE", None)
    subprocess.run([sys.executable, "-m", "search.cli", "delete", "--study", name, "--yes"],
                   cwd=REPO, env=env, capture_output=True)


def run_sweep(config: dict[str, Any], work: Path, budget: int, poll_s: float,
              tick: Any) -> dict[str, Any]:
    """Launch one arm's sweep through the CLI and stop it once its budget is used."""
    name = config["study"]
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled"}
    env.pop("TRADETUNE_STORAGE", None)
    db = work / "results" / "tradetune.db"
    log_path = work / f"{name}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "search.cli", "launch", str(path)],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        stopped_at = None
        while driver.poll() is None:
            time.sleep(poll_s)
            used, done = finished_steps(db, name)
            tick(used, done)
            if stopped_at is None and used >= budget:
                driver.send_signal(signal.SIGINT)
                stopped_at = time.monotonic()
            elif stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_S:
                os.killpg(driver.pid, signal.SIGKILL)  # its own session: the driver and its Ray
                driver.wait()
    if driver.returncode != 0 and stopped_at is None:
        raise SystemExit(f"sweep {name} failed (exit {driver.returncode}); last lines of "
                         f"{log_path}:\n" + "\n".join(log_path.read_text().splitlines()[-20:]))
    return {"wall_s": time.monotonic() - started, "stopped_on_budget": stopped_at is not None}


# -- scoring ---------------------------------------------------------------------------------

def counted_trials(study: Any, budget: int) -> list[Any]:
    """The finished trials that count, in finish order: up to and including the one whose env
    steps reached the budget (FAIL trials, such as those cut off by the stop, do not count)."""
    finished = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete),
                      key=lambda t: (t.datetime_complete, t.number))
    kept, used = [], 0
    for trial in finished:
        if used >= budget:
            break
        kept.append(trial)
        used += int(trial.user_attrs.get("env_steps") or 0)
    return kept


def test_scores(study: Any, trials: list[Any]) -> dict[int, dict[str, float]]:
    """Test-split figures of each COMPLETE trial's kept checkpoint, scored directly (no look
    is recorded: these studies are the benchmark's own and are thrown away)."""
    from search.errors import StudyError
    from search.study.trials import checkpoint_of
    from search.study.studies import stored_config
    from spaces import get_space
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import load_module

    config = stored_config(study)
    space = get_space(config["algorithm"], config["search"]["space_overrides"])
    scores = {}
    for trial in trials:
        if trial.state.name != "COMPLETE" or not trial.user_attrs.get("checkpoint"):
            continue
        settings = space.replay(trial.params)
        env = {"data": config["data"], **config["env"], **settings["env"]}
        try:
            module = load_module(checkpoint_of(trial))
        except StudyError as exc:  # one lost checkpoint must not end a run of hours
            print(f"  skipping trial {trial.number} of {study.study_name}: {exc}", flush=True)
            continue
        result = evaluate(module, env, "test")
        scores[trial.number] = {"sharpe": result.sharpe, "pnl_pct": result.pnl_pct,
                                "bh_pct": result.buy_and_hold_pct, "trades": result.trades}
    return scores


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation, or None where it is undefined (under 3 points, or one
    side constant, e.g. every candidate stays in cash on test)."""
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = float(spearmanr(xs, ys).statistic)
    return rho if math.isfinite(rho) else None


def summarise(trials: list[Any], scores: dict[int, dict[str, float]]) -> dict[str, Any]:
    """The row of one arm on one window, from its counted trials and their test scores."""
    candidates = [t for t in trials if t.number in scores and t.value is not None]
    row: dict[str, Any] = {
        "trials": len(trials), "complete": len(candidates),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "env_steps": sum(int(t.user_attrs.get("env_steps") or 0) for t in trials),
        "trajectory": [{"number": t.number, "state": t.state.name, "value": t.value,
                        "env_steps": int(t.user_attrs.get("env_steps") or 0),
                        "test_sharpe": scores.get(t.number, {}).get("sharpe"),
                        "test_pnl_pct": scores.get(t.number, {}).get("pnl_pct"),
                        "params": t.params} for t in trials]}
    if not candidates:
        return row
    chosen = sorted(candidates, key=lambda t: (-t.value, t.number))[0]
    tests = [scores[t.number]["sharpe"] for t in candidates]
    picked = scores[chosen.number]
    row.update(selected=chosen.number, value=chosen.value, test_sharpe=picked["sharpe"],
               test_pnl_pct=picked["pnl_pct"], bh_pct=picked["bh_pct"],
               selected_trades=picked["trades"], gap=chosen.value - picked["sharpe"],
               median_sharpe=statistics.median(tests), best_sharpe=max(tests),
               spearman=spearman([t.value for t in candidates], tests))
    return row


def steps_to_reach(trajectory: list[dict[str, Any]], key: str, target: float | None
                   ) -> int | None:
    """Env steps after which the selected trial so far (highest value among COMPLETE trials)
    has ``key`` (value or test_sharpe) at least ``target``; None if it never does."""
    reached = reach(trajectory, key, target)
    return None if reached is None else reached[0]


def reach(trajectory: list[dict[str, Any]], key: str, target: float | None
          ) -> tuple[int, int] | None:
    """(env steps, trials) after which the selected trial so far has ``key`` at least
    ``target``; None if it never does."""
    if target is None:
        return None
    used, best = 0, None
    for count, trial in enumerate(trajectory, start=1):
        used += trial["env_steps"]
        if trial["state"] == "COMPLETE" and trial["value"] is not None and (
                best is None or trial["value"] > best["value"]):
            best = trial
        if best is not None and best.get(key) is not None and best[key] >= target - 1e-12:
            return used, count
    return None


def warm_start_effect(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per window with arms (b) and (e): the trials and env steps each needs before its
    selected trial's test Sharpe is at least the one (b) ends with (None: (e) never gets
    there within the budget), and both arms' final selected test Sharpe."""
    rows = []
    for w in windows:
        b, e = w["arms"].get("b"), w["arms"].get("e")
        if not b or not e or b.get("test_sharpe") is None:
            continue
        own, warm = (reach(r["trajectory"], "test_sharpe", b["test_sharpe"]) for r in (b, e))
        rows.append({"window": w["label"], "b_test_sharpe": b["test_sharpe"],
                     "e_test_sharpe": e.get("test_sharpe"),
                     "b_trials_to_reach": own and own[1], "b_steps_to_reach": own and own[0],
                     "e_trials_to_reach": warm and warm[1],
                     "e_steps_to_reach": warm and warm[0], "warm_from": e.get("warm_from")})
    return rows


# -- report ----------------------------------------------------------------------------------

def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


HEADER = (f"{'window':<27} {'arm':<3} {'trials':>6} {'pruned':>6} {'env steps':>10} "
          f"{'sel val':>7} {'test Sh':>7} {'P&L%':>7} {'B&H%':>7} {'median':>7} {'best':>7} "
          f"{'rho':>6} {'gap':>6} {'wall s':>6}")


def line(label: str, arm: str, row: dict[str, Any]) -> str:
    return (f"{label:<27} {arm:<3} {row['trials']:>6} {row['pruned']:>6} {row['env_steps']:>10,} "
            f"{fmt(row.get('value')):>7} {fmt(row.get('test_sharpe')):>7} "
            f"{fmt(row.get('test_pnl_pct')):>7} {fmt(row.get('bh_pct')):>7} "
            f"{fmt(row.get('median_sharpe')):>7} {fmt(row.get('best_sharpe')):>7} "
            f"{fmt(row.get('spearman')):>6} {fmt(row.get('gap')):>6} {row['wall_s']:>6.0f}")


def mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def wins(windows: list[dict[str, Any]], arms: list[str]) -> dict[str, int]:
    """Per arm, the windows where its selected trial's test Sharpe is the highest (a tie
    counts for every tied arm)."""
    counts = {arm: 0 for arm in arms}
    for window in windows:
        sharpes = {a: window["arms"][a].get("test_sharpe") for a in arms if a in window["arms"]}
        sharpes = {a: s for a, s in sharpes.items() if s is not None}
        if sharpes:
            top = max(sharpes.values())
            for arm, sharpe in sharpes.items():
                counts[arm] += sharpe >= top - 1e-9
    return counts


def targets(windows: list[dict[str, Any]], arms: list[str]) -> list[dict[str, Any]]:
    """The issue's targets, per arm where the target is about the (yet to be chosen) default."""
    checks = []
    regimes = [w for w in windows if w["market"] == "regimes"]
    coinbase = [w for w in windows if w["market"] == "coinbase"]
    for arm in arms:
        if regimes:
            ratios = []
            for w in regimes:
                row = w["arms"].get(arm, {})
                best, sel = row.get("best_sharpe"), row.get("test_sharpe")
                ratios.append(None if best is None or sel is None or best <= 0 else sel / best)
            met = all(r is not None and r >= 0.7 for r in ratios)
            checks.append({"target": "regimes: selected >= 70% of best-in-hindsight test "
                                     "Sharpe, every seed", "arm": arm, "met": met,
                           "figures": [None if r is None else round(r, 3) for r in ratios]})
        if coinbase:
            beat = sum(1 for w in coinbase if w["arms"].get(arm, {}).get("test_sharpe")
                       is not None and w["arms"][arm]["test_sharpe"]
                       > w["arms"][arm]["median_sharpe"])
            needed = math.ceil(len(coinbase) * 4 / 6)
            rho = mean_of([w["arms"].get(arm, {}) for w in coinbase], "spearman")
            checks.append({"target": f"coinbase: selected beats the median trial in >= "
                                     f"{needed} of {len(coinbase)} windows, mean rho > 0",
                           "arm": arm, "met": beat >= needed and rho is not None and rho > 0,
                           "figures": {"beats_median": beat, "mean_spearman": rho}})
    if "c" in arms and "d" in arms:
        shares, test_shares = [], []
        for w in windows:
            c, d = w["arms"]["c"], w["arms"]["d"]
            for key, out in (("value", shares), ("test_sharpe", test_shares)):
                reach = steps_to_reach(d["trajectory"], key, c.get(key))
                out.append(None if reach is None or not c["env_steps"]
                           else reach / c["env_steps"])
        hits = sum(s is not None and s <= 0.5 for s in shares)
        checks.append({"target": "racing (d) reaches (c)'s selected score with <= 50% of (c)'s "
                                 "env steps, every window", "arm": "d",
                       "met": hits == len(shares) and bool(shares),
                       "figures": {"share_of_c_steps_to_reach_c_value": shares,
                                   "share_on_test_sharpe": test_shares,
                                   "windows_met": hits, "windows": len(shares)}})
    return checks


def report(windows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {"means": {}, "wins": {}, "targets": targets(windows, arms)}
    for market in ("coinbase", "regimes"):
        group = [w for w in windows if w["market"] == market]
        if not group:
            continue
        print(f"\n{market}: means over {len(group)} window(s)")
        print(f"{'arm':<26} {'env steps':>10} {'sel val':>7} {'test Sh':>7} {'P&L%':>7} "
              f"{'B&H%':>7} {'median':>7} {'best':>7} {'rho':>6} {'gap':>6} {'> median':>8}")
        summary["means"][market] = {}
        for arm in arms:
            rows = [w["arms"][arm] for w in group if arm in w["arms"]]
            means = {k: mean_of(rows, k) for k in ("env_steps", "value", "test_sharpe",
                                                   "test_pnl_pct", "bh_pct", "median_sharpe",
                                                   "best_sharpe", "spearman", "gap")}
            above = sum(r.get("test_sharpe") is not None and r["test_sharpe"] > r["median_sharpe"]
                        for r in rows)
            means["beats_median"] = above
            summary["means"][market][arm] = means
            print(f"({arm}) {ARMS[arm]:<22} {fmt(means['env_steps'], ',.0f'):>10} "
                  f"{fmt(means['value']):>7} {fmt(means['test_sharpe']):>7} "
                  f"{fmt(means['test_pnl_pct']):>7} {fmt(means['bh_pct']):>7} "
                  f"{fmt(means['median_sharpe']):>7} {fmt(means['best_sharpe']):>7} "
                  f"{fmt(means['spearman']):>6} {fmt(means['gap']):>6} "
                  f"{above:>4}/{len(rows)}")
        summary["wins"][market] = wins(group, arms)
        print("wins (highest selected test Sharpe; ties count for each): " + ", ".join(
            f"({a}) {n}/{len(group)}" for a, n in summary["wins"][market].items()))
    print("\ntargets (issue 13; the new default is chosen from these figures):")
    for check in summary["targets"]:
        print(f"  [{'met' if check['met'] else 'NOT met'}] ({check['arm']}) {check['target']}: "
              f"{json.dumps(check['figures'])}")
    if "b" in arms and "e" in arms:
        effect = warm_start_effect(windows)
        fewer = sum(r["e_trials_to_reach"] is not None and r["b_trials_to_reach"] is not None
                    and r["e_trials_to_reach"] < r["b_trials_to_reach"] for r in effect)
        summary["warm_start"] = {"windows_fewer_trials": fewer, "per_window": effect}
        print(f"\nwarm start (e) selects a trial as good on test as (b)'s with fewer trials "
              f"(reported, no target): {fewer} of {len(effect)} windows")
        for r in effect:
            print(f"  {r['window']:<27} (b) selects test Sharpe {fmt(r['b_test_sharpe'])} after "
                  f"{fmt(r['b_trials_to_reach'], 'd')} trials ({fmt(r['b_steps_to_reach'], ',d')} "
                  f"steps); (e) reaches it after {fmt(r['e_trials_to_reach'], 'd')} trials "
                  f"({fmt(r['e_steps_to_reach'], ',d')} steps), ends at "
                  f"{fmt(r['e_test_sharpe'])}")
    return summary


# -- main ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=720_000,
                        help="env steps per arm and window (default 720,000)")
    parser.add_argument("--windows", type=int, default=6, help="Coinbase test months (0: none)")
    parser.add_argument("--regimes-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="market seeds of the regimes positive control (none: skip it)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=DEFAULT_ARMS,
                        help="arms to run (default: a b c d; e needs b)")
    parser.add_argument("--trials", type=int, default=None,
                        help="cap on trials per arm and window (default: 6x what the budget "
                             "buys without early stopping; the budget normally stops first)")
    parser.add_argument("--iterations", type=int, default=16, help="training iterations per run")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--folds", type=int, default=3, help="walk-forward folds, arms (c)/(d)")
    parser.add_argument("--run-seeds", type=int, default=2,
                        help="training seeds per configuration, arms (c)/(d)")
    parser.add_argument("--racing-eta", type=float, default=3)
    parser.add_argument("--racing-min-trials", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=2, help="trials at a time per sweep")
    parser.add_argument("--seed", type=int, default=0, help="sweep seed of every sweep")
    parser.add_argument("--out", type=Path, help="write every figure and trial as JSON")
    parser.add_argument("--work", type=Path, help="where studies and checkpoints go "
                                                  "(default: a new temporary folder)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the sweeps already in --out (written with the same "
                             "settings) and run the others")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table, means, wins and targets of the sweeps in --out "
                             "(finished or not) and run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="everything tiny: 1 window, 1 regimes seed, 2-iteration runs, "
                             "2 folds x 1 seed, racing from 2 trials (proves the script works; "
                             "its figures mean nothing)")
    args = parser.parse_args(argv)
    if "e" in args.arms and "b" not in args.arms:
        parser.error("--arms e (warm-started from the month before's arm b) needs b")
    args.overrides, args.mean_batch = OVERRIDES, MEAN_BATCH["default"]
    if args.smoke:
        # two windows with arm (e): it warm-starts from the month before
        args.budget, args.windows = 4_000, 2 if "e" in args.arms else 1
        args.regimes_seeds = [0]
        args.iterations, args.eval_every, args.folds, args.run_seeds = 2, 1, 2, 1
        args.racing_min_trials = 2
        args.overrides, args.mean_batch = SMOKE_OVERRIDES, MEAN_BATCH["smoke"]
    return args


def earlier_rows(args: argparse.Namespace) -> dict[tuple[str, str], dict[str, Any]]:
    """The finished sweeps of the ``--out`` file a ``--resume`` continues, by (window, arm);
    refused when that file was written with other settings."""
    if not args.resume:
        return {}
    if args.out is None or not args.out.is_file():
        raise SystemExit("--resume needs --out FILE from an earlier run"
                         + ("" if args.out is None else f" ({args.out} does not exist)"))
    earlier = json.loads(args.out.read_text())
    mine = _plain_args(args)
    differ = [k for k in RESUME_KEYS if earlier["args"].get(k) != mine.get(k)]
    if differ:
        raise SystemExit(f"--resume: {args.out} was written with other settings ("
                         + ", ".join(f"{k} {earlier['args'].get(k)!r} here {mine.get(k)!r}"
                                     for k in differ) + ")")
    return {(w["label"], arm): row for w in earlier["windows"] for arm, row in w["arms"].items()}


def commit() -> str:
    """The commit the benchmark runs (with '+changes' when the tree differs from it)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no").strip()
                   else "")


def print_report(path: Path) -> None:
    """The table and summary of the sweeps recorded in ``path`` (a run finished or not)."""
    results = json.loads(path.read_text())
    windows = [w for w in results["windows"] if w["arms"]]
    arms = [a for a in ARMS if any(a in w["arms"] for w in windows)]
    print(HEADER)
    for window in windows:
        for arm, row in window["arms"].items():
            print(line(window["label"], f"({arm})", row))
    done = sum(len(w["arms"]) for w in windows)
    print(f"\n{done} sweep(s) recorded in {path}")
    # arm (e) has no run on the oldest window (no month before it)
    complete = [w for w in windows if all(a in w["arms"] for a in arms if a != "e")]
    if len(complete) < len(windows):
        print(f"means, wins and targets below are over the {len(complete)} window(s) every "
              "arm has finished")
    report(complete, arms)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        if args.out is None or not args.out.is_file():
            raise SystemExit("--report-only needs --out FILE from an earlier run")
        print_report(args.out)
        return
    import warnings

    warnings.filterwarnings("ignore")
    if args.windows and not COINBASE.is_file():
        raise SystemExit(f"missing {COINBASE}: the rolling origin runs on the real Coinbase data")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-selection-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TRADETUNE_RESULTS"] = str(work / "results")  # where checkpoints resolve
    markets = (coinbase_windows(args.windows) if args.windows else []) + \
        regimes_markets(args.regimes_seeds)
    sweeps = len(markets) * len(args.arms)
    print(f"{len(markets)} window(s) x {len(args.arms)} arm(s) = {sweeps} sweeps; budget "
          f"{args.budget:,} env steps per arm and window; runs of {args.iterations} iterations, "
          f"validation every {args.eval_every}; (c)/(d) {args.folds} folds x {args.run_seeds} "
          f"seeds; results under {work}", flush=True)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{work / 'results' / 'tradetune.db'}"
    started = time.monotonic()
    kept = earlier_rows(args)
    done_sweeps = 0
    ran_sweeps = 0
    revision = commit()
    windows = [{"market": m["market"], "label": m["label"], "data": m["data"], "arms": {}}
               for m in markets]
    # arm (e) warm-starts from another market's arm (b), so every (e) runs last
    jobs = [(i, arm) for arm_is_e in (False, True) for i in range(len(markets))
            for arm in args.arms if (arm == "e") == arm_is_e]
    for w_index, arm in jobs:
        window, entry = markets[w_index], windows[w_index]
        position = f"[{w_index + 1}/{len(markets)}]"
        name = f"sel-{window['market']}-{w_index}-{arm}"
        if (window["label"], arm) in kept:
            entry["arms"][arm] = kept[(window["label"], arm)]
            done_sweeps += 1
            print(f"{position} {window['label']} arm ({arm}): kept from {args.out}", flush=True)
            continue
        warm_from = None
        if arm == "e":
            source = warm_source(markets, w_index)
            warm_from = None if source is None else f"sel-{markets[source]['market']}-{source}-b"
            if warm_from is None or not study_exists(url, warm_from):
                done_sweeps += 1
                print(f"{position} {window['label']} arm (e): skipped, no month before it "
                      + ("" if warm_from is None else f"(study {warm_from} is not in {work})"),
                      flush=True)
                continue
        last_print = [time.monotonic()]

        def tick(used: int, done: int, arm: str = arm, label: str = window["label"]) -> None:
            if time.monotonic() - last_print[0] < 60:
                return
            last_print[0] = time.monotonic()
            fraction = (ran_sweeps + min(used / args.budget, 1.0)) / (
                sweeps - done_sweeps + ran_sweeps)
            elapsed = time.monotonic() - started
            eta = elapsed / fraction - elapsed if fraction > 0 else math.nan
            print(f"  .. {label} ({arm}): {done} trials, {used:,}/{args.budget:,} env steps;"
                  f" elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.0f} min", flush=True)

        print(f"{position} {window['label']} arm ({arm}) {ARMS[arm]}"
              + (f" from {warm_from}" if warm_from else "")
              + f": start, elapsed {(time.monotonic() - started) / 60:.1f} min", flush=True)
        drop_partial_study(work, name)
        run = run_sweep(arm_config(name, window, arm, args, warm_from), work, args.budget,
                        2.0 if args.smoke else 10.0, tick)
        study = optuna.load_study(study_name=name, storage=url)
        trials = counted_trials(study, args.budget)
        row = {**summarise(trials, test_scores(study, trials)), **run, "warm_from": warm_from,
               "commit": revision, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}
        entry["arms"][arm] = row
        done_sweeps += 1
        ran_sweeps += 1
        elapsed = time.monotonic() - started
        eta = elapsed / ran_sweeps * (sweeps - done_sweeps)
        print(HEADER if ran_sweeps == 1 else "", end="\n" if ran_sweeps == 1 else "")
        print(line(window["label"], f"({arm})", row), flush=True)
        print(f"  done {done_sweeps}/{sweeps} sweeps, elapsed {elapsed / 60:.1f} min, "
              f"ETA {eta / 60:.0f} min", flush=True)
        if args.out:
            args.out.write_text(_dump({"args": _plain_args(args), "windows": windows}))
    print("\n" + HEADER)
    for window in windows:
        for arm, row in window["arms"].items():
            print(line(window["label"], f"({arm})", row))
    summary = report(windows, args.arms)
    summary["wall_s"] = time.monotonic() - started
    print(f"\ntotal {summary['wall_s'] / 60:.1f} min")
    if args.out:
        args.out.write_text(_dump({"args": _plain_args(args), "windows": windows,
                                   "summary": summary}))
        print(f"wrote {args.out}")


def _dump(results: dict[str, Any]) -> str:
    """The results as JSON, with the checkout's own paths relative to it, so the file can be
    kept in the repository and resumed from another checkout."""
    return json.dumps(results, indent=1, default=str).replace(str(REPO) + "/", "")


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


if __name__ == "__main__":
    main()
