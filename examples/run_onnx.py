"""Run an exported TradeTune policy on a CSV of bars, without TradeTune.

    python run_onnx.py EXPORT_DIR BARS.csv [--position EXPOSURE]

EXPORT_DIR is what ``tradetune export --onnx`` wrote (policy.onnx and policy.json). BARS.csv
(or .csv.gz) has open, high, low, close and volume columns (any case), and a date column (date, datetime,
timestamp or time) or rows oldest first. Prints the policy's action for the last bar and what
it means, given the position held now: the signed exposure of the action last taken, one of
the ``actions`` exposures in policy.json (0 cash, 1 all in the asset, -1 all short, 0.5 half
long, ...). Needs only numpy, pandas and onnxruntime.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd

DATE_COLUMNS = ("date", "datetime", "timestamp", "time")


def read_bars(path: Path, columns: list[str]) -> pd.DataFrame:
    """The bars of ``path``, oldest first, with ``columns`` (lower-case) as float32."""
    opener = gzip.open if path.suffix == ".gz" else open  # pandas reads .gz itself
    with opener(path, "rt") as handle:
        lines = [line for _, line in zip(range(20), handle)]
    header = next((i for i, line in enumerate(lines) if "close" in line.lower()), 0)
    frame = pd.read_csv(path, skiprows=header)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        sys.exit(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    date = next((c for c in DATE_COLUMNS if c in frame.columns), None)
    if date is not None:
        for fmt in ("ISO8601", "%Y-%m-%d %I-%p"):  # the second: CryptoDataDownload's files
            try:
                frame[date] = pd.to_datetime(frame[date], format=fmt)
            except ValueError:
                continue
            frame = frame.sort_values(date).set_index(date)
            break
    return frame[columns].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("bars", type=Path)
    parser.add_argument("--position", type=float, default=0.0,
                        help="exposure held now: 0 cash (default), 1 all in the asset, -1 all "
                             "short, or another exposure of the policy's actions")
    args = parser.parse_args()

    spec = json.loads((args.export_dir / "policy.json").read_text())
    # Bundles older than signed exposures list no "actions": theirs were 0 cash, 1 the asset.
    exposures = [a["exposure"] for a in spec.get("actions", [{"exposure": 0}, {"exposure": 1}])]
    if not any(abs(args.position - e) < 1e-9 for e in exposures):
        listed = ", ".join(f"{e:g}" for e in exposures)
        sys.exit(f"--position {args.position:g} is none of the policy's exposures ({listed})")
    policy = spec["policy.onnx"]
    if not isinstance(policy, dict):
        sys.exit(f"policy.onnx: {policy}")
    bars_input = policy["inputs"][0]
    lookback = policy["lookback"]
    bars = read_bars(args.bars, bars_input["columns"])
    if len(bars) < lookback:
        sys.exit(f"{args.bars}: {len(bars)} bars; the policy needs the last {lookback}")
    window = bars.to_numpy()[-lookback:][None]  # (1, lookback, 5), oldest first
    session = onnxruntime.InferenceSession(str(args.export_dir / "policy.onnx"))
    action = session.run(["action"], {"bars": window,
                                      "position": np.array([[args.position]], np.float32)})[0]
    meaning = spec["action_meanings"][str(int(action[0]))]
    print(f"last bar {bars.index[-1]} (close {bars['close'].iloc[-1]:g}, {lookback} bars read, "
          f"position {args.position:g}): action {int(action[0])} = {meaning}")


if __name__ == "__main__":
    main()
