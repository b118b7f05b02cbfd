"""A small engine under test: a position manager, a journal and venues wired as the engine does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.model import Instrument, InstrumentId, Market, Side, TimeInForce
from fundarb.core.position import PositionState
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.engine.clock import EngineClock
from fundarb.engine.executor import ExecutorSettings
from fundarb.engine.manager import PositionManager
from fundarb.engine.position_runner import PositionRunner
from fundarb.engine.telemetry import RecordingTelemetry
from fundarb.journal import open_journal
from fundarb.journal.base import Journal
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("sim", Market.SPOT, "BTCUSDT")


@attrs.define
class Harness:
    """What a test drives and inspects."""

    manager: PositionManager
    journal: Journal
    venue: Any
    telemetry: RecordingTelemetry
    instruments: dict[InstrumentId, Instrument]
    nursery: trio.Nursery

    def plan(self, pid: str = "t1", qty: str = "0.1", hedge_timeout_ms: int = 5000) -> PositionPlan:
        return PositionPlan(
            pid,
            LegSpec(self.instruments[PERP], Side.SELL, D(qty)),
            LegSpec(self.instruments[SPOT], Side.BUY, D(qty)),
            hedge_timeout_ms=hedge_timeout_ms,
            entry_time_in_force=TimeInForce.IOC,
        )

    async def open(self, plan: PositionPlan, price: D | None = None) -> PositionRunner:
        quote = await self.venue.quote(plan.leg_a.instrument.id)
        touch = price if price is not None else quote.bid
        return await self.manager.open_position(plan, ev.EntrySignalled(touch, touch))


async def wait_for(predicate: Callable[[], bool], limit: float = 60.0) -> None:
    """Poll ``predicate`` every 10 ms of virtual time; fail after ``limit`` virtual seconds."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polls state owned by several tasks
            await trio.sleep(0.01)


async def wait_state(runner: PositionRunner, *states: PositionState, limit: float = 60.0) -> None:
    """Wait until the runner's position is in one of ``states``.

    Polls rather than waiting on the runner's step signal on purpose: the 10 ms poll keeps the
    mock clock's jumps small while a journal thread is busy (a jump to the venue's next market
    step would be 60 virtual seconds).
    """
    await wait_for(lambda: runner.state in states, limit)


async def _route(receive: trio.MemoryReceiveChannel[Any], manager: PositionManager) -> None:
    async for event in receive:
        manager.route(event)


@asynccontextmanager
async def open_harness(
    tmp_path: Path, venue: Any | None = None, *, order_timeout: float = 2.0, cleanup_timeout: float = 30.0
) -> AsyncIterator[Harness]:
    venue = venue if venue is not None else SimVenue.for_tests(speed=1.0)
    clock = EngineClock.start(base_ms=SIM_EPOCH_MS)
    telemetry = RecordingTelemetry()
    async with open_journal(None, tmp_path, inline_for_tests=True) as journal, trio.open_nursery() as n:
        await n.start(journal.run_writer)
        manager = PositionManager(
            {"sim": venue},
            journal,
            clock,
            telemetry,
            ExecutorSettings(order_timeout=order_timeout),
            cleanup_timeout,
        )
        await n.start(manager.run)
        send, receive = trio.open_memory_channel[Any](10_000)
        await n.start(venue.run_user_data, send)
        n.start_soon(_route, receive, manager)
        instruments = {i.id: i for i in await venue.instruments()}
        yield Harness(manager, journal, venue, telemetry, instruments, n)
        n.cancel_scope.cancel()
