"""What ``tradetune data FILE`` (and ``launch --dry-run``, the ONNX bundle) says about a market."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from trainables.market import MarketData


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
            "interval": market.spacing.get("calendar") or format_interval(market.interval),
            "periods_per_year": round(market.periods_per_year, 2),
            "file_rows": market.file_rows, "warmup_bars": market.warmup,
            "gaps": gaps, "file": market.file,
            "splits": splits, "features": list(market.features.columns),
            "bar_columns": list(market.bars.columns)}


def format_interval(interval: pd.Timedelta) -> str:
    """A bar interval the way people write it: "1h", "15min", "1d", "30s"."""
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and math.isclose(seconds % size, 0.0, abs_tol=1e-9):
            return f"{int(seconds // size)}{unit}"
    return str(interval)
