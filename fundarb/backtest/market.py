"""Per-candidate market data on the decision grid: marks, intrabar extremes, volatility, timing.

The decision grid of a (venue, symbol) is its funding settlement times. For each grid time ``t``
this module gives, using only bars that have CLOSED by ``t``:

- the spot and perp marks: close of the latest bar (any interval, the finest wins on ties)
  closing at or before ``t`` and at most ``max_price_age_ms`` old; NaN otherwise (never filled);
- the perp's highest high and lowest low over bars closing in ``(t_prev, t]`` (close-only bars
  count with their close), for the liquidation check;
- a trailing annualised volatility of the perp marks;
- how many funding rates are known at ``t`` given the venue's publication lag.
"""

from __future__ import annotations

import pathlib

import attrs
import numpy as np

from fundarb.backtest.loader import (
    FundingSeries,
    LoaderError,
    PriceSeries,
    iter_price_files,
    load_funding,
    load_prices,
)

__all__ = [
    "DEFAULT_INFO_LAG",
    "SleeveData",
    "build_sleeve",
    "known_counts",
    "load_sleeve",
    "price_series_for",
]

HOUR_MS = 3_600_000
YEAR_MS = 8760 * HOUR_MS

#: funding periods between the rate's publication and its settlement, per venue. Binance, OKX and
#: MEXC: known only at settlement (0). Bybit, HTX and Gate track Binance's PREVIOUS rate best in the
#: data, i.e. they fix the rate a period ahead (1). KuCoin: 0 (conservative).
DEFAULT_INFO_LAG: dict[str, int] = {
    "binance": 0,
    "okx": 0,
    "mexc": 0,
    "kucoin": 0,
    "bybit": 1,
    "htx": 1,
    "gate": 1,
}


@attrs.frozen(eq=False)
class SleeveData:
    """Aligned arrays for one (venue, symbol) over its decision grid (funding settlement times)."""

    venue: str
    symbol: str
    times_ms: np.ndarray  # int64 settlement times
    rates: np.ndarray  # float64 rate settled at times_ms[k]
    interval_hours: np.ndarray  # int64
    known: np.ndarray  # int64: number of leading rates known at times_ms[k]
    spot: np.ndarray  # float64 mark, NaN if missing
    perp: np.ndarray
    perp_high: np.ndarray  # max perp high over bars closing in (t[k-1], t[k]], NaN if none
    perp_low: np.ndarray
    vol: np.ndarray  # annualised perp volatility known at t[k], NaN if not enough data

    def __len__(self) -> int:
        return int(self.times_ms.shape[0])


def known_counts(f: FundingSeries, lag_periods: int) -> np.ndarray:
    """For each settlement k, how many leading rates are published by ``times_ms[k]``.

    A rate settled at T with a lag of L periods is published at ``T - L * interval``. The result
    is a prefix count (a rate counts only once every earlier one is known), so it is monotone.
    """
    if lag_periods < 0:
        raise ValueError(f"lag must be >= 0, got {lag_periods}")
    publish = f.times_ms - lag_periods * f.interval_hours * HOUR_MS
    publish = np.maximum.accumulate(publish)
    return np.searchsorted(publish, f.times_ms, side="right").astype(np.int64)


def _marks(series: list[PriceSeries], grid: np.ndarray, max_age_ms: int) -> np.ndarray:
    if not series:
        return np.full(grid.shape, np.nan)
    # coarse first, so a finer bar closing at the same time overrides it
    ordered = sorted(series, key=lambda s: -s.interval_ms)
    ct = np.concatenate([s.open_ms + s.interval_ms for s in ordered])
    cl = np.concatenate([s.close for s in ordered])
    ok = np.isfinite(cl)
    ct, cl = ct[ok], cl[ok]
    order = np.argsort(ct, kind="stable")
    ct, cl = ct[order], cl[order]
    # keep the LAST entry of each close time (the finest interval after the stable sort)
    if ct.size:
        last = np.ones(ct.shape, dtype=bool)
        last[:-1] = ct[1:] != ct[:-1]
        ct, cl = ct[last], cl[last]
    idx = np.searchsorted(ct, grid, side="right") - 1
    out = np.full(grid.shape, np.nan)
    has = idx >= 0
    j = idx[has]
    fresh = (grid[has] - ct[j]) <= max_age_ms
    vals = np.where(fresh, cl[j], np.nan)
    out[has] = vals
    return out


def _extremes(series: list[PriceSeries], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = np.full(grid.shape, np.nan)
    lo = np.full(grid.shape, np.nan)
    if not series or grid.size == 0:
        return hi, lo
    ct = np.concatenate([s.open_ms + s.interval_ms for s in series])
    h = np.concatenate([np.where(np.isfinite(s.high), s.high, s.close) for s in series])
    lw = np.concatenate([np.where(np.isfinite(s.low), s.low, s.close) for s in series])
    ok = np.isfinite(h) & np.isfinite(lw)
    ct, h, lw = ct[ok], h[ok], lw[ok]
    order = np.argsort(ct, kind="stable")
    ct, h, lw = ct[order], h[order], lw[order]
    if ct.size == 0:
        return hi, lo
    start = np.searchsorted(ct, np.concatenate([[np.iinfo(np.int64).min], grid[:-1]]), side="right")
    stop = np.searchsorted(ct, grid, side="right")
    nonempty = stop > start
    if nonempty.any():
        s = start[nonempty]
        hi_r = np.maximum.reduceat(h, s)
        lo_r = np.minimum.reduceat(lw, s)
        # reduceat reduces up to the next start; clip to each window's own stop by construction:
        # windows are disjoint and ordered, so the next non-empty start equals this stop unless
        # bars fall between windows, which cannot happen (windows tile the time line).
        hi[nonempty] = hi_r
        lo[nonempty] = lo_r
        # the last window may run to the array end; recompute it exactly
        k = int(np.flatnonzero(nonempty)[-1])
        hi[k] = h[start[k] : stop[k]].max()
        lo[k] = lw[start[k] : stop[k]].min()
    return hi, lo


def _volatility(times: np.ndarray, perp: np.ndarray, window: int) -> np.ndarray:
    out = np.full(times.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(perp))
    if valid.size < 2:
        return out
    lp = np.log(perp[valid])
    dt = (times[valid][1:] - times[valid][:-1]) / YEAR_MS
    var_per_year = (lp[1:] - lp[:-1]) ** 2 / dt
    c = np.concatenate([[0.0], np.cumsum(var_per_year)])
    n = np.arange(1, var_per_year.size + 1)
    lo = np.maximum(0, n - window)
    mean = (c[n] - c[lo]) / (n - lo)
    enough = (n - lo) >= min(window, 3)
    out[valid[1:]] = np.where(enough, np.sqrt(mean), np.nan)
    # carry the last estimate forward only to grid points where no new mark exists
    # (the estimate itself was known then; it is not a price)
    idx = np.maximum.accumulate(np.where(np.isfinite(out), np.arange(out.size), -1))
    has = idx >= 0
    out[has] = out[idx[has]]
    return out


def build_sleeve(
    funding: FundingSeries,
    spot: list[PriceSeries],
    perp: list[PriceSeries],
    *,
    lag_periods: int,
    max_price_age_ms: int = 4 * HOUR_MS,
    vol_window: int = 90,
) -> SleeveData:
    """Align one funding series and its spot and perp price series onto the settlement grid."""
    grid = funding.times_ms
    hi, lo = _extremes(perp, grid)
    perp_marks = _marks(perp, grid, max_price_age_ms)
    return SleeveData(
        venue=funding.venue,
        symbol=funding.symbol,
        times_ms=grid,
        rates=funding.rates,
        interval_hours=funding.interval_hours,
        known=known_counts(funding, lag_periods),
        spot=_marks(spot, grid, max_price_age_ms),
        perp=perp_marks,
        perp_high=hi,
        perp_low=lo,
        vol=_volatility(grid, perp_marks, vol_window),
    )


def price_series_for(data_dir: pathlib.Path | str, venue: str, market: str, symbol: str) -> list[PriceSeries]:
    """Every interval available for (venue, market, symbol)."""
    return [
        load_prices(data_dir, v, m, s, i)
        for v, m, s, i in iter_price_files(data_dir)
        if v == venue and m == market and s == symbol
    ]


def load_sleeve(
    data_dir: pathlib.Path | str,
    venue: str,
    symbol: str,
    *,
    lag_periods: int | None = None,
    max_price_age_ms: int = 4 * HOUR_MS,
    vol_window: int = 90,
) -> SleeveData:
    """Load funding + linear perp + spot prices for (venue, symbol); LoaderError if any is missing."""
    f = load_funding(data_dir, venue, symbol)
    spot = price_series_for(data_dir, venue, "spot", symbol)
    perp = price_series_for(data_dir, venue, "perp", symbol)
    if not spot or not perp:
        missing = "spot" if not spot else "perp"
        raise LoaderError(
            pathlib.Path(data_dir) / "prices" / venue / missing, f"no {missing} prices for {symbol}"
        )
    lag = DEFAULT_INFO_LAG.get(venue, 0) if lag_periods is None else lag_periods
    return build_sleeve(
        f, spot, perp, lag_periods=lag, max_price_age_ms=max_price_age_ms, vol_window=vol_window
    )
