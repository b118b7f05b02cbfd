"""End to end: the engine's position manager trades through the real Binance adapter (REST
signing, websocket user data) against the Binance-compatible loopback server on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing

from fundarb.core import events as ev
from fundarb.core.model import InstrumentId, Market, Side, Wallet
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg, LegSpec, PositionPlan
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager
from fundarb.engine.position_runner import PositionRunner
from fundarb.engine.telemetry import RecordingTelemetry
from fundarb.journal import open_journal
from fundarb.sim.binance_server import BinanceServer
from fundarb.venues.binance import Credentials
from fundarb.venues.binance._ws import ReconnectPolicy
from fundarb.venues.binance.client import BinanceVenue

KEY, SECRET = "e2e-key", "e2e-secret"
T0_MS = 1_700_000_000_000
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("binance", Market.SPOT, "BTCUSDT")


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Jumps only after 20 ms of real idleness, so loopback socket I/O completes first."""
    return trio.testing.MockClock(autojump_threshold=0.02)


def wall_ms() -> int:
    return T0_MS + int(trio.current_time() * 1000)


def loopback_venue(urls: Any) -> BinanceVenue:
    """The real adapter on the loopback server's ``urls``, on the test clock."""
    return BinanceVenue(
        Credentials(KEY, SECRET),
        base_urls=urls.base_urls(),
        wall_ms=wall_ms,
        reconnect=ReconnectPolicy(initial=0.2, maximum=2.0, budget=20),
        call_timeout=5.0,
    )


async def wait_hedged(runner: PositionRunner, telemetry: RecordingTelemetry) -> None:
    """Wait until ``runner``'s position settles; it must be hedged, 0.01 on each leg, with one
    hedge gap measured."""
    while runner.state not in (PositionState.HEDGED, PositionState.CLOSED, PositionState.FAILED):
        await runner.wait_stepped()
    assert runner.state is PositionState.HEDGED
    assert runner.position.held(Leg.A) == runner.position.held(Leg.B) == D("0.01")
    assert len(telemetry.hedge_gaps) == 1


async def exit_and_wait_closed(runner: PositionRunner) -> None:
    """Signal the position's exit and wait until it is closed."""
    runner.deliver(ev.ExitSignalled("test over"))
    while runner.state is not PositionState.CLOSED:
        await runner.wait_stepped()


async def _route(receive, manager: PositionManager) -> None:
    async for event in receive:
        manager.route(event)


async def test_position_opens_and_hedges_through_the_binance_adapter(tmp_path, clock):
    balances = {(Wallet.FUTURES, "USDT"): D(1_000_000), (Wallet.SPOT, "USDT"): D(1_000_000)}
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, balances=balances, start_ms=T0_MS)
    with trio.fail_after(120):
        async with trio.open_nursery() as n, open_journal(None, tmp_path, inline_for_tests=True) as journal:
            urls = await n.start(server.run)
            venue = loopback_venue(urls)
            await n.start(journal.run_writer)
            telemetry = RecordingTelemetry()
            manager = PositionManager({"binance": venue}, journal, EngineClock.start(T0_MS), telemetry)
            await n.start(manager.run)
            send, receive = trio.open_memory_channel(1000)
            await n.start(venue.run_user_data, send)
            n.start_soon(_route, receive, manager)
            rules = {i.id: i for i in await venue.instruments()}
            plan = PositionPlan(
                "e2e1", LegSpec(rules[PERP], Side.SELL, D("0.01")), LegSpec(rules[SPOT], Side.BUY, D("0.01"))
            )
            quote = await venue.quote(PERP)
            runner = await manager.open_position(plan, ev.EntrySignalled(quote.bid, quote.bid))
            await wait_hedged(runner, telemetry)
            positions = {p.instrument: p.quantity for p in await venue.positions()}
            assert positions[PERP] == D("-0.01")  # the server holds the short perp
            await exit_and_wait_closed(runner)
            assert all(p.quantity == 0 for p in await venue.positions())
            await venue.aclose()
            n.cancel_scope.cancel()
