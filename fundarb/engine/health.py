"""The engine's face to the health server and to Prometheus.

:class:`EngineHealth` answers ``/healthz``, ``/readyz``, ``/positions`` and the kill switch for
:mod:`fundarb.http`; :class:`PrometheusTelemetry` turns the engine's telemetry hooks into the
``fundarb_*`` metrics of :mod:`fundarb.metrics`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from fundarb.core.model import InstrumentId
from fundarb.engine.manager import PositionManager
from fundarb.engine.market import MarketState
from fundarb.metrics import Metrics

__all__ = ["EngineHealth", "PrometheusTelemetry"]


@attrs.define
class PrometheusTelemetry:
    """Telemetry hooks -> Prometheus metrics."""

    metrics: Metrics

    def order_sent(self, venue: str) -> None:
        self.metrics.record_order_sent(venue)

    def hedge_gap(self, seconds: float) -> None:
        self.metrics.record_hedge_gap(seconds)

    def naked_exposure(self, notional_seconds: float) -> None:
        self.metrics.record_naked_exposure(notional_seconds)

    def state_changed(self, position_id: str, old: str, new: str) -> None:
        pass  # the positions-by-state gauge is refreshed by the status loop

    def alert(self, severity: str) -> None:
        pass

    def market_data(self, instrument: str, age_seconds: float) -> None:
        self.metrics.set_staleness(instrument, age_seconds)


@attrs.define
class EngineHealth:
    """What the health server asks the engine."""

    manager: PositionManager
    market: MarketState
    instruments: list[InstrumentId]
    kill_switch: Callable[[str], Awaitable[dict[str, Any]]]
    venues_connected: dict[str, bool] = attrs.Factory(dict)
    journal_ok: bool = True
    reconciled: bool = False
    last_tick: float = 0.0

    def is_alive(self) -> bool:
        """The event loop answers (this runs on it)."""
        self.last_tick = trio.current_time()
        return True

    def readiness(self) -> list[str]:
        """Reasons not to trust the engine now; empty when ready."""
        reasons = [f"venue {v} disconnected" for v, ok in sorted(self.venues_connected.items()) if not ok]
        reasons += [f"market data stale: {i}" for i in self.market.stale(self.instruments)]
        if not self.journal_ok:
            reasons.append("journal not writable")
        if not self.reconciled:
            reasons.append("reconciliation with venues not done")
        return reasons

    def positions(self) -> list[dict[str, Any]]:
        """Every position's legs and exposure (no secrets in there)."""
        return [r.exposure() for r in self.manager.runners.values()]

    async def kill(self, reason: str) -> dict[str, Any]:
        """The kill switch: halt and flatten everything."""
        return await self.kill_switch(reason)
