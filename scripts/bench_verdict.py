"""Is the verdict calibrated? Markets with no edge must not get "edge"; planted edges must.

Markets (each written as a CSV or given as the embedded generator, then swept with the default
sweep config at one fixed budget, ``--trials`` x ``--iterations``, TPE + ASHA):

- no edge (12): the shipped Coinbase BTC/USD hourly returns in a random order (``shuffled-S``,
  six permutation seeds: the real distribution, no serial structure), and Gaussian random walks
  with an upward, a downward and no drift (``walk-up-S``, ``walk-down-S``, ``walk-flat-S``, two
  seeds each): no policy can beat holding the asset except by luck;
- planted edge (6): the regimes market (``trainables/regimes.py``) at several drifts, noise
  levels and regime lengths, each sized so that a simple momentum rule (long after a positive
  8-bar return) beats buy-and-hold net of the 0.1% commission on its test split (the script
  prints that rule's test P&L beside each market, to show the edge is there).

Per market: the verdict on the selected trial (``best``: ``edge`` / ``weak evidence`` /
``no edge``), the deflated Sharpe of its active returns, the PBO, a degenerate label, and the
selected trial's test P&L against buy-and-hold (``evaluate --split test``, in throw-away
studies); with ``--promote-seeds K`` also ``promote``'s verdict. In total: the false-edge rate
(``edge`` on a no-edge market) and the detection rate (``edge`` on a planted one), against the
targets (at most 1 of 12, at least 5 of 6).

    ./tt python scripts/bench_verdict.py --smoke                  # two tiny markets, minutes
    ./tt python scripts/bench_verdict.py --out docs/bench_verdict.json   # the whole run
    ./tt python scripts/bench_verdict.py --out docs/bench_verdict.json --resume

``--out`` is rewritten after every market, and ``--resume`` skips the markets already there
(run with the same settings), so the run can be spread over sittings.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
N_BARS = 4000
COMMISSION = 0.001
PLANTED = [  # drift, volatility, mean regime bars
    (0.002, 0.004, 40), (0.0015, 0.004, 40), (0.002, 0.006, 40),
    (0.002, 0.004, 25), (0.0025, 0.006, 60), (0.0015, 0.003, 30)]
TARGETS = {"false_edges_at_most": 1, "detections_at_least": 5}
OFFSET = 0  # --held-out N: every market seed moved by N, for markets the thresholds never saw


def no_edge_markets(work: Path, seeds: int) -> list[dict[str, Any]]:
    """The no-edge markets as data files: shuffled real returns and random walks."""
    frame = pd.read_csv(COINBASE, skiprows=1)
    closes = frame["close"].to_numpy()[::-1][-N_BARS - 1:]  # the file is newest first
    returns = np.diff(np.log(closes))
    markets = []
    for seed in range(OFFSET, OFFSET + seeds):
        shuffled = np.random.default_rng(seed).permutation(returns)
        markets.append(_write(work, f"shuffled-{seed}", closes[0] * np.exp(np.cumsum(shuffled)),
                              seed))
    for seed in range(OFFSET, OFFSET + max(seeds // 3, 1)):
        for name, drift in (("up", 2e-4), ("down", -2e-4), ("flat", 0.0)):
            steps = np.random.default_rng(100 + seed).normal(drift, 0.008, N_BARS)
            markets.append(_write(work, f"walk-{name}-{seed}", 10_000 * np.exp(np.cumsum(steps)),
                                  seed))
    return markets


def _write(work: Path, name: str, close: np.ndarray, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 1000)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 0.002, (2, len(close))))
    frame = pd.DataFrame({
        "date": pd.date_range("2021-01-01", periods=len(close), freq="1h"),
        "open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]), "close": close,
        "volume": rng.lognormal(7.0, 0.5, len(close))})
    path = work / "markets" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return {"name": name, "edge": False, "data": {"path": str(path)}, "close": close}


def planted_markets(count: int) -> list[dict[str, Any]]:
    """The regimes markets, each with a planted, known edge."""
    from trainables.regimes import regimes_ohlcv

    markets = []
    for index, (drift, volatility, regime) in enumerate(PLANTED[:count]):
        seed = 60 + OFFSET + index
        synthetic = {"kind": "regimes", "n_bars": N_BARS, "seed": seed, "freq": "1h",
                     "drift": drift, "volatility": volatility, "mean_regime_bars": regime}
        close = regimes_ohlcv(N_BARS, seed, "1h", drift=drift, volatility=volatility,
                              mean_regime_bars=regime, base_price=10_000.0)["close"].to_numpy()
        suffix = f"-s{seed}" if OFFSET else ""
        markets.append({"name": f"regimes-{drift}-{volatility}-{regime}{suffix}", "edge": True,
                        "data": {"synthetic": synthetic}, "close": close})
    return markets


def momentum_test_pnl(close: np.ndarray) -> dict[str, float]:
    """The momentum rule and buy-and-hold on the last 15% of bars, net of commission, in %."""
    test = close[int(len(close) * 0.85) - 8:]
    signal = (test[8:-1] / test[:-9] > 1.0).astype(float)  # long after a positive 8-bar return
    returns = test[9:] / test[8:-1] - 1.0
    trades = np.abs(np.diff(np.concatenate([[0.0], signal])))
    growth = np.prod(1 + signal * returns) * np.prod(1 - COMMISSION * trades)
    return {"momentum_test_pnl_pct": float((growth - 1) * 100),
            "buy_and_hold_test_pnl_pct": float((test[-1] / test[8] - 1) * 100)}


def sweep_config(market: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {
        "study": market["name"], "data": market["data"],
        "env": {"commission": COMMISSION},
        "search": {"num_samples": args.trials, "seed": args.seed},
        "training": {"max_iterations": args.iterations}}
    if args.smoke:
        config["search"]["space_overrides"] = {
            "train_batch_size": {"low": 256, "high": 512}, "hidden_width": {"choices": [16]},
            "hidden_layers": 1, "num_epochs": {"low": 2, "high": 3}}
        config["search"]["enqueue_tutorial"] = False
    elif args.small:  # the quickstart's small space: for a run that fits a sitting
        config["search"]["space_overrides"] = {
            "train_batch_size": {"low": 1000, "high": 2000}, "num_epochs": {"low": 3, "high": 6},
            "hidden_width": {"choices": [32, 64]}, "hidden_layers": 1}
        config["search"]["enqueue_tutorial"] = False
    return config


def cli(args: list[str], env: dict[str, str], timeout: float = 7200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_market(market: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = {**os.environ, "TRADETUNE_RESULTS": str(work / "results"), "PYTHONPATH": str(REPO)}
    env.pop("TRADETUNE_STORAGE", None)
    path = work / f"{market['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep_config(market, args), sort_keys=False))
    started = time.time()
    launched = cli(["launch", str(path)], env)
    if launched.returncode != 0:
        return {"market": market["name"], "error": launched.stderr.strip()[-400:]}
    best = json.loads(cli(["best", "--study", market["name"], "-f", "json"], env).stdout)[0]
    test = json.loads(cli(["evaluate", "--study", market["name"], "-f", "json"], env).stdout)
    judged = best["verdict"]
    row = {"market": market["name"], "planted_edge": market["edge"],
           "verdict": judged["verdict"], "text": judged["text"],
           "active_dsr": (judged.get("edge") or {}).get("deflated_sharpe"),
           "pbo": (judged.get("pbo") or {}).get("pbo"), "degenerate": judged.get("degenerate"),
           "against_cash": best.get("overfitting", {}).get("verdict"),
           "test_pnl_pct": test["pnl_pct"], "test_buy_and_hold_pct": test["buy_and_hold_pct"],
           "beats_buy_and_hold_on_test": test["beats_buy_and_hold"],
           **momentum_test_pnl(market["close"]), "sweep_s": round(time.time() - started)}
    if args.promote_seeds:
        promoted = cli(["promote", "--study", market["name"], "--seeds", str(args.promote_seeds),
                        "-f", "json"], env)
        row["promote"] = (json.loads(promoted.stdout).get("verdict") if promoted.returncode == 0
                          else promoted.stderr.strip()[-200:])
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if "verdict" in r]
    no_edge = [r for r in done if not r["planted_edge"]]
    planted = [r for r in done if r["planted_edge"]]
    false_edges = sum(r["verdict"] == "edge" for r in no_edge)
    detected = sum(r["verdict"] == "edge" for r in planted)
    return {"no_edge_markets": len(no_edge), "false_edges": false_edges,
            "planted_markets": len(planted), "detected": detected,
            "false_edge_target_met": false_edges <= TARGETS["false_edges_at_most"],
            "detection_target_met": detected >= TARGETS["detections_at_least"],
            "promote_false_edges": sum(r.get("promote") == "reproduces" for r in no_edge),
            "promote_detected": sum(r.get("promote") == "reproduces" for r in planted)}


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'market':<32} {'edge?':<6} {'verdict':<14} {'DSR':>5} {'PBO':>5} "
          f"{'test P&L%':>9} {'B&H%':>7} {'momentum%':>9}  degenerate")
    for r in rows:
        if "error" in r:
            print(f"{r['market']:<32} error: {r['error']}")
            continue
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['market']:<32} {'yes' if r['planted_edge'] else 'no':<6} {r['verdict']:<14} "
              f"{fmt(r['active_dsr']):>5} {fmt(r['pbo']):>5} {r['test_pnl_pct']:>9.2f} "
              f"{r['test_buy_and_hold_pct']:>7.2f} {r['momentum_test_pnl_pct']:>9.2f}  "
              f"{r['degenerate'] or ''}")


def interleaved(no_edge: list[dict[str, Any]], planted: list[dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """Both kinds in their proportion, so a run stopped part-way (``--resume`` goes on) has
    figures on both: two no-edge markets, then a planted one, and so on."""
    step = max(1, round(len(no_edge) / max(1, len(planted))))
    order: list[dict[str, Any]] = []
    for k in range(max(len(planted), math.ceil(len(no_edge) / step))):
        order += no_edge[k * step:(k + 1) * step] + planted[k:k + 1]
    return order


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON file of the results (rewritten per market)")
    parser.add_argument("--resume", action="store_true", help="skip markets already in --out")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42, help="the sweeps' search seed")
    parser.add_argument("--no-edge-seeds", type=int, default=6,
                        help="shuffles (and a third as many walk seeds per drift); 6 gives 12")
    parser.add_argument("--planted", type=int, default=6, help="planted-edge markets (<= 6)")
    parser.add_argument("--promote-seeds", type=int, default=0,
                        help="also promote each selected trial on K fresh seeds (default 0: no)")
    parser.add_argument("--held-out", type=int, default=0, metavar="N",
                        help="move every market's seed by N: a held-out set of markets of the "
                             "same kinds (default 0: the calibration set)")
    parser.add_argument("--small", action="store_true",
                        help="the quickstart's small search space (default: the full space)")
    parser.add_argument("--smoke", action="store_true",
                        help="one market of each kind, tiny networks and budget")
    args = parser.parse_args(argv)
    global OFFSET
    OFFSET = args.held_out
    if args.smoke:
        args.trials, args.iterations, args.no_edge_seeds, args.planted = 3, 3, 1, 1
    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        work = Path(tmp)
        markets = interleaved(no_edge_markets(work, args.no_edge_seeds),
                              planted_markets(args.planted))
        if args.smoke:  # one of each kind
            markets = [next(m for m in markets if not m["edge"]),
                       next(m for m in markets if m["edge"])]
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "resume")}
        rows: list[dict[str, Any]] = []
        if args.resume and args.out and args.out.exists():
            earlier = json.loads(args.out.read_text())
            if earlier.get("settings") == {**settings, "out": None}:
                rows = [r for r in earlier["rows"] if "verdict" in r]
        known = {r["market"] for r in rows}
        for market in markets:
            if market["name"] in known:
                continue
            print(f"sweeping {market['name']} ...", flush=True)
            rows.append(run_market(market, args, work))
            if args.out:
                args.out.write_text(json.dumps({"settings": {**settings, "out": None},
                                                "rows": rows, "summary": summary(rows)},
                                               indent=2, default=str))
        print_rows(rows)
        print(json.dumps(summary(rows), indent=2))


if __name__ == "__main__":
    main()
