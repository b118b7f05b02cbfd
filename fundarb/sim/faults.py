"""FaultyVenue: wraps ANY Venue and makes it misbehave the way real venues do.

What it does is a :class:`~fundarb.sim.fault_plan.FaultPlan` (every key documented in
:mod:`fundarb.sim.fault_plan`): latency, timeouts, 5xx, 429, rejections, lost acknowledgements,
cancel/fill races, clock skew, maintenance windows, slow transfers, and on the streams
duplicated / reordered / late events, drops with resync, silent stalls and stale quotes.

Reproducible: probabilities are drawn from per-call and per-stream ``random.Random`` streams
derived (in a fixed order) from the ``rng`` given, so the faults one kind of call sees do not
depend on how other tasks interleave. Windows are on the venue clock (``clock()``, default the
inner venue's ``sim_time_ms`` when it has one, else the Trio clock), in seconds since first use.

    venue = FaultyVenue(SimVenue.for_tests(), FaultPlan.from_dict({"lost_ack_rate": 0.1}), random.Random(7))
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import trio

from fundarb.core.model import (
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Instrument,
    InstrumentId,
    OrderRequest,
    OrderUpdate,
    Quote,
    TimeInForce,
    VenuePosition,
    Wallet,
)
from fundarb.core.venue_events import QuoteReceived, StreamDisconnected, StreamResynced, VenueEvent
from fundarb.sim.fault_plan import CALLS, MUTATING_CALLS, FaultPlan, Window
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OutcomeUnknown,
    PostOnlyWouldCross,
    RateLimited,
    ReduceOnlyRejected,
    VenueError,
    VenueUnavailable,
)
from fundarb.venues.protocol import EventSender, Venue

__all__ = ["FaultPlan", "FaultyVenue"]

T = TypeVar("T")


class FaultyVenue:
    """A Venue that forwards to ``inner`` through the faults of ``plan``."""

    def __init__(
        self,
        inner: Venue,
        plan: FaultPlan,
        rng: random.Random,
        *,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.inner, self.plan = inner, plan
        self._rngs = {k: random.Random(rng.getrandbits(64)) for k in (*CALLS, "user", "market")}
        if clock is None:
            sim_clock = getattr(inner, "sim_time_ms", None)
            clock = sim_clock if callable(sim_clock) else (lambda: math.floor(trio.current_time() * 1000))
        self._clock = clock
        self._t0_ms: int | None = None
        self._last_quote: dict[InstrumentId, Quote] = {}
        self._random_drops: dict[str, list[Window]] = {"user": [], "market": []}
        self.injected: dict[str, int] = {}

    # --- helpers -------------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        """Venue-clock seconds since this wrapper first looked at the clock."""
        now = self._clock()
        if self._t0_ms is None:
            self._t0_ms = now
        return (now - self._t0_ms) / 1000

    def _count(self, fault: str) -> None:
        self.injected[fault] = self.injected.get(fault, 0) + 1

    def _hit(self, call: str, p: float) -> bool:
        return p > 0 and self._rngs[call].random() < p

    def _in_maintenance(self) -> bool:
        t = self.elapsed_s()
        return any(w.covers(t, "both") for w in self.plan.maintenance)

    def _latency_s(self, call: str) -> float:
        lat = self.plan.latency_for(call)
        if lat.p50 <= 0:
            return 0.0
        return lat.p50 * math.exp(lat.sigma() * self._rngs[call].gauss(0.0, 1.0)) / 1000

    async def _invoke(self, call: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` (the inner call) through the per-call faults."""
        plan, name = self.plan, self.inner.name
        mutating = call in MUTATING_CALLS
        if self._in_maintenance():
            await trio.lowlevel.checkpoint()
            self._count("maintenance")
            raise VenueUnavailable(f"{call}: venue in maintenance", venue=name, code=503)
        latency = self._latency_s(call)
        if self._hit(call, plan.rate_limit_rate):
            await trio.sleep(latency)
            self._count("rate_limited")
            raise RateLimited(
                f"{call}: too many requests", retry_after=plan.retry_after_s, venue=name, code=429
            )
        if latency > plan.timeout_s or self._hit(call, plan.timeout_rate):
            self._count("timeout")
            await trio.sleep(plan.timeout_s)
            if not mutating:
                raise VenueUnavailable(f"{call}: timed out after {plan.timeout_s}s", venue=name)
            if self._hit(call, plan.timeout_applied_rate):
                await self._apply_quietly(fn)
            raise OutcomeUnknown(f"{call}: timed out after {plan.timeout_s}s", venue=name)
        if self._hit(call, plan.error_5xx_rate):
            self._count("5xx")
            await trio.sleep(latency)
            if not mutating:
                raise VenueUnavailable(f"{call}: HTTP 502", venue=name, code=502)
            if self._hit(call, plan.error_5xx_applied_rate):
                await self._apply_quietly(fn)
            raise OutcomeUnknown(f"{call}: HTTP 502 after the request was sent", venue=name, code=502)
        await trio.sleep(latency / 2)
        result = await fn()
        await trio.sleep(latency / 2)
        return result

    async def _apply_quietly(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """The request reached the venue but its answer is lost: run it and forget the outcome."""
        try:
            await fn()
        except VenueError:
            pass

    # --- Venue protocol ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The inner venue's name."""
        return self.inner.name

    async def instruments(self) -> list[Instrument]:
        """Forwarded through the call faults."""
        return await self._invoke("instruments", self.inner.instruments)

    async def funding(self, instrument: InstrumentId) -> FundingSnapshot:
        """Forwarded through the call faults."""
        return await self._invoke("funding", lambda: self.inner.funding(instrument))

    async def quote(self, instrument: InstrumentId) -> Quote:
        """Forwarded; during a stale-quotes window the last earlier quote is returned."""
        q = await self._invoke("quote", lambda: self.inner.quote(instrument))
        return self._stale_or_fresh(q)

    def _stale_or_fresh(self, q: Quote) -> Quote:
        t = self.elapsed_s()
        if any(w.covers(t, "market") for w in self.plan.stale_quotes) and q.instrument in self._last_quote:
            self._count("stale_quote")
            return self._last_quote[q.instrument]
        self._last_quote[q.instrument] = q
        return q

    async def server_time_ms(self) -> int:
        """The inner clock plus ``clock_skew_ms``."""
        return await self._invoke("server_time_ms", self.inner.server_time_ms) + self.plan.clock_skew_ms

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Rejections before sending, lost acks after the order is placed, plus the call faults."""
        rates, name, cid = self.plan.reject_rates, self.inner.name, request.client_order_id
        rng = self._rngs["place_order"]
        for kind in sorted(rates):
            if kind == "post_only_would_cross" and request.time_in_force is not TimeInForce.POST_ONLY:
                continue
            if kind == "reduce_only" and not request.reduce_only:
                continue
            if rates[kind] > 0 and rng.random() < rates[kind]:
                await trio.sleep(self._latency_s("place_order"))
                self._count(f"reject_{kind}")
                raise _REJECTS[kind](f"{cid}: injected {kind} rejection", venue=name)
        update = await self._invoke("place_order", lambda: self.inner.place_order(request))
        if self._hit("place_order", self.plan.lost_ack_rate):
            self._count("lost_ack")
            raise OutcomeUnknown(f"{cid}: acknowledgement lost", venue=name)
        return update

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Cancel/fill races (the order fills first), lost acks, plus the call faults."""
        if self._hit("cancel_order", self.plan.cancel_fill_race_rate):
            force_fill = getattr(self.inner, "force_fill", None)
            if force_fill is not None and await force_fill(instrument, client_order_id):
                self._count("cancel_fill_race")
        update = await self._invoke(
            "cancel_order", lambda: self.inner.cancel_order(instrument, client_order_id)
        )
        if self._hit("cancel_order", self.plan.lost_ack_rate):
            self._count("lost_ack")
            raise OutcomeUnknown(f"{client_order_id}: cancel acknowledgement lost", venue=self.inner.name)
        return update

    async def query_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Forwarded through the call faults."""
        return await self._invoke("query_order", lambda: self.inner.query_order(instrument, client_order_id))

    async def open_orders(self, instrument: InstrumentId | None = None) -> list[OrderUpdate]:
        """Forwarded through the call faults."""
        return await self._invoke("open_orders", lambda: self.inner.open_orders(instrument))

    async def positions(self) -> list[VenuePosition]:
        """Forwarded through the call faults."""
        return await self._invoke("positions", self.inner.positions)

    async def balances(self) -> list[Balance]:
        """Forwarded through the call faults."""
        return await self._invoke("balances", self.inner.balances)

    async def fills_since(
        self, instrument: InstrumentId, since_ms: int, *, order_id: str | None = None
    ) -> list[Fill]:
        """Forwarded through the call faults."""
        return await self._invoke(
            "fills_since", lambda: self.inner.fills_since(instrument, since_ms, order_id=order_id)
        )

    async def funding_income_since(self, since_ms: int) -> list[FundingPayment]:
        """Forwarded through the call faults."""
        return await self._invoke("funding_income_since", lambda: self.inner.funding_income_since(since_ms))

    async def borrow(self, asset: str, amount: Decimal) -> None:
        """Forwarded through the call faults."""
        await self._invoke("borrow", lambda: self.inner.borrow(asset, amount))

    async def repay(self, asset: str, amount: Decimal) -> None:
        """Forwarded through the call faults."""
        await self._invoke("repay", lambda: self.inner.repay(asset, amount))

    async def transfer(self, asset: str, amount: Decimal, source: Wallet, target: Wallet) -> None:
        """Forwarded through the call faults, ``transfer_delay_s`` slower."""
        if self.plan.transfer_delay_s > 0:
            self._count("slow_transfer")
            await trio.sleep(self.plan.transfer_delay_s)
        await self._invoke("transfer", lambda: self.inner.transfer(asset, amount, source, target))

    async def aclose(self) -> None:
        """Close the inner venue."""
        await self.inner.aclose()

    # --- streams -------------------------------------------------------------------------------

    async def run_market_data(
        self,
        instruments: Sequence[InstrumentId],
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The inner market stream through drops, stalls and stale quotes."""
        await self._run_stream(
            "market",
            lambda s, task_status: self.inner.run_market_data(instruments, s, task_status=task_status),
            send,
            task_status,
        )

    async def run_user_data(
        self,
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The inner user stream through drops, stalls, duplicates, reordering and late delivery."""
        await self._run_stream(
            "user",
            lambda s, task_status: self.inner.run_user_data(s, task_status=task_status),
            send,
            task_status,
        )

    def _down(self, stream: str) -> bool:
        t = self.elapsed_s()
        windows = (*self.plan.ws_drops, *self.plan.maintenance, *self._random_drops[stream])
        return any(w.covers(t, stream) for w in windows)

    def _stalled(self, stream: str) -> bool:
        t = self.elapsed_s()
        return any(w.covers(t, stream) for w in self.plan.stalls)

    async def _run_stream(
        self,
        stream: str,
        start_inner: Callable[..., Awaitable[None]],
        send: EventSender,
        task_status: trio.TaskStatus[None],
    ) -> None:
        inner_send, inner_recv = trio.open_memory_channel[VenueEvent](1000)
        state = _StreamState(stream, self, send)
        async with trio.open_nursery() as nursery:
            state.nursery = nursery
            await nursery.start(start_inner, inner_send)
            self.elapsed_s()
            nursery.start_soon(state.watch)
            task_status.started()
            async with inner_recv:
                async for ev in inner_recv:
                    await state.deliver(ev)


class _StreamState:
    """The fault state of one running stream."""

    def __init__(self, stream: str, venue: FaultyVenue, send: EventSender) -> None:
        self.stream, self.venue, self.send = stream, venue, send
        self.rng = venue._rngs[stream]
        self.down = False
        self.held: VenueEvent | None = None
        self.nursery: trio.Nursery | None = None

    def _ts(self) -> int:
        return self.venue._clock()

    async def _transition(self) -> None:
        down = self.venue._down(self.stream)
        if down and not self.down:
            self.down = True
            self.held = None
            self.venue._count(f"{self.stream}_drop")
            name = self.venue.name
            await self.send.send(StreamDisconnected(name, self.stream, "injected websocket drop", self._ts()))
        elif self.down and not down:
            self.down = False
            await self.send.send(StreamResynced(self.venue.name, self.stream, self._ts()))

    async def watch(self) -> None:
        """Emit disconnect/resync at window edges even when no event flows; flush held events."""
        plan = self.venue.plan
        while True:
            await trio.sleep(plan.poll_s)
            await self._transition()
            t = self.venue.elapsed_s()
            pending = any(w.end_s > t for w in (*plan.ws_drops, *plan.maintenance))
            if not (pending or self.down or self.held or plan.ws_drop_rate or plan.user_reorder_rate):
                return  # no window edge can come any more: stop polling
            if self.held is not None and not self.down:
                held, self.held = self.held, None
                await self.send.send(held)

    async def deliver(self, ev: VenueEvent) -> None:
        """Apply the stream faults to one inner event."""
        plan = self.venue.plan
        if not self.down and plan.ws_drop_rate > 0 and self.rng.random() < plan.ws_drop_rate:
            t = self.venue.elapsed_s()
            self.venue._random_drops[self.stream].append(Window(t, t + plan.ws_down_s, self.stream))
        await self._transition()
        if self.down:
            return
        if self.venue._stalled(self.stream):
            self.venue._count(f"{self.stream}_stall")
            return
        if self.stream == "market":
            if isinstance(ev, QuoteReceived):
                ev = QuoteReceived(self.venue._stale_or_fresh(ev.quote))
            await self.send.send(ev)
            return
        await self._deliver_user(ev)

    async def _deliver_user(self, ev: VenueEvent) -> None:
        plan, rng = self.venue.plan, self.rng
        if plan.user_late_rate > 0 and rng.random() < plan.user_late_rate:
            self.venue._count("late_event")
            assert self.nursery is not None
            self.nursery.start_soon(self._late, ev)
            return
        if self.held is None and plan.user_reorder_rate > 0 and rng.random() < plan.user_reorder_rate:
            self.venue._count("reordered_event")
            self.held = ev
            return
        await self.send.send(ev)
        if self.held is not None:
            held, self.held = self.held, None
            await self.send.send(held)
        if plan.user_duplicate_rate > 0 and rng.random() < plan.user_duplicate_rate:
            self.venue._count("duplicated_event")
            await self.send.send(ev)

    async def _late(self, ev: VenueEvent) -> None:
        await trio.sleep(self.venue.plan.user_late_s)
        await self.send.send(ev)


_REJECTS: dict[str, type[VenueError]] = {
    "insufficient_margin": InsufficientMargin,
    "min_notional": BadPrecision,
    "precision": BadPrecision,
    "post_only_would_cross": PostOnlyWouldCross,
    "reduce_only": ReduceOnlyRejected,
}
