"""Reading bar files: what is on disk becomes validated bars, or one line saying why not.

Real exports differ in every detail, and each difference used to fail late or, worse, load
wrongly. This module owns those details so ``trainables.market`` deals only with bars:

- what is read is bounded: only regular files, at most :data:`MAX_DATA_BYTES` (after gzip
  decompression too), so a FIFO, a device or a huge file fails at once with one line;
- ``.csv.gz`` (any gzip file) is read, UTF-8 or UTF-16 with a byte-order mark;
- the separator (comma, semicolon, tab or ``|``) is detected from the opening lines unless
  ``data.sep`` names it; decimal commas need ``data.decimal: ","`` (never guessed: ``1,234``
  could be either);
- header layouts: a normal header (also with a source comment above it), yfinance's
  three-row header (``Price,...`` / ``Ticker,...`` / ``Date,,,``), no header at all (Kraken
  OHLCVT, Binance klines, recognised by their column count), pandas' unnamed index column,
  Stooq/MetaTrader ``<DATE>`` and Alpha Vantage ``1. open`` names;
- dates: see :func:`parse_dates` (integers that look like YYYYMMDD are dates, never epochs);
- spacing: see :func:`check_spacing` (a file whose interval changes, or with a hole longer
  than 14 days, is refused; smaller gaps are counted and reported).

It needs only numpy and pandas (TradeTune's ``DataError`` when it is there, else a
``ValueError`` of the same name), because ``export --onnx`` copies it into the bundle:
``examples/run_onnx.py`` reads a deployed policy's bars with the very reader training used.
That is also why it is one module of about 900 lines rather than several: the bundle carries
one file that reads bars exactly as training did, with nothing else to import.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import stat
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from trainables.errors import DataError
except ImportError:  # the copy ``export --onnx`` puts beside policy.onnx, run without TradeTune
    class DataError(ValueError):  # type: ignore[no-redef]
        """Bad market data; the message names the file, column and row (one line)."""

PRICE_COLUMNS = ("open", "high", "low", "close")
DATE_NAMES = ("date", "datetime", "timestamp", "time", "unix")
SEPARATORS = {",": ",", ";": ";", "\t": "\t", "|": "|", "tab": "\t", "\\t": "\t"}
DECIMALS = (".", ",")
MAX_DATA_BYTES = 256 << 20
"""Largest data file read (bytes on disk, and after gzip decompression): 256 MiB, about 2.5
million bars (five years of minute bars) and 2 GB of memory to load. A bigger file is refused
before it is read, not after memory runs out."""
HOLE_DAYS = 14
HOLE_BARS = 10
CHANGE_WINDOW = 20
CHANGE_SHARE = 0.75
WEEKEND_SHARE = 0.05

# Column names of header-less exports, by column count.
_HEADERLESS = {
    5: ("timestamp", "open", "high", "low", "close"),
    6: ("timestamp", "open", "high", "low", "close", "volume"),
    7: ("timestamp", "open", "high", "low", "close", "volume", "trades"),  # Kraken OHLCVT
    12: ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
         "trades", "taker_buy_volume", "taker_buy_quote_volume", "ignore"),  # Binance klines
}
_HEADERLESS_NAMES = {5: "timestamp,open,high,low,close", 6: "timestamp,open,high,low,close,volume",
                     7: "Kraken OHLCVT", 12: "Binance kline"}
# Formats pandas cannot infer on its own, seen in real exchange exports.
_DATE_FORMATS = (
    "ISO8601",               # mixed "2026-05-04" and "2026-05-04 04:00:00" in one column
    "%Y-%m-%d %I-%p",        # CryptoDataDownload: 2019-10-17 09-AM
    "%Y-%m-%d %I-%M %p",
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%d.%m.%Y %H:%M:%S",     # Dukascopy
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",              # European spreadsheets
    "%Y.%m.%d %H:%M:%S",     # MetaTrader
    "%Y.%m.%d %H:%M",
    "%Y.%m.%d",
    "%Y%m%d %H%M%S",
    "%Y%m%d",
)
# Integers of these lengths are dates when every value is a valid one (Stooq, MetaStock).
_INTEGER_DATE_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
_EPOCH_FIRST = pd.Timestamp("1973-03-03 09:46:40")  # 1e8 seconds
_EPOCH_UNITS = (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9))
_QUOTE_CURRENCIES = ("usd", "usdt", "usdc", "busd", "eur", "gbp", "jpy", "krw", "aud", "cad",
                     "chf", "try", "dai")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*\Z")
# Thousands separators: a comma, an apostrophe (Swiss) or a space (French, also the no-break and
# narrow no-break ones); with decimal commas a point instead of the comma.
_GROUP_MARKS = {".": (",", "'", " ", "\u00a0", "\u202f"),
                ",": (".", "'", " ", "\u00a0", "\u202f")}


def _grouped(mark: str, decimal: str) -> re.Pattern:
    """A number with or without ``mark`` between groups of three digits, and ``decimal``."""
    return re.compile(rf"^[-+]?(?:\d{{1,3}}(?:{re.escape(mark)}\d{{3}})+|\d+)"
                      rf"(?:{re.escape(decimal)}\d+)?\Z")


_THOUSANDS = {(m, d): _grouped(m, d) for d, marks in _GROUP_MARKS.items() for m in marks}
# A date that starts with two numbers, day and month in either order: 04/05/2024 23:00,
# 05/04/2024 11:00 PM, 04.05.2024, 04-05-24; groups: first, separator, second, year, the rest.
_DAY_MONTH = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})((?:[ T].*)?)\Z")
_DAY = np.int64(86_400 * 10**9)


# -- the file ---------------------------------------------------------------------------------

def load_bars(path: str | os.PathLike, date_column: str | None = None, sep: str | None = None,
              decimal: str | None = None) -> pd.DataFrame:
    """Load and validate a file of price bars (CSV, or gzip-compressed CSV).

    Args:
        path: the file. A ``close`` column (any case) and a date column are required;
            open/high/low/volume are used when present.
        date_column: the column holding the bar times, when it is not found by name (date,
            datetime, timestamp, time, unix, then any name containing "date" or "time").
        sep: the field separator (``,``, ``;``, tab or ``|``); None detects it.
        decimal: ``.`` (default) or ``,`` for files written with decimal commas.

    Returns:
        float64 columns ``open, high, low, close, volume`` (those present; close always), then
        every other numeric column, lower-cased and kept as-is (user feature columns), indexed
        by a naive-UTC ``DatetimeIndex`` named ``date`` in ascending order. ``attrs["file"]``
        says how the file was read (separator, layout, date column) and ``attrs["spacing"]``
        holds the interval and the gaps (see :func:`check_spacing`).

    Raises:
        DataError: the file is missing, unreadable, too big, not a file of bars, has a bad
            value, or its spacing is refused; the message names the file and the first
            offending row.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"a data path must be a file name, got {path!r}")
    where = str(path)
    sep, decimal = _dialect(sep, decimal)
    text = read_text(Path(path))
    opening = [line for line in _head_lines(text, 30) if line.strip()]
    detected = sep is None
    sep = sep or _sniff_separator(opening)
    if decimal == sep:
        raise DataError(f"{where}: the separator and the decimal mark are both {sep!r}; set "
                        f"data.sep or data.decimal")
    layout = _layout(text, sep, where)
    raw, lines = _read_table(text, sep, decimal or ".", layout, where)

    canonical = {column: _canonical(column) for column in raw.columns}
    if layout["date_first"]:
        canonical[raw.columns[0]] = "date"
    by_name: dict[str, str] = {}
    for column, name in canonical.items():
        by_name.setdefault(name, column)
    if "close" not in by_name:
        raise DataError(f"{where}: no 'close' column (columns found: {list(raw.columns)})")
    chosen = {name: by_name[name] for name in PRICE_COLUMNS if name in by_name}
    volume = _volume_column(raw, canonical)
    if volume is not None:
        chosen["volume"] = volume

    date_col, dates = _dates(raw, canonical, date_column, where, lines)
    time_col = None
    if (by_name.get("time") not in (None, date_col)
            and (dates == dates.normalize()).all()):
        offsets = _times_of_day(raw[by_name["time"]])
        if offsets.any():
            time_col = by_name["time"]
            dates = dates + offsets
    order = np.argsort(dates.to_numpy(), kind="stable")
    dates = pd.DatetimeIndex(dates.to_numpy()[order], name="date")
    raw, lines = raw.iloc[order].reset_index(drop=True), lines[order]

    bars = pd.DataFrame(index=dates)
    for name, column in chosen.items():
        bars[name] = _numeric_column(raw[column], name, column, where, dates, lines, decimal)
    skip = set(chosen.values()) | {date_col, time_col} | {
        c for c, name in canonical.items() if name in DATE_NAMES}
    for column in raw.columns:
        name = canonical[column]
        if (column in skip or name in bars.columns or not name or name.startswith("unnamed:")
                or raw[column].dtype == bool
                or not pd.api.types.is_numeric_dtype(raw[column])):
            continue
        bars[name] = raw[column].to_numpy(dtype=np.float64)
    _check_high_low(bars, where, lines)

    duplicated = np.flatnonzero(dates.duplicated())
    if len(duplicated):
        i = int(duplicated[0])
        raise DataError(f"{where}: duplicate timestamp {dates[i]} (lines {lines[i - 1]} and "
                        f"{lines[i]}); each bar needs its own time (local times without a "
                        "time zone repeat an hour where daylight saving ends: export the file "
                        "in UTC)")
    spacing = check_spacing(dates, where, lines)
    adjusted = [str(c) for c in raw.columns
                if "adj" in canonical[c] and "close" in canonical[c]]
    bars.attrs["file"] = {"separator": sep, "separator_detected": detected,
                          "not_used": adjusted,
                          "decimal": decimal or ".", "layout": layout["name"],
                          "date_column": (layout["date_first"] or date_col) if time_col is None
                          else f"{date_col} + {time_col}"}
    bars.attrs["spacing"] = spacing
    return bars


def _dialect(sep: object, decimal: object) -> tuple[str | None, str | None]:
    if sep is not None:
        if not isinstance(sep, str) or sep.lower() not in SEPARATORS:
            raise DataError(f"data.sep must be one of ',', ';', '|' or tab (written \\t or "
                            f"tab), got {sep!r}")
        sep = SEPARATORS[sep.lower()]
    if decimal is not None and decimal not in DECIMALS:
        raise DataError(f"data.decimal must be '.' or ',', got {decimal!r}")
    return sep, decimal


def read_text(path: Path) -> str:
    """The text of a data file, refusing what cannot be a bounded file of bars."""
    where = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{where}: is a directory, not a CSV file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "a device")
        raise DataError(f"{where}: is {kind}, not a regular file; save the bars to a CSV file "
                        f"and give its path")
    if info.st_size > MAX_DATA_BYTES:
        raise DataError(f"{where}: is {_size(info.st_size)}; data files are limited to "
                        f"{_size(MAX_DATA_BYTES)}: keep only the period you train and test on")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DATA_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, where)
    elif data[:4] == b"PK\x03\x04":
        raise DataError(f"{where}: is a zip archive; unzip it (gzip-compressed .csv.gz files "
                        f"are read as they are)")
    elif data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        raise DataError(f"{where}: is bzip2/xz-compressed; decompress it (only gzip, .csv.gz, "
                        f"is read as it is)")
    if len(data) > MAX_DATA_BYTES:
        raise DataError(f"{where}: holds more than {_size(MAX_DATA_BYTES)}; data files are "
                        f"limited to that: keep only the period you train and test on")
    if not data.strip():
        raise DataError(f"{where}: is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a byte-order mark (MetaTrader)
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"{where}: starts like UTF-16 text but is not; save it as a UTF-8 "
                            f"CSV") from None
    if b"\x00" in data[:65536]:
        raise DataError(f"{where}: is a binary file, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: is not UTF-8 text (undecodable byte at offset {exc.start}); "
                        "save it as a UTF-8 CSV") from None


def _gunzip(data: bytes, where: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(MAX_DATA_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{where}: is not a valid gzip file ({_one_line(exc)})") from None
    if len(out) > MAX_DATA_BYTES:
        raise DataError(f"{where}: decompresses to more than {_size(MAX_DATA_BYTES)}; data "
                        f"files are limited to that: keep only the period you train and test on")
    return out


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


# -- separator and header layout ---------------------------------------------------------------

def _sniff_separator(lines: list[str]) -> str:
    """The separator that splits the opening lines into the same number (> 1) of fields most
    often; a comma wins ties. A header never holds a decimal comma, so semicolon files with
    decimal commas are still told apart from comma files."""
    best, best_score = ",", 0
    for sep in (",", ";", "\t", "|"):
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=sep)]
        except csv.Error:
            continue
        widths = [c for c in counts if c > 1]
        if not widths:
            continue
        common = max(set(widths), key=widths.count)
        score = counts.count(common)
        if score > best_score:
            best, best_score = sep, score
    return best


def _head_lines(text: str, count: int) -> list[str]:
    """The first ``count`` lines, without splitting a file of millions of lines."""
    head = text[:1 << 20]
    lines = head.splitlines()
    if len(head) < len(text) and len(lines) > 1:
        lines = lines[:-1]  # the prefix may end inside a line
    return lines[:count]


def _rows(text: str, sep: str, limit: int = 30) -> list[list[str]]:
    lines = _head_lines(text, limit)
    try:
        return [[field.strip() for field in row]
                for row in csv.reader(lines, delimiter=sep, skipinitialspace=True)]
    except csv.Error:
        return [line.split(sep) for line in lines]


def _layout(text: str, sep: str, where: str) -> dict:
    """Where the header is and what it looks like: ``header`` (line index), ``skip`` (rows to
    drop after it), ``names`` (for header-less files), ``date_first`` and a ``name``."""
    rows = _rows(text, sep)
    header = _find_header(rows)
    fields = rows[header] if header < len(rows) else []
    layout = {"header": header, "skip": [], "names": None, "date_first": False,
              "name": "header row"}
    if len(fields) > 1 and all(_is_number(f) for f in fields):
        names = _HEADERLESS.get(len(fields))
        if names is None:
            raise DataError(f"{where}: has no header row (its first line is {len(fields)} "
                            f"numbers) and {len(fields)} columns match no known layout "
                            f"(Kraken OHLCVT: 6 or 7, Binance klines: 12); add a header line "
                            f"such as timestamp,open,high,low,close,volume")
        layout.update(names=names, name=f"no header: {_HEADERLESS_NAMES[len(fields)]} columns")
        return layout
    if len(fields) > 1 and _looks_like_date(fields[0]) and all(_is_number(f) for f in fields[1:]):
        raise DataError(f"{where}: has no header row (its first line starts with the date "
                        f"{fields[0]!r}); add a header line such as "
                        f"date,open,high,low,close,volume")
    # yfinance: "Price,Close,..." then "Ticker,AAPL,..." then "Date,,,..."
    for i in (header + 1, header + 2):
        row = rows[i] if i < len(rows) else []
        label = row[0].lower() if row else ""
        if label not in ("ticker", *DATE_NAMES) or any(_is_number(f) for f in row[1:]):
            break
        layout["skip"].append(i)
        if label in DATE_NAMES:
            layout["date_first"] = row[0]
    if layout["skip"]:
        layout["name"] = f"yfinance header of {1 + len(layout['skip'])} rows"
    _check_duplicate_names(fields, where)
    return layout


def _find_header(rows: list[list[str]]) -> int:
    """Index of the header line, skipping source comments that some exports put above it.

    The header is the first of the opening lines with a ``close`` field; failing that, the
    first line with as many fields as the line after it (a comment line rarely has).
    """
    for i, row in enumerate(rows):
        if any(_canonical(field) == "close" for field in row):
            return i
    for i, row in enumerate(rows[:-1]):
        if len(row) > 1 and len(row) == len(rows[i + 1]) and not row[0].lower().startswith("http"):
            return i
    return 0


def _check_duplicate_names(fields: list[str], where: str) -> None:
    seen: dict[str, str] = {}
    for field in fields:
        name = _canonical(field)
        if not name:
            continue
        if name in seen:
            what = "differ only in case" if seen[name].lower() == field.lower() else \
                "name the same column"
            raise DataError(f"{where}: columns {seen[name]!r} and {field!r} {what}; keep one "
                            f"(which {name!r} to use would be a guess)")
        seen[name] = field


def _canonical(name: object) -> str:
    """A column name as matched: lower case, without Stooq/MetaTrader's ``<>`` or Alpha
    Vantage's ``4. `` prefix."""
    text = str(name).strip().strip("<>").strip()
    return re.sub(r"^\d+\.\s*", "", text).lower()


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False


def _looks_like_date(field: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return not _is_number(field) and pd.notna(pd.to_datetime(field, errors="coerce"))


def _read_table(text: str, sep: str, decimal: str, layout: dict, where: str
                ) -> tuple[pd.DataFrame, np.ndarray]:
    header = layout["header"]
    options = {"sep": sep, "decimal": decimal, "skipinitialspace": True, "index_col": False}
    if layout["names"] is not None:
        options.update(header=None, names=list(layout["names"]), skiprows=header)
    else:
        options.update(header=0, skiprows=[*range(header), *layout["skip"]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Rows longer than the header: pandas would silently drop fields (index_col=False)
            # or turn the first column into the index; both misalign the data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(io.StringIO(text), **options)
    except pd.errors.ParserWarning:
        raise DataError(f"{where}: some rows have more fields than the header (line "
                        f"{header + 1}); check the delimiter and trailing commas") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        raise DataError(f"{where}: cannot parse as CSV: {_one_line(exc)}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise DataError(f"{where}: has a header but no data rows (columns: {list(raw.columns)})")
    # File line (1-based) of each row, to point users at the exact row.
    first = header + 1 if layout["names"] is not None else header + 2 + len(layout["skip"])
    return raw, np.arange(len(raw)) + first


def _volume_column(raw: pd.DataFrame, canonical: dict[str, str]) -> str | None:
    """The volume column: an exact ``volume`` (or ``vol``), else the quote-currency one of
    ``volume*``, else one whose name ends in volume (``tick_volume``)."""
    exact = [c for c in raw.columns if canonical[c] in ("volume", "vol")]
    if exact:
        return exact[0]
    candidates = [c for c in raw.columns if canonical[c].startswith("volume")]
    if not candidates:
        return next((c for c in raw.columns if canonical[c].endswith(("volume", "vol"))), None)
    suffixes = {c: canonical[c][len("volume"):].strip(" _-.()") for c in candidates}
    symbol_col = next((c for c in raw.columns if canonical[c] in ("symbol", "pair", "ticker")),
                      None)
    if symbol_col is not None and len(raw):
        symbol = "".join(ch for ch in str(raw[symbol_col].iloc[0]).lower() if ch.isalnum())
        for column, suffix in suffixes.items():
            if suffix and symbol.endswith(suffix) and symbol != suffix:
                return column
    for column, suffix in suffixes.items():
        if suffix in _QUOTE_CURRENCIES:
            return column
    return candidates[0]


# -- dates ------------------------------------------------------------------------------------

def _dates(raw: pd.DataFrame, canonical: dict[str, str], wanted: str | None, where: str,
           lines: np.ndarray) -> tuple[str, pd.DatetimeIndex]:
    """The date column and its parsed values."""
    columns = list(raw.columns)
    if wanted is not None:
        if not isinstance(wanted, str) or not wanted.strip():
            raise DataError(f"data.date_column must be a column name, got {wanted!r}")
        match = next((c for c in columns if c == wanted.strip()), None) or next(
            (c for c in columns if canonical[c] == _canonical(wanted)), None)
        if match is None:
            raise DataError(f"{where}: data.date_column {wanted!r} is not a column (columns "
                            f"found: {columns})")
        return match, parse_dates(raw[match], match, where, lines)
    named = next((c for c in columns if canonical[c] in DATE_NAMES), None)
    if named is None:
        named = next((c for c in columns if re.search("date|time", canonical[c])
                      and not re.search("close|end|update", canonical[c])), None)
    if named is not None:
        return named, parse_dates(raw[named], named, where, lines)
    hint = (f"; say which column holds the bar times with data.date_column: NAME "
            f"(tradetune data FILE --date-column NAME)")
    first = columns[0]
    if canonical[first] == "" or canonical[first].startswith("unnamed:"):  # pandas' index
        try:
            return first, parse_dates(raw[first], first, where, lines)
        except DataError as exc:
            raise DataError(f"{where}: no date column (columns found: {columns}; the unnamed "
                            f"first column is not dates: {str(exc).split(': ', 1)[-1]}){hint}"
                            ) from None
    raise DataError(f"{where}: no date column (columns found: {columns}){hint}")


def parse_dates(column: pd.Series, name: str, where: str, lines: np.ndarray) -> pd.DatetimeIndex:
    """A date column as naive-UTC timestamps.

    Numbers: integers of 8, 12 or 14 digits that are all valid ``YYYYMMDD[HHMM[SS]]`` dates
    are read as such; other numbers are epoch seconds, milliseconds, microseconds or
    nanoseconds by magnitude, and every value must then fall between 1973-03-03 and a year
    from now (so a row number, or a date written as a number, is never taken for an epoch).
    Text: ISO 8601 and the exchange formats of ``_DATE_FORMATS``; time zones become UTC.
    """
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(f"{where}: empty date in column {name!r} at line {lines[missing[0]]}")
    if pd.api.types.is_numeric_dtype(column) and column.dtype != bool:
        return _numeric_dates(column.to_numpy(dtype=np.float64), name, where)

    strings = column.astype(str).str.strip()
    formats = (None, *_DATE_FORMATS)
    parts = strings.str.extract(_DAY_MONTH)
    if parts.notna().all(axis=None):  # 04/05/2024: day first or month first?
        parsed = _day_or_month_first(strings, parts, name, where, lines)
        if parsed is not None:
            return parsed
    else:
        parsed = _parse_text(strings)
        if parsed is not None:
            return parsed
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


def _parse_text(strings: pd.Series) -> pd.DatetimeIndex | None:
    """Text dates as naive UTC, by the first of ``_DATE_FORMATS`` (after pandas' own
    inference) that reads every row; None when none does."""
    for fmt in (None, *_DATE_FORMATS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(strings, format=fmt, utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
        return pd.DatetimeIndex(parsed).tz_localize(None)
    return None


def _day_or_month_first(strings: pd.Series, parts: pd.DataFrame, name: str, where: str,
                        lines: np.ndarray) -> pd.DatetimeIndex | None:
    """Dates written ``NN/NN/YYYY`` (or with ``.`` or ``-``), read day first and month first.

    Never a guess: a reading that fails on some row (a 13th month) is out; when both read
    every row and differ, the one that gives one evenly spaced market (see
    :func:`check_spacing`) is taken, and when both do (``01/05 .. 12/05`` is daily in May or
    monthly on the 5th) the file is refused. pandas alone would take month first, or worse,
    switch order row by row (``dateutil``) when a time like ``11:00 PM`` defeats its inference.
    """
    first, second = parts[0].astype(int), parts[2].astype(int)
    year = parts[3].astype(int)
    year = year.where(parts[3].str.len() != 2, year + np.where(year < 69, 2000, 1900))
    readings = {}
    for order, (day, month) in (("month first", (second, first)),
                                ("day first", (first, second))):
        if ((month < 1) | (month > 12) | (day < 1) | (day > 31)).any():
            continue
        iso = (year.astype(str).str.zfill(4) + "-" + month.astype(str).str.zfill(2) + "-"
               + day.astype(str).str.zfill(2) + parts[4])
        parsed = _parse_text(iso)
        if parsed is not None:
            readings[order] = parsed
    if len(readings) < 2:
        return next(iter(readings.values()), None)
    month_first, day_first = readings["month first"], readings["day first"]
    if month_first.equals(day_first):
        return month_first
    plausible = {order: parsed for order, parsed in readings.items() if _one_market(parsed)}
    if len(plausible) == 1:
        return next(iter(plausible.values()))
    i = int(np.flatnonzero(month_first != day_first)[0])
    either = ("and both give evenly spaced bars" if plausible else
              "and neither gives evenly spaced bars")
    raise DataError(f"{where}: column {name!r} has dates like {strings.iloc[i]!r} (line "
                    f"{lines[i]}) that read day first ({day_first[i]:%d %b %Y}) and month "
                    f"first ({month_first[i]:%b %d %Y}) on every row, {either}; write the "
                    f"dates as ISO 8601 (2024-05-04 23:00) so day and month cannot be swapped")


def _one_market(dates: pd.DatetimeIndex) -> bool:
    """Whether dates, sorted, are unique and pass :func:`check_spacing`."""
    ordered = dates.sort_values()
    if ordered.has_duplicates:
        return False
    try:
        check_spacing(ordered, "")
    except DataError:
        return False
    return True


def _numeric_dates(values: np.ndarray, name: str, where: str) -> pd.DatetimeIndex:
    if np.isfinite(values).all() and (values == np.floor(values)).all():
        digits = {len(str(abs(int(v)))) for v in (values.min(), values.max())}
        fmt = _INTEGER_DATE_FORMATS.get(digits.pop()) if len(digits) == 1 else None
        if fmt is not None:
            parsed = pd.to_datetime(pd.Series(values.astype(np.int64)).astype(str), format=fmt,
                                    errors="coerce")
            if parsed.notna().all():
                return pd.DatetimeIndex(parsed)
    biggest = float(np.nanmax(np.abs(values)))
    unit, scale = next(((u, s) for u, s in _EPOCH_UNITS if biggest < 1e11 * s), _EPOCH_UNITS[-1])
    latest = pd.Timestamp(time.time(), unit="s") + pd.Timedelta(days=366)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            first, last = pd.to_datetime([low, high], unit=unit)
        except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
            first = last = pd.NaT
    if pd.isna(first) or first < _EPOCH_FIRST or last > latest:
        raise DataError(f"{where}: column {name!r} holds numbers from {low:.15g} to {high:.15g} "
                        f"that are neither YYYYMMDD dates nor epoch seconds/ms/us/ns between "
                        f"1973 and now; write the dates as text (2019-10-17 09:00) or name "
                        f"the right column with data.date_column")
    if (values == np.floor(values)).all():
        return pd.DatetimeIndex(pd.to_datetime(values.astype(np.int64), unit=unit))
    return pd.DatetimeIndex(pd.to_datetime(values, unit=unit))


def _times_of_day(column: pd.Series) -> pd.TimedeltaIndex:
    """A separate time column (Stooq ``<TIME>`` as HHMMSS, MetaTrader ``<TIME>`` as
    ``HH:MM:SS``) as offsets to add to midnight dates; zero when it cannot be read as times."""
    zero = pd.TimedeltaIndex(np.zeros(len(column), dtype="timedelta64[ns]"))
    if pd.api.types.is_numeric_dtype(column) and column.dtype != bool:
        values = column.to_numpy(dtype=np.float64)
        if not (np.isfinite(values).all() and (values == np.floor(values)).all()):
            return zero
        ints = values.astype(np.int64)
        hours, minutes, seconds = ints // 10000, ints // 100 % 100, ints % 100
        if (ints < 0).any() or (hours > 23).any() or (minutes > 59).any() or (seconds > 59).any():
            return zero
        return pd.to_timedelta(hours * 3600 + minutes * 60 + seconds, unit="s")
    text = column.astype(str).str.strip()
    text = text.where(text.str.count(":") != 1, text + ":00")
    parsed = pd.to_timedelta(text, errors="coerce")
    if parsed.isna().any() or (parsed < pd.Timedelta(0)).any() or \
            (parsed >= pd.Timedelta(days=1)).any():
        return zero
    return pd.TimedeltaIndex(parsed)


# -- values -----------------------------------------------------------------------------------

def _numeric_column(values: pd.Series, name: str, column: str, where: str,
                    dates: pd.DatetimeIndex, lines: np.ndarray, decimal: str | None
                    ) -> np.ndarray:
    """One OHLCV column as float64, rejecting text, gaps and impossible values."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    present = values.notna().to_numpy()
    bad = np.flatnonzero(present & ~np.isfinite(numbers))
    if len(bad) and values.dtype == object:
        numbers = _grouped_numbers(values, numbers, decimal or ".")
        bad = np.flatnonzero(present & ~np.isfinite(numbers))
    if len(bad):
        i = int(bad[0])
        text = str(values.iloc[i])
        if decimal != "," and _THOUSANDS[",", "."].match(text.strip()):
            raise DataError(f"{where}: {name} {text!r} in column {column!r} at {dates[i]} (line "
                            f"{lines[i]}) has a comma that could be a decimal comma or a "
                            f"thousands separator, and no row of the column says which; write "
                            f"the numbers without thousands separators, or set data.decimal: "
                            f"',' if the comma is the decimal mark")
        if decimal != "," and _DECIMAL_COMMA.match(text):
            raise DataError(f"{where}: {name} {text!r} in column {column!r} at {dates[i]} (line "
                            f"{lines[i]}) has a decimal comma; set data.decimal: ',' "
                            f"(tradetune data FILE --decimal ,)")
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


def _grouped_numbers(values: pd.Series, numbers: np.ndarray, decimal: str) -> np.ndarray:
    """``numbers`` with the text values written with thousands separators (``"34,255.01"``,
    ``1'234.5``, ``1 234,5``; one separator per column) read; unchanged when the column holds
    other text. A comma (or, with decimal commas, a point) is taken as a separator only when
    some value proves it: a decimal part (``1,234.5``) or two separators (``1,234,567``);
    ``1,234`` alone is as much 1.234 as 1234."""
    text = values.astype(str).str.strip()
    missing = values.isna().to_numpy()
    for mark in _GROUP_MARKS[decimal]:
        readable = text.str.match(_THOUSANDS[mark, decimal]).to_numpy() | missing
        marked = text.str.contains(mark, regex=False).to_numpy() & ~missing
        if not readable.all() or not marked.any():
            continue
        if mark in DECIMALS:  # the other decimal mark: only when a value proves it
            proof = text[marked]
            if not (proof.str.contains(decimal, regex=False)
                    | (proof.str.count(re.escape(mark)) > 1)).any():
                continue
        cleaned = text.str.replace(mark, "", regex=False).str.replace(decimal, ".", regex=False)
        numbers = pd.to_numeric(cleaned.where(~missing), errors="coerce")
        return numbers.to_numpy(dtype=np.float64)
    return numbers


def _check_high_low(bars: pd.DataFrame, where: str, lines: np.ndarray) -> None:
    """A bar whose high is below its low is impossible (swapped or shifted columns). Open and
    close outside [low, high] are accepted: Yahoo's FX bars have them."""
    if "high" not in bars or "low" not in bars:
        return
    inverted = np.flatnonzero(bars["high"].to_numpy() < bars["low"].to_numpy())
    if len(inverted):
        i = int(inverted[0])
        raise DataError(f"{where}: high {bars['high'].iloc[i]:g} is below low "
                        f"{bars['low'].iloc[i]:g} at {bars.index[i]} (line {lines[i]}; "
                        f"{len(inverted)} such row(s)); check the column order")


# -- spacing ------------------------------------------------------------------------------------

def check_spacing(index: pd.DatetimeIndex, where: str, lines: np.ndarray | None = None) -> dict:
    """The bar interval and the gaps of ascending, unique bar times; refuse what is not one
    market sampled at one interval.

    - interval: the most common time between bars; or, when bars are not a fixed time apart
      but each falls in its own calendar week or at one place of its month (month ends,
      month starts, the 15th: 28 to 31 days apart), a calendar interval (``"1 week"``,
      ``"1 month"``, ``"3 months"``, ``"1 year"``), returned as ``"calendar"`` with
      ``"interval"`` its average length (a month is 365.25 / 12 days); steps and gaps are then
      counted in weeks or months. Bars that look weekly or monthly but are not anchored so are
      refused with a message saying it;
    - refused: a step that is not a whole number of intervals, or a stretch where most bars
      (15 of 20 in a row) are further apart than the interval: the interval changed there
      (hourly, then daily);
    - a gap: a step of more than one interval; its missing bars are the intervals it skips.
      When under 5% of the bars fall on a Saturday or Sunday, the market closes at weekends
      (stocks, FX), and weekend time never counts as missing (Friday to Monday is no gap
      for daily stock bars);
    - refused: a hole longer than 14 days (and 10 intervals).

    Returns:
        ``{"interval": Timedelta, "calendar": None or str, "gaps": int, "missing_bars": int,
        "largest": None or {"missing_bars", "after", "before", "after_line", "before_line"},
        "weekends_closed": bool}``.
    """
    lines = np.arange(len(index)) + 1 if lines is None else lines
    summary = {"interval": pd.Timedelta(0), "calendar": None, "gaps": 0, "missing_bars": 0,
               "largest": None, "weekends_closed": False}
    if len(index) < 2:
        return summary
    stamps = index.asi8
    steps = np.diff(stamps)
    values, counts = np.unique(steps, return_counts=True)
    interval = int(values[np.argmax(counts)])
    summary["interval"] = pd.Timedelta(interval, unit="ns")
    tolerance = 3600 * 10**9 if interval >= _DAY else interval // 100
    multiples = np.rint(steps / interval).astype(np.int64)
    off = np.flatnonzero((multiples < 1) | (np.abs(steps - multiples * interval) > tolerance))
    show = _format_step
    label = show(interval)
    calendar = _calendar(index, interval) if len(off) else None
    if isinstance(calendar, tuple):
        label, multiples, length = calendar
        interval = int(length.value)
        summary.update(interval=length, calendar=label)
    elif len(off):
        i = int(off[0])
        unit = "week" if calendar == "weekly" else "month"
        where_in = "" if calendar == "weekly" else (" at one place of it (month ends, month "
                                                     "starts or one day of the month)")
        looks = (f"; the bars look {calendar}, but calendar intervals are read only when each "
                 f"bar falls in its own {unit}{where_in}, at one time of day" if calendar else "")
        raise DataError(f"{where}: the bar interval changes: most bars are {show(interval)} "
                        f"apart, but {index[i]} and {index[i + 1]} (lines {lines[i]} and "
                        f"{lines[i + 1]}) are {show(int(steps[i]))} apart; a file must keep one "
                        f"interval (gaps of whole intervals are fine){looks}")
    longer = multiples >= 2
    if len(steps) >= CHANGE_WINDOW:
        window = np.convolve(longer, np.ones(CHANGE_WINDOW, dtype=np.int64), mode="valid")
        flagged = np.flatnonzero(window >= CHANGE_SHARE * CHANGE_WINDOW)
        if len(flagged):
            start = int(flagged[0])
            run_end = start
            while run_end + 1 < len(window) and window[run_end + 1] >= \
                    CHANGE_SHARE * CHANGE_WINDOW:
                run_end += 1
            end = run_end + CHANGE_WINDOW
            typical = int(np.median(steps[start:end]))
            raise DataError(f"{where}: the bar interval changes: most bars are "
                            f"{label} apart, but from {index[start]} to {index[end]} "
                            f"(lines {lines[start]} to {lines[end]}) they are mostly "
                            f"{show(typical)} apart; a file must keep one interval: cut it "
                            f"where the interval changes")
    weekend = (index.dayofweek >= 5).mean() < WEEKEND_SHARE and interval <= _DAY
    if weekend:
        missing = np.maximum(np.rint(np.diff(_weekday_time(index)) / interval) - 1, 0)
    else:
        missing = multiples - 1
    missing = missing.astype(np.int64)
    hole = max(HOLE_DAYS * _DAY, HOLE_BARS * interval)
    holes = np.flatnonzero(multiples > HOLE_BARS if calendar else steps > hole)
    if len(holes):
        i = int(holes[0])
        longest = f"{HOLE_BARS} bars of {label}" if calendar else show(hole)
        raise DataError(f"{where}: a hole of {show(int(steps[i]))} between {index[i]} and "
                        f"{index[i + 1]} (lines {lines[i]} and {lines[i + 1]}); holes longer "
                        f"than {longest} are refused: cut the file before or after it")
    gaps = np.flatnonzero(missing > 0)
    summary.update(gaps=int(len(gaps)), missing_bars=int(missing.sum()), weekends_closed=weekend)
    if len(gaps):
        i = int(gaps[np.argmax(missing[gaps])])
        summary["largest"] = {"missing_bars": int(missing[i]), "after": index[i],
                              "before": index[i + 1], "after_line": int(lines[i]),
                              "before_line": int(lines[i + 1])}
    return summary


def _calendar(index: pd.DatetimeIndex, interval: int
              ) -> tuple[str, np.ndarray, pd.Timedelta] | str | None:
    """Bars on a calendar schedule: ``(label, steps in its units, average length)``; the
    schedule's name ("weekly", "monthly") when the most common step says so but the bars are
    not anchored to it; None otherwise.

    Weekly: the most common step is k weeks, every bar is in its own week (Monday to Sunday)
    and the steps are whole multiples of k weeks, so a bar moved by a holiday (Thursday
    instead of Good Friday) is no change of interval. Monthly: the most common step is k x 28
    to 31 days, every bar in its own month, all at one place of it (their days of the month,
    or their days before the month's end, within one week of each other: month ends, last
    trading days, month starts, the 15th) and the steps whole multiples of k months. Either
    way every bar has the same time of day.
    """
    days = interval / _DAY
    weeks, months = round(days / 7), round(days / 30.4375)
    if weeks >= 1 and days == 7 * weeks:
        kind, unit = "weekly", weeks
    elif months >= 1 and 28 * months <= days <= 31 * months + 1:
        kind, unit = "monthly", months
    else:
        return None
    if len(np.unique(index.asi8 % _DAY)) > 1:
        return kind
    if kind == "weekly":
        # Weeks since Monday 1970-01-05 (day 4 of the epoch).
        position = (index.asi8 // _DAY - 4) // 7
        anchored = True
    else:
        position = np.asarray(index.year * 12 + index.month, dtype=np.int64)
        day = np.asarray(index.day)
        from_end = np.asarray(index.days_in_month) - day
        anchored = np.ptp(day) <= 6 or np.ptp(from_end) <= 6
    steps = np.diff(position)
    if not anchored or (steps < 1).any() or (steps % unit).any():
        return kind
    length = pd.Timedelta(days=7 * unit) if kind == "weekly" else \
        pd.Timedelta(days=365.25 / 12 * unit)
    label = {("weekly", 1): "1 week", ("monthly", 1): "1 month", ("monthly", 12): "1 year"}.get(
        (kind, unit), f"{unit} weeks" if kind == "weekly" else f"{unit} months")
    return label, steps // unit, length


def _weekday_time(index: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds of Monday-to-Friday time from the first bar's day to each bar."""
    days = index.values.astype("datetime64[D]")
    full = np.busday_count(days[0], days).astype(np.int64) * _DAY
    into_day = index.asi8 - days.astype("datetime64[ns]").astype(np.int64)
    return full + np.where(np.is_busday(days), into_day, 0)


def _format_step(nanoseconds: int) -> str:
    """A time step the way people write it: "1h", "15min", "1d", "2d 4h", "1h 30min"."""
    left = int(nanoseconds) // 10**9
    if left * 10**9 != nanoseconds or left <= 0:
        return str(pd.Timedelta(int(nanoseconds), unit="ns"))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
