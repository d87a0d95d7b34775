"""The positive-control market: reproducible, with the planted edge it documents."""
from __future__ import annotations

import numpy as np
import pytest

from trainables.errors import DataError
from trainables.market import prepare_market
from trainables.synthetic import synthetic_bars
from trainables.regimes import REGIMES_DEFAULTS, regimes_ohlcv


def _follower_minus_hold(close: np.ndarray, commission: float, lookback: int = 8) -> float:
    """Net log return of 'long after a positive lookback return' minus buy-and-hold's."""
    returns = np.diff(np.log(close))
    signal = np.log(close[lookback:-1] / close[:-lookback - 1]) > 0
    position = np.concatenate([np.zeros(lookback), signal.astype(float)])
    trades = np.abs(np.diff(np.concatenate([[0.0], position])))
    return float((position * returns - trades * commission).sum() - returns.sum())


def test_same_seed_same_bars_and_valid_ohlc():
    a = synthetic_bars(2000, seed=3, kind="regimes")
    b = synthetic_bars(2000, seed=3, kind="regimes")
    assert a.equals(b)
    assert not a.equals(synthetic_bars(2000, seed=4, kind="regimes"))
    assert (a["high"] >= a[["open", "close"]].max(axis=1)).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1)).all()
    assert (a["low"] > 0).all() and a.index.is_monotonic_increasing


def test_regimes_last_tens_of_bars():
    rng = np.random.default_rng(0)
    from trainables.regimes import regime_signs

    signs = regime_signs(100_000, 40, rng)
    lengths = np.diff(np.flatnonzero(np.diff(signs) != 0))
    assert 35 < lengths.mean() < 45
    assert abs(signs.mean()) < 0.1  # up and down equally often: no drift to buy and hold


@pytest.mark.parametrize("seed", range(10))
def test_a_trend_follower_beats_buy_and_hold_net_of_commission(seed):
    bars = regimes_ohlcv(6000, seed, **REGIMES_DEFAULTS)
    test = bars["close"].to_numpy()[int(6000 * 0.85):]
    assert _follower_minus_hold(test, commission=0.001) > 0.05


def test_the_default_market_has_no_such_edge():
    """The gbm default stays driftless: the same follower gains nothing there on average."""
    gains = [_follower_minus_hold(synthetic_bars(3000, seed=s)["close"].to_numpy(), 0.001)
             for s in range(5)]
    assert np.mean(gains) < 0.05


def test_parameters_are_overridable_and_checked():
    calm = prepare_market({"synthetic": {"kind": "regimes", "n_bars": 2000, "drift": 0.0}})
    assert "kind=regimes" in calm.source
    with pytest.raises(DataError, match="kind must be one of gbm, regimes"):
        prepare_market({"synthetic": {"kind": "trend"}})
    with pytest.raises(DataError, match=r"only apply to kind: regimes"):
        prepare_market({"synthetic": {"drift": 0.01}})
    with pytest.raises(DataError, match="volatility must be a finite number"):
        prepare_market({"synthetic": {"kind": "regimes", "volatility": float("inf")}})
    with pytest.raises(DataError, match="did you mean 'drift'"):
        prepare_market({"synthetic": {"kind": "regimes", "drfit": 0.01}})
