"""Cost stress: does a checkpoint's edge over holding the asset survive harsher trading?

A backtest's edge often lives in its cost assumptions. Each stress re-scores the kept
checkpoint on one split with one thing made worse, the rest as the study traded:

- ``commission x2``: twice the study's commission per trade;
- ``delay 1 bar``: every decision executed one bar late (the signal arrives, the fill does not);
- ``slippage +10 bps``: ten basis points more slippage on every fill.

The edge survives a stress when the stressed run still beats buy-and-hold on that split, in
P&L and in active Sharpe (its bar returns minus buy-and-hold's). Used by ``evaluate --stress``
and by ``promote`` (on the validation split). Imports torch through the evaluation it runs.
"""
from __future__ import annotations

import copy
from typing import Any

EXTRA_SLIPPAGE_BPS = 10.0
STRESSES = ("commission x2", "delay 1 bar", f"slippage +{EXTRA_SLIPPAGE_BPS:g} bps")


def stress(module: Any, env: dict[str, Any], split: str) -> dict[str, dict[str, Any]]:
    """Each stress's figures on ``split``: P&L, buy-and-hold, active Sharpe per bar, trades,
    and ``survives`` (the edge over buy-and-hold held under it)."""
    from trainables.evaluation import evaluate
    from trainables.settings import env_settings

    base = env_settings(env)
    harsher = {
        STRESSES[0]: ({**env, "commission": base["commission"] * 2}, 0),
        STRESSES[1]: (env, 1),
        STRESSES[2]: ({**env, "slippage": {**copy.deepcopy(base["slippage"]),
                                           "bps": base["slippage"]["bps"] + EXTRA_SLIPPAGE_BPS}},
                      0),
    }
    result = {}
    for name, (config, delay) in harsher.items():
        run = evaluate(module, config, split, delay=delay)
        beats = run.pnl_pct > run.buy_and_hold_pct
        result[name] = {"pnl_pct": run.pnl_pct, "buy_and_hold_pct": run.buy_and_hold_pct,
                        "active_sharpe_per_bar": run.active_sharpe_per_bar,
                        "trades": run.trades,
                        "survives": bool(beats and run.active_sharpe_per_bar > 0)}
    return result
