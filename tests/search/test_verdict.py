"""The verdict on a study's best trial: its edge over buy-and-hold (deflated Sharpe of the
active returns), the probability of backtest overfitting, degenerate policies never an edge."""
from __future__ import annotations

import numpy as np
import pytest

from search.results import verdict


def _noise(trials: int, bars: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.01, (trials, bars))


def test_pbo_of_pure_noise_is_about_a_half_and_of_a_real_edge_near_zero():
    """Choosing the best of unskilled trials is a coin toss out of sample; choosing a trial that
    really earns more is not."""
    lucky = [verdict.pbo(_noise(20, 800, seed))["pbo"] for seed in range(6)]
    assert 0.3 < float(np.mean(lucky)) < 0.8
    skilled = _noise(20, 800, 1)
    skilled[7] += 0.004  # one trial with a real edge, the rest noise
    result = verdict.pbo(skilled)
    assert result["pbo"] < 0.05 and result["blocks"] == 16 and result["splits"] == 12870
    assert "mostly stays above the median" in result["reading"]


def test_pbo_needs_two_trials_and_two_blocks():
    assert verdict.pbo(_noise(1, 800, 0)) is None
    assert verdict.pbo(_noise(5, 7, 0)) is None
    assert verdict.pbo(_noise(5, 8, 0))["blocks"] == 2


def _metrics(active: float, bars: int = 800, **extra) -> dict:
    return {"active_sharpe_per_bar": active, "active_skew": 0.0, "active_kurtosis": 3.0,
            "bars": bars, "trades": 30, "time_in_market": 0.5, **extra}


def test_a_strong_active_edge_over_many_noise_trials_is_an_edge():
    tried = [_metrics(x) for x in np.random.default_rng(0).normal(0, 0.02, 40)]
    result = verdict.judge(_metrics(0.25), [*tried, _metrics(0.25)], [])
    assert result["verdict"] == "edge" and result["edge"]["n_trials"] == 41
    assert result["edge"]["deflated_sharpe"] > 0.95 and result["pbo"] is None


def test_the_best_of_noise_is_never_called_an_edge_and_a_loser_to_buy_and_hold_is_none():
    """40 unskilled trials over 800 bars: per-bar Sharpe estimates spread by 1/sqrt(800)."""
    for seed in range(20):
        sharpes = np.random.default_rng(seed).normal(0, 800 ** -0.5, 40)
        tried = [_metrics(x) for x in sharpes]
        assert verdict.judge(_metrics(float(sharpes.max())), tried, [])["verdict"] != "edge"
    beaten = verdict.judge(_metrics(-0.01), tried, [])
    assert beaten["verdict"] == "no edge" and "did not beat holding the asset" in beaten["text"]


def test_a_buy_and_hold_clone_is_never_an_edge_however_high_its_figures():
    clone = _metrics(0.3, trades=1, time_in_market=1.0)
    result = verdict.judge(clone, [clone] * 30, [])
    assert result["verdict"] == "no edge" and result["degenerate"].startswith("always long")


def test_studies_from_before_active_returns_cannot_be_judged():
    result = verdict.judge({"sharpe_per_bar": 0.1, "bars": 500}, [], [])
    assert result["verdict"] == "cannot judge"


def test_the_returns_matrix_comes_from_the_kept_checkpoints(tmp_path):
    folders = []
    for i, row in enumerate(_noise(4, 300, 3)):
        folder = tmp_path / f"trial_{i}"
        folder.mkdir()
        np.save(folder / verdict.RETURNS_FILE, row.astype(np.float32))
        folders.append(folder)
    (tmp_path / "odd").mkdir()
    np.save(tmp_path / "odd" / verdict.RETURNS_FILE, np.zeros(10, np.float32))  # other split
    matrix = verdict.returns_matrix([*folders, tmp_path / "odd", tmp_path / "missing"])
    assert matrix.shape == (4, 300)
    result = verdict.judge(_metrics(0.01), [_metrics(0.0)] * 4, folders)
    assert result["pbo"]["trials"] == 4 and "PBO" in result["text"]


def _checkpoints(tmp_path, matrix: np.ndarray) -> list:
    folders = []
    for i, row in enumerate(matrix):
        folder = tmp_path / f"trial_{i}"
        folder.mkdir(parents=True)
        np.save(folder / verdict.RETURNS_FILE, row.astype(np.float32))
        folders.append(folder)
    return folders


def test_weak_evidence_whose_selection_carries_over_is_an_edge_and_otherwise_stays_weak(
        tmp_path):
    """A deflated Sharpe between 0.5 and 0.95 is an edge only where PBO agrees (< 0.25); a
    PBO of about 0.5 (the best is no better out of sample than any trial) leaves it weak."""
    tried = [_metrics(0.0)] * 11 + [_metrics(0.09)]
    skilled = _noise(12, 800, 5)
    skilled[0] += 0.004  # one trial really better, in every block
    consistent = verdict.judge(_metrics(0.09), tried, _checkpoints(tmp_path / "a", skilled))
    assert 0.5 <= consistent["edge"]["deflated_sharpe"] < verdict.EDGE_DSR
    assert consistent["pbo"]["pbo"] < verdict.PBO_CONSISTENT
    assert consistent["verdict"] == "edge" and "carries over" in consistent["text"]
    alike = verdict.judge(_metrics(0.09), tried, _checkpoints(tmp_path / "b", _noise(12, 800, 6)))
    assert alike["pbo"]["pbo"] >= verdict.PBO_CONSISTENT
    assert alike["verdict"] == "weak evidence"
    below_weak = verdict.judge(_metrics(0.03), tried, _checkpoints(tmp_path / "c", skilled))
    assert below_weak["verdict"] == "no edge"  # PBO never makes an edge out of luck
    clone = verdict.judge(_metrics(0.09, trades=1, time_in_market=1.0), tried,
                          _checkpoints(tmp_path / "d", skilled))
    assert clone["verdict"] == "no edge" and clone["degenerate"]


@pytest.mark.slow
def test_a_real_sweep_stores_active_figures_and_the_returns_the_verdict_reads(tmp_path, tiny_sweep):
    import json

    from sweep_helpers import run_cli, write_config

    results = tmp_path / "results"
    config = write_config(tmp_path / "v.yaml", tiny_sweep(**{
        "study": "v", "search.num_samples": 2, "training.max_iterations": 2}))
    done = run_cli(["launch", str(config)], results)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(run_cli(["best", "--study", "v", "-f", "json"], results).stdout)
    assert {"active_sharpe_per_bar", "buy_and_hold_sharpe_per_bar"} <= set(rows[0]["metrics"])
    for row in rows:
        returns = np.load(f"{row['checkpoint']}/{verdict.RETURNS_FILE}")
        assert len(returns) == row["metrics"]["bars"] - 1
    judged = rows[0]["verdict"]
    assert judged["verdict"] in ("edge", "weak evidence", "no edge")
    assert judged["edge"]["n_trials"] == 2 and judged["pbo"]["trials"] == 2
    table = run_cli(["best", "--study", "v"], results).stdout
    assert "verdict (against buy-and-hold): " in table
    stressed = json.loads(run_cli(["evaluate", "--study", "v", "--split", "val", "--stress",
                                   "-f", "json"], results).stdout)
    assert list(stressed["stress"]) == ["commission x2", "delay 1 bar", "slippage +10 bps"]
    assert all(isinstance(row["survives"], bool) for row in stressed["stress"].values())
    shown = run_cli(["evaluate", "--study", "v", "--split", "val", "--stress"], results).stdout
    assert "cost stress (does the edge over buy-and-hold survive?):" in shown


def test_stress_goes_with_one_trial_not_with_top(tmp_path):
    import subprocess

    from sweep_helpers import REPO, TRADETUNE, add_study, cli_env

    results = tmp_path / "results"
    add_study(f"sqlite:///{results / 'tradetune.db'}", results, "s", [1.0])
    done = subprocess.run([*TRADETUNE, "evaluate", "--study", "s", "--top", "1", "--stress"],
                          cwd=REPO, env=cli_env(results), text=True, capture_output=True,
                          timeout=120)
    assert done.returncode == 2 and "--stress re-scores one trial" in done.stderr


def _fresh(active: float, **extra) -> dict:
    return {"active_sharpe_per_bar": active, "trades": 25, "time_in_market": 0.5, **extra}


@pytest.mark.parametrize("own, fresh, says", [
    (0.05, [0.04, 0.03, 0.05], "reproduces"),
    (0.05, [0.01, 0.01, 0.02], "does not reproduce"),       # below half the trial's own
    (0.05, [0.09, -0.01, -0.02], "does not reproduce"),      # most seeds lose to holding
    (0.05, [0.04, 0.05, 0.0], "does not reproduce: 1 of 3 fresh seeds collapse"),
    (-0.02, [0.3, 0.3, 0.3], "no edge to reproduce"),       # defined for every sign
    (0.0, [0.3, 0.3], "no edge to reproduce"),
])
def test_promotion_is_judged_against_holding_the_asset(own, fresh, says):
    seeds = [_fresh(a) for a in fresh]
    if "collapse" in says:
        seeds[2] = _fresh(0.0, trades=1, time_in_market=1.0)  # a buy-and-hold clone
    result = verdict.promotion({"active_sharpe_per_bar": own}, seeds)
    assert result["verdict"].startswith(says), result
    assert result["fresh_active_sharpe_per_bar"] == [s["active_sharpe_per_bar"] for s in seeds]
    assert (result["std_active_sharpe_per_bar"] is None) == (len(seeds) < 2)


@pytest.mark.parametrize("trial, kind", [
    ({"trades": 0, "time_in_market": 0.0}, "never in the market"),
    ({"trades": 1, "time_in_market": 1.0}, "always long"),
])
def test_a_degenerate_trial_has_no_edge_to_reproduce_whatever_its_seeds_do(trial, kind):
    """On a falling validation period, staying in cash beats holding the asset: the trial's
    active Sharpe is high, `best` calls it no strategy, and fresh seeds that trade well must
    not turn it into "reproduces"."""
    result = verdict.promotion({"active_sharpe_per_bar": 0.2, **trial},
                               [_fresh(0.2), _fresh(0.25)])
    assert result["verdict"].startswith(f"no edge to reproduce: the trial is {kind}"), result


def test_promotions_without_active_figures_keep_the_score_rule():
    assert verdict.promotion({"sharpe": 1.0}, [_fresh(0.1)]) is None
    assert verdict.promotion({"active_sharpe_per_bar": 0.1}, [{"sharpe": 1.0}]) is None
