"""The prepared market of a sweep's ``data`` section: bars, features and splits, once per process.

Every trial builds many env copies, and each one needs the same bars, features and splits, so
:func:`prepare_market` does that work once per process and caches the result. Bad input fails
early with a one-line :class:`~trainables.errors.DataError` naming the file, the column and the
row, because a sweep that dies an hour in on a malformed row (or silently trains on a NaN) is
the expensive failure mode. The parts: reading files is :mod:`trainables.bar_files`, embedded
markets :mod:`trainables.synthetic`, features :mod:`trainables.features`, splits and
walk-forward folds :mod:`trainables.splits`. Timestamps are naive UTC.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainables.bar_files import check_spacing, load_bars
from trainables.errors import DataError
from trainables.features import FEATURE_WARMUP, compute_features
from trainables.regimes import REGIMES_DEFAULTS
from trainables.settings import fold_names
from trainables.splits import (SPLIT_NAMES, WALK_FORWARD_KEYS, check_keys, split_positions,
                               walk_forward_positions, walk_forward_settings)
from trainables.synthetic import SYNTHETIC_DEFAULTS, synthetic_bars

FILE_KEYS = ("date_column", "sep", "decimal")
DATA_KEYS = ("path", "synthetic", "splits", "features", "walk_forward", *FILE_KEYS)

_YEAR = pd.Timedelta(days=365.25)


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
    check_keys("data", data, DATA_KEYS)
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
        check_keys("data.synthetic", synthetic, (*SYNTHETIC_DEFAULTS, *REGIMES_DEFAULTS))
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
