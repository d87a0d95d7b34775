"""Action sets side by side: the same sweep trading long_only and long_short, scored on test.

Two markets, each swept once per action set at the same budget, space, seed and frictions
(only ``env.actions`` differs):

- ``regimes``: the quickstart's positive-control market and sweep (``examples/quickstart.yaml``:
  6 trials of at most 25 iterations on a small PPO space). Its down regimes are an edge only a
  short can take, so ``long_short`` should select a trial that beats ``long_only`` on test;
- ``coinbase``: the real hourly BTC/USD bars (``examples/data/``), the last ``--test-months``
  months (720 bars each) as the test period, the 720 bars before them validation and the 3,000
  before that training; the same small sweep.

Each sweep runs through the CLI (``tradetune launch``) in a throw-away results folder, and its
selected trial (what ``tradetune evaluate`` picks: the best validation value) is scored on the
test split with ``tradetune evaluate --split test``. Printed per market and action set: test
P&L %, Sharpe, max drawdown, trades, time short, the costs paid apart, validation value, and
buy-and-hold over the same test period.

    ./tt python scripts/bench_actions.py                   # both markets, about 15-30 minutes
    ./tt python scripts/bench_actions.py --markets regimes --search-seeds 42 43
    ./tt python scripts/bench_actions.py --out actions.json

It measures trading quality, not speed: a loaded machine changes how long it takes, not what
it prints (RLlib training is seeded; thread scheduling can still move results slightly).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
ACTION_SETS = ("long_only", "long_short")


def market_sets(market: str, test_months: int) -> list[str]:
    """``--set`` items that put the quickstart's sweep on ``market``."""
    if market == "regimes":
        return []
    return [f"data.path={COINBASE}", "data.synthetic=null",
            f"data.splits={{train_bars: 3000, val_bars: 720, test_bars: {720 * test_months}}}"]


def tradetune(args: list[str], results: Path) -> str:
    """Run the CLI with its own results folder and storage; return stdout (fail loudly)."""
    env = {**os.environ, "TRADETUNE_RESULTS": str(results)}
    env.pop("TRADETUNE_STORAGE", None)
    done = subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tradetune {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def sweep_and_score(market: str, actions: str, seed: int, test_months: int,
                    sets: list[str]) -> dict[str, Any]:
    """One sweep of the quickstart's budget on ``market`` with ``actions``; its selected
    trial's test metrics."""
    study = f"bench-{market}-{actions}-{seed}".replace("_", "-")
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as folder:
        results = Path(folder)
        tradetune(["launch", str(QUICKSTART), "--study", study,
                   "--set", f"env.actions={actions}", "--set", f"search.seed={seed}",
                   *(item for value in market_sets(market, test_months) + sets
                     for item in ("--set", value))], results)
        test = json.loads(tradetune(["evaluate", "--study", study, "--split", "test",
                                     "-f", "json"], results))
    keys = ("trial", "validation_value", "pnl_pct", "sharpe", "max_drawdown", "trades",
            "time_in_market", "time_short", "commission_paid", "slippage_paid", "borrow_paid",
            "buy_and_hold_pct", "bars")
    return {"market": market, "actions": actions, "search_seed": seed,
            **{key: test.get(key) for key in keys}}


def _cell(value: float | None, spec: str) -> str:
    """A table cell; "-" for a metric the evaluation does not report (long_only with commission
    only reports no time short or costs paid)."""
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", nargs="+", default=["regimes", "coinbase"],
                        choices=["regimes", "coinbase"])
    parser.add_argument("--search-seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--test-months", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="extra --set for every sweep (e.g. env.slippage.bps=2)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    rows = []
    print(f"{'market':9} {'actions':10} {'seed':>4} {'trial':>5} {'val':>7} {'test P&L%':>9} "
          f"{'Sharpe':>7} {'maxDD':>6} {'trades':>6} {'short':>6} {'comm':>8} {'borrow':>7} "
          f"{'B&H%':>7}", flush=True)
    for market in args.markets:
        for seed in args.search_seeds:
            for actions in ACTION_SETS:
                row = sweep_and_score(market, actions, seed, args.test_months, args.sets)
                rows.append(row)
                print(f"{market:9} {actions:10} {seed:>4} {row['trial']:>5} "
                      f"{row['validation_value']:>7.2f} {row['pnl_pct']:>9.2f} "
                      f"{row['sharpe']:>7.2f} {row['max_drawdown']:>6.3f} {row['trades']:>6} "
                      f"{_cell(row['time_short'], '.2f'):>6} "
                      f"{_cell(row['commission_paid'], '.1f'):>8} "
                      f"{_cell(row['borrow_paid'], '.1f'):>7} {row['buy_and_hold_pct']:>7.2f}",
                      flush=True)
                if args.out:
                    args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
