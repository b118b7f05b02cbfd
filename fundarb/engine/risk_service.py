"""The Trio side of risk: the pure :class:`~fundarb.core.risk_manager.RiskManager` driven by tasks.

::

    RiskService.run()              (started in the engine's root nursery)
     ├── tick loop        ~1 s : market-data ages -> stale-data rule, breaker expiry, daily loss,
     │                           net delta per asset (metric + alert)
     ├── margin monitor   ~N s : venue positions + balances -> margin ladder per perp leg:
     │                           alert / transfer collateral / ReduceRequested / RiskBreached
     ├── clock monitor         : venue server time -> clock-skew rule (off for simulated venues)
     └── re-hedge watchdogs    : after a liquidation/ADL fill, was the position hedged again
                                 within its hedge deadline?

Synchronous hooks: :meth:`RiskService.entries_allowed` (the trader's pre-trade gate),
:meth:`RiskService.on_venue_call` (fed by :class:`~fundarb.engine.risk_records.ObservedVenue`),
:meth:`RiskService.on_venue_event` (venue-generated fills), :meth:`RiskService.kill` (the kill
switch), :meth:`RiskService.operator_set`. Every decision is journaled
(:mod:`fundarb.engine.risk_records`) and counted in Prometheus. Settings: :mod:`.risk_settings`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal

import attrs
import trio
from prometheus_client import Counter, Gauge

from fundarb.config import Config, Mode
from fundarb.core.commands import OrderPurpose
from fundarb.core.model import (
    ZERO,
    Balance,
    FundingSnapshot,
    Instrument,
    InstrumentId,
    OrderRequest,
    Side,
    VenuePosition,
)
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.core.risk import (
    DailyPnl,
    OrderIntent,
    RiskBook,
    RiskDecision,
    RiskReason,
    exposures_of,
)
from fundarb.core.risk_book import Exposure
from fundarb.core.risk_manager import RiskManager, RiskManagerConfig
from fundarb.core.risk_modes import ModeChanged, ModeScope, TradingMode
from fundarb.core.risk_monitors import FundingFlip, MarginAction, MarginActionKind, delta_breaches
from fundarb.core.venue_events import FillReported, VenueEvent
from fundarb.engine import risk_margin
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager, owner_of
from fundarb.engine.market import MarketState
from fundarb.engine.position_runner import PositionRunner
from fundarb.engine.records import AlertRaised
from fundarb.engine.risk_records import (
    DeltaBreached,
    GateDecided,
    MarginActed,
    ModeSwitched,
    RehedgeChecked,
    VenueFillSeen,
)
from fundarb.engine.risk_settings import RiskServiceSettings, limits_from
from fundarb.engine.venues import instruments_with_retry
from fundarb.journal.base import Entry, Journal
from fundarb.metrics import Metrics
from fundarb.venues.errors import VenueError
from fundarb.venues.protocol import Venue

__all__ = ["RiskService", "RiskServiceSettings"]

log = logging.getLogger("fundarb.risk")
S = PositionState


@attrs.define(eq=False)
class RiskService:
    """Owns the risk manager's state for one engine (see the module docstring)."""

    risk: RiskManager
    settings: RiskServiceSettings
    manager: PositionManager
    market: MarketState
    journal: Journal
    clock: EngineClock
    metrics: Metrics
    venues: Mapping[str, Venue] = attrs.Factory(dict)
    instruments: dict[InstrumentId, Instrument] = attrs.Factory(dict)
    # what happened, for status, tests and stress figures
    decisions: list[GateDecided] = attrs.Factory(list)
    margin_actions: list[MarginActed] = attrs.Factory(list)
    rehedges: list[RehedgeChecked] = attrs.Factory(list)
    first_action_ms: int | None = None
    funding_flips: list[FundingFlip] = attrs.Factory(list)
    margin_passes: int = 0
    _pnl: DailyPnl | None = None
    _values: dict[str, Decimal] = attrs.Factory(dict)
    _transfers: set[InstrumentId] = attrs.Factory(set)
    _no_top_up_until: dict[str, int] = attrs.Factory(dict)
    _last_kind: dict[InstrumentId, MarginActionKind] = attrs.Factory(dict)
    _breached: set[str] = attrs.Factory(set)
    _nursery: trio.Nursery | None = None
    _delta_gauge: Gauge | None = None
    _flip_counter: Counter | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        manager: PositionManager,
        market: MarketState,
        journal: Journal,
        clock: EngineClock,
        metrics: Metrics,
    ) -> RiskService:
        """The engine's risk service from its configuration (clock check off in paper mode:
        the simulator's clock runs at ``FUNDARB_SIM_SPEED``)."""
        r = config.risk
        rm = RiskManager(RiskManagerConfig(limits_from(config), stale_after_ms=int(r.stale_after * 1000)))
        settings = RiskServiceSettings(
            entry_leverage=r.leverage,
            equity=r.capital,
            max_position_notional=r.max_position_notional,
            clock_interval=None if config.mode is Mode.PAPER else 60.0,
        )
        return cls(rm, settings, manager, market, journal, clock, metrics)

    # --- journal and metrics ----------------------------------------------------------------

    def _journal(self, record: object, position_id: str | None = None) -> None:
        self.journal.append_nowait(Entry(record, self.clock.now_ms(), position_id))

    def _modes_changed(self, records: list[ModeChanged]) -> None:
        for change in records:
            self.metrics.record_mode_change(
                str(change.scope), change.scope.kind.value, change.scope_mode.value
            )
            self._journal(ModeSwitched.of(change))
            log.warning(
                "mode %s: %s -> %s by %s (%s)",
                change.scope,
                change.scope_previous.value,
                change.scope_mode.value,
                change.by,
                change.reason,
            )

    def _decided(
        self, decision: RiskDecision, position_id: str, instrument: InstrumentId, purpose: str
    ) -> None:
        self.metrics.record_gate_decision(decision.allowed, decision.reason.value)
        record = GateDecided.of(decision, position_id, instrument, purpose)
        self.decisions.append(record)
        del self.decisions[:-1000]
        self._journal(record, None if position_id == "new" else position_id)

    # --- the book ---------------------------------------------------------------------------

    def _marks(self) -> dict[InstrumentId, Decimal]:
        out = {}
        for iid, state in self.market.instruments.items():
            if state.quote is not None:
                out[iid] = state.quote.mid
        return out

    def exposures(self) -> list[Exposure]:
        """Every open position's legs, at the latest marks."""
        marks = self._marks()
        return [e for runner in self.manager.active() for e in self._exposures_of(runner, marks)]

    def book(self) -> RiskBook:
        """What the gate judges against now."""
        now = self.clock.now_ms()
        pnl = self._pnl if self._pnl is not None else DailyPnl.start(now)
        return RiskBook(tuple(self.exposures()), self.settings.equity, pnl, self.settings.tail_moves)

    # --- hooks ------------------------------------------------------------------------------

    def entries_allowed(self, perp: Instrument, spot: Instrument) -> str | None:
        """The pre-trade gate for a new hedged entry (perp short, spot long) at the largest size
        the trader may open: None to allow, else the reason. Journaled and counted."""
        quote = self.market.quote(perp.id)
        if quote is None:
            return "no quote for the perpetual leg"
        price = quote.mid
        intent = OrderIntent(
            "new",
            perp.id,
            perp.base,
            Side.SELL,
            self.settings.max_position_notional / price,
            price,
            OrderPurpose.ENTRY,
            leverage=self.settings.entry_leverage,
            hedge_instrument=spot.id,
        )
        decision = self.risk.check(intent, self.book(), self.clock.now_ms())
        self._decided(decision, "new", perp.id, OrderPurpose.ENTRY.value)
        return None if decision.allowed else f"{decision.reason.value}: {decision.detail}"

    def check_order(self, request: OrderRequest) -> str | None:
        """The pre-trade gate on one of our orders about to be sent (``ObservedVenue``'s gate):
        None to send it, else the reason. Every decision is journaled and counted.

        Only orders that *open* exposure (purpose ENTRY) are refused. A denied hedge, rebalance,
        exit or unwind is still sent and logged as critical: refusing it could leave a leg naked,
        which is worse than any cap (the core gate allows confirmed risk-reducing orders anyway).
        """
        cid = request.client_order_id
        pid = owner_of(cid)
        runner = None if pid is None else self.manager.runners.get(pid)
        order = None if runner is None else runner.position.order(cid)
        if runner is None or order is None:
            return None  # not one of our positions' orders (manual, reconciliation): not ours to judge
        position = runner.position
        plan = position.plan
        spec, other = plan.leg(order.leg), plan.leg(Leg.B if order.leg is Leg.A else Leg.A)
        marks = self._marks()
        price = request.price or marks.get(request.instrument) or position.reference_price
        if price is None or price <= 0:
            decision = RiskDecision(
                False,
                RiskReason.MISSING_DATA,
                f"{cid}: no price to judge the order",
                self.risk.effective(request.instrument),
            )
        else:
            now = self.clock.now_ms()
            exposures = [
                e for r in self.manager.active() if r is not runner for e in self._exposures_of(r, marks)
            ]
            try:
                exposures += exposures_of(position, marks, exclude_cid=cid)
            except ValueError as e:  # a leg cannot be valued: judged without it (logged)
                log.warning("position %s: %s", position.id, e)
            pnl = self._pnl if self._pnl is not None else DailyPnl.start(now)
            book = RiskBook(tuple(exposures), self.settings.equity, pnl, self.settings.tail_moves)
            intent = OrderIntent(
                position.id,
                request.instrument,
                spec.instrument.base,
                request.side,
                request.quantity,
                price,
                order.purpose,
                leverage=self.settings.entry_leverage if spec.instrument.is_perpetual else None,
                hedge_instrument=other.instrument.id,
            )
            decision = self.risk.check(intent, book, now)
        self._decided(decision, position.id, request.instrument, order.purpose.value)
        if decision.allowed:
            return None
        if order.purpose is not OrderPurpose.ENTRY:
            log.critical(
                "gate would refuse %s %s (%s): sent anyway, it reduces risk",
                order.purpose.value,
                cid,
                decision.detail,
            )
            return None
        return f"{decision.reason.value}: {decision.detail}"

    def _exposures_of(self, runner: PositionRunner, marks: Mapping[InstrumentId, Decimal]) -> list[Exposure]:
        try:
            return list(exposures_of(runner.position, marks))
        except ValueError as e:
            log.warning("position %s: %s", runner.id, e)
            return []

    def on_venue_call(self, venue: str, ok: bool) -> None:
        """One venue call's outcome (the API error-rate breaker)."""
        self._modes_changed(self.risk.on_venue_call(venue, ok, self.clock.now_ms()))

    def on_venue_event(self, event: VenueEvent) -> None:
        """A user-data event, before the position manager routes it: liquidation and ADL fills
        are journaled with the re-hedge they need, and watched until hedged again."""
        if not isinstance(event, FillReported) or event.fill.venue_generated is None:
            return
        fill, kind = event.fill, event.fill.venue_generated
        self.metrics.record_fill(fill.instrument.venue, kind)
        marks = self._marks()
        for runner in self.manager.active():
            if fill.instrument not in (
                runner.position.plan.leg_a.instrument.id,
                runner.position.plan.leg_b.instrument.id,
            ):
                continue
            rehedge = self.risk.on_venue_fill(fill, self._exposures_of(runner, marks))
            what = "nothing left to re-hedge" if rehedge is None else rehedge.detail
            self._journal(
                VenueFillSeen(
                    runner.id,
                    str(fill.instrument),
                    kind.value,
                    fill.side.value,
                    fill.quantity,
                    what,
                ),
                runner.id,
            )
            log.critical("position %s: %s fill: %s", runner.id, kind.value, what)
            if rehedge is not None and self._nursery is not None:
                self._nursery.start_soon(
                    self._watch_rehedge, runner, f"{fill.instrument.symbol}:{fill.trade_id}"
                )

    def kill(self, reason: str) -> list[ModeChanged]:
        """The kill switch: HALTED globally by the operator, journaled and counted. (The engine
        then flattens every position.)"""
        records = self.risk.kill(reason or "kill switch", self.clock.now_ms())
        self._modes_changed(records)
        return records

    def operator_set(self, scope: ModeScope, mode: TradingMode, reason: str) -> list[ModeChanged]:
        """The operator sets (ACTIVE: lifts) its mode on ``scope``."""
        records = self.risk.operator_set(scope, mode, self.clock.now_ms(), reason)
        self._modes_changed(records)
        return records

    def watch(self, instruments: list[InstrumentId]) -> None:
        """Start the stale-data clock of ``instruments`` now."""
        now = self.clock.now_ms()
        for iid in instruments:
            self.risk.watch(iid, now)

    # --- the service ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Service: run the monitors until cancelled."""
        if self._delta_gauge is None:
            self._delta_gauge = Gauge(
                "fundarb_net_delta_notional",
                "Net delta per asset across every position and venue, quote notional (signed).",
                ["asset"],
                registry=self.metrics.registry,
            )
            self._flip_counter = Counter(
                "fundarb_funding_flips",
                "Funding sign flips seen per perpetual (the operator is alerted).",
                ["instrument"],
                registry=self.metrics.registry,
            )
        for venue in self.venues.values():
            for inst in await instruments_with_retry(venue):  # a transient start-up error is retried
                self.instruments[inst.id] = inst
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._margin_loop)
            if self.settings.clock_interval is not None:
                nursery.start_soon(self._clock_loop, self.settings.clock_interval)
            task_status.started()

    async def _tick_loop(self) -> None:
        while True:
            self.tick()
            await trio.sleep(self.settings.tick_interval)

    def tick(self) -> None:
        """One periodic pass: market-data ages into the stale-data rule, breakers, daily loss,
        net delta."""
        now = self.clock.now_ms()
        for iid, state in self.market.instruments.items():
            if state.updated_at_ms:
                self.risk.on_market_data(iid, state.updated_at_ms)
            if state.funding is not None:
                self._check_funding(state.funding)
        self._modes_changed(self.risk.tick(now))
        self._check_delta(now)

    def _check_funding(self, snapshot: FundingSnapshot) -> None:
        """A funding sign flip: the operator is told (alert, journaled, counted). Exiting is the
        strategy's call: it exits on its own when the carry falls below the exit rate."""
        flip = self.risk.on_funding(snapshot)
        if flip is None:
            return
        self.funding_flips.append(flip)
        held = [r.id for r in self._holders_of(snapshot.instrument)]
        message = (
            f"funding on {flip.instrument} flipped {flip.previous_sign:+d} -> {flip.sign:+d} "
            f"(rate {flip.rate}); positions holding it: {', '.join(held) or 'none'}"
        )
        log.warning("%s", message)
        if self._flip_counter is not None:
            self._flip_counter.labels(instrument=str(flip.instrument)).inc()
        self._journal(AlertRaised("warning", message, ZERO))

    def _holders_of(self, instrument: InstrumentId) -> list[PositionRunner]:
        return [
            r
            for r in self.manager.active()
            if instrument in (r.position.plan.leg_a.instrument.id, r.position.plan.leg_b.instrument.id)
        ]

    def _check_delta(self, now: int) -> None:
        exposures = self.exposures()
        breaches = {b.asset: b for b in delta_breaches(exposures, self.settings.delta_tolerance, now)}
        net: dict[str, tuple[Decimal, Decimal]] = {}
        for e in exposures:
            qty, px = net.get(e.asset, (ZERO, ZERO))
            net[e.asset] = (qty + e.quantity, max(px, e.price))
        assert self._delta_gauge is not None
        for asset, (qty, px) in net.items():
            self._delta_gauge.labels(asset=asset).set(float(qty * px))
        for asset in sorted(set(breaches) | self._breached):
            b = breaches.get(asset)
            if b is not None and asset not in self._breached:
                self._breached.add(asset)
                self._journal(DeltaBreached(asset, b.net_quantity, b.net_notional, b.tolerance, True))
                log.warning(
                    "net delta of %s is %s (%s notional) > tolerance %s",
                    asset,
                    b.net_quantity,
                    b.net_notional,
                    b.tolerance,
                )
            elif b is None and asset in self._breached:
                self._breached.discard(asset)
                qty, px = net.get(asset, (ZERO, ZERO))
                self._journal(DeltaBreached(asset, qty, abs(qty) * px, self.settings.delta_tolerance, False))

    # --- margin ---------------------------------------------------------------------------------

    async def _margin_loop(self) -> None:
        while True:  # settings are read on every pass: the operator (or a test) may retune them
            interval = self.settings.margin_interval
            if interval is None:  # monitor off: an unmanaged book
                await trio.sleep(self.settings.tick_interval)
                continue
            for venue in list(self.venues.values()):
                await self.check_margin(venue)
            await trio.sleep(interval)

    async def check_margin(self, venue: Venue) -> list[MarginAction]:
        """One margin pass over ``venue``: each perp leg through the ladder, acted on
        (:func:`fundarb.engine.risk_margin.check_margin`)."""
        return await risk_margin.check_margin(self, venue)

    def mark_book(self, venue: str, balances: list[Balance], positions: list[VenuePosition]) -> None:
        """Mark today's PnL from one venue's book (:func:`fundarb.engine.risk_margin.mark_book`)."""
        risk_margin.mark_book(self, venue, balances, positions)

    # --- clock and re-hedges -------------------------------------------------------------------------

    async def _clock_loop(self, interval: float) -> None:
        while True:
            for venue in list(self.venues.values()):
                await self.check_clock(venue)
            await trio.sleep(interval)

    async def check_clock(self, venue: Venue) -> list[ModeChanged]:
        """Ask ``venue`` its time once: REDUCING for the venue while its clock is off by more
        than the limit (half the round trip is allowed for)."""
        sent = self.clock.now_ms()
        try:
            with trio.fail_after(self.settings.call_timeout):
                server = await venue.server_time_ms()
        except (VenueError, trio.TooSlowError):
            return []
        received = self.clock.now_ms()
        records = self.risk.on_clock(venue.name, sent, server, received, received)
        self._modes_changed(records)
        return records

    async def _watch_rehedge(self, runner: PositionRunner, fill_key: str) -> None:
        """Measure how long the position takes to be hedged again after a venue fill (the fill
        is routed to the runner after this hook saw it: wait until the runner applied it)."""
        deadline = runner.position.plan.hedge_timeout_ms / 1000
        start = trio.current_time()

        def hedged() -> bool:
            p = runner.position
            return fill_key in p.trade_keys and p.state in (S.HEDGED, S.CLOSED) and p.unhedged_qty == 0

        with trio.move_on_after(deadline):
            while not hedged():
                await runner.wait_stepped()
        took = trio.current_time() - start
        within = hedged()
        record = RehedgeChecked(runner.id, within, took, deadline, runner.state.value)
        self.rehedges.append(record)
        self._journal(record, runner.id)
        if not within:
            self._journal(
                AlertRaised(
                    "critical",
                    f"{runner.id}: not re-hedged within {deadline} s",
                    runner.position.unhedged_qty,
                ),
                runner.id,
            )
