"""One hedged position as a Trio task: inbox -> pure step -> journal -> commands.

Each position runs in its own cancel scope (owned by :class:`~fundarb.engine.manager.PositionManager`).
The loop is the h11 pattern: take an event, ``step()`` the pure machine, make the transition and
its commands durable in the journal (journal before act), then start each command in the
position's command nursery under its deadline. Command outcomes come back as events.

Only placements wait for the fsync. A step that places nothing (an acknowledgement, a fill, a
cancel: what recovery re-learns by querying its orders) is queued for the batched writer, and so
is a step whose only placements are hedges with client ids inside the position's durable
:class:`~fundarb.engine.records.HedgeIdsReserved` reservation (journaled with leg A's entry): it
acts at once. The hedges' intent, ids included, was durable before they were sent; after a crash,
recovery hands the reserved ids the journal does not show to :attr:`PositionRunner.unconfirmed`,
and each is looked up at the venue before it is used.

When the scope is cancelled (a venue connection died, shutdown, a bug elsewhere) the
``finally`` clause runs :meth:`PositionRunner.clean_up` inside ``trio.move_on_after(...,
shield=True)``: resting orders are cancelled and unhedged quantity is flattened over REST,
until the position is hedged or flat. If the deadline passes first, the position goes to
FAILED with a critical alert carrying the exact exposure: a leg is never silently abandoned.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.client_ids import parse_client_order_id
from fundarb.core.commands import Alert, ArmTimer, CancelOrder, Command, OrderPurpose, PlaceOrder, QueryOrder
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg
from fundarb.engine.clock import EngineClock
from fundarb.engine.executor import CommandExecutor, ExecutorSettings
from fundarb.engine.records import (
    AlertRaised,
    ExposureMeasured,
    HedgeGapMeasured,
    HedgeIdsReserved,
    PositionStepped,
)
from fundarb.engine.telemetry import NULL_TELEMETRY, Telemetry
from fundarb.journal.base import Entry, Journal
from fundarb.venues.protocol import Venue

__all__ = ["CleanupReason", "PositionRunner"]

log = logging.getLogger("fundarb.position")

S = PositionState
_SETTLED = (S.HEDGED, S.CLOSED, S.FAILED, S.PLANNED)
HEDGE_RESERVATION = 8
"""Client-id counters reserved for hedges ahead of their own records (renewed at half)."""
_HEDGING = (S.OPENING_LEG_A, S.HEDGE_PENDING)


class CleanupReason:
    """Why a position's scope was cancelled; picks the event fed to the machine in clean-up."""

    VENUE_DOWN = "venue-down"
    SHUTDOWN = "shutdown"
    FLATTEN = "flatten"


_CLOSED = object()
"""Queued after an inline step closed the position: its task checks and ends it."""


@attrs.frozen(eq=False)
class _Decided:
    """One step decided and not yet adopted: its journal entries and commands."""

    event: object
    base: Position  # the position it was stepped from
    new: Position
    commands: list[Command]
    entries: list[Entry]
    now: int
    received: float  # trio time the event reached the position: the hedge-gap clock's start
    durable: bool = False  # must be appended durably (queueing it failed)


@attrs.define(eq=False)
class PositionRunner:
    """Drives one :class:`~fundarb.core.position.Position`. Not thread-safe; one task owns it."""

    position: Position
    venues: Mapping[str, Venue]
    journal: Journal
    clock: EngineClock
    telemetry: Telemetry = NULL_TELEMETRY
    executor_settings: ExecutorSettings = attrs.field(factory=ExecutorSettings)
    cleanup_timeout: float = 30.0
    cleanup_reason: str = CleanupReason.SHUTDOWN
    down_venue: str = ""
    naked_notional_seconds: float = 0.0
    worst_naked_notional: float = 0.0
    alerts: list[Alert] = attrs.Factory(list)
    opened_ms: int = 0
    """When the position opened (ms): its orders' fills are looked up from a minute before it."""
    reserved_through: int = 0
    """Hedges with client-id counters up to this may be sent before their records are durable."""
    unconfirmed: set[str] = attrs.Factory(set)
    """Client ids that may have been sent before a restart: looked up before they are placed."""
    _send: trio.MemorySendChannel[object] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[object] = attrs.field(init=False)
    _last_ms: int | None = attrs.field(init=False, default=None)
    _hedge_triggered: dict[str, float] = attrs.field(init=False, factory=dict)
    _gaps: list[tuple[str, float]] = attrs.field(init=False, factory=list)
    _stepped: trio.Event = attrs.field(init=False, factory=trio.Event)
    scope: trio.CancelScope | None = None
    """The position's cancel scope (set by the manager): no inline steps once it is cancelled."""
    _commands: trio.Nursery | None = attrs.field(init=False, default=None)  # set while running
    _backlog: int = attrs.field(init=False, default=0)  # events queued and not yet taken
    _applying: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        # Unbounded on purpose: order reports must never be dropped, and the router must never
        # block on one slow position. Volume is bounded by the position's own orders.
        self._send, self._receive = trio.open_memory_channel(math.inf)

    @property
    def id(self) -> str:
        """The position id."""
        return self.position.id

    @property
    def state(self) -> PositionState:
        """The machine's current state."""
        return self.position.state

    def deliver(self, event: object) -> None:
        """Queue an event for this position's task (never blocks, never drops)."""
        try:
            self._send.send_nowait(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            log.warning("position %s: event after close dropped: %r", self.id, event)
            return
        self._backlog += 1

    def deliver_now(self, event: object) -> None:
        """Apply a venue report in the caller's task when the position is idle, else queue it.

        The hedge path: a leg-A fill read off the user-data socket is stepped, queued for the
        journal and its hedge written to the venue before the stream's task reads on, with no
        hop through this position's task (each hop runs every other ready task first). Only a
        step that needs nothing awaited goes inline: one whose placements are all hedges inside
        the durable reservation. A step that must be made durable first is handed to this
        position's task as decided; so is anything while the position is busy (an event queued
        or being applied, clean-up, its scope cancelled), which keeps events in order. A step
        that raises is handed over undecided: the position's own task meets the error.
        """
        commands = self._commands
        if commands is None or self._backlog or self._applying or self._cancelled():
            self.deliver(event)
            return
        self._applying = True
        try:
            try:
                decided = self._decide(event)
            except Exception:
                self.deliver(event)
                return
            if decided is None:
                return
            if not self._reserved(decided.commands):
                self.deliver(decided)  # durable first: the position's task appends, then acts
                return
            rest = self._queue_nowait(decided.entries)
            if rest:  # the position's task appends the rest durably, then acts
                self.deliver(attrs.evolve(decided, entries=rest, durable=True))
                return
            self._act(decided, commands, False)
            if self.state is S.CLOSED and not self.position.working():
                self.deliver(_CLOSED)  # the position's task ends the position, as after its own steps
        finally:
            self._applying = False

    def _cancelled(self) -> bool:
        return self.scope is not None and self.scope.cancel_called

    async def wait_stepped(self) -> None:
        """Wait until the next event has been applied (for tests and the status loop)."""
        await self._stepped.wait()

    # --- the loop ---

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Process events until the position is CLOSED; clean up if cancelled first."""
        try:
            async with trio.open_nursery() as commands:
                task_status.started()
                self._commands = commands
                try:
                    async for event in self._receive:
                        self._backlog -= 1
                        self._applying = True
                        try:
                            if event is not _CLOSED:
                                await self.apply(event, commands, rest_fallback=False)
                        finally:
                            self._applying = False
                        if self.state is S.CLOSED and not self.position.working():
                            self._settled_exposure()
                            commands.cancel_scope.cancel()
                            break
                finally:
                    self._commands = None
        finally:
            if self.state not in (S.CLOSED, S.PLANNED):
                with trio.move_on_after(self.cleanup_timeout, shield=True) as scope:
                    await self.clean_up()
                if scope.cancelled_caught:
                    await self._give_up("clean-up deadline passed")

    async def apply(self, event: object, commands: trio.Nursery, *, rest_fallback: bool) -> None:
        """Step the machine, journal the step and its commands, then start the commands.

        ``event`` may be a step :meth:`deliver_now` decided and handed over: it is journaled and
        acted on as decided (nothing else was applied in between: events stay in order)."""
        if isinstance(event, _Decided) and event.base is self.position:
            decided: _Decided | None = event
        else:
            raw = event.event if isinstance(event, _Decided) else event
            decided = self._decide(raw)
        if decided is None:
            return
        if not rest_fallback and not decided.durable and self._reserved(decided.commands):
            await self._queue(decided.entries)  # no placement, or hedges whose intent is durable
        else:
            entries = decided.entries
            through = self._renewal(decided.new)
            if through:
                entries = [*entries, Entry(HedgeIdsReserved(through), decided.now, self.id)]
            await self.journal.append(entries)  # durable before any command is acted on
            self.reserved_through = max(self.reserved_through, through)
        later = self._act(decided, commands, rest_fallback, defer=True)
        if later is not None:
            # A hedge's task must reach the socket before anything else this position does (its
            # deadline timer, the rest of the same fill frame): the new task runs in the next
            # scheduling pass, in random order with this one; two passes put this one after it.
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
            self._record_gaps()
            for cmd in later:
                self._start(cmd, commands, rest_fallback)

    def _decide(self, event: object) -> _Decided | None:
        """Step the machine on ``event`` (nothing is changed yet); None: deferred."""
        received = trio.current_time()
        if self._gaps:
            self._record_gaps()
        cid = getattr(event, "cid", None)
        if cid is not None and cid in self.unconfirmed and self.position.order(cid) is None:
            # a report of a hedge sent just before a restart, before this position re-minted it:
            # its placement looks it up at the venue and adopts it then
            log.warning(
                "position %s: report for %s before it is re-issued: deferred to its lookup", self.id, cid
            )
            return None
        now = self.clock.now_ms()
        new, cmds = step(self.position, event, now)  # type: ignore[arg-type]
        self._account_exposure(now)
        entries = [Entry(PositionStepped(event, now, new.state.value), now, self.id)]  # type: ignore[arg-type]
        entries += [Entry(c, now, self.id) for c in cmds if not isinstance(c, ArmTimer)]
        return _Decided(event, self.position, new, cmds, entries, now, received)

    def _act(
        self, decided: _Decided, commands: trio.Nursery, rest_fallback: bool, *, defer: bool = False
    ) -> list[Command] | None:
        """Adopt the decided step and start its commands, hedges first (each written at once
        when its venue can). With ``defer``, when a hedge could not be written at once (its task
        will), the other commands are returned for the caller to start after it; else None."""
        hedges: list[PlaceOrder] = []
        others: list[Command] = []
        for c in decided.commands:
            if isinstance(c, PlaceOrder) and c.purpose is OrderPurpose.HEDGE:
                hedges.append(c)
            else:
                others.append(c)
        old_state, self.position = self.position.state, decided.new
        new_state = decided.new.state
        if new_state is not old_state:
            self.telemetry.state_changed(self.id, old_state.value, new_state.value)
        pending = False
        for cmd in hedges:  # a leg-A fill that triggers a hedge starts the hedge-gap clock
            self._hedge_triggered[cmd.request.client_order_id] = decided.received
            executor = self._executor(rest_fallback)
            started = executor.place_now(cmd)
            if started is None:
                pending = True
            commands.start_soon(executor.place, cmd, started)
        if hedges and not pending:
            self._record_gaps()
        later = others if pending and defer else None
        if later is None:
            for cmd in others:
                self._start(cmd, commands, rest_fallback)
        self._stepped.set()
        self._stepped = trio.Event()
        return later

    def _reserved(self, cmds: list[Command]) -> bool:
        """True when every placement in ``cmds`` (if any) is a hedge inside the durable reservation.

        A step that places nothing (an acknowledgement, a fill, a cancel) is only queued: if a
        crash loses it, the recovered position re-queries its working orders and learns it again."""
        for c in cmds:
            if isinstance(c, PlaceOrder):
                parsed = parse_client_order_id(c.request.client_order_id)
                if c.purpose is not OrderPurpose.HEDGE or parsed is None or parsed[2] > self.reserved_through:
                    return False
        return True

    def _renewal(self, new: Position) -> int:
        """The counter to reserve hedges through with this durable append, or 0 for no change."""
        if new.state not in _HEDGING or new.next_seq + HEDGE_RESERVATION // 2 <= self.reserved_through:
            return 0
        return new.next_seq - 1 + HEDGE_RESERVATION

    async def _queue(self, entries: list[Entry]) -> None:
        """Queue ``entries`` for the batched writer; append durably what cannot be queued."""
        rest = self._queue_nowait(entries)
        if rest:  # the durable path raises what it must
            await self.journal.append(rest)

    def _queue_nowait(self, entries: list[Entry]) -> list[Entry]:
        """Queue ``entries`` for the batched writer; return those that could not be (the queue
        is full, or a bug): they must be appended durably."""
        for i, entry in enumerate(entries):
            try:
                self.journal.append_nowait(entry)
            except Exception as e:
                log.warning("position %s: queueing failed (%s); appending durably", self.id, e)
                return entries[i:]
        return []

    def _executor(self, rest_fallback: bool) -> CommandExecutor:
        return CommandExecutor(
            self.venues,
            self.deliver,
            self.executor_settings,
            self._on_sent,
            rest_fallback,
            since_ms=max(0, self.opened_ms - 60_000),
            unconfirmed=self.unconfirmed,
        )

    def _start(self, cmd: Command, commands: trio.Nursery, rest_fallback: bool) -> None:
        executor = self._executor(rest_fallback)
        if isinstance(cmd, PlaceOrder):
            commands.start_soon(executor.place, cmd)
        elif isinstance(cmd, CancelOrder):
            commands.start_soon(executor.cancel, cmd)
        elif isinstance(cmd, QueryOrder):
            commands.start_soon(executor.query, cmd)
        elif isinstance(cmd, ArmTimer):
            commands.start_soon(self._timer, cmd.deadline_ms)
        elif isinstance(cmd, Alert):
            self.alerts.append(cmd)
            level = logging.CRITICAL if cmd.severity.value == "critical" else logging.WARNING
            log.log(level, "position %s: %s (naked %s)", cmd.position_id, cmd.message, cmd.naked_qty)
            self.telemetry.alert(cmd.severity.value)

    def _on_sent(self, cmd: PlaceOrder) -> None:
        started = self._hedge_triggered.pop(cmd.request.client_order_id, None)
        if started is not None:  # measured now; recorded after the order is on its way
            self._gaps.append((cmd.request.client_order_id, trio.current_time() - started))
        self.telemetry.order_sent(cmd.request.instrument.venue)

    def _record_gaps(self) -> None:
        for cid, gap in self._gaps:
            self.telemetry.hedge_gap(gap)
            self._note(HedgeGapMeasured(cid, gap))
        self._gaps.clear()

    def _note(self, record: object) -> None:
        """Journal a non-critical measurement (batched; never blocks the hot path)."""
        try:
            self.journal.append_nowait(Entry(record, self.clock.now_ms(), self.id))
        except Exception as e:  # a full or closed journal must not stop trading; say so loudly
            log.error("position %s: measurement not journaled: %s", self.id, e)

    def _settled_exposure(self) -> None:
        self._account_exposure(self.clock.now_ms())
        self.telemetry.naked_exposure(self.naked_notional_seconds)
        self._note(ExposureMeasured(self.naked_notional_seconds, self.worst_naked_notional))

    async def _timer(self, deadline_ms: int) -> None:
        await trio.sleep_until(self.clock.trio_deadline(deadline_ms))
        self.deliver(ev.HedgeTimedOut())

    def _account_exposure(self, now: int) -> None:
        p = self.position
        if self._last_ms is not None and p.reference_price is not None:
            naked = float(abs(p.unhedged_qty) * p.reference_price)
            self.naked_notional_seconds += naked * (now - self._last_ms) / 1000
            self.worst_naked_notional = max(self.worst_naked_notional, naked)
        self._last_ms = now

    # --- clean-up (runs shielded) ---

    def _cleanup_event(self) -> object | None:
        state = self.state
        if self.cleanup_reason == CleanupReason.FLATTEN:
            return ev.OperatorKilled("flatten") if state is not S.FAILED else None
        if self.cleanup_reason == CleanupReason.VENUE_DOWN:
            return ev.VenueDisconnected(self.down_venue, "connection lost")
        if state in (S.OPENING_LEG_A, S.HEDGE_PENDING):
            return ev.ExitSignalled("shutdown")
        return None

    def _settled(self) -> bool:
        if self.state is S.FAILED:  # an operator's now; its working orders are tracked, not chased
            return True
        return self.state in _SETTLED and not self.position.working()

    async def clean_up(self) -> None:
        """Bring the position to HEDGED, CLOSED or FAILED, over REST if the streams are gone."""
        async with trio.open_nursery() as commands:
            first = self._cleanup_event()
            if first is not None:
                await self.apply(first, commands, rest_fallback=True)
            else:  # still re-read outstanding orders: their task was cancelled mid-flight
                await self.apply(ev.ResyncRequested("clean-up"), commands, rest_fallback=True)
            while not self._settled():
                event = await self._receive.receive()
                self._backlog -= 1
                if event is not _CLOSED:
                    await self.apply(event, commands, rest_fallback=True)
            commands.cancel_scope.cancel()
        self._settled_exposure()

    async def _give_up(self, reason: str) -> None:
        with trio.move_on_after(5, shield=True):
            async with trio.open_nursery() as commands:
                await self.apply(ev.CleanupExpired(reason), commands, rest_fallback=True)
                commands.cancel_scope.cancel()
            for a in self.alerts[-1:]:
                await self.journal.append(
                    [
                        Entry(
                            AlertRaised(a.severity.value, a.message, a.naked_qty),
                            self.clock.now_ms(),
                            self.id,
                        )
                    ]
                )

    def exposure(self) -> dict[str, str]:
        """The position's legs and exposure, for logs, alerts and the /positions endpoint."""
        p = self.position
        return {
            "id": p.id,
            "state": p.state.value,
            "leg_a": f"{p.plan.leg_a.side.value} {p.held(Leg.A)} {p.plan.leg_a.instrument.id}",
            "leg_b": f"{p.plan.leg_b.side.value} {p.held(Leg.B)} {p.plan.leg_b.instrument.id}",
            "unhedged_qty": str(p.unhedged_qty),
            "dust": str(p.dust),
            "funding": str(p.funding),
            "fees": str(p.fees_quote),
            "naked_notional_seconds": f"{self.naked_notional_seconds:.3f}",
            "reason": p.reason,
        }
