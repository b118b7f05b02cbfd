"""Replay of real history: bars and funding from the canonical CSV layout, bridged intraday.

Data come through THE shared loader (:mod:`fundarb.backtest.loader`). For each symbol the driver
takes a spot and a perpetual price series and a funding series of one venue:

* **Knots.** Every bar contributes its close at ``open + interval``; the first bar also its open
  at ``open``. Close-only rows (empty open/high/low) are fine. Missing bars just make a longer
  segment.
* **Intraday path.** Between two knots the log price follows a seeded Brownian bridge,
  ``log p(t) = linear(log knots) + sigma * B(t)``, pinned to the real prices at the knots.
  ``sigma`` (per sqrt(ms)) comes from the data: the Parkinson estimate ``ln(H/L)^2 / (4 ln 2)`` of
  the bar when high/low are present, else the standard deviation of the last ``vol_window``
  close-to-close log returns (the series' median when too few). Spot and perp share one noise
  path ``W`` per symbol, so the basis stays close to the data's basis between bars.
* **Funding.** The predicted rate at ``t`` is the rate that will settle at the first funding
  time ``>= t`` (plus optional Gaussian noise of ``funding_noise`` times the fraction of the period
  still to run, so it converges to the real rate at settlement). The exchange settles it at its
  funding times on the mark (the perp path); the index is the spot path.

Past the data the last prices and rate hold (``end_ms`` tells the runner where the data stop).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import pathlib
import random
from collections.abc import Sequence
from decimal import Decimal

import attrs
import numpy as np

from fundarb.backtest.loader import FundingSeries, PriceSeries, default_data_dir, load_funding, load_prices
from fundarb.sim.drivers import BrownianNoise, MarketTick, to_price

__all__ = ["PricePath", "ReplayDriver", "SymbolHistory"]


@attrs.frozen
class SymbolHistory:
    """The history of one symbol: spot and perp bars and the funding series."""

    symbol: str
    spot: PriceSeries
    perp: PriceSeries
    funding: FundingSeries


class PricePath:
    """Knots (time, log price) and per-segment sigma of one price series."""

    def __init__(self, series: PriceSeries, vol_window: int = 30) -> None:
        iv = series.interval_ms
        close = np.asarray(series.close, dtype=float)
        ok = np.isfinite(close) & (close > 0)
        if not ok.any():
            raise ValueError(f"{series.venue}/{series.market}/{series.symbol}: no usable close prices")
        times: list[int] = []
        logs: list[float] = []
        first = int(np.argmax(ok))
        o0 = float(series.open[first])
        if math.isfinite(o0) and o0 > 0:
            times.append(int(series.open_ms[first]))
            logs.append(math.log(o0))
        idx = np.flatnonzero(ok)
        for k in idx:
            times.append(int(series.open_ms[k]) + iv)
            logs.append(math.log(float(close[k])))
        # sigma per segment ending at each knot (index aligned with times)
        rets = np.diff(np.log(close[idx])) if len(idx) > 1 else np.array([])
        median_ret_sd = float(np.std(rets)) if rets.size > 1 else 0.01
        hi = np.asarray(series.high, dtype=float)[idx]
        lo = np.asarray(series.low, dtype=float)[idx]
        sig: list[float] = []
        for j, _k in enumerate(idx):
            if math.isfinite(hi[j]) and math.isfinite(lo[j]) and hi[j] > 0 and lo[j] > 0 and hi[j] >= lo[j]:
                var_bar = math.log(hi[j] / lo[j]) ** 2 / (4 * math.log(2))
            else:
                window = rets[max(0, j - vol_window) : j]
                sd = float(np.std(window)) if window.size >= 5 else median_ret_sd
                var_bar = sd * sd
            sig.append(math.sqrt(var_bar / iv))
        if len(times) > len(sig):  # the leading open knot has no segment before it
            sig.insert(0, sig[0])
        self.times, self.logs, self.sigmas = times, logs, sig

    @property
    def start_ms(self) -> int:
        """First knot."""
        return self.times[0]

    @property
    def end_ms(self) -> int:
        """Last knot."""
        return self.times[-1]

    def at(self, ts_ms: int, noise: BrownianNoise) -> float:
        """The bridged price at ``ts_ms`` (held flat outside the knots)."""
        i = bisect.bisect_right(self.times, ts_ms)
        if i == 0:
            return math.exp(self.logs[0])
        if i == len(self.times):
            return math.exp(self.logs[-1])
        a, b = self.times[i - 1], self.times[i]
        la, lb = self.logs[i - 1], self.logs[i]
        frac = (ts_ms - a) / (b - a)
        return math.exp(la + (lb - la) * frac + self.sigmas[i] * noise.bridge(a, b, ts_ms))


class ReplayDriver:
    """Replays :class:`SymbolHistory` values (see the module docstring)."""

    def __init__(
        self,
        histories: Sequence[SymbolHistory],
        *,
        seed: int = 0,
        step_ms: int = 60_000,
        start_ms: int | None = None,
        funding_noise: float = 0.0,
        vol_window: int = 30,
    ) -> None:
        if not histories:
            raise ValueError("ReplayDriver needs at least one symbol")
        self.seed, self.step_ms, self.funding_noise = seed, step_ms, funding_noise
        self._hist = {h.symbol: h for h in histories}
        self._spot = {h.symbol: PricePath(h.spot, vol_window) for h in histories}
        self._perp = {h.symbol: PricePath(h.perp, vol_window) for h in histories}
        self._noise = {h.symbol: BrownianNoise(seed, h.symbol, step_ms) for h in histories}
        for h in histories:
            if len(h.funding) == 0:
                raise ValueError(f"{h.symbol}: empty funding series")
        first = max(max(self._spot[s].start_ms, self._perp[s].start_ms) for s in self._hist)
        self._start = first if start_ms is None else max(first, start_ms)
        self._end = min(min(self._spot[s].end_ms, self._perp[s].end_ms) for s in self._hist)
        if self._start >= self._end:
            raise ValueError(f"no data in the replay window (start {self._start}, data end {self._end})")

    @classmethod
    def from_data(
        cls,
        symbols: Sequence[str] = ("BTCUSDT",),
        *,
        data_dir: pathlib.Path | str | None = None,
        venue: str = "binance",
        interval: str = "8h",
        **kwargs: object,
    ) -> ReplayDriver:
        """Load ``symbols`` of ``venue`` (spot + perp bars of ``interval``, funding) with the shared loader."""
        d = default_data_dir() if data_dir is None else pathlib.Path(data_dir)
        hist = [
            SymbolHistory(
                s,
                load_prices(d, venue, "spot", s, interval),
                load_prices(d, venue, "perp", s, interval),
                load_funding(d, venue, s),
            )
            for s in symbols
        ]
        return cls(hist, **kwargs)  # type: ignore[arg-type]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols replayed."""
        return tuple(sorted(self._hist))

    @property
    def start_ms(self) -> int:
        """First instant where every series has data (or the requested start)."""
        return self._start

    @property
    def end_ms(self) -> int | None:
        """Last instant where every series has data."""
        return self._end

    def funding_rate(self, symbol: str, ts_ms: int) -> Decimal:
        """The rate that will settle at the first funding time >= ``ts_ms`` (plus noise)."""
        f = self._hist[symbol].funding
        k = int(np.searchsorted(f.times_ms, ts_ms, side="left"))
        if k >= len(f):
            return Decimal(repr(float(f.rates[-1])))
        rate = float(f.rates[k])
        if self.funding_noise > 0:
            period = int(f.interval_hours[k]) * 3_600_000
            left = min(1.0, max(0.0, (int(f.times_ms[k]) - ts_ms) / period))
            key = hashlib.sha256(f"{self.seed}:{symbol}:{k}:{ts_ms}".encode()).digest()
            rate += random.Random(key).gauss(0.0, self.funding_noise) * left
        return Decimal(f"{rate:.8g}")

    def tick_at(self, ts_ms: int) -> MarketTick:
        """Bridged spot and perp prices and the predicted funding rate of every symbol."""
        spot, perp, rate = {}, {}, {}
        for sym in self._hist:
            noise = self._noise[sym]
            spot[sym] = to_price(self._spot[sym].at(ts_ms, noise))
            perp[sym] = to_price(self._perp[sym].at(ts_ms, noise))
            rate[sym] = self.funding_rate(sym, ts_ms)
        return MarketTick(ts_ms, spot, perp, rate)
