"""The canonical CSV loader: real vendored files, and every kind of bad input names file and line."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from fundarb.backtest.loader import (
    LoaderError,
    default_data_dir,
    interval_to_ms,
    iter_funding_files,
    iter_price_files,
    load_funding,
    load_prices,
)

H = 3_600_000


def _write(root: pathlib.Path, rel: str, text: str) -> pathlib.Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return root


def test_vendored_binance_btc_funding_and_prices() -> None:
    d = default_data_dir()
    f = load_funding(d, "binance", "BTCUSDT")
    assert f.times_ms.dtype == np.int64 and f.rates.dtype == np.float64
    assert f.interval_hours.dtype == np.int64
    assert (np.diff(f.times_ms) > 0).all()
    # first row of the file: 2019-09-10T08:00:00Z, 0.0001, 8
    assert int(f.times_ms[0]) == int(np.datetime64("2019-09-10T08:00:00", "ms").astype(np.int64))
    assert f.rates[0] == pytest.approx(0.0001) and int(f.interval_hours[0]) == 8
    p = load_prices(d, "binance", "spot", "BTCUSDT", "8h")
    assert p.interval_ms == 8 * H
    assert len(p) == 1095 and not np.isnan(p.close).any()
    with pytest.raises(ValueError):
        p.close[0] = 1.0  # read-only arrays


def test_close_only_rows_are_nan_not_filled() -> None:
    p = load_prices(default_data_dir(), "binance", "spot", "BTCUSDT", "1h")
    assert np.isnan(p.open).all() and np.isnan(p.high).all() and np.isnan(p.volume).all()
    assert np.isfinite(p.close).all()


def test_every_vendored_file_loads_and_default_run_is_covered() -> None:
    d = default_data_dir()
    funding = set(iter_funding_files(d))
    prices = set(iter_price_files(d))
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert ("binance", sym) in funding
        assert ("binance", "spot", sym, "8h") in prices
        assert ("binance", "perp", sym, "8h") in prices
    for v, s in funding:
        assert len(load_funding(d, v, s)) > 0
    for v, m, s, i in prices:
        assert len(load_prices(d, v, m, s, i)) > 0
    assert (d / "NOTICE").is_file()


def test_interval_to_ms() -> None:
    assert interval_to_ms("1h") == H and interval_to_ms("8h") == 8 * H and interval_to_ms("1d") == 24 * H
    assert interval_to_ms("5m") == 300_000
    for bad in ("", "h", "0h", "1w", "1.5h"):
        with pytest.raises(ValueError):
            interval_to_ms(bad)


FHDR = "funding_time,rate,interval_hours\n"
PHDR = "open_time,open,high,low,close,volume\n"


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("2020-01-01T00:00:00Z,0.0001,8\n2020-01-01T00:00:00Z,0.0001,8\n", 3, "not ascending"),
        ("2020-01-01T08:00:00Z,0.0001,8\n2020-01-01T00:00:00Z,0.0001,8\n", 3, "not ascending"),
        ("2020-01-01T00:00:00Z,abc,8\n", 2, "bad rate"),
        ("2020-01-01T00:00:00Z,,8\n", 2, "empty rate"),
        ("2020-01-01T00:00:00Z,nan,8\n", 2, "non-finite"),
        ("2020-01-01T00:00:00Z,0.1,0\n", 2, "interval_hours"),
        ("2020-01-01T00:00:00Z,0.1,x\n", 2, "interval_hours"),
        ("2020-01-01T00:00:00Z,0.1\n", 2, "expected 3 fields"),
        ("2020-01-01 00:00:00,0.1,8\n", 2, "bad time"),
        ("2020-01-01T00:00:00Z,0.1,8\n2020-13-01T00:00:00Z,0.1,8\n", 3, "bad time"),
    ],
)
def test_bad_funding_rows_name_file_and_line(
    tmp_path: pathlib.Path, body: str, line: int, fragment: str
) -> None:
    _write(tmp_path, "funding/x/BTCUSDT.csv", FHDR + body)
    with pytest.raises(LoaderError) as ei:
        load_funding(tmp_path, "x", "BTCUSDT")
    assert f"BTCUSDT.csv:{line}:" in str(ei.value) and fragment in str(ei.value)
    assert ei.value.line == line


def test_bad_header_and_missing_file(tmp_path: pathlib.Path) -> None:
    _write(tmp_path, "funding/x/A.csv", "time,rate\n")
    with pytest.raises(LoaderError, match="expected header"):
        load_funding(tmp_path, "x", "A")
    with pytest.raises(LoaderError, match="file not found"):
        load_funding(tmp_path, "x", "NOPE")
    with pytest.raises(LoaderError, match="bad venue"):
        load_funding(tmp_path, "../etc", "A")
    with pytest.raises(LoaderError, match="unknown market"):
        load_prices(tmp_path, "x", "futures", "A", "1h")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("2020-01-01T00:00:00Z,1,2,3,1.5,1\n", "below low"),
        ("2020-01-01T00:00:00Z,1,2,0.5,-1,1\n", "close must be positive"),
        ("2020-01-01T00:00:00Z,1,2,0.5,1e,1\n", "bad close"),
    ],
)
def test_bad_price_rows(tmp_path: pathlib.Path, body: str, fragment: str) -> None:
    _write(tmp_path, "prices/x/spot/A_1h.csv", PHDR + "2019-12-31T23:00:00Z,1,1,1,1,1\n" + body)
    with pytest.raises(LoaderError, match=fragment) as ei:
        load_prices(tmp_path, "x", "spot", "A", "1h")
    assert ei.value.line == 3


def test_empty_price_fields_become_nan(tmp_path: pathlib.Path) -> None:
    _write(tmp_path, "prices/x/perp/A_8h.csv", PHDR + "2020-01-01T00:00:00Z,,,,100.5,\n")
    p = load_prices(tmp_path, "x", "perp", "A", "8h")
    assert p.close[0] == 100.5 and math.isnan(p.open[0]) and math.isnan(p.volume[0])
    assert int(p.open_ms[0]) == 1_577_836_800_000
