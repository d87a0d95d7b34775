"""Observation features of each bar, computed from that bar and earlier ones only.

The default set is about ten scale-invariant indicators (returns, RSI, distance to moving
averages, volatility, MACD, Bollinger %b, range, volume z-score), clipped to [-10, 10], so a
model trained at one price level transfers to another; ``data.features`` may instead name
columns of the user's file. No centred windows and no backfill: a feature never sees the future.
``trainables/onnx_policy.py`` reproduces the default set in the exported graph.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainables.errors import DataError, did_you_mean

_FEATURE_CLIP = 10.0


def _default_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Scale-invariant indicators, so a model trained at one price level transfers to another."""
    from ta.momentum import RSIIndicator
    from ta.trend import MACD, SMAIndicator
    from ta.volatility import BollingerBands

    close = bars["close"]
    log_close = np.log(close)
    out = pd.DataFrame(index=bars.index)
    out["log_return_1"] = log_close.diff(1)
    out["log_return_6"] = log_close.diff(6)
    out["log_return_24"] = log_close.diff(24)
    out["rsi_14"] = RSIIndicator(close, window=14, fillna=False).rsi() / 100.0 - 0.5
    out["close_sma_20"] = close / SMAIndicator(close, window=20, fillna=False).sma_indicator() - 1
    out["close_sma_50"] = close / SMAIndicator(close, window=50, fillna=False).sma_indicator() - 1
    out["volatility_24"] = out["log_return_1"].rolling(24).std()
    out["macd_diff"] = MACD(close, fillna=False).macd_diff() / close
    bands = BollingerBands(close, window=20, window_dev=2, fillna=False)
    width = bands.bollinger_hband() - bands.bollinger_lband()
    # A flat window has no band; call it the middle rather than leaving a NaN mid-series.
    percent_b = ((close - bands.bollinger_lband()) / width.where(width != 0)).mask(width == 0, 0.5)
    out["bollinger_b_20"] = percent_b - 0.5
    if "high" in bars and "low" in bars:
        out["range"] = (bars["high"] - bars["low"]) / close
    if "volume" in bars:
        log_volume = np.log1p(bars["volume"])
        mean, std = log_volume.rolling(24).mean(), log_volume.rolling(24).std()
        out["volume_z_24"] = ((log_volume - mean) / std.where(std > 0)).mask(std == 0, 0.0)
    return out.clip(-_FEATURE_CLIP, _FEATURE_CLIP)


def _measure_warmup() -> int:
    flat = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                        index=pd.date_range("2020-01-01", periods=400, freq="h"))
    flat["close"] = 100 + np.sin(np.arange(400))
    defined = _default_features(flat).notna().all(axis=1).to_numpy()
    return int(np.argmax(defined))


FEATURE_WARMUP: int = _measure_warmup()
"""Leading bars for which the default features are not all defined (prepare_market drops them)."""


def compute_features(bars: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The observation features of each bar, using only that bar and earlier ones.

    Args:
        bars: output of :func:`load_bars` or :func:`synthetic_bars`.
        columns: None for the default indicator set (about ten scale-invariant features, clipped
            to [-10, 10]); or names of columns of ``bars`` to use as they are (a user's own
            features from the CSV, case-insensitive).

    Returns:
        float64 features on the same index as ``bars``; warm-up rows are NaN.

    Raises:
        DataError: an unknown or repeated feature column.
    """
    if columns is None:
        return _default_features(bars)
    if isinstance(columns, str) or not isinstance(columns, (list, tuple)) or not columns:
        raise DataError(f"data.features must be a non-empty list of column names or null, "
                        f"got {columns!r}")
    available = list(bars.columns)
    names = []
    for column in columns:
        name = str(column).strip().lower()
        if name not in available:
            raise DataError(f"unknown feature column {column!r}{did_you_mean(name, available)} "
                            f"(available: {available})")
        if name in names:
            raise DataError(f"feature column {column!r} is listed twice in data.features")
        names.append(name)
    return bars[names].astype(np.float64)
