"""The position manager: one cancel scope per position, and the router of user-data events.

Venue reports arrive as :mod:`fundarb.core.venue_events`; :func:`position_events` translates
them (purely) into the position machine's events, and the manager delivers each to the position
that owns the order (by the position id inside the client order id) or, for venue-generated
fills and funding, to the positions holding that instrument.

When a venue's connection dies, every position touching it is cancelled: its runner's shielded
clean-up cancels resting orders and flattens what is unhedged over REST. A position that is
still open afterwards (hedged) waits for the venue to come back, then resyncs and runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.client_ids import parse_client_order_id
from fundarb.core.model import FundingPayment, OrderStatus
from fundarb.core.position import Position, PositionState
from fundarb.core.position_model import Leg, PositionPlan
from fundarb.core.venue_events import (
    FillReported,
    FundingSettled,
    OrderReported,
    StreamDisconnected,
    StreamResynced,
    VenueEvent,
)
from fundarb.engine.clock import EngineClock
from fundarb.engine.executor import ExecutorSettings
from fundarb.engine.position_runner import CleanupReason, PositionRunner
from fundarb.engine.records import PositionOpened
from fundarb.engine.recovery import Recovered
from fundarb.engine.telemetry import NULL_TELEMETRY, Telemetry
from fundarb.journal.base import Entry, Journal
from fundarb.venues.protocol import Venue

__all__ = ["PositionManager", "funding_key", "is_user_stream", "owner_of", "position_events"]

log = logging.getLogger("fundarb.manager")
S = PositionState


def owner_of(cid: str) -> str | None:
    """The position id inside one of our client order ids (``fa.<id>.<leg>.<n>``), else None."""
    parsed = parse_client_order_id(cid)
    return None if parsed is None else parsed[0]


def is_user_stream(stream: str) -> bool:
    """True for a venue's user-data stream name ("user"; Binance: "usdm-private", "spot-user", ...)."""
    return stream == "user" or stream.endswith(("-user", "-private"))


def funding_key(payment: FundingPayment) -> str:
    """One key per (instrument, settlement hour): the websocket's and the REST income's reports
    of the same payment carry different ids and slightly different times, but settle on the hour."""
    hour = (payment.ts_ms + 1_800_000) // 3_600_000
    return f"{payment.instrument}@{hour}"


def position_events(event: VenueEvent) -> list[tuple[str, object]]:
    """Pure translation of one venue report into ``(position_id, event)`` pairs for our orders.

    Status reports carry the venue's cumulative fill, so a report and the fills it summarises
    can arrive in any order, or twice, without double-counting.
    """
    if isinstance(event, OrderReported):
        u = event.update
        pid = owner_of(u.client_order_id)
        if pid is None:
            return []
        cid = u.client_order_id
        if u.status is OrderStatus.NEW:
            return [(pid, ev.OrderAccepted(cid, u.venue_order_id))]
        if u.status is OrderStatus.CANCELED:
            return [(pid, ev.OrderCancelled(cid, u.filled_qty))]
        if u.status is OrderStatus.EXPIRED:
            return [(pid, ev.OrderExpired(cid, u.filled_qty))]
        if u.status is OrderStatus.REJECTED:
            return [(pid, ev.OrderRejected(cid, u.reason or "rejected by venue"))]
        return [(pid, ev.OrderStatusReported(cid, u.status, u.filled_qty))]
    if isinstance(event, FillReported) and event.fill.venue_generated is None:
        pid = owner_of(event.fill.client_order_id)
        if pid is None:
            return []
        return [(pid, ev.OrderPartiallyFilled(event.fill.client_order_id, event.fill))]
    return []


@attrs.define(eq=False)
class PositionManager:
    """Owns every position's task and cancel scope."""

    venues: Mapping[str, Venue]
    journal: Journal
    clock: EngineClock
    telemetry: Telemetry = NULL_TELEMETRY
    executor_settings: ExecutorSettings = attrs.field(factory=ExecutorSettings)
    cleanup_timeout: float = 30.0
    runners: dict[str, PositionRunner] = attrs.Factory(dict)
    _scopes: dict[str, trio.CancelScope] = attrs.Factory(dict)
    _venue_up: dict[str, trio.Event] = attrs.Factory(dict)
    _nursery: trio.Nursery | None = None
    _stopping: bool = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Service: hold the positions' nursery until cancelled; positions clean up on the way out."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._stopping = True

    # --- positions ---

    async def open_position(self, plan: PositionPlan, entry: ev.EntrySignalled) -> PositionRunner:
        """Journal a new position, start its task and send it the entry signal."""
        runner = self._runner(Position(plan))
        runner.opened_ms = self.clock.now_ms()
        await self.journal.append([Entry(PositionOpened(plan), runner.opened_ms, plan.position_id)])
        await self.adopt(runner)
        runner.deliver(entry)
        return runner

    def _runner(self, position: Position) -> PositionRunner:
        return PositionRunner(
            position,
            self.venues,
            self.journal,
            self.clock,
            self.telemetry,
            self.executor_settings,
            self.cleanup_timeout,
        )

    async def adopt(self, runner: PositionRunner) -> None:
        """Run an existing (for instance recovered) position under this manager."""
        assert self._nursery is not None, "PositionManager.run() is not running"
        self.runners[runner.id] = runner
        await self._nursery.start(self._supervise, runner)

    async def adopt_position(
        self,
        position: Position,
        *,
        reserved_through: int = 0,
        unconfirmed: Iterable[str] = (),
        opened_ms: int = 0,
    ) -> PositionRunner:
        """Run a recovered position and have it re-read its orders from the venues.

        ``reserved_through`` and ``unconfirmed`` come from the journal's hedge reservation
        (:meth:`fundarb.engine.recovery.Recovered.unconfirmed`)."""
        runner = self._runner(position)
        runner.opened_ms = opened_ms
        runner.reserved_through = reserved_through
        runner.unconfirmed.update(unconfirmed)
        await self.adopt(runner)
        if position.state not in (S.CLOSED, S.FAILED, S.PLANNED):
            runner.deliver(ev.ResyncRequested("recovered after restart"))
        return runner

    async def adopt_recovered(self, recovered: Recovered) -> None:
        """Run every open position of ``recovered``, with its hedge reservation."""
        for position in recovered.open():
            await self.adopt_position(
                position,
                reserved_through=recovered.reserved.get(position.id, 0),
                unconfirmed=recovered.unconfirmed(position.id),
                opened_ms=recovered.opened_ms.get(position.id, 0),
            )

    async def _supervise(self, runner: PositionRunner, *, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            with trio.CancelScope() as scope:
                self._scopes[runner.id] = scope
                runner.scope = scope
                if not started:
                    started = True
                    await runner.run(task_status=task_status)
                else:
                    await runner.run()
            if (
                scope.cancelled_caught
                and not self._stopping
                and runner.cleanup_reason == CleanupReason.VENUE_DOWN
            ):
                if runner.state not in (S.CLOSED, S.FAILED):
                    await self._wait_venue(runner.down_venue)
                    runner.cleanup_reason = CleanupReason.SHUTDOWN
                    runner.deliver(ev.ResyncRequested(f"{runner.down_venue} reconnected"))
                    continue
            break
        self._scopes.pop(runner.id, None)

    async def _wait_venue(self, venue: str) -> None:
        await self._venue_up.setdefault(venue, trio.Event()).wait()

    def active(self) -> list[PositionRunner]:
        """Runners of positions that are not CLOSED."""
        return [r for r in self.runners.values() if r.state is not S.CLOSED]

    # --- routing ---

    def route(self, event: VenueEvent) -> None:
        """Deliver one venue report to the positions it concerns (never blocks)."""
        for pid, e in position_events(event):
            runner = self.runners.get(pid)
            if runner is None:
                log.warning("report for unknown position %s: %r", pid, e)
                continue
            runner.deliver_now(e)  # stepped in this (the stream's) task when the position is idle
        if isinstance(event, FillReported) and event.fill.venue_generated is not None:
            for runner in self._holding(event.fill.instrument):
                runner.deliver(ev.VenueFillReceived(event.fill))
        elif isinstance(event, FundingSettled):
            self._split_funding(event.payment)
        elif isinstance(event, StreamDisconnected) and is_user_stream(event.stream):
            self.venue_down(event.venue, event.reason)
        elif isinstance(event, StreamResynced) and is_user_stream(event.stream):
            self.venue_up(event.venue)

    def _holding(self, instrument: object) -> list[PositionRunner]:
        return [
            r
            for r in self.active()
            if any(r.position.plan.leg(leg).instrument.id == instrument for leg in Leg)
        ]

    def _split_funding(self, payment: FundingPayment) -> None:
        """Funding on an instrument is split among its positions by perp quantity held."""
        holders = [(r, r.position.held(_perp_leg(r.position))) for r in self._holding(payment.instrument)]
        total = sum((q for _, q in holders), Decimal(0))
        if total <= 0:
            return
        for runner, qty in holders:
            share = FundingPayment(
                payment.instrument,
                f"{funding_key(payment)}:{runner.id}",
                payment.amount * qty / total,
                payment.asset,
                payment.ts_ms,
            )
            runner.deliver(ev.FundingPaid(share))

    # --- venue health ---

    def venue_down(self, venue: str, reason: str) -> None:
        """Cancel every position touching ``venue``; each cleans up shielded, over REST."""
        self._venue_up[venue] = trio.Event()
        for runner in self.active():
            if runner.position.plan.leg_of_venue(venue) and runner.state is not S.FAILED:
                runner.cleanup_reason = CleanupReason.VENUE_DOWN
                runner.down_venue = venue
                scope = self._scopes.get(runner.id)
                if scope is not None:
                    scope.cancel()
                log.warning("venue %s down (%s): position %s cleaning up", venue, reason, runner.id)

    def venue_up(self, venue: str) -> None:
        """The venue is back and resynced: waiting positions resume."""
        self._venue_up.setdefault(venue, trio.Event()).set()

    def flatten_all(self, reason: str, ids: Iterable[str] | None = None) -> None:
        """Kill switch: every (or each named) position cancels resting orders and flattens."""
        for runner in self.active():
            if ids is not None and runner.id not in ids:
                continue
            runner.cleanup_reason = CleanupReason.FLATTEN
            runner.deliver(ev.OperatorKilled(reason))


def _perp_leg(position: Position) -> Leg:
    return Leg.A if position.plan.leg_a.instrument.is_perpetual else Leg.B
