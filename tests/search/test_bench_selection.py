"""The selection benchmark's bookkeeping (scripts/bench_selection.py): windows, the budget cut,
steps-to-reach and the targets. Fast: no Ray, no training (the script's --smoke runs those)."""
from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState, create_trial

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_selection.py"
spec = importlib.util.spec_from_file_location("bench_selection", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_windows_are_non_overlapping_months_back_from_the_end_with_their_own_protocol():
    from trainables.data import split_positions

    index = pd.date_range("2020-01-01", periods=9000, freq="h")
    windows = bench.window_splits(index, 3, "bars.csv")
    tests = []
    for _, data in windows:
        positions = split_positions(index, data["splits"])
        sizes = {name: end - start for name, (start, end) in positions.items()}
        assert sizes == {"train": 3000, "val": 720, "test": 720}
        assert positions["train"][1] == positions["val"][0]
        assert positions["val"][1] == positions["test"][0]
        tests.append(positions["test"])
    assert tests == [(8280, 9000), (7560, 8280), (6840, 7560)]


def test_too_many_windows_is_refused_with_how_many_fit():
    index = pd.date_range("2020-01-01", periods=6000, freq="h")
    try:
        bench.window_splits(index, 4, "bars.csv")
    except SystemExit as exc:
        assert "at most 3 windows" in str(exc)
    else:
        raise AssertionError("4 windows of 6,000 bars were accepted")


def _trial(number, state, value, steps, minutes):
    trial = create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                         user_attrs={"env_steps": steps})
    trial.number = number
    trial.datetime_complete = datetime(2026, 1, 1) + timedelta(minutes=minutes)
    return trial


class _Study:
    def __init__(self, trials):
        self.trials = trials

    def get_trials(self, deepcopy=False):
        return self.trials


def test_budget_counts_trials_in_finish_order_up_to_the_one_that_reaches_it():
    trials = [_trial(0, TrialState.COMPLETE, 1.0, 400, 3),
              _trial(1, TrialState.COMPLETE, 2.0, 400, 1),
              _trial(2, TrialState.PRUNED, None, 300, 2),
              _trial(3, TrialState.FAIL, None, 0, 4),
              _trial(4, TrialState.COMPLETE, 3.0, 400, 5)]
    kept = bench.counted_trials(_Study(trials), 1000)
    assert [t.number for t in kept] == [1, 2, 0]  # 700 < 1000 before trial 0; 1,100 after


def test_summary_picks_the_highest_value_and_compares_with_the_median_and_hindsight():
    trials = [_trial(n, TrialState.COMPLETE, v, 100, n) for n, v in enumerate([0.5, 2.0, 1.0])]
    trials.append(_trial(3, TrialState.PRUNED, None, 50, 3))
    scores = {0: {"sharpe": 3.0, "pnl_pct": 1.0, "bh_pct": -2.0, "trades": 4},
              1: {"sharpe": -1.0, "pnl_pct": -3.0, "bh_pct": -2.0, "trades": 9},
              2: {"sharpe": 1.0, "pnl_pct": 0.5, "bh_pct": -2.0, "trades": 2}}
    row = bench.summarise(trials, scores)
    assert (row["selected"], row["test_sharpe"], row["gap"]) == (1, -1.0, 3.0)
    assert (row["median_sharpe"], row["best_sharpe"]) == (1.0, 3.0)
    assert row["spearman"] == -1.0
    assert (row["trials"], row["complete"], row["pruned"], row["env_steps"]) == (4, 3, 1, 350)


def test_spearman_is_undefined_for_constant_scores():
    assert bench.spearman([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) is None
    assert bench.spearman([1.0, 2.0], [1.0, 2.0]) is None


def test_steps_to_reach_follows_the_selected_trial_so_far():
    trajectory = [{"state": "COMPLETE", "value": 1.0, "test_sharpe": 5.0, "env_steps": 100},
                  {"state": "PRUNED", "value": None, "test_sharpe": None, "env_steps": 30},
                  {"state": "COMPLETE", "value": 2.0, "test_sharpe": 0.0, "env_steps": 100}]
    assert bench.steps_to_reach(trajectory, "value", 1.5) == 230
    assert bench.steps_to_reach(trajectory, "value", 2.5) is None
    # Test Sharpe counts only while its trial is the one selected.
    assert bench.steps_to_reach(trajectory, "test_sharpe", 4.0) == 100


def _window(market, arms):
    return {"market": market, "arms": arms}


def test_targets_and_wins():
    row = {"test_sharpe": 1.0, "median_sharpe": 0.0, "best_sharpe": 1.2, "spearman": 0.2,
           "value": 1.0, "env_steps": 1000,
           "trajectory": [{"state": "COMPLETE", "value": 1.0, "env_steps": 1000}]}
    fast = {**row, "test_sharpe": 0.5, "trajectory": [
        {"state": "COMPLETE", "value": 1.0, "test_sharpe": 0.5, "env_steps": 400}]}
    windows = [_window("regimes", {"c": row, "d": fast}),
               _window("coinbase", {"c": row, "d": {**fast, "median_sharpe": 0.9}})]
    checks = {(c["arm"], c["target"].split(":")[0]): c for c in bench.targets(windows, ["c", "d"])}
    assert checks[("c", "regimes")]["met"] and not checks[("d", "regimes")]["met"]
    assert checks[("c", "coinbase")]["met"] and not checks[("d", "coinbase")]["met"]
    racing = checks[("d", "racing (d) reaches (c)'s selected score with <= 50% of (c)'s env "
                          "steps, every window")]
    assert racing["met"] and racing["figures"]["share_of_c_steps_to_reach_c_value"] == [0.4, 0.4]
    assert bench.wins(windows, ["c", "d"]) == {"c": 2, "d": 0}


def test_smoke_preset_scales_everything_down():
    args = bench.parse_args(["--smoke"])
    assert (args.windows, args.regimes_seeds, args.iterations) == (1, [0], 2)
    config = bench.arm_config("s", {"data": {"path": "x.csv", "splits": {}}}, "d", args)
    assert config["search"]["scheduler"] == "racing"
    assert config["data"]["walk_forward"] == {"folds": 2, "mode": "expanding"}


def test_resume_keeps_the_finished_sweeps_and_refuses_other_settings(tmp_path):
    import json

    import pytest

    out = tmp_path / "selection.json"
    args = bench.parse_args(["--out", str(out), "--windows", "2"])
    row = {"trials": 3, "pruned": 0, "env_steps": 100, "wall_s": 1.0}
    out.write_text(json.dumps({"args": bench._plain_args(args), "windows": [
        {"market": "coinbase", "label": "W1", "data": {}, "arms": {"a": row}}]}))
    assert bench.earlier_rows(args) == {}  # without --resume nothing is kept
    resumed = bench.parse_args(["--out", str(out), "--windows", "2", "--resume"])
    assert bench.earlier_rows(resumed) == {("W1", "a"): row}
    other = bench.parse_args(["--out", str(out), "--windows", "2", "--budget", "5", "--resume"])
    with pytest.raises(SystemExit, match="budget 720000 here 5"):
        bench.earlier_rows(other)
    with pytest.raises(SystemExit, match="does not exist"):
        bench.earlier_rows(bench.parse_args(["--out", str(tmp_path / "no.json"), "--resume"]))


def test_the_warm_start_arm_starts_from_the_month_before_and_counts_trials_to_match():
    markets = [{"market": "coinbase"}] * 3 + [{"market": "regimes"}] * 2
    # windows are latest first: the month before window 0 is window 1; the oldest has none
    assert [bench.warm_source(markets, i) for i in range(5)] == [1, 2, None, 4, 3]
    assert bench.warm_source([{"market": "regimes"}], 0) is None

    def trial(value, test, steps=100):
        return {"state": "COMPLETE", "value": value, "test_sharpe": test, "env_steps": steps}
    cold = {"test_sharpe": 1.0, "trajectory": [trial(0.1, -1.0), trial(0.2, 0.5),
                                                trial(0.9, 1.0)]}
    warm = {"test_sharpe": 1.2, "warm_from": "sel-coinbase-1-b",
            "trajectory": [trial(0.5, 1.2), trial(0.1, 0.0)]}
    never = {"test_sharpe": 0.3, "trajectory": [trial(0.5, 0.3)]}
    windows = [{"label": "W1", "arms": {"b": cold, "e": warm}},
               {"label": "W2", "arms": {"b": cold, "e": never}},
               {"label": "W3", "arms": {"b": cold}}]
    rows = bench.warm_start_effect(windows)
    assert [(r["b_trials_to_reach"], r["e_trials_to_reach"]) for r in rows] == \
        [(3, 1), (3, None)]
    assert rows[0]["b_steps_to_reach"] == 300 and rows[0]["e_steps_to_reach"] == 100
