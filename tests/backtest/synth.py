"""Synthetic series for exact backtest checks (built through the real loader types)."""

from __future__ import annotations

import numpy as np

from fundarb.backtest.loader import FundingSeries, PriceSeries
from fundarb.backtest.market import HOUR_MS, SleeveData, build_sleeve

T0 = 1_672_531_200_000  # 2023-01-01T00:00:00Z


def funding(rates: list[float] | np.ndarray, interval_hours: int = 8, venue: str = "x") -> FundingSeries:
    """Settlements every ``interval_hours`` from T0 with the given rates."""
    r = np.asarray(rates, dtype=np.float64)
    t = T0 + np.arange(r.size, dtype=np.int64) * interval_hours * HOUR_MS
    return FundingSeries(venue, "SYN", t, r, np.full(r.size, interval_hours, dtype=np.int64))


def bars(
    market: str,
    closes: np.ndarray,
    interval: str = "8h",
    highs: np.ndarray | None = None,
    lows: np.ndarray | None = None,
    start_ms: int = T0 - 8 * HOUR_MS,
) -> PriceSeries:
    """Bars whose k-th close lands on ``start_ms + (k+1) * interval`` (default: on settlement k)."""
    c = np.asarray(closes, dtype=np.float64)
    iv = {"1h": 1, "8h": 8, "1d": 24}[interval] * HOUR_MS
    t = start_ms + np.arange(c.size, dtype=np.int64) * iv
    h = c.copy() if highs is None else np.asarray(highs, dtype=np.float64)
    lo = c.copy() if lows is None else np.asarray(lows, dtype=np.float64)
    return PriceSeries("x", market, "SYN", interval, t, c.copy(), h, lo, c, np.ones(c.size))


def flat_sleeve(rates: list[float] | np.ndarray, price: float = 100.0, lag: int = 0) -> SleeveData:
    """Constant spot and perp price ``price`` on every settlement."""
    n = len(rates)
    px = np.full(n, price)
    return build_sleeve(funding(rates), [bars("spot", px)], [bars("perp", px)], lag_periods=lag)
