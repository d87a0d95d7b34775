"""The embedded markets a sweep runs on without a data file (``data.synthetic``).

``gbm`` (the default) is TensorTrade's geometric Brownian motion with no drift: no edge to find,
it exercises the machinery. ``regimes`` (:mod:`trainables.regimes`) plants a trend edge that a
working pipeline must find. Both return bars in :func:`trainables.bar_files.load_bars`' form.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from trainables.bar_files import PRICE_COLUMNS
from trainables.errors import DataError
from trainables.regimes import REGIMES_DEFAULTS, regimes_ohlcv
from trainables.tensortrade_shim import import_tensortrade

BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
SYNTHETIC_DEFAULTS: dict[str, Any] = {"kind": "gbm", "n_bars": 6000, "seed": 42, "freq": "1h"}
SYNTHETIC_KINDS = ("gbm", "regimes")
MAX_SYNTHETIC_BARS = 5_000_000


def synthetic_bars(n_bars: int = 6000, seed: int = 42, freq: str = "1h", kind: str = "gbm",
                   **params: Any) -> pd.DataFrame:
    """An embedded market, so a sweep runs without any data file.

    ``gbm`` (the default) is a driftless random walk: no edge to find, it exercises the
    machinery. ``regimes`` is the positive control of :mod:`trainables.regimes`: a planted
    trend edge that a working pipeline must find. Same output contract as :func:`load_bars`.

    Args:
        n_bars: number of bars.
        seed: random seed; the same seed gives the same bars.
        freq: bar interval as a pandas frequency ("1h", "15min", "1D").
        kind: "gbm" or "regimes".
        params: the ``regimes`` market's parameters (see ``REGIMES_DEFAULTS``).

    Raises:
        DataError: a setting is out of range.
    """
    if isinstance(n_bars, bool) or not isinstance(n_bars, int) or n_bars < 2:
        raise DataError(f"data.synthetic.n_bars must be an integer >= 2, got {n_bars!r}")
    if n_bars > MAX_SYNTHETIC_BARS:
        raise DataError(f"data.synthetic.n_bars is {n_bars}; at most {MAX_SYNTHETIC_BARS:,} "
                        f"synthetic bars are generated")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"data.synthetic.seed must be an integer in [0, 2**32), got {seed!r}")
    try:
        pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError):
        raise DataError(f"data.synthetic.freq must be a fixed pandas frequency such as '1h' or "
                        f"'15min', got {freq!r}") from None
    if kind == "regimes":
        frame = regimes_ohlcv(n_bars, seed, freq, **_regimes_params(params))
    elif kind == "gbm":
        if params:
            raise DataError(f"data.synthetic: {sorted(params)} only apply to kind: regimes")
        frame = gbm_ohlcv(n_bars, seed, freq)
    else:
        raise DataError(f"data.synthetic.kind must be one of {', '.join(SYNTHETIC_KINDS)}, "
                        f"got {kind!r}")
    bars = frame[list(BAR_COLUMNS)].astype(np.float64)
    bars.index = pd.DatetimeIndex(bars.index, name="date")
    return bars.sort_index()


def _regimes_params(params: Mapping[str, Any]) -> dict[str, float]:
    settings = {**REGIMES_DEFAULTS, **params}
    for name, value in settings.items():
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            raise DataError(f"data.synthetic.{name} must be a finite number, got {value!r}")
    if settings["drift"] < 0 or settings["volatility"] <= 0:
        raise DataError("data.synthetic: drift must be >= 0 and volatility > 0, got "
                        f"{settings['drift']!r} and {settings['volatility']!r}")
    if settings["mean_regime_bars"] < 1 or settings["base_price"] <= 0:
        raise DataError("data.synthetic: mean_regime_bars must be >= 1 and base_price > 0, got "
                        f"{settings['mean_regime_bars']!r} and {settings['base_price']!r}")
    return settings


def gbm_ohlcv(n_bars: int, seed: int, freq: str = "1h", base_price: float = 10_000.0):
    """OHLCV bars from TensorTrade's geometric Brownian motion, reproducible from ``seed``.

    Drift is zero and hourly volatility about 0.6% (BTC-like), so no strategy has an edge by
    construction: the synthetic default exercises the machinery, it is not a market to beat.
    TensorTrade's generator draws from numpy's global random state; it is seeded here and
    restored afterwards. Its volume noise is unseeded, so volume is drawn from ``seed`` instead.
    """
    import_tensortrade()
    from tensortrade.stochastic import gbm
    from tensortrade.stochastic.utils.helpers import get_delta, scale_times_to_generate
    from tensortrade.stochastic.utils.parameters import default

    params = default(base_price, scale_times_to_generate(n_bars, freq), get_delta(freq))
    params.gbm_mu = 0.0
    params.all_sigma = 0.06
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        frame = gbm(base_price=base_price, base_volume=1_000, start_date="2020-01-01",
                    start_date_format="%Y-%m-%d", times_to_generate=n_bars, time_frame=freq,
                    params=params)
    finally:
        np.random.set_state(state)
    frame = frame.iloc[:n_bars].copy()
    frame["volume"] = np.random.default_rng(seed).lognormal(mean=7.0, sigma=0.5, size=len(frame))
    frame.index.name = "date"
    return frame
