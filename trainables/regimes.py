"""A positive-control market: prices whose drift switches between up and down regimes.

On the default synthetic market (a driftless random walk) no policy has an edge, so a sweep
that finds nothing and a broken pipeline look the same. Here the edge is planted and known:
the drift is ``+drift`` or ``-drift`` per bar and keeps its sign for a random number of bars
(geometric, mean ``mean_regime_bars``), so a policy that follows the trend after a few bars of
a regime earns about ``drift`` per bar while buy-and-hold averages out to about nothing.

Defaults (0.2% drift, 0.4% noise per bar, regimes of 40 bars on average) make a trend follower
clear 0.1% commission comfortably: measured on seeds 0-19, going long after a positive 8-bar
return beat buy-and-hold on the last 15% of 6,000 bars every time (mean log return +0.55
against +0.08), net of 0.1% commission per trade. Every parameter is overridable under
``data.synthetic`` (``kind: regimes``), so the control can be made harder.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REGIMES_DEFAULTS: dict[str, Any] = {
    "drift": 0.002,            # |mean log return| per bar inside a regime
    "volatility": 0.004,       # standard deviation of the per-bar log return
    "mean_regime_bars": 40,    # mean regime length in bars (geometric durations)
    "base_price": 10_000.0,
}


def regime_signs(n_bars: int, mean_regime_bars: float, rng: np.random.Generator) -> np.ndarray:
    """+1/-1 per bar: the drift's sign, switching with probability 1/mean_regime_bars a bar."""
    switches = rng.random(n_bars) < 1.0 / mean_regime_bars
    switches[0] = False
    start = 1.0 if rng.random() < 0.5 else -1.0
    return start * np.where(np.cumsum(switches) % 2 == 0, 1.0, -1.0)


def regimes_ohlcv(n_bars: int, seed: int, freq: str = "1h", *, drift: float,
                  volatility: float, mean_regime_bars: float, base_price: float) -> pd.DataFrame:
    """OHLCV bars of the regime-switching market, reproducible from ``seed``.

    Close follows ``log(close_t / close_t-1) = sign_t * drift + volatility * z_t``; open is the
    previous close; high and low extend past both by a half-normal amount of the same noise
    scale; volume is lognormal and carries no information.

    Returns:
        A frame indexed by a naive DatetimeIndex named "date" starting 2020-01-01, with
        columns open, high, low, close, volume (float64).
    """
    rng = np.random.default_rng(seed)
    signs = regime_signs(n_bars, mean_regime_bars, rng)
    log_returns = signs * drift + volatility * rng.standard_normal(n_bars)
    log_returns[0] = 0.0
    close = base_price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = volatility * np.abs(rng.standard_normal((2, n_bars))) * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(mean=7.0, sigma=0.5, size=n_bars)
    index = pd.date_range("2020-01-01", periods=n_bars, freq=freq, name="date")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)
