"""One object for the engine to hold: the risk manager's state and a hook per observation.

:class:`RiskManager` bundles the trading modes, one error-rate breaker per venue, the last
market-data time per instrument, the last funding sign per instrument and today's PnL, and
exposes one method per thing the engine observes. Every method is synchronous and pure in the
core's sense (time comes in as ``now_ms``; no I/O, no logging): it returns what to do and the
:class:`~fundarb.core.risk_modes.ModeChanged` records to journal and count. The engine owns
the Trio side: which task calls which hook, journaling, metrics, transfers and orders.

Hooks, and what the engine does with the answer:

- ``check(intent, book, now)``: send the order only if ``allowed``; journal it, count by reason;
- ``on_venue_call(venue, ok, now)``: journal the records (REDUCING the venue while tripped);
- ``on_market_data(instrument, now)`` / ``watch(instrument, now)``: nothing (feeds ``tick``);
- ``on_clock(venue, sent, server, received, now)``: journal the records;
- ``on_funding(snapshot)``: on a flip, tell the strategy (exit) and the operator;
- ``on_position(position, free_collateral)``: TOP_UP -> transfer collateral; REDUCE_PAIRWISE ->
  ``ReduceRequested(reduce_quantity)``; UNWIND -> ``RiskBreached(MARGIN)``; ALERT -> alert;
- ``on_venue_fill(fill, legs)``: feed ``VenueFillReceived`` to the position, journal the re-hedge;
- ``on_pnl(pnl, now)``: journal the records (global REDUCING at the daily loss limit);
- ``tick(now)``, about once a second: journal the records (stale data, breaker expiry, new day);
- ``kill(reason, now)``: HALTED globally; feed ``OperatorKilled`` to every position;
- ``operator_set(scope, mode, now, reason)`` / ``operator_clear_rule(...)``: journal the records.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from fundarb.core.breakers import BreakerConfig, ErrorRateBreaker, apply_breaker
from fundarb.core.errors import InvalidValue
from fundarb.core.model import Fill, FundingSnapshot, InstrumentId, VenuePosition
from fundarb.core.risk import DailyPnl, OrderIntent, RiskBook, RiskDecision, RiskLimits, check_order
from fundarb.core.risk_book import Exposure
from fundarb.core.risk_modes import ModeChanged, ModeScope, ModeSource, TradingMode, TradingModes, kill
from fundarb.core.risk_monitors import (
    AdlPolicy,
    FundingFlip,
    MarginAction,
    MarginActionKind,
    MarginLadder,
    Rehedge,
    adl_action,
    apply_clock_skew,
    apply_daily_loss,
    apply_stale_data,
    detect_funding_flip,
    estimate_clock_skew,
    margin_action,
    rehedge_for_venue_fill,
)

__all__ = ["RiskManager", "RiskManagerConfig"]


def _non_negative_int(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{attribute.name}: must be an int >= 0, got {value!r}")


@attrs.frozen
class RiskManagerConfig:
    """Everything the risk manager is tuned by. ``stale_after_ms``: market data older than this
    puts its instrument in REDUCING; ``clock_skew_limit_ms``: a venue clock further off puts the
    venue in REDUCING; ``funding_dead_band``: rates within it do not count as a sign."""

    limits: RiskLimits
    ladder: MarginLadder = attrs.field(factory=MarginLadder)
    adl: AdlPolicy = attrs.field(factory=AdlPolicy)
    breaker: BreakerConfig = attrs.field(factory=BreakerConfig)
    stale_after_ms: int = attrs.field(default=10_000, validator=_non_negative_int)
    clock_skew_limit_ms: int = attrs.field(default=1_000, validator=_non_negative_int)
    funding_dead_band: Decimal = attrs.field(default=Decimal(0))

    @funding_dead_band.validator
    def _check_band(self, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise InvalidValue(f"funding_dead_band: must be a finite Decimal >= 0, got {value!r}")


@attrs.define
class RiskManager:
    """The risk manager's state and hooks (see the module docstring). Not thread-safe; the
    engine calls it from one Trio task at a time (Trio tasks do not preempt each other)."""

    config: RiskManagerConfig
    modes: TradingModes = attrs.field(factory=TradingModes)
    breakers: dict[str, ErrorRateBreaker] = attrs.field(factory=dict)
    last_update_ms: dict[InstrumentId, int] = attrs.field(factory=dict)
    funding_signs: dict[InstrumentId, int] = attrs.field(factory=dict)
    pnl: DailyPnl | None = None

    # --- orders ---------------------------------------------------------------------------------

    def check(self, intent: OrderIntent, book: RiskBook, now_ms: int) -> RiskDecision:
        """The pre-trade gate under the current modes."""
        return check_order(intent, book, self.config.limits, self.modes, now_ms)

    def effective(self, instrument: InstrumentId) -> TradingMode:
        """The mode an order on ``instrument`` trades under now."""
        return self.modes.effective(instrument)

    # --- observations ---------------------------------------------------------------------------

    def on_venue_call(self, venue: str, ok: bool, now_ms: int) -> list[ModeChanged]:
        """Count one venue call's outcome; REDUCING for the venue while its breaker is tripped."""
        breaker = self.breakers.get(venue)
        if breaker is None:
            breaker = self.breakers[venue] = ErrorRateBreaker(self.config.breaker)
        change = breaker.record(ok, now_ms)
        detail = "" if change is None else change.detail
        return self._apply(apply_breaker(self.modes, venue, breaker, now_ms, detail))

    def on_market_data(self, instrument: InstrumentId, now_ms: int) -> None:
        """Note fresh market data for ``instrument`` (a quote, a funding update, a mark)."""
        if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
            raise InvalidValue(f"now_ms: must be a non-negative int of ms, got {now_ms!r}")
        self.last_update_ms[instrument] = max(now_ms, self.last_update_ms.get(instrument, 0))

    def watch(self, instrument: InstrumentId, now_ms: int) -> None:
        """Start watching ``instrument`` for staleness, as if it had just updated."""
        self.last_update_ms.setdefault(instrument, now_ms)

    def on_clock(
        self, venue: str, sent_ms: int, server_ms: int, received_ms: int, now_ms: int
    ) -> list[ModeChanged]:
        """A server-time answer: REDUCING for the venue while its clock is beyond the limit."""
        skew = estimate_clock_skew(sent_ms, server_ms, received_ms)
        return self._apply(apply_clock_skew(self.modes, venue, skew, self.config.clock_skew_limit_ms, now_ms))

    def on_funding(self, snapshot: FundingSnapshot) -> FundingFlip | None:
        """A funding update: a :class:`FundingFlip` when its sign crossed the dead band."""
        last = self.funding_signs.get(snapshot.instrument, 0)
        sign, flip = detect_funding_flip(last, snapshot, self.config.funding_dead_band)
        self.funding_signs[snapshot.instrument] = sign
        return flip

    def on_position(
        self,
        position: VenuePosition,
        free_collateral: Decimal,
        *,
        can_top_up: bool = True,
        lot_step: Decimal | None = None,
    ) -> MarginAction:
        """A perp leg's venue view: the more severe of the margin ladder and the ADL policy."""
        margin = margin_action(
            position, free_collateral, self.config.ladder, can_top_up=can_top_up, lot_step=lot_step
        )
        adl = adl_action(position, self.config.adl, lot_step=lot_step)
        if adl.kind.severity > margin.kind.severity or (
            adl.kind is margin.kind is MarginActionKind.REDUCE_PAIRWISE
            and adl.reduce_quantity > margin.reduce_quantity
        ):
            return adl
        return margin

    def on_venue_fill(self, fill: Fill, legs: list[Exposure] | tuple[Exposure, ...]) -> Rehedge | None:
        """A liquidation or ADL fill on one of a position's ``legs`` (as held before it)."""
        return rehedge_for_venue_fill(fill, legs)

    def on_pnl(self, pnl: DailyPnl, now_ms: int) -> list[ModeChanged]:
        """Today's PnL changed: global REDUCING once it reaches the daily loss limit."""
        self.pnl = pnl
        return self._apply(apply_daily_loss(self.modes, pnl, self.config.limits, now_ms))

    def tick(self, now_ms: int) -> list[ModeChanged]:
        """Periodic re-evaluation (say once a second): stale data, breaker expiry and recovery,
        and the daily loss limit across UTC midnight."""
        records = self._apply(
            apply_stale_data(self.modes, self.last_update_ms, self.config.stale_after_ms, now_ms)
        )
        for venue in sorted(self.breakers):
            breaker = self.breakers[venue]
            change = breaker.poll(now_ms)
            detail = "" if change is None else change.detail
            records += self._apply(apply_breaker(self.modes, venue, breaker, now_ms, detail))
        if self.pnl is not None:
            records += self._apply(apply_daily_loss(self.modes, self.pnl, self.config.limits, now_ms))
        return records

    # --- operator -------------------------------------------------------------------------------

    def kill(self, reason: str, now_ms: int) -> list[ModeChanged]:
        """The kill switch: HALTED globally by the operator."""
        return self._apply(kill(self.modes, reason, now_ms))

    def operator_set(
        self, scope: ModeScope, mode: TradingMode, now_ms: int, reason: str
    ) -> list[ModeChanged]:
        """The operator sets (or, with ACTIVE, lifts) its own mode on ``scope``."""
        return self._apply(self.modes.set(scope, mode, ModeSource.OPERATOR, now_ms, reason))

    def operator_clear_rule(self, scope: ModeScope, rule: str, now_ms: int, reason: str) -> list[ModeChanged]:
        """The operator lifts rule ``rule``'s mode on ``scope`` (it returns if the cause persists)."""
        return self._apply(self.modes.operator_clear(scope, ModeSource.rule(rule), now_ms, reason))

    def _apply(self, result: tuple[TradingModes, list[ModeChanged]]) -> list[ModeChanged]:
        self.modes, records = result
        return records
