"""Market data for TradeTune: load and validate bar CSVs, compute features, split chronologically.

Every trial builds many env copies, and each one needs the same bars, features and splits, so
:func:`prepare_market` does that work once per process and caches the result. Bad input fails
early with a one-line :class:`DataError` naming the file, the column and the row, because a
sweep that dies an hour in on a malformed row (or silently trains on a NaN) is the expensive
failure mode.

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

import csv
import difflib
import functools
import io
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainables.regimes import REGIMES_DEFAULTS, regimes_ohlcv
from trainables.settings import fold_names

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
SPLIT_NAMES = ("train", "val", "test")
DATE_NAMES = ("date", "datetime", "timestamp", "time", "unix")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}
SYNTHETIC_DEFAULTS: dict[str, Any] = {"kind": "gbm", "n_bars": 6000, "seed": 42, "freq": "1h"}
SYNTHETIC_KINDS = ("gbm", "regimes")
DATA_KEYS = ("path", "synthetic", "splits", "features", "walk_forward")
WALK_FORWARD_KEYS = ("folds", "mode")
WALK_FORWARD_MODES = ("expanding", "rolling")

# Formats pandas cannot infer on its own, seen in real exchange exports.
_DATE_FORMATS = (
    "%Y-%m-%d %I-%p",        # CryptoDataDownload: 2019-10-17 09-AM
    "%Y-%m-%d %I-%M %p",
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%d.%m.%Y %H:%M:%S",     # Dukascopy
    "%d.%m.%Y %H:%M",
    "%Y.%m.%d %H:%M",        # MetaTrader
    "%Y%m%d %H%M%S",
    "%Y%m%d",
)
_QUOTE_CURRENCIES = ("usd", "usdt", "usdc", "busd", "eur", "gbp", "jpy", "krw", "aud", "cad",
                     "chf", "try", "dai")
_FEATURE_CLIP = 10.0
_YEAR = pd.Timedelta(days=365.25)


class DataError(ValueError):
    """Bad market data; message is ONE line naming the problem (and where: file, row/timestamp)."""


# -- loading ---------------------------------------------------------------------------------

def load_bars(path: str | os.PathLike) -> pd.DataFrame:
    """Load and validate a CSV of price bars.

    Copes with real exports: a source-comment line above the header, rows newest first,
    exchange-specific date formats (``2019-10-17 09-AM``), epoch seconds or milliseconds, and
    column names in any case (``Close``, ``Volume USD``).

    Args:
        path: CSV file. A ``close`` column (any case) and a date column named date, datetime,
            timestamp, time or unix are required; open/high/low/volume are used when present.

    Returns:
        float64 columns ``open, high, low, close, volume`` (those present; close always), then
        every other numeric column, lower-cased and kept as-is (user feature columns), indexed
        by a naive-UTC ``DatetimeIndex`` named ``date`` in ascending order.

    Raises:
        DataError: the file is missing, unreadable, not a CSV of bars, or has a bad value; the
            message names the file and the first offending row.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"a data path must be a file name, got {path!r}")
    where = str(path)
    text = _read_text(Path(path))
    header_line = _find_header(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Rows longer than the header: pandas would silently drop fields (index_col=False)
            # or turn the first column into the index; both misalign the data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(io.StringIO(text), skiprows=header_line, skipinitialspace=True,
                              index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(f"{where}: some rows have more fields than the header (line "
                        f"{header_line + 1}); check the delimiter and trailing commas") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        raise DataError(f"{where}: cannot parse as CSV: {_one_line(exc)}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise DataError(f"{where}: has a header but no data rows (columns: {list(raw.columns)})")
    # File line (1-based) of each row, to point users at the exact row.
    lines = np.arange(len(raw)) + header_line + 2

    lower = {}
    for column in raw.columns:
        lower.setdefault(column.lower(), column)
    date_col = next((c for c in raw.columns if c.lower() in DATE_NAMES), None)
    if date_col is None:
        raise DataError(f"{where}: no date column; name one of {list(DATE_NAMES)} "
                        f"(columns found: {list(raw.columns)})")
    if "close" not in lower:
        raise DataError(f"{where}: no 'close' column (columns found: {list(raw.columns)})")
    chosen = {name: lower[name] for name in PRICE_COLUMNS if name in lower}
    volume = _volume_column(raw)
    if volume is not None:
        chosen["volume"] = volume

    dates = _parse_dates(raw[date_col], date_col, where, lines)
    order = np.argsort(dates.to_numpy(), kind="stable")
    dates = pd.DatetimeIndex(dates.to_numpy()[order], name="date")
    raw, lines = raw.iloc[order].reset_index(drop=True), lines[order]

    bars = pd.DataFrame(index=dates)
    for name, column in chosen.items():
        bars[name] = _numeric_column(raw[column], name, column, where, dates, lines)
    skip = set(chosen.values()) | {c for c in raw.columns if c.lower() in DATE_NAMES}
    for column in raw.columns:
        name = column.lower()
        if (column in skip or name in bars.columns or name.startswith("unnamed:")
                or raw[column].dtype == bool
                or not pd.api.types.is_numeric_dtype(raw[column])):
            continue
        bars[name] = raw[column].to_numpy(dtype=np.float64)

    duplicated = np.flatnonzero(dates.duplicated())
    if len(duplicated):
        i = int(duplicated[0])
        raise DataError(f"{where}: duplicate timestamp {dates[i]} (lines {lines[i - 1]} and "
                        f"{lines[i]}); each bar needs its own time")
    return bars


def _read_text(path: Path) -> str:
    where = str(path)
    if not path.exists():
        raise DataError(f"{where}: no such file")
    if path.is_dir():
        raise DataError(f"{where}: is a directory, not a CSV file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise DataError(f"{where}: is empty")
    if b"\x00" in data[:65536]:
        raise DataError(f"{where}: is a binary file, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: is not UTF-8 text (undecodable byte at offset {exc.start}); "
                        "save it as a UTF-8 CSV") from None


def _find_header(text: str) -> int:
    """Index of the header line, skipping source comments that some exports put above it.

    The header is the first of the opening lines with a ``close`` field; failing that, the
    first line with as many fields as the line after it (a comment line rarely has).
    """
    lines = text.splitlines()[:20]
    try:
        rows = list(csv.reader(lines))
    except csv.Error:
        return 0
    for i, row in enumerate(rows):
        if any(field.strip().lower() == "close" for field in row):
            return i
    for i, row in enumerate(rows[:-1]):
        if len(row) > 1 and len(row) == len(rows[i + 1]) and not row[0].lower().startswith("http"):
            return i
    return 0


def _volume_column(raw: pd.DataFrame) -> str | None:
    """The volume column: an exact ``volume``, else the quote-currency one of ``volume*``."""
    candidates = [c for c in raw.columns if c.lower().startswith("volume")]
    exact = [c for c in candidates if c.lower() == "volume"]
    if exact or not candidates:
        return exact[0] if exact else None
    suffixes = {c: c.lower()[len("volume"):].strip(" _-.()") for c in candidates}
    symbol_col = next((c for c in raw.columns if c.lower() in ("symbol", "pair", "ticker")), None)
    if symbol_col is not None and len(raw):
        symbol = "".join(ch for ch in str(raw[symbol_col].iloc[0]).lower() if ch.isalnum())
        for column, suffix in suffixes.items():
            if suffix and symbol.endswith(suffix) and symbol != suffix:
                return column
    for column, suffix in suffixes.items():
        if suffix in _QUOTE_CURRENCIES:
            return column
    return candidates[0]


def _parse_dates(column: pd.Series, name: str, where: str, lines: np.ndarray) -> pd.DatetimeIndex:
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(f"{where}: empty date in column {name!r} at line {lines[missing[0]]}")
    if pd.api.types.is_numeric_dtype(column) and column.dtype != bool:
        values = column.to_numpy(dtype=np.float64)
        biggest = float(np.nanmax(np.abs(values)))
        unit = next(u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", math.inf))
                    if biggest < top)
        try:
            parsed = pd.to_datetime(values, unit=unit)
        except (ValueError, OverflowError) as exc:
            raise DataError(f"{where}: cannot read column {name!r} as epoch {unit}: "
                            f"{_one_line(exc)}") from None
        return pd.DatetimeIndex(parsed)

    strings = column.astype(str).str.strip()
    formats = (None, *_DATE_FORMATS)
    for fmt in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(strings, format=fmt, utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
        return pd.DatetimeIndex(parsed).tz_localize(None)
    # Nothing parses every row: point at the first row the most successful format misses.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attempts = [(pd.to_datetime(strings, format=fmt, utc=True, errors="coerce"), fmt)
                    for fmt in formats]
    best, best_format = max(attempts, key=lambda attempt: int(attempt[0].notna().sum()))
    bad = int(np.flatnonzero(best.isna().to_numpy())[0])
    hint = f" (other rows match {best_format!r})" if best_format and best.notna().any() else ""
    raise DataError(f"{where}: cannot parse column {name!r} as dates: {strings.iloc[bad]!r} at "
                    f"line {lines[bad]}{hint}; use ISO dates like 2019-10-17 09:00 or epoch "
                    f"seconds")


def _numeric_column(values: pd.Series, name: str, column: str, where: str,
                    dates: pd.DatetimeIndex, lines: np.ndarray) -> np.ndarray:
    """One OHLCV column as float64, rejecting text, gaps and impossible values."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    present = values.notna().to_numpy()
    bad = np.flatnonzero(present & ~np.isfinite(numbers))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where}: non-numeric {name} {values.iloc[i]!r} in column {column!r} at "
                        f"{dates[i]} (line {lines[i]})")
    gaps = np.flatnonzero(~present)
    if len(gaps):
        i = int(gaps[0])
        raise DataError(f"{where}: {len(gaps)} missing value(s) in column {column!r}, the first at "
                        f"{dates[i]} (line {lines[i]}); fill or drop those rows")
    impossible = np.flatnonzero(numbers < 0 if name == "volume" else numbers <= 0)
    if len(impossible):
        i = int(impossible[0])
        kind = "negative" if name == "volume" else "non-positive"
        raise DataError(f"{where}: {kind} {name} {numbers[i]:g} in column {column!r} at {dates[i]} "
                        f"(line {lines[i]})")
    return numbers


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(f"unknown feature column {column!r}{hint} (available: {available})")
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
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        interval: median time between bars.
        source: the file path, or ``synthetic(seed=..., n_bars=...)``.
    """

    bars: pd.DataFrame
    features: pd.DataFrame
    splits: dict[str, tuple[int, int]]
    interval: pd.Timedelta
    source: str

    def split_frame(self, name: str) -> pd.DataFrame:
        """The bars of one split ("train", "val", "test" or a fold's, e.g. "fold0_val")."""
        if name not in self.splits:
            raise DataError(f"unknown split {name!r}; choose one of {list(self.splits)}")
        start, end = self.splits[name]
        return self.bars.iloc[start:end]

    @property
    def periods_per_year(self) -> float:
        """Bars per year, to annualise per-bar ratios such as Sharpe.

        Counts 365.25 days a year because crypto trades around the clock; for markets with
        sessions (stocks: about 252 days) this overstates annualised figures.
        """
        return _YEAR / self.interval


def prepare_market(data: Mapping[str, Any] | None, min_split_bars: int = 64) -> MarketData:
    """Load (or generate), validate, featurise and split the market of a sweep's ``data`` section.

    Cached per process: RLlib builds many env copies per worker, and they must all see the
    same market without re-reading the file. A file edited in place (new mtime or size) is
    loaded again.

    Args:
        data: keys ``path`` (CSV; absent or None for the synthetic default), ``synthetic``
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
        bars = load_bars(file_key[0])
        source = str(data["path"])
    else:
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
    interval = pd.Timedelta(pd.Series(bars.index).diff().median())

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
    return MarketData(bars=bars, features=features, splits=splits, interval=interval,
                      source=source)


def describe(market: MarketData) -> dict[str, Any]:
    """A JSON-ready summary of a prepared market, for ``tradetune data FILE``."""
    index = market.bars.index
    splits = {}
    for name, (start, end) in market.splits.items():
        part = index[start:end]
        splits[name] = {"rows": int(end - start),
                        "first": part[0].isoformat() if len(part) else None,
                        "last": part[-1].isoformat() if len(part) else None}
    return {"source": market.source, "rows": int(len(index)),
            "first": index[0].isoformat(), "last": index[-1].isoformat(),
            "interval": _format_interval(market.interval),
            "periods_per_year": round(market.periods_per_year, 2),
            "splits": splits, "features": list(market.features.columns),
            "bar_columns": list(market.bars.columns)}


def _format_interval(interval: pd.Timedelta) -> str:
    """A bar interval the way people write it: "1h", "15min", "1d", "30s"."""
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and math.isclose(seconds % size, 0.0, abs_tol=1e-9):
            return f"{int(seconds // size)}{unit}"
    return str(interval)
