"""Market data for TradeTune: load and validate bar files, compute features, split chronologically.

Every trial builds many env copies, and each one needs the same bars, features and splits, so
:func:`prepare_market` does that work once per process and caches the result. Bad input fails
early with a one-line :class:`DataError` naming the file, the column and the row, because a
sweep that dies an hour in on a malformed row (or silently trains on a NaN) is the expensive
failure mode. Reading files (formats, dates, separators, spacing) is
``trainables.bar_files``; :func:`load_bars` and :class:`DataError` are re-exported here.

Conventions:

- Timestamps are naive UTC: timezone-aware input is converted to UTC, then made naive.
- Splits are half-open row ranges ``[start, end)`` into the warm-up-free bars, in time order
  train < val < test, never shuffled: a shuffled split would let the agent see the future.
- Features use only the current and past bars (no centred windows, no backfill).
- Walk-forward folds (``data.walk_forward``) cut the bars before the test split into K + 1
  blocks; fold i validates on block i + 1 and trains on the blocks before it (expanding) or on
  block i alone (rolling). No fold reaches the test split, and no fold's training or validation
  uses a bar after its validation period.
"""
from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainables.bar_files import (  # noqa: F401  (re-exported: the loading API lives here)
    DATE_NAMES,
    MAX_DATA_BYTES,
    PRICE_COLUMNS,
    check_spacing,
    load_bars,
)
from trainables.errors import DataError, did_you_mean
from trainables.regimes import REGIMES_DEFAULTS, regimes_ohlcv
from trainables.settings import fold_names

BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}
SYNTHETIC_DEFAULTS: dict[str, Any] = {"kind": "gbm", "n_bars": 6000, "seed": 42, "freq": "1h"}
SYNTHETIC_KINDS = ("gbm", "regimes")
MAX_SYNTHETIC_BARS = 5_000_000
FILE_KEYS = ("date_column", "sep", "decimal")
DATA_KEYS = ("path", "synthetic", "splits", "features", "walk_forward", *FILE_KEYS)
WALK_FORWARD_KEYS = ("folds", "mode")
WALK_FORWARD_MODES = ("expanding", "rolling")

_FEATURE_CLIP = 10.0
_YEAR = pd.Timedelta(days=365.25)


# -- loading ----------------------------------------------------------------------------------

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
        from trainables.env import synthetic_ohlcv

        frame = synthetic_ohlcv(n_bars, seed, freq)
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


# -- features --------------------------------------------------------------------------------

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


# -- splits ----------------------------------------------------------------------------------

_FRACTION_KEYS = SPLIT_NAMES
_BAR_KEYS = ("train_bars", "val_bars", "test_bars")
_DATE_KEYS = ("train_start", "val_start", "test_start", "test_end")


def split_positions(index: pd.DatetimeIndex, splits: Mapping[str, Any] | None
                    ) -> dict[str, tuple[int, int]]:
    """Chronological train/val/test row ranges ``[start, end)`` over ``index``.

    Args:
        index: ascending bar timestamps (warm-up rows already dropped).
        splits: one of three forms (None means 70/15/15 fractions):

            - fractions ``{"train": 0.7, "val": 0.15, "test": 0.15}``, positive, summing to 1;
            - bar counts ``{"train_bars": 3000, "val_bars": 720, "test_bars": 720}`` taken
              from the end of the data (test last, val before it, train before that);
              ``train_bars`` may be left out to train on every earlier bar;
            - dates ``{"val_start": "2019-08-01", "test_start": "2019-09-01"}`` with optional
              ``train_start`` and ``test_end``; each start is inclusive and ``test_end``
              exclusive, like every boundary here.

    Returns:
        ``{"train": (start, end), "val": ..., "test": ...}``: contiguous, in time order,
        non-overlapping. A split may be empty; :func:`prepare_market` enforces sizes.

    Raises:
        DataError: an unknown key, a mix of forms, or a value out of range.
    """
    splits = DEFAULT_SPLITS if splits is None else splits
    if not isinstance(splits, Mapping) or not splits:
        raise DataError(f"data.splits must be a mapping such as {DEFAULT_SPLITS}, got {splits!r}")
    known = (*_FRACTION_KEYS, *_BAR_KEYS, *_DATE_KEYS)
    for key in splits:
        if key not in known:
            raise DataError(f"unknown key data.splits.{key}{_did_you_mean(key, known)}; use "
                            f"fractions {list(_FRACTION_KEYS)}, bar counts {list(_BAR_KEYS)} or "
                            f"dates {list(_DATE_KEYS)}")
    forms = [keys for keys in (_FRACTION_KEYS, _BAR_KEYS, _DATE_KEYS) if set(keys) & set(splits)]
    if len(forms) > 1:
        raise DataError(f"data.splits mixes forms ({sorted(splits)}); use only one of fractions "
                        f"{list(_FRACTION_KEYS)}, bar counts {list(_BAR_KEYS)} or dates "
                        f"{list(_DATE_KEYS)}")
    n = len(index)
    if forms[0] is _FRACTION_KEYS:
        bounds = _fraction_bounds(splits, n)
    elif forms[0] is _BAR_KEYS:
        bounds = _bar_bounds(splits, n)
    else:
        bounds = _date_bounds(splits, index)
    return {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(SPLIT_NAMES)}


def _fraction_bounds(splits: Mapping[str, Any], n: int) -> list[int]:
    fractions = []
    for key in _FRACTION_KEYS:
        value = splits.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise DataError(f"data.splits.{key} must be a fraction in (0, 1), got {value!r}")
        fractions.append(float(value))
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"data.splits fractions must sum to 1, got {sum(fractions):g} "
                        f"({dict(zip(_FRACTION_KEYS, fractions, strict=True))})")
    first = round(n * fractions[0])
    second = round(n * (fractions[0] + fractions[1]))
    return [0, first, second, n]


def _bar_bounds(splits: Mapping[str, Any], n: int) -> list[int]:
    counts = {}
    for key in _BAR_KEYS:
        value = splits.get(key)
        if key == "train_bars" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"data.splits.{key} must be a positive whole number of bars, "
                            f"got {value!r}")
        counts[key] = value
    wanted = sum(counts.values())
    if wanted > n:
        parts = " + ".join(f"{k} {v}" for k, v in counts.items())
        raise DataError(f"data.splits asks for {wanted} bars ({parts}) but only {n} are "
                        f"available after the feature warm-up; give more data or fewer bars")
    test_start = n - counts["test_bars"]
    val_start = test_start - counts["val_bars"]
    train_start = val_start - counts.get("train_bars", val_start)
    return [train_start, val_start, test_start, n]


def _date_bounds(splits: Mapping[str, Any], index: pd.DatetimeIndex) -> list[int]:
    for key in ("val_start", "test_start"):
        if splits.get(key) is None:
            raise DataError(f"data.splits.{key} is required with date splits "
                            f"(e.g. val_start: 2019-08-01, test_start: 2019-09-01)")
    stamps = {}
    for key in _DATE_KEYS:
        if splits.get(key) is None:
            continue
        try:
            stamp = pd.Timestamp(splits[key])
        except (ValueError, TypeError):
            stamp = pd.NaT
        if pd.isna(stamp):
            raise DataError(f"data.splits.{key} is not a date: {splits[key]!r}")
        stamps[key] = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    ordered = [k for k in _DATE_KEYS if k in stamps]
    for before, after in zip(ordered, ordered[1:], strict=False):
        if not stamps[before] < stamps[after]:
            raise DataError(f"data.splits.{after} ({stamps[after]}) must be after "
                            f"data.splits.{before} ({stamps[before]})")
    start = int(index.searchsorted(stamps["train_start"])) if "train_start" in stamps else 0
    end = int(index.searchsorted(stamps["test_end"])) if "test_end" in stamps else len(index)
    return [start, int(index.searchsorted(stamps["val_start"])),
            int(index.searchsorted(stamps["test_start"])), end]


def _check_keys(section: str, mapping: Mapping, known: tuple[str, ...]) -> None:
    """Refuse a key of a config section that is not one of ``known``, naming the closest."""
    for key in mapping:
        if key not in known:
            raise DataError(f"unknown key {section}.{key}{_did_you_mean(key, known)}; "
                            f"known keys: {list(known)}")


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    return did_you_mean(word, choices, template=" (did you mean {}?)")


# -- walk-forward folds ----------------------------------------------------------------------

def walk_forward_settings(value: Any) -> tuple[int, str] | None:
    """``data.walk_forward`` checked: None (one train/val split) or ``(folds, mode)``.

    Raises:
        DataError: not a mapping, an unknown key, fewer than 2 folds, or an unknown mode.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DataError(f"data.walk_forward must be null or a mapping such as "
                        f"{{folds: 3, mode: expanding}}, got {value!r}")
    _check_keys("data.walk_forward", value, WALK_FORWARD_KEYS)
    folds = value.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DataError(f"data.walk_forward.folds must be a whole number >= 2, got {folds!r}")
    mode = value.get("mode") or "expanding"
    if mode not in WALK_FORWARD_MODES:
        raise DataError(f"data.walk_forward.mode is {mode!r}"
                        f"{_did_you_mean(mode, WALK_FORWARD_MODES)} (allowed: "
                        f"{', '.join(WALK_FORWARD_MODES)})")
    return folds, mode


def walk_forward_positions(start: int, end: int, folds: int, mode: str
                           ) -> dict[str, tuple[int, int]]:
    """Walk-forward fold row ranges ``[start, end)`` over the rows ``[start, end)``.

    The rows are cut into ``folds + 1`` contiguous blocks of (nearly) equal size; fold i
    validates on block i + 1 and trains on blocks 0..i (``expanding``) or on block i
    (``rolling``), as scikit-learn's ``TimeSeriesSplit`` does.

    Returns:
        ``{"fold0_train": ..., "fold0_val": ..., "fold1_train": ...}`` in fold order.
    """
    bounds = [start + round(i * (end - start) / (folds + 1)) for i in range(folds + 2)]
    positions = {}
    for i in range(folds):
        train, val = fold_names(i)
        positions[train] = (bounds[0] if mode == "expanding" else bounds[i], bounds[i + 1])
        positions[val] = (bounds[i + 1], bounds[i + 2])
    return positions


# -- the prepared market ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MarketData:
    """Bars, features and splits ready for an env. Shared within a process: treat as read-only.

    Attributes:
        bars: validated bars with the feature warm-up rows dropped, aligned with ``features``.
        features: float32 observation features, no NaN.
        splits: ``"train"/"val"/"test"`` -> ``[start, end)`` row positions into bars/features;
            with ``data.walk_forward`` also ``"fold{i}_train"/"fold{i}_val"`` for each fold,
            and ``"train"/"val"`` are then the last fold's.
        interval: the most common time between bars (see ``bar_files.check_spacing``).
        source: the file path, or ``synthetic(seed=..., n_bars=...)``.
        bars_per_year: bars the data actually has per year (None: from the interval).
        file_rows: bars in the file (or generated), before the warm-up was dropped.
        warmup: leading bars dropped because a feature was not yet defined on them.
        spacing: the interval and the gaps of the file's bars (``check_spacing``).
        file: how the file was read (separator, decimal mark, layout, date column).
    """

    bars: pd.DataFrame
    features: pd.DataFrame
    splits: dict[str, tuple[int, int]]
    interval: pd.Timedelta
    source: str
    bars_per_year: float | None = None
    file_rows: int = 0
    warmup: int = 0
    spacing: dict[str, Any] = field(default_factory=dict)
    file: dict[str, Any] = field(default_factory=dict)

    def split_frame(self, name: str) -> pd.DataFrame:
        """The bars of one split ("train", "val", "test" or a fold's, e.g. "fold0_val")."""
        if name not in self.splits:
            raise DataError(f"unknown split {name!r}; choose one of {list(self.splits)}")
        start, end = self.splits[name]
        return self.bars.iloc[start:end]

    @property
    def periods_per_year(self) -> float:
        """Bars per year, to annualise per-bar ratios such as Sharpe.

        The bars the data really has per year (bars - 1 over the years they span): 8766 for
        gap-free hourly crypto, about 252 for daily stock bars (which skip weekends and
        holidays); counting the calendar at the first interval would overstate those.
        """
        if self.bars_per_year is not None:
            return self.bars_per_year
        return _YEAR / self.interval


def prepare_market(data: Mapping[str, Any] | None, min_split_bars: int = 64) -> MarketData:
    """Load (or generate), validate, featurise and split the market of a sweep's ``data`` section.

    Cached per process: RLlib builds many env copies per worker, and they must all see the
    same market without re-reading the file. A file edited in place (new mtime or size) is
    loaded again.

    Args:
        data: keys ``path`` (CSV or .csv.gz; absent or None for the synthetic default),
            ``date_column``, ``sep``, ``decimal`` (how to read that file, see
            :func:`load_bars`), ``synthetic``
            (``n_bars``, ``seed``, ``freq``; defaults 6000, 42, "1h"), ``splits`` (see
            :func:`split_positions`) and ``features`` (None for the default set, or a list
            of column names of the CSV), ``walk_forward`` (None, or ``{folds: K, mode:
            expanding|rolling}``: adds K fold splits over the bars before the test split, see
            :func:`walk_forward_positions`).
        min_split_bars: fewest bars each split must have (window size plus evaluation).

    Returns:
        The same :class:`MarketData` object for the same input within a process.

    Raises:
        DataError: unknown keys, bad data, or a split too small.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise DataError(f"the data section must be a mapping with keys {list(DATA_KEYS)}, "
                        f"got {data!r}")
    _check_keys("data", data, DATA_KEYS)
    walk_forward = walk_forward_settings(data.get("walk_forward"))
    if walk_forward is not None:  # one cache entry however the same folds are spelt
        data = {**data, "walk_forward": dict(zip(WALK_FORWARD_KEYS, walk_forward, strict=True))}
    try:
        canonical = json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True,
                               default=_plain)
    except (TypeError, ValueError):
        raise DataError(f"the data section must hold only plain values (strings, numbers, "
                        f"lists, mappings), got {dict(data)!r}") from None
    file_key = None
    if data.get("path") is not None:
        if not isinstance(data["path"], (str, os.PathLike)):
            raise DataError(f"a data path must be a file name, got {data['path']!r}")
        resolved = Path(data["path"]).expanduser().resolve()
        try:
            stat = resolved.stat()
            file_key = (str(resolved), stat.st_mtime_ns, stat.st_size)
        except OSError:
            file_key = (str(resolved), None, None)
    return _prepare_cached(canonical, file_key, int(min_split_bars))


def _plain(value: Any) -> Any:
    """JSON form of the few non-JSON values a config may hold (paths, tuples of numpy ints)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not a plain value: {value!r}")


@functools.lru_cache(maxsize=16)
def _prepare_cached(canonical: str, file_key: tuple | None, min_split_bars: int) -> MarketData:
    data = json.loads(canonical)
    if "path" in data:
        if data.get("synthetic"):
            raise DataError("give either data.path or data.synthetic, not both")
        bars = load_bars(file_key[0], **{key: data.get(key) for key in FILE_KEYS})
        source = str(data["path"])
    else:
        given = [key for key in FILE_KEYS if key in data]
        if given:
            raise DataError(f"data.{given[0]} says how to read data.path, but there is no "
                            f"data.path (the market is synthetic)")
        synthetic = data.get("synthetic") or {}
        if not isinstance(synthetic, dict):
            raise DataError(f"data.synthetic must be a mapping with keys "
                            f"{list(SYNTHETIC_DEFAULTS)}, got {synthetic!r}")
        _check_keys("data.synthetic", synthetic, (*SYNTHETIC_DEFAULTS, *REGIMES_DEFAULTS))
        settings = {**SYNTHETIC_DEFAULTS, **synthetic}
        bars = synthetic_bars(**settings)
        source = f"synthetic(seed={settings['seed']}, n_bars={settings['n_bars']}"
        source += "" if settings["kind"] == "gbm" else f", kind={settings['kind']}"
        source += ")" if settings["freq"] == "1h" else f", freq={settings['freq']})"
    if len(bars) < 2:
        raise DataError(f"{source}: has {len(bars)} bar(s); at least two are needed")
    spacing = bars.attrs.get("spacing") or check_spacing(bars.index, source)
    file_info = dict(bars.attrs.get("file", {}))
    bars.attrs.clear()  # pandas deep-copies attrs on every operation; the features need none
    file_rows = len(bars)
    bars_per_year = (file_rows - 1) * (_YEAR / (bars.index[-1] - bars.index[0]))

    features = compute_features(bars, data.get("features"))
    defined = features.notna().all(axis=1).to_numpy()
    if not defined.any():
        raise DataError(f"{source}: no bar has every feature defined ({len(bars)} bars; the "
                        f"default features need more than {FEATURE_WARMUP} bars)")
    start = int(np.argmax(defined))
    bars, features = bars.iloc[start:], features.iloc[start:].astype(np.float32)
    values = features.to_numpy()
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
    if len(bad_rows):
        row, col = int(bad_rows[0]), int(bad_cols[0])
        raise DataError(f"{source}: feature {features.columns[col]!r} is {values[row, col]} at "
                        f"{features.index[row]} after the warm-up; features must be finite "
                        f"float32 values on every bar")

    splits = split_positions(bars.index, data.get("splits"))
    walk_forward = walk_forward_settings(data.get("walk_forward"))
    if walk_forward is not None:
        available = splits["test"][0] - splits["train"][0]
        fit = available // min_split_bars - 1
        if walk_forward[0] > fit:
            raise DataError(f"data.walk_forward.folds is {walk_forward[0]}, but the {available} "
                            f"bars before the test split fit at most {max(fit, 0)} folds (K "
                            f"folds cut them into K + 1 blocks of at least {min_split_bars} "
                            f"bars); use fewer folds or more data")
        folds = walk_forward_positions(splits["train"][0], splits["test"][0], *walk_forward)
        for name, (lo, hi) in folds.items():
            if hi - lo < min_split_bars:
                raise DataError(f"walk-forward split {name!r} has {hi - lo} bars; at least "
                                f"{min_split_bars} are needed (window size + evaluation) — give "
                                f"more data or fewer data.walk_forward.folds")
        # "train"/"val" become the last fold's: the trial keeps that fold's checkpoint, so
        # whatever scores it on "val" (evaluate --split val, the report) sees the period that
        # selected it, never bars it trained on.
        last_train, last_val = fold_names(walk_forward[0] - 1)
        splits = {"train": folds[last_train], "val": folds[last_val], "test": splits["test"],
                  **folds}
    for name in SPLIT_NAMES:
        lo, hi = splits[name]
        if hi - lo < min_split_bars:
            raise DataError(f"split {name!r} has {hi - lo} bars; at least {min_split_bars} are "
                            f"needed (window size + evaluation) — give more data or change "
                            f"data.splits")
    return MarketData(bars=bars, features=features, splits=splits,
                      interval=spacing["interval"], source=source, bars_per_year=bars_per_year,
                      file_rows=file_rows, warmup=start, spacing=spacing, file=file_info)


def describe(market: MarketData) -> dict[str, Any]:
    """A JSON-ready summary of a prepared market, for ``tradetune data FILE``."""
    index = market.bars.index
    splits = {}
    for name, (start, end) in market.splits.items():
        part = index[start:end]
        splits[name] = {"rows": int(end - start),
                        "first": part[0].isoformat() if len(part) else None,
                        "last": part[-1].isoformat() if len(part) else None}
    spacing = market.spacing
    largest = spacing.get("largest")
    gaps = {"count": spacing.get("gaps", 0), "missing_bars": spacing.get("missing_bars", 0),
            "weekends_closed": bool(spacing.get("weekends_closed", False)),
            "largest": None if largest is None else {
                "missing_bars": largest["missing_bars"], "after": largest["after"].isoformat(),
                "before": largest["before"].isoformat(), "after_line": largest["after_line"],
                "before_line": largest["before_line"]}}
    return {"source": market.source, "rows": int(len(index)),
            "first": index[0].isoformat(), "last": index[-1].isoformat(),
            "interval": _format_interval(market.interval),
            "periods_per_year": round(market.periods_per_year, 2),
            "file_rows": market.file_rows, "warmup_bars": market.warmup,
            "gaps": gaps, "file": market.file,
            "splits": splits, "features": list(market.features.columns),
            "bar_columns": list(market.bars.columns)}


def _format_interval(interval: pd.Timedelta) -> str:
    """A bar interval the way people write it: "1h", "15min", "1d", "30s"."""
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and math.isclose(seconds % size, 0.0, abs_tol=1e-9):
            return f"{int(seconds // size)}{unit}"
    return str(interval)
