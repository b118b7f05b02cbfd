"""A seeded synthetic market for stress: regimes of drift, volatility, basis and funding.

A run is a sequence of :class:`Regime` values. Within a regime the spot log price moves from its
start to ``start * (1 + move)`` along a seeded Brownian bridge of annualized volatility ``vol``
(so a "30 % crash in 10 minutes" is exactly -30 % at the regime's end, with noise in between);
the perp trades at ``spot * (1 + basis)`` with the basis (bps) moving linearly to
``basis_bps`` at the regime's end (a negative basis: the perp below spot); the predicted funding
rate is ``funding_rate`` throughout the regime. After the last regime the market holds still.

:meth:`SyntheticDriver.stress` builds the standard stress day: calm carry, a 30 % crash in 10
minutes with the perp 150 bps under spot and funding flipping negative, a volatile aftermath with
the basis blown out, then recovery. :meth:`SyntheticDriver.from_dict` reads a plain dict, so a
scenario file can describe its own regimes::

    {"seed": 3, "start_ms": 0, "prices": {"BTCUSDT": "30000"},
     "regimes": [{"minutes": 60, "move": 0.0, "vol": 0.5, "basis_bps": 5, "funding_rate": 0.0001},
                 {"minutes": 10, "move": -0.3, "vol": 1.5, "basis_bps": -150, "funding_rate": -0.0005}]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from fundarb.sim.drivers import DAY_MS, BrownianNoise, MarketTick, to_price

__all__ = ["Regime", "SyntheticDriver"]

_YEAR_MS = 365 * DAY_MS


@attrs.frozen
class Regime:
    """One stretch of synthetic market (see the module docstring)."""

    duration_ms: int
    move: float = 0.0
    vol: float = 0.5
    basis_bps: float = 5.0
    funding_rate: float = 0.0001

    def __attrs_post_init__(self) -> None:
        if self.duration_ms <= 0:
            raise ValueError(f"regime duration must be > 0 ms, got {self.duration_ms}")
        if not self.move > -1 or self.vol < 0 or not math.isfinite(self.vol + self.basis_bps):
            raise ValueError(f"bad regime {self!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Regime:
        """Keys: ``minutes`` (or ``duration_ms``), ``move``, ``vol``, ``basis_bps``, ``funding_rate``."""
        unknown = set(d) - {"minutes", "duration_ms", "move", "vol", "basis_bps", "funding_rate"}
        if unknown:
            raise ValueError(f"unknown regime keys: {sorted(unknown)}")
        dur = int(d["duration_ms"]) if "duration_ms" in d else int(float(d["minutes"]) * 60_000)
        return cls(
            dur,
            float(d.get("move", 0.0)),
            float(d.get("vol", 0.5)),
            float(d.get("basis_bps", 5.0)),
            float(d.get("funding_rate", 0.0001)),
        )


class SyntheticDriver:
    """Seeded regimes over one or more symbols (each symbol gets its own noise)."""

    def __init__(
        self,
        prices: Mapping[str, Decimal],
        regimes: Sequence[Regime],
        *,
        seed: int = 0,
        start_ms: int = 0,
        step_ms: int = 60_000,
        initial_basis_bps: float = 5.0,
    ) -> None:
        if not regimes or not prices:
            raise ValueError("a synthetic market needs prices and at least one regime")
        self._prices = {s: float(p) for s, p in prices.items()}
        self.regimes = tuple(regimes)
        self.seed, self._start, self.step_ms = seed, start_ms, step_ms
        self._noise = {s: BrownianNoise(seed, f"synthetic:{s}", step_ms) for s in prices}
        self._bounds: list[int] = [start_ms]
        for r in self.regimes:
            self._bounds.append(self._bounds[-1] + r.duration_ms)
        self._basis0 = initial_basis_bps

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SyntheticDriver:
        """Build from a plain dict (keys: prices, regimes, seed, start_ms, step_ms, initial_basis_bps)."""
        unknown = set(d) - {"prices", "regimes", "seed", "start_ms", "step_ms", "initial_basis_bps"}
        if unknown:
            raise ValueError(f"unknown synthetic market keys: {sorted(unknown)}")
        return cls(
            {s: Decimal(str(p)) for s, p in d["prices"].items()},
            [Regime.from_dict(r) for r in d["regimes"]],
            seed=int(d.get("seed", 0)),
            start_ms=int(d.get("start_ms", 0)),
            step_ms=int(d.get("step_ms", 60_000)),
            initial_basis_bps=float(d.get("initial_basis_bps", 5.0)),
        )

    @classmethod
    def stress(
        cls,
        *,
        seed: int = 0,
        start_ms: int = 0,
        prices: Mapping[str, Decimal] | None = None,
        calm_minutes: int = 120,
    ) -> SyntheticDriver:
        """Calm carry, 30 % crash in 10 min (perp under spot, funding negative), aftermath, recovery."""
        m = 60_000
        regimes = [
            Regime(calm_minutes * m, 0.0, 0.4, 5.0, 0.0001),
            Regime(10 * m, -0.30, 1.5, -150.0, -0.0005),
            Regime(120 * m, 0.05, 1.2, -60.0, -0.0003),
            Regime(240 * m, 0.02, 0.6, 8.0, 0.0001),
        ]
        return cls(
            prices or {"BTCUSDT": Decimal(30000), "ETHUSDT": Decimal(2000)},
            regimes,
            seed=seed,
            start_ms=start_ms,
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols priced."""
        return tuple(sorted(self._prices))

    @property
    def start_ms(self) -> int:
        """Start of the first regime."""
        return self._start

    @property
    def end_ms(self) -> int | None:
        """End of the last regime."""
        return self._bounds[-1]

    def _locate(self, ts_ms: int) -> tuple[int, float]:
        """(regime index, fraction elapsed); clamped to the ends."""
        if ts_ms <= self._bounds[0]:
            return 0, 0.0
        for i, r in enumerate(self.regimes):
            if ts_ms < self._bounds[i + 1]:
                return i, (ts_ms - self._bounds[i]) / r.duration_ms
        return len(self.regimes) - 1, 1.0

    def tick_at(self, ts_ms: int) -> MarketTick:
        """Spot, perp and predicted funding of every symbol at ``ts_ms``."""
        i, frac = self._locate(ts_ms)
        r = self.regimes[i]
        a, b = self._bounds[i], self._bounds[i + 1]
        t = min(max(ts_ms, a), b)
        basis_start = self._basis0 if i == 0 else self.regimes[i - 1].basis_bps
        basis = basis_start + (r.basis_bps - basis_start) * frac
        spot, perp, rate = {}, {}, {}
        for sym, p0 in self._prices.items():
            level = p0 * math.prod(1 + x.move for x in self.regimes[:i])
            log_s = math.log(level) + math.log(1 + r.move) * frac
            sigma = r.vol / math.sqrt(_YEAR_MS)
            s = math.exp(log_s + sigma * self._noise[sym].bridge(a, b, t))
            spot[sym] = to_price(s)
            perp[sym] = to_price(s * (1 + basis / 10_000))
            rate[sym] = Decimal(repr(r.funding_rate))
        return MarketTick(ts_ms, spot, perp, rate)
