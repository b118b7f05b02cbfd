"""One loader for the canonical funding and price CSV layout (backtester and simulator replay).

Layout (see ``fundarb/data/README.md`` and the data README it points to)::

    <data_dir>/funding/<venue>/<SYMBOL>.csv                      funding_time,rate,interval_hours
    <data_dir>/prices/<venue>/<market>/<SYMBOL>_<interval>.csv   open_time,open,high,low,close,volume

Times look like ``2020-01-01T00:00:00Z`` (UTC) and become int64 milliseconds since the epoch.
Empty price fields become NaN (close-only rows); nothing is filled or interpolated. Any malformed
input raises :class:`LoaderError` naming the file and the 1-based line number.

Example::

    from fundarb.backtest.loader import default_data_dir, load_funding, load_prices
    f = load_funding(default_data_dir(), "binance", "BTCUSDT")
    p = load_prices(default_data_dir(), "binance", "spot", "BTCUSDT", "8h")
    f.rates[-1], p.close[-1], p.interval_ms
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Iterator

import attrs
import numpy as np

__all__ = [
    "MARKETS",
    "FundingSeries",
    "LoaderError",
    "PriceSeries",
    "default_data_dir",
    "interval_to_ms",
    "iter_funding_files",
    "iter_price_files",
    "load_funding",
    "load_prices",
]

#: the price markets of the canonical layout
MARKETS = ("spot", "perp", "perp_coin")

_FUNDING_HEADER = "funding_time,rate,interval_hours"
_PRICE_HEADER = "open_time,open,high,low,close,volume"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_INTERVAL_RE = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


class LoaderError(ValueError):
    """Bad or missing input data; the message names the file and, for bad rows, the line number."""

    def __init__(self, path: pathlib.Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@attrs.frozen(eq=False)
class FundingSeries:
    """One ``funding/<venue>/<SYMBOL>.csv``: settlement times, rates per period and period lengths.

    ``rates`` is the rate for one period (positive: longs pay shorts); annualise as
    ``rate * 8760 / interval_hours``. Arrays are read-only.
    """

    venue: str
    symbol: str
    times_ms: np.ndarray  # int64 settlement times, ascending
    rates: np.ndarray  # float64
    interval_hours: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.times_ms.shape[0])


@attrs.frozen(eq=False)
class PriceSeries:
    """One ``prices/<venue>/<market>/<SYMBOL>_<interval>.csv``: OHLCV bars keyed by open time.

    A bar covers ``[open_ms, open_ms + interval_ms)``. Fields empty in the CSV are NaN (for
    example close-only rows, where only ``close`` is set). Arrays are read-only.
    """

    venue: str
    market: str
    symbol: str
    interval: str
    open_ms: np.ndarray  # int64 bar open times, ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def interval_ms(self) -> int:
        """Bar length in milliseconds."""
        return interval_to_ms(self.interval)

    def __len__(self) -> int:
        return int(self.open_ms.shape[0])


def interval_to_ms(interval: str) -> int:
    """``"1h"`` -> 3_600_000; accepts ``<n>m``, ``<n>h``, ``<n>d``; ValueError otherwise."""
    m = _INTERVAL_RE.match(interval)
    if m is None:
        raise ValueError(f"bad bar interval {interval!r} (expected like '1h', '8h', '1d')")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def default_data_dir() -> pathlib.Path:
    """The data vendored in the package: ``fundarb/data/``."""
    return pathlib.Path(__file__).resolve().parent.parent / "data"


def _check_name(path_hint: pathlib.Path, what: str, value: str) -> None:
    if not _NAME_RE.match(value):
        raise LoaderError(path_hint, f"bad {what} name {value!r}")


def _read_rows(path: pathlib.Path, header: str, ncols: int) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoaderError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoaderError(path, f"cannot read: {exc}") from None
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != header:
        raise LoaderError(path, f"expected header {header!r}", 1)
    rows: list[list[str]] = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != ncols:
            raise LoaderError(path, f"expected {ncols} fields, got {len(fields)}", i)
        fields.append(str(i))  # remember the line number
        rows.append(fields)
    return rows


def _parse_times(path: pathlib.Path, col: list[str], lines: list[str]) -> np.ndarray:
    for s, ln in zip(col, lines, strict=True):
        if not _TIME_RE.match(s):
            raise LoaderError(path, f"bad time {s!r} (expected YYYY-MM-DDTHH:MM:SSZ)", int(ln))
    try:
        t = np.array([s[:-1] for s in col], dtype="datetime64[ms]").astype(np.int64)
    except ValueError:
        for s, ln in zip(col, lines, strict=True):
            try:
                np.datetime64(s[:-1], "ms")
            except ValueError:
                raise LoaderError(path, f"bad time {s!r}", int(ln)) from None
        raise  # pragma: no cover - the loop above always finds the bad row
    if t.size > 1:
        d = np.diff(t)
        bad = np.flatnonzero(d <= 0)
        if bad.size:
            j = int(bad[0]) + 1
            raise LoaderError(
                path, f"time {col[j]} not after the previous row (not ascending)", int(lines[j])
            )
    return t


def _parse_float(path: pathlib.Path, s: str, line: str, field: str, allow_empty: bool) -> float:
    if s == "":
        if allow_empty:
            return math.nan
        raise LoaderError(path, f"empty {field}", int(line))
    try:
        v = float(s)
    except ValueError:
        raise LoaderError(path, f"bad {field} {s!r}", int(line)) from None
    if not math.isfinite(v):
        raise LoaderError(path, f"non-finite {field} {s!r}", int(line))
    return v


def load_funding(data_dir: pathlib.Path | str, venue: str, symbol: str) -> FundingSeries:
    """Load ``<data_dir>/funding/<venue>/<symbol>.csv``; LoaderError on missing file or bad rows."""
    path = pathlib.Path(data_dir) / "funding" / venue / f"{symbol}.csv"
    _check_name(path, "venue", venue)
    _check_name(path, "symbol", symbol)
    rows = _read_rows(path, _FUNDING_HEADER, 3)
    lines = [r[3] for r in rows]
    times = _parse_times(path, [r[0] for r in rows], lines)
    rates = np.array([_parse_float(path, r[1], r[3], "rate", False) for r in rows], dtype=np.float64)
    ivals: list[int] = []
    for r in rows:
        try:
            h = int(r[2])
        except ValueError:
            raise LoaderError(path, f"bad interval_hours {r[2]!r}", int(r[3])) from None
        if h <= 0:
            raise LoaderError(path, f"interval_hours must be positive, got {h}", int(r[3]))
        ivals.append(h)
    return FundingSeries(
        venue=venue,
        symbol=symbol,
        times_ms=_readonly(times),
        rates=_readonly(rates),
        interval_hours=_readonly(np.array(ivals, dtype=np.int64)),
    )


def load_prices(
    data_dir: pathlib.Path | str, venue: str, market: str, symbol: str, interval: str
) -> PriceSeries:
    """Load ``<data_dir>/prices/<venue>/<market>/<symbol>_<interval>.csv``.

    Empty fields become NaN. Raises LoaderError on a missing file, a bad header, a malformed
    number or time, non-ascending times, or a bar whose high is below its low.
    """
    path = pathlib.Path(data_dir) / "prices" / venue / market / f"{symbol}_{interval}.csv"
    _check_name(path, "venue", venue)
    _check_name(path, "symbol", symbol)
    if market not in MARKETS:
        raise LoaderError(path, f"unknown market {market!r} (expected one of {MARKETS})")
    try:
        interval_to_ms(interval)
    except ValueError as exc:
        raise LoaderError(path, str(exc)) from None
    rows = _read_rows(path, _PRICE_HEADER, 6)
    lines = [r[6] for r in rows]
    times = _parse_times(path, [r[0] for r in rows], lines)
    names = ("open", "high", "low", "close", "volume")
    cols = [
        np.array([_parse_float(path, r[k + 1], r[6], names[k], True) for r in rows], dtype=np.float64)
        for k in range(5)
    ]
    o, h, lo, c, v = cols
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        bad = np.flatnonzero(arr <= 0)
        if bad.size:
            j = int(bad[0])
            raise LoaderError(path, f"{name} must be positive, got {arr[j]}", int(lines[j]))
    bad = np.flatnonzero(h < lo)
    if bad.size:
        j = int(bad[0])
        raise LoaderError(path, f"high {h[j]} below low {lo[j]}", int(lines[j]))
    return PriceSeries(
        venue=venue,
        market=market,
        symbol=symbol,
        interval=interval,
        open_ms=_readonly(times),
        open=_readonly(o),
        high=_readonly(h),
        low=_readonly(lo),
        close=_readonly(c),
        volume=_readonly(v),
    )


def iter_funding_files(data_dir: pathlib.Path | str) -> Iterator[tuple[str, str]]:
    """Yield ``(venue, symbol)`` for every funding file under ``data_dir``, sorted."""
    root = pathlib.Path(data_dir) / "funding"
    for p in sorted(root.glob("*/*.csv")):
        yield p.parent.name, p.stem


def iter_price_files(data_dir: pathlib.Path | str) -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(venue, market, symbol, interval)`` for every price file under ``data_dir``, sorted."""
    root = pathlib.Path(data_dir) / "prices"
    for p in sorted(root.glob("*/*/*.csv")):
        symbol, sep, interval = p.stem.rpartition("_")
        if sep and p.parent.name in MARKETS:
            yield p.parent.parent.name, p.parent.name, symbol, interval
