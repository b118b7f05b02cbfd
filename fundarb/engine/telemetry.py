"""What the engine reports about itself, as one small interface.

The engine calls these hooks; :class:`PrometheusTelemetry` (in :mod:`fundarb.engine.app`)
turns them into ``fundarb_*`` metrics, and tests use :class:`RecordingTelemetry` to assert on
them. Labels never carry secrets: venue names, states and severities only.
"""

from __future__ import annotations

from typing import Protocol

import attrs

__all__ = ["NULL_TELEMETRY", "NullTelemetry", "RecordingTelemetry", "Telemetry"]


class Telemetry(Protocol):
    """Hooks the engine calls; every method must be cheap and never raise."""

    def order_sent(self, venue: str) -> None:
        """An order request is about to be written to ``venue``."""

    def hedge_gap(self, seconds: float) -> None:
        """Leg-A fill received -> hedge order written."""

    def naked_exposure(self, notional_seconds: float) -> None:
        """A position's total unhedged notional x time, observed when it settles."""

    def state_changed(self, position_id: str, old: str, new: str) -> None:
        """A position moved between states."""

    def alert(self, severity: str) -> None:
        """An alert was raised."""

    def market_data(self, instrument: str, age_seconds: float) -> None:
        """The age of an instrument's newest market data."""


class NullTelemetry:
    def order_sent(self, venue: str) -> None:
        pass

    def hedge_gap(self, seconds: float) -> None:
        pass

    def naked_exposure(self, notional_seconds: float) -> None:
        pass

    def state_changed(self, position_id: str, old: str, new: str) -> None:
        pass

    def alert(self, severity: str) -> None:
        pass

    def market_data(self, instrument: str, age_seconds: float) -> None:
        pass


NULL_TELEMETRY: Telemetry = NullTelemetry()


@attrs.define
class RecordingTelemetry(NullTelemetry):
    """Keeps what it was told, for tests and benchmarks."""

    hedge_gaps: list[float] = attrs.Factory(list)
    naked: list[float] = attrs.Factory(list)
    transitions: list[tuple[str, str, str]] = attrs.Factory(list)
    alerts: list[str] = attrs.Factory(list)
    orders: int = 0

    def order_sent(self, venue: str) -> None:
        self.orders += 1

    def hedge_gap(self, seconds: float) -> None:
        self.hedge_gaps.append(seconds)

    def naked_exposure(self, notional_seconds: float) -> None:
        self.naked.append(notional_seconds)

    def state_changed(self, position_id: str, old: str, new: str) -> None:
        self.transitions.append((position_id, old, new))

    def alert(self, severity: str) -> None:
        self.alerts.append(severity)
