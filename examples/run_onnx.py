"""Run an exported TradeTune policy on a CSV of bars, without TradeTune.

    python run_onnx.py EXPORT_DIR BARS.csv [--position EXPOSURE]

EXPORT_DIR is what ``tradetune export --onnx`` wrote (policy.onnx, policy.json and
bar_files.py). Prints the policy's action for the newest bar of BARS.csv and what it means,
given the position held now: the signed exposure of the action last taken, one of the
``actions`` exposures in policy.json (0 cash, 1 all in the asset, -1 all short, 0.5 half
long, ...). Needs only numpy, pandas and onnxruntime.

The bars are read exactly as training read them, by the same reader: ``export --onnx`` copies
TradeTune's ``trainables/bar_files.py`` into the bundle, and this script uses that copy (with
the ``data.date_column``/``sep``/``decimal`` the study was trained with, recorded in
policy.json). So every layout, date format (day-first or month-first, decided or refused as
training does), thousands separator, newest-first order, gap and bad value is handled as it
was in training: rows sorted oldest first, a file training would refuse (a missing, zero or
negative price, an interval that changes) refused with the same one line. For a bundle
exported before bar_files.py was part of it, TradeTune's own ``trainables.bar_files`` is used
when it is importable; otherwise the script refuses rather than read bars another way.

It also refuses, with one line and exit status 1, what the policy cannot act on: bars of
another interval than the policy's, fewer bars than its ``lookback``, a missing volume (or
high/low) column when the policy's features use it (a policy trained without volume takes any
file without it), prices that are not positive float32 numbers. It never guesses.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

READER_FILE = "bar_files.py"
# The bar columns each in-graph feature reads, besides close (trainables/onnx_policy.py).
USES = {"high": "range", "low": "range", "volume": "volume_z_24"}


class Refused(Exception):
    """Input this script cannot use: one line, exit status 1."""


def reader(export_dir: Path):
    """The bar-file reader training used: the bundle's copy, else TradeTune's own."""
    bundled = export_dir / READER_FILE
    if bundled.is_file():
        try:
            spec = importlib.util.spec_from_file_location("tradetune_bar_files", bundled)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.load_bars  # noqa: B018
        except Exception as exc:  # a damaged copy: say so, not a traceback
            raise Refused(f"{bundled}: cannot be loaded as the bundle's bar reader "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                          f"); export the trial again with `tradetune export --onnx`") from None
        return module
    try:
        from trainables import bar_files
    except ImportError:
        raise Refused(f"{export_dir}: has no {READER_FILE} (bundles exported before it was "
                      f"part of them); export the trial again with `tradetune export --onnx`, "
                      f"or run this where TradeTune is installed") from None
    return bar_files


def read_spec(export_dir: Path) -> dict:
    if not export_dir.is_dir():
        raise Refused(f"{export_dir}: no such folder; give the folder `tradetune export --onnx` "
                      f"wrote")
    path = export_dir / "policy.json"
    if not path.is_file():
        raise Refused(f"{export_dir}: no policy.json; give the folder `tradetune export --onnx` "
                      f"wrote")
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Refused(f"{path}: cannot be read as JSON: {str(exc).splitlines()[0]}") from None
    policy = spec.get("policy.onnx") if isinstance(spec, dict) else None
    if isinstance(policy, str):
        raise Refused(f"{path}: policy.onnx {policy}")
    try:
        if policy["inputs"][0]["name"] != "bars" or int(policy["lookback"]) < 1:
            raise ValueError
    except (KeyError, IndexError, TypeError, ValueError):
        raise Refused(f"{path}: is not a TradeTune policy.json (no policy.onnx inputs and "
                      f"lookback)") from None
    if not (export_dir / "policy.onnx").is_file():
        raise Refused(f"{export_dir}: no policy.onnx beside policy.json")
    return spec


def same_interval(trained: str, spacing: dict) -> bool:
    """Whether the file's bar interval is the one the policy was trained on (policy.json's
    ``bar_interval``: "1h", "15min", "1d" or a calendar interval such as "1 month")."""
    if spacing.get("calendar") or not trained:
        return spacing.get("calendar") == trained
    try:
        return pd.Timedelta(trained) == spacing["interval"]
    except ValueError:
        return False


def window_of(bars: pd.DataFrame, spec: dict, where: str) -> np.ndarray:
    """The last ``lookback`` bars as float32 ``(1, lookback, 5)``, oldest first."""
    policy = spec["policy.onnx"]
    lookback = int(policy["lookback"])
    columns = policy["inputs"][0]["columns"]
    features = set(spec.get("features", ()))
    if len(bars) < lookback:
        raise Refused(f"{where}: {len(bars)} bars; the policy needs the last {lookback}")
    spacing = bars.attrs.get("spacing", {})
    trained, calendar = spec.get("bar_interval"), spacing.get("calendar")
    if trained and not same_interval(trained, spacing):
        have = calendar or str(spacing.get("interval"))
        raise Refused(f"{where}: bars every {have}; the policy was trained on {trained} bars "
                      f"(its features mean something else at another interval)")
    bars = bars.iloc[-lookback:].copy()
    for column in columns:
        if column in bars:
            continue
        if USES.get(column) in features:
            raise Refused(f"{where}: no {column} column; the policy was trained with one (its "
                          f"feature {USES[column]} reads it)")
        # Not read by any of the policy's features (as in training, which had none).
        bars[column] = 1.0 if column == "volume" else bars["close"]
    window = bars[columns].to_numpy(dtype=np.float32)
    used = ["close", *(c for c in ("high", "low") if USES[c] in features)]
    for column in used:
        values = window[:, columns.index(column)]
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if len(bad):
            i = int(bad[0])
            raise Refused(f"{where}: {column} {float(bars[column].iloc[i]):g} at "
                          f"{bars.index[i]} is not a positive float32 number; the policy "
                          f"cannot act on it")
    volume = window[:, columns.index("volume")]
    if not np.isfinite(volume).all():
        raise Refused(f"{where}: a volume in the last {lookback} bars is too large for float32")
    return window[None]


def decide(args: argparse.Namespace) -> str:
    spec = read_spec(args.export_dir)
    # Bundles older than signed exposures list no "actions": theirs were 0 cash, 1 the asset.
    exposures = [a["exposure"] for a in spec.get("actions", [{"exposure": 0}, {"exposure": 1}])]
    if not any(abs(args.position - e) < 1e-9 for e in exposures):
        listed = ", ".join(f"{e:g}" for e in exposures)
        raise Refused(f"--position {args.position:g} is none of the policy's exposures "
                      f"({listed})")
    bar_files = reader(args.export_dir)
    reading = dict((spec.get("data") or {}).get("reading") or {})
    given = {"date_column": args.date_column, "sep": args.sep, "decimal": args.decimal}
    reading.update({k: v for k, v in given.items() if v is not None})
    try:
        bars = bar_files.load_bars(args.bars, **reading)
    except ValueError as exc:  # bar_files.DataError: one line naming the file and row
        raise Refused(str(exc)) from None
    window = window_of(bars, spec, str(args.bars))
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(args.export_dir / "policy.onnx"))
        action = session.run(["action"], {"bars": window,
                                          "position": np.array([[args.position]], np.float32)})
    except Exception as exc:  # onnxruntime's own error types: a damaged or foreign graph
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise Refused(f"{args.export_dir / 'policy.onnx'}: onnxruntime cannot run it: "
                      f"{why}") from None
    index = int(action[0][0])
    meaning = spec.get("action_meanings", {}).get(str(index), "?")
    lookback = window.shape[1]
    last = bars.index[-1]
    return (f"last bar {last.isoformat()} (close {bars['close'].iloc[-1]:.10g}, {lookback} bars "
            f"read, position {args.position:g}): action {index} = {meaning}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("bars", type=Path)
    parser.add_argument("--position", type=float, default=0.0,
                        help="exposure held now: 0 cash (default), 1 all in the asset, -1 all "
                             "short, or another exposure of the policy's actions")
    parser.add_argument("--date-column", help="the column of bar times, if not the one "
                        "training used (default: policy.json's data.reading)")
    parser.add_argument("--sep", help="field separator, if not training's")
    parser.add_argument("--decimal", help="decimal mark, if not training's")
    args = parser.parse_args(argv)
    try:
        print(decide(args))
    except Refused as exc:
        print(f"run_onnx.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    if code:
        sys.exit(code)
