"""Chronological train/val/test splits, and walk-forward folds over the bars before test.

Splits are half-open row ranges ``[start, end)`` into the warm-up-free bars, in time order
train < val < test, never shuffled: a shuffled split would let the agent see the future.
Walk-forward folds (``data.walk_forward``) cut the bars before the test split into K + 1
blocks; fold i validates on block i + 1 and trains on the blocks before it (expanding) or on
block i alone (rolling). No fold reaches the test split, and no fold's training or validation
uses a bar after its validation period. Reading ``data.walk_forward`` imports no pandas (the
config check and the trainable's run plan use it).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainables.errors import DataError, did_you_mean
from trainables.settings import fold_names

if TYPE_CHECKING:
    import pandas as pd

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLITS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}
WALK_FORWARD_KEYS = ("folds", "mode")
WALK_FORWARD_MODES = ("expanding", "rolling")

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
    import pandas as pd

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


def check_keys(section: str, mapping: Mapping, known: tuple[str, ...]) -> None:
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
    check_keys("data.walk_forward", value, WALK_FORWARD_KEYS)
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
