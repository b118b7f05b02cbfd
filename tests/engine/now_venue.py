"""A position runner under test with a venue that offers two-phase placement (``PlacesNow``).

:class:`NowVenue` logs every order it is handed: how (``start_order``, written from the caller's
code, or ``place_order``), in which Trio task, and how far the journal was durable at that moment
(``statistics().last_seq``, read synchronously). Leg A's entry rests until the test fills it
(:meth:`NowVenue.fill`), hedges in ``held`` never get an answer, every other order fills at once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.model import Fill, InstrumentId, Liquidity, OrderRequest, OrderStatus, OrderUpdate, Side
from fundarb.core.position import Position
from fundarb.core.position_model import LegSpec, OrderState, PositionPlan
from fundarb.engine.clock import EngineClock
from fundarb.engine.position_runner import PositionRunner
from fundarb.engine.telemetry import RecordingTelemetry
from fundarb.journal import open_journal
from fundarb.journal.base import Journal
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import OrderNotFound

from .harness import PERP, SPOT, wait_for

ENTRY, HEDGE = "fa.t1.A.1", "fa.t1.B.2"
PRICE = D("30000")


@attrs.frozen
class Sent:
    cid: str
    how: str  # "now" (start_order) or "place" (place_order)
    task: str
    durable: int  # the journal's last durable seq when the order left


class NowVenue:
    """See the module docstring."""

    name = "sim"

    def __init__(self, journal: Journal, clock: EngineClock) -> None:
        self.journal, self.clock = journal, clock
        self.sent: list[Sent] = []
        self.held: set[str] = set()
        self.orders: dict[str, OrderUpdate] = {}
        self.fills: dict[str, list[Fill]] = {}
        self._trades = itertools.count(1)

    def _log(self, request: OrderRequest, how: str) -> None:
        task = trio.lowlevel.current_task().name
        self.sent.append(Sent(request.client_order_id, how, task, self.journal.statistics().last_seq or 0))

    def start_order(self, request: OrderRequest) -> OrderRequest:
        self._log(request, "now")
        return request

    async def finish_order(self, started: OrderRequest) -> OrderUpdate:
        if started.client_order_id in self.held:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        return self._execute(started)

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self._log(request, "place")
        await trio.lowlevel.checkpoint()
        return self._execute(request)

    def _execute(self, request: OrderRequest) -> OrderUpdate:
        cid = request.client_order_id
        self.orders[cid] = self._update(request, OrderStatus.NEW, D(0))
        self.fills[cid] = []
        if cid != ENTRY:
            self.fill(cid, str(request.quantity))
        return self.orders[cid]

    def _update(self, request: OrderRequest, status: OrderStatus, filled: D) -> OrderUpdate:
        cid = request.client_order_id
        return OrderUpdate(
            request.instrument, cid, f"v-{cid}", status, request.side, request.quantity, filled,
            PRICE if filled else None, self.clock.now_ms(),
        )  # fmt: skip

    def fill(self, cid: str, qty: str) -> ev.OrderFilled | ev.OrderPartiallyFilled:
        """Fill ``qty`` more of ``cid`` at the venue; the report the user-data stream would carry."""
        order = self.orders[cid]
        filled = order.filled_qty + D(qty)
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
        self.orders[cid] = attrs.evolve(order, status=status, filled_qty=filled, avg_price=PRICE)
        fill = Fill(
            order.instrument, cid, order.venue_order_id, f"t{next(self._trades)}", order.side, D(qty),
            PRICE, D("0.01"), "USDT", Liquidity.TAKER, self.clock.now_ms(),
        )  # fmt: skip
        self.fills[cid].append(fill)
        if status is OrderStatus.FILLED:
            return ev.OrderFilled(cid, fill, filled)
        return ev.OrderPartiallyFilled(cid, fill, filled)

    async def cancel_order(self, instrument: InstrumentId, cid: str) -> OrderUpdate:
        order = await self.query_order(instrument, cid)
        if not order.status.is_terminal:
            self.orders[cid] = attrs.evolve(order, status=OrderStatus.CANCELED)
        return self.orders[cid]

    async def query_order(self, instrument: InstrumentId, cid: str) -> OrderUpdate:
        await trio.lowlevel.checkpoint()
        if cid not in self.orders:
            raise OrderNotFound(cid, venue="sim")
        return self.orders[cid]

    async def fills_since(self, instrument: InstrumentId, since_ms: int, order_id: Any = None) -> list[Fill]:
        await trio.lowlevel.checkpoint()
        return [f for fills in self.fills.values() for f in fills if f.venue_order_id == order_id]


@attrs.define
class Rig:
    runner: PositionRunner
    venue: NowVenue
    journal: Any
    telemetry: RecordingTelemetry
    scope: trio.CancelScope
    done: trio.Event
    nursery: trio.Nursery

    async def start(self) -> None:
        async def run(task_status: trio.TaskStatus[None]) -> None:
            with self.scope:
                await self.runner.run(task_status=task_status)
            self.done.set()

        await self.nursery.start(run)

    async def open(self) -> None:
        """Enter: leg A placed (durably journaled, hedge ids reserved) and accepted; then idle."""
        self.runner.deliver(ev.EntrySignalled(PRICE, PRICE))
        await wait_for(
            lambda: getattr(self.runner.position.order(ENTRY), "state", None) is OrderState.WORKING
        )

    async def records(self) -> list[Any]:
        await self.journal.flush()
        return await self.journal.read()


@asynccontextmanager
async def open_rig(tmp_path: Path, *, start: bool = True) -> AsyncIterator[Rig]:
    instruments = {i.id: i for i in await SimVenue.for_tests().instruments()}
    plan = PositionPlan(
        "t1", LegSpec(instruments[PERP], Side.SELL, D("0.1")), LegSpec(instruments[SPOT], Side.BUY, D("0.1"))
    )
    async with open_journal(None, tmp_path, inline_for_tests=True) as journal, trio.open_nursery() as n:
        await n.start(journal.run_writer)
        clock = EngineClock.start(base_ms=SIM_EPOCH_MS)
        venue, telemetry = NowVenue(journal, clock), RecordingTelemetry()
        runner = PositionRunner(Position(plan), {"sim": venue}, journal, clock, telemetry, cleanup_timeout=10)
        rig = Rig(runner, venue, journal, telemetry, trio.CancelScope(), trio.Event(), n)
        runner.scope = rig.scope
        if start:
            await rig.start()
        yield rig
        n.cancel_scope.cancel()
