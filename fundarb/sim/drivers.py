"""Market drivers: what the simulated market does over (sim) time.

A driver is a deterministic function of time: :meth:`MarketDriver.tick_at` gives the spot and
perpetual prices of every symbol and the predicted funding rate at any instant, however it is
accessed (random access, any order), so a seed fully fixes a run. The venue shell samples a
driver every ``step_ms`` and feeds :meth:`fundarb.sim.exchange.SimExchange.update_market`.

Drivers here:

* :class:`FlatDriver` - constant prices and rate (tests);
* :class:`ScriptedDriver` - prices and rates linearly interpolated between given points (tests);
* :class:`fundarb.sim.replay.ReplayDriver` - real history with a seeded Brownian bridge between
  bars;
* :class:`fundarb.sim.synthetic.SyntheticDriver` - seeded stress regimes (crash, funding flip,
  basis blow-out, volatility regimes).

:class:`BrownianNoise` is the shared seeded noise: a standard Brownian motion ``W(t)`` (unit
variance per ms) generated in day blocks from ``(seed, stream, day)``, so any ``W(t) - W(s)`` is
reproducible without generating the whole history.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

import attrs
import numpy as np

__all__ = [
    "DAY_MS",
    "BrownianNoise",
    "FlatDriver",
    "MarketDriver",
    "MarketTick",
    "ScriptPoint",
    "ScriptedDriver",
    "to_price",
]

DAY_MS = 86_400_000


def to_price(x: float) -> Decimal:
    """A float path value as a Decimal with 10 significant digits (the exchange rounds to tick)."""
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"path produced a bad price {x!r}")
    return Decimal(f"{x:.10g}")


@attrs.frozen
class MarketTick:
    """The market at ``ts_ms``: per symbol the spot price, the perpetual (mark) price and the
    predicted funding rate of the period in progress (the rate that will settle at its end)."""

    ts_ms: int
    spot: Mapping[str, Decimal]
    perp: Mapping[str, Decimal]
    funding: Mapping[str, Decimal]


class MarketDriver(Protocol):
    """What the venue shell needs from a driver."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols the driver prices (``"BTCUSDT"``...)."""
        ...

    @property
    def start_ms(self) -> int:
        """First instant with data."""
        ...

    @property
    def end_ms(self) -> int | None:
        """Last instant with data (None: unbounded). Past it prices stay at their last value."""
        ...

    def tick_at(self, ts_ms: int) -> MarketTick:
        """The market at ``ts_ms`` (deterministic)."""
        ...


@attrs.frozen
class FlatDriver:
    """Constant prices: ``prices[symbol] = (spot, perp)`` and one funding rate per symbol."""

    prices: Mapping[str, tuple[Decimal, Decimal]]
    funding_rate: Mapping[str, Decimal] = attrs.field(factory=dict)
    start_ms: int = 0
    end_ms: int | None = None

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols priced."""
        return tuple(sorted(self.prices))

    def tick_at(self, ts_ms: int) -> MarketTick:
        """The same market at every instant."""
        return MarketTick(
            ts_ms,
            {s: p[0] for s, p in self.prices.items()},
            {s: p[1] for s, p in self.prices.items()},
            {s: self.funding_rate.get(s, Decimal(0)) for s in self.prices},
        )


@attrs.frozen
class ScriptPoint:
    """One point of a script: at ``at_ms`` (absolute), ``symbol`` trades at ``spot`` / ``perp``."""

    at_ms: int
    symbol: str
    spot: Decimal
    perp: Decimal
    funding_rate: Decimal = Decimal(0)


@attrs.define
class ScriptedDriver:
    """Prices linearly interpolated between script points per symbol; the rate is stepwise
    (the last point's rate holds until the next point)."""

    points: Sequence[ScriptPoint]
    _by_symbol: dict[str, list[ScriptPoint]] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        if not self.points:
            raise ValueError("a script needs at least one point")
        for p in sorted(self.points, key=lambda p: p.at_ms):
            self._by_symbol.setdefault(p.symbol, []).append(p)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols priced."""
        return tuple(sorted(self._by_symbol))

    @property
    def start_ms(self) -> int:
        """Time of the first point."""
        return min(p.at_ms for p in self.points)

    @property
    def end_ms(self) -> int | None:
        """Time of the last point."""
        return max(p.at_ms for p in self.points)

    def tick_at(self, ts_ms: int) -> MarketTick:
        """Interpolate every symbol at ``ts_ms``."""
        spot, perp, rate = {}, {}, {}
        for sym, pts in self._by_symbol.items():
            times = [p.at_ms for p in pts]
            i = bisect.bisect_right(times, ts_ms)
            if i == 0:
                a = b = pts[0]
            elif i == len(pts):
                a = b = pts[-1]
            else:
                a, b = pts[i - 1], pts[i]
            w = Decimal(0) if b.at_ms == a.at_ms else Decimal(ts_ms - a.at_ms) / Decimal(b.at_ms - a.at_ms)
            spot[sym] = to_price(float(a.spot + (b.spot - a.spot) * w))
            perp[sym] = to_price(float(a.perp + (b.perp - a.perp) * w))
            rate[sym] = a.funding_rate
        return MarketTick(ts_ms, spot, perp, rate)


class BrownianNoise:
    """Seeded standard Brownian motion sampled on a ``step_ms`` grid, generated per day block."""

    def __init__(self, seed: int, stream: str, step_ms: int) -> None:
        if step_ms <= 0 or DAY_MS % step_ms:
            raise ValueError(f"step_ms must divide a day, got {step_ms}")
        self.seed, self.stream, self.step_ms = seed, stream, step_ms
        self._days: dict[int, np.ndarray] = {}
        self._ends: dict[int, float] = {}

    def _day(self, day: int) -> np.ndarray:
        """Cumulative W within ``day`` at grid points 0..n (W=0 at the day's start)."""
        path = self._days.get(day)
        if path is None:
            digest = hashlib.sha256(f"{self.seed}:{self.stream}:{day}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
            n = DAY_MS // self.step_ms
            inc = rng.standard_normal(n) * math.sqrt(self.step_ms)
            path = np.concatenate(([0.0], np.cumsum(inc)))
            if len(self._days) > 64:
                self._days.clear()
            self._days[day] = path
            self._ends[day] = float(path[-1])
        return path

    def _end(self, day: int) -> float:
        end = self._ends.get(day)
        if end is None:
            self._day(day)
            end = self._ends[day]
        return end

    def _within(self, t: int) -> tuple[int, float]:
        day, off = divmod(t, DAY_MS)
        return day, float(self._day(day)[off // self.step_ms])

    def delta(self, s_ms: int, t_ms: int) -> float:
        """``W(t) - W(s)`` (grid-aligned: times are floored to the step)."""
        if t_ms < s_ms:
            return -self.delta(t_ms, s_ms)
        ds, ws = self._within(s_ms)
        dt, wt = self._within(t_ms)
        total = wt - ws
        for d in range(ds, dt):
            total += self._end(d)
        return total

    def bridge(self, a_ms: int, b_ms: int, t_ms: int) -> float:
        """A standard Brownian bridge pinned to 0 at ``a_ms`` and ``b_ms``, at ``t_ms``."""
        if b_ms <= a_ms:
            return 0.0
        frac = (t_ms - a_ms) / (b_ms - a_ms)
        return self.delta(a_ms, t_ms) - frac * self.delta(a_ms, b_ms)
