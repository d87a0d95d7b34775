"""Degenerate policies: a kept checkpoint that is no strategy, named wherever trials are listed.

On a market with no edge a sweep often selects a policy that never enters the market (its
score is cash's) or never leaves it (a buy-and-hold clone: its score is the asset's, which a
trader gets without TradeTune). Neither is skill, however high the score, and a table that
ranks them beside real strategies invites the user to deploy one. So every listing (``best``,
``status``, ``evaluate``, the report, the model card) names them, and the overfitting check
never calls one an edge. Judged from the figures every evaluation records (``trades``,
``time_in_market``, and ``time_long``/``time_short`` beyond long-or-cash).
"""
from __future__ import annotations

from typing import Any

MIN_TRADES = 3      # fewer trades over a whole split: near-constant, not a trading rule
ONE_LEVEL = 0.99    # at least this share of the split at one exposure: a constant policy

NEVER_IN = "never in the market (stays in cash)"
ALWAYS_LONG = "always long (a buy-and-hold clone)"
ALWAYS_SHORT = "always short (a constant short)"
ALMOST_NEVER_IN = "almost never in the market"


def label(metrics: dict[str, Any] | None) -> str | None:
    """What kind of degenerate policy an evaluation's figures show, or None for a policy that
    trades. Figures from before ``time_in_market`` was recorded give None."""
    metrics = metrics or {}
    trades, invested = metrics.get("trades"), metrics.get("time_in_market")
    if trades is None or invested is None:
        return None
    if trades == 0:
        return NEVER_IN
    long_share, short_share = metrics.get("time_long"), metrics.get("time_short")
    if short_share is not None and short_share >= ONE_LEVEL:
        return ALWAYS_SHORT
    if (long_share if long_share is not None else invested) >= ONE_LEVEL:
        return ALWAYS_LONG
    if invested <= 1 - ONE_LEVEL:
        return ALMOST_NEVER_IN
    if trades < MIN_TRADES:
        return f"near-constant ({trades} trade{'s' if trades != 1 else ''})"
    return None
