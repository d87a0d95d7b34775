"""examples/run_onnx.py reads a deployed policy's bars with the reader training used (the
bundle's copy of trainables/bar_files.py), acts on the newest bar, and refuses what it cannot
use with one line and exit status 1, never a traceback.

The bundle here is small and built by hand so these tests run in seconds: a policy.onnx whose
action is 1 when the newest close is above the one before (so a window fed in the wrong order,
or ending at the wrong bar, shows), a policy.json with the fields the script reads, and the
reader copied the way ``export --onnx`` copies it (the real export is checked end to end in
tests/search/test_onnx_export.py)."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainables import bar_files
from trainables.bar_files import load_bars

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "run_onnx.py"
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"  # shipped, real
MONTHLY = REPO / "tests" / "data" / "coinbase_btcusd_1M_month_ends.csv"
LOOKBACK = 24
FEATURES = ["log_return_1", "rsi_14", "range", "volume_z_24"]


def _run_onnx():
    spec = importlib.util.spec_from_file_location("run_onnx", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_ONNX = _run_onnx()


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> dict[int, Path]:
    """policy.onnx files (by lookback): action 1 when the last close is above the one before."""
    import torch

    from trainables.onnx_policy import export_onnx

    class Rising(torch.nn.Module):
        def forward(self, bars: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
            rising = (bars[:, -1, 3] > bars[:, -2, 3]).float()
            return (rising * (position[:, 0] > -100).float()).to(torch.int64)

    folder = tmp_path_factory.mktemp("graph")
    paths = {}
    for lookback in (LOOKBACK, 12):
        paths[lookback] = folder / f"policy-{lookback}.onnx"
        export_onnx(Rising(), (torch.ones(1, lookback, 5), torch.zeros(1, 1)),
                    ["bars", "position"], str(paths[lookback]))
    return paths


def bundle(graph: dict[int, Path], folder: Path, *, features=FEATURES, interval="1h",
           lookback=LOOKBACK, reading=None, reader=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(graph[lookback], folder / "policy.onnx")
    spec = {
        "format": "tradetune-policy/1", "bar_interval": interval, "features": list(features),
        "actions": [{"index": 0, "exposure": 0.0, "meaning": "cash"},
                    {"index": 1, "exposure": 1.0, "meaning": "long 100%"}],
        "action_meanings": {"0": "hold cash", "1": "hold the asset"},
        "policy.onnx": {"inputs": [{"name": "bars", "dtype": "float32",
                                    "shape": ["batch", lookback, 5],
                                    "columns": ["open", "high", "low", "close", "volume"]},
                                   {"name": "position", "dtype": "float32",
                                    "shape": ["batch", 1]}],
                        "lookback": lookback},
        "data": {"source": "test", "reading": reading or {"date_column": None, "sep": None,
                                                          "decimal": None}},
    }
    (folder / "policy.json").write_text(json.dumps(spec))
    if reader:  # what export --onnx does (search/results/onnx_bundle.py, READER_FILE)
        shutil.copy(bar_files.__file__, folder / "bar_files.py")
    return folder


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = RUN_ONNX.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args: object) -> str:
    code, out, err = run(capsys, *args)
    assert code == 1 and out == "", out
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("run_onnx.py: ")
    return err.strip()


def coinbase(rows: int = 200) -> pd.DataFrame:
    return load_bars(COINBASE).iloc[-rows:]


def write(bars: pd.DataFrame, path: Path, fmt: str | None = None, newest_first: bool = True
          ) -> Path:
    frame = bars.iloc[::-1] if newest_first else bars
    if fmt is not None:
        frame = frame.copy()
        frame.index = frame.index.strftime(fmt).rename("date")
    frame.to_csv(path)
    return path


def expected(bars: pd.DataFrame) -> str:
    close = bars["close"].to_numpy()
    action = int(close[-1] > close[-2])
    meaning = {0: "hold cash", 1: "hold the asset"}[action]
    return (f"last bar {bars.index[-1].isoformat()} (close {close[-1]:.10g}, {LOOKBACK} bars read, "
            f"position 0): action {action} = {meaning}")


@pytest.mark.parametrize("fmt", [None, "%m/%d/%Y %I:%M %p", "%d/%m/%Y %H:%M",
                                 "%Y-%m-%d %I-%p"])
def test_the_decision_is_for_the_newest_bar_whatever_the_date_format(graph, tmp_path, capsys,
                                                                    fmt):
    bars = coinbase()
    folder = bundle(graph, tmp_path / "b")
    code, out, err = run(capsys, folder, write(bars, tmp_path / "bars.csv", fmt))
    assert code == 0, err
    assert out.strip() == expected(bars)  # 2019-10-17T09:00:00, the file's first row


def test_the_window_is_fed_oldest_first(graph, tmp_path, capsys):
    bars = coinbase()
    # The newest bar falls, the oldest two rise: reversed, the window says the opposite.
    bars.iloc[-1, bars.columns.get_loc("close")] = bars["close"].iloc[-2] * 0.99
    bars.iloc[-1, bars.columns.get_loc("low")] = bars[["low", "close"]].iloc[-1].min()
    first, second = bars.index[-LOOKBACK], bars.index[-LOOKBACK + 1]
    bars.loc[second, "close"] = bars.loc[first, "close"] * 1.01
    bars.loc[second, "high"] = max(bars.loc[second, "high"], bars.loc[second, "close"])
    folder = bundle(graph, tmp_path / "b")
    code, out, err = run(capsys, folder, write(bars, tmp_path / "bars.csv", "%m/%d/%Y %I:%M %p"))
    assert code == 0, err
    assert out.strip().endswith("action 0 = hold cash"), out


def test_prices_that_training_refuses_are_refused_with_one_line(graph, tmp_path, capsys):
    folder = bundle(graph, tmp_path / "b")
    bars = coinbase()
    cases = {"empty": (np.nan, r"1 missing value\(s\) in column 'close', the first at "
                               r"2019-10-17 08:00:00"),
             "zero": (0.0, r"non-positive close 0 in column 'close' at 2019-10-17 08:00:00"),
             "negative": (-5.0, r"non-positive close -5 in column 'close'")}
    for name, (value, message) in cases.items():
        broken = bars.copy()
        broken.iloc[-2, broken.columns.get_loc("close")] = value
        err = refused(capsys, folder, write(broken, tmp_path / f"{name}.csv", "%d/%m/%Y %H:%M"))
        assert re.search(message, err), err
    tiny = bars.copy()  # positive, but 0 in float32: no feature can be computed from it
    tiny["close"] = 1e-50
    tiny[["open", "high", "low"]] = 1e-50
    err = refused(capsys, folder, write(tiny, tmp_path / "tiny.csv"))
    assert "close 1e-50 at" in err and "is not a positive float32 number" in err


def test_thousands_separators_and_other_layouts_read_as_in_training(graph, tmp_path, capsys):
    bars = coinbase().round(2)
    folder = bundle(graph, tmp_path / "b")
    text = bars.iloc[::-1].copy()
    for column in ("open", "high", "low", "close", "volume"):
        text[column] = [f"{v:,.2f}" for v in text[column]]
    path = tmp_path / "thousands.csv"
    text.rename_axis("Date").to_csv(path)
    code, out, err = run(capsys, folder, path)
    assert code == 0, err
    assert out.strip() == expected(bars)
    semicolons = tmp_path / "semicolons.csv"  # data.decimal as the study was trained with
    bars.iloc[::-1].rename_axis("date").to_csv(semicolons, sep=";", decimal=",")
    folder = bundle(graph, tmp_path / "c", reading={"sep": ";", "decimal": ","})
    code, out, err = run(capsys, folder, semicolons)
    assert code == 0, err
    assert out.strip() == expected(bars)


def test_volume_is_needed_exactly_when_the_policy_reads_it(graph, tmp_path, capsys):
    bars = coinbase().drop(columns=["volume", "volume_btc"])
    path = write(bars, tmp_path / "no_volume.csv", "%m/%d/%Y %I:%M %p")
    trained_without = bundle(graph, tmp_path / "a",
                             features=[f for f in FEATURES if f != "volume_z_24"])
    code, out, err = run(capsys, trained_without, path)
    assert code == 0, err
    assert out.strip() == expected(bars)
    err = refused(capsys, bundle(graph, tmp_path / "b"), path)
    assert "no volume column; the policy was trained with one (its feature volume_z_24" in err
    closes = bars[["close"]]  # close only: fine for a policy that reads nothing else
    path = write(closes, tmp_path / "close_only.csv")
    code, out, err = run(capsys, bundle(graph, tmp_path / "c", features=["log_return_1"]), path)
    assert code == 0, err
    err = refused(capsys, trained_without, path)
    assert "no high column; the policy was trained with one (its feature range" in err


def test_bad_bundles_and_files_are_one_line(graph, tmp_path, capsys):
    bars_csv = write(coinbase(), tmp_path / "bars.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no policy.json" in refused(capsys, empty, bars_csv)
    assert "no such folder" in refused(capsys, tmp_path / "nope", bars_csv)
    folder = bundle(graph, tmp_path / "b")
    (folder / "policy.onnx").unlink()
    assert "no policy.onnx beside policy.json" in refused(capsys, folder, bars_csv)
    folder = bundle(graph, tmp_path / "c")
    (folder / "policy.onnx").write_bytes(b"not a graph")
    assert "onnxruntime cannot run it" in refused(capsys, folder, bars_csv)
    folder = bundle(graph, tmp_path / "d")
    (folder / "policy.json").write_text("{not json")
    assert "cannot be read as JSON" in refused(capsys, folder, bars_csv)
    folder = bundle(graph, tmp_path / "e")
    (folder / "bar_files.py").write_text("raise RuntimeError('damaged')\n")
    assert "cannot be loaded as the bundle's bar reader" in refused(capsys, folder, bars_csv)
    folder = bundle(graph, tmp_path / "f")
    assert "no such file" in refused(capsys, folder, tmp_path / "missing.csv")
    assert "is a directory" in refused(capsys, folder, tmp_path)
    err = refused(capsys, folder, write(coinbase(LOOKBACK - 1), tmp_path / "short.csv"))
    assert f"{LOOKBACK - 1} bars; the policy needs the last {LOOKBACK}" in err
    assert "--position 2 is none of the policy's exposures" in refused(
        capsys, folder, bars_csv, "--position", "2")
    daily = load_bars(COINBASE).resample("1D").last().iloc[-100:]
    err = refused(capsys, folder, write(daily, tmp_path / "daily.csv", "%d.%m.%Y"))
    assert "bars every 1 days 00:00:00; the policy was trained on 1h bars" in err
    ambiguous = daily.loc["2019-10-01":"2019-10-12"]
    err = refused(capsys, bundle(graph, tmp_path / "g", lookback=12),
                  write(ambiguous, tmp_path / "ambiguous.csv", "%d/%m/%Y"))
    assert "read day first (12 Oct 2019) and month first (Dec 10 2019)" in err


def test_monthly_bars_for_a_monthly_policy(graph, tmp_path, capsys):
    folder = bundle(graph, tmp_path / "b", interval="1 month", lookback=12)
    code, out, err = run(capsys, folder, MONTHLY)
    assert code == 0, err
    assert out.startswith("last bar 2019-09-30T00:00:00 (close 8304.96, 12 bars read")
    err = refused(capsys, bundle(graph, tmp_path / "c", lookback=12), MONTHLY)
    assert "bars every 1 month; the policy was trained on 1h bars" in err


def _isolated(folder: Path, bars: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The script copied out of the repository, run by an interpreter that cannot import
    TradeTune's packages (as on a machine that has only numpy, pandas and onnxruntime)."""
    shutil.copy(SCRIPT, cwd / "run_onnx.py")
    driver = (
        "import os, runpy, sys\n"
        f"repo = os.path.realpath({str(REPO)!r})\n"
        "sys.path = [p for p in sys.path if os.path.realpath(p or '.') != repo]\n"
        f"sys.argv = ['run_onnx.py', {str(folder)!r}, {str(bars)!r}]\n"
        "try:\n"
        "    runpy.run_path('run_onnx.py', run_name='__main__')\n"
        "finally:\n"
        "    loaded = {'search', 'trainables', 'torch', 'ray'} & set(sys.modules)\n"
        "    assert not loaded, loaded\n")
    return subprocess.run([sys.executable, "-I", "-c", driver], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_without_tradetune_the_bundles_reader_is_used(graph, tmp_path):
    bars = coinbase()
    path = write(bars, tmp_path / "bars.csv", "%m/%d/%Y %I:%M %p")
    done = _isolated(bundle(graph, tmp_path / "b"), path, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected(bars)
    broken = bars.copy()
    broken.iloc[-3, broken.columns.get_loc("close")] = 0.0
    done = _isolated(bundle(graph, tmp_path / "c"), write(broken, tmp_path / "z.csv"), tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "non-positive close 0" in done.stderr, done.stderr
    # A bundle exported before the reader was part of it: TradeTune's reader, or a refusal.
    old = bundle(graph, tmp_path / "old", reader=False)
    done = _isolated(old, path, tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "has no bar_files.py" in done.stderr and "export --onnx" in done.stderr
    code = RUN_ONNX.main([str(old), str(path)])  # here TradeTune is importable
    assert code == 0
