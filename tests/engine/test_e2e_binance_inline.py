"""End to end, the hedge path without task hops: the engine's ``UserDataSink`` on the Binance
adapter's user-data streams, against the loopback server on 127.0.0.1.

Leg A (perpetual, REST) fills; the futures user-data reader task decodes the report and hands it
to the router, which steps the idle position in that same task and writes the spot hedge on the
WebSocket-API connection (``start_order``) before the router returns.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing

from fundarb.core import events as ev
from fundarb.core.model import Side, Wallet
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.core.venue_events import FillReported, OrderReported, VenueEvent
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager
from fundarb.engine.market import MarketState, UserDataSink
from fundarb.engine.telemetry import RecordingTelemetry
from fundarb.journal import open_journal
from fundarb.sim.binance_server import BinanceServer

from .test_e2e_binance import (
    KEY,
    PERP,
    SECRET,
    SPOT,
    T0_MS,
    exit_and_wait_closed,
    loopback_venue,
    wait_hedged,
)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Jumps only after 20 ms of real idleness, so loopback socket I/O completes first."""
    return trio.testing.MockClock(autojump_threshold=0.02)


async def test_a_leg_a_fill_is_hedged_from_the_stream_reader_task(tmp_path, clock):
    balances = {(Wallet.FUTURES, "USDT"): D(1_000_000), (Wallet.SPOT, "USDT"): D(1_000_000)}
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, balances=balances, start_ms=T0_MS)
    routed: list[tuple[str, str, int, int]] = []  # (event, task, hedges sent before, after)
    with trio.fail_after(120):
        async with trio.open_nursery() as n, open_journal(None, tmp_path, inline_for_tests=True) as journal:
            urls = await n.start(server.run)
            venue = loopback_venue(urls)
            session = venue.ws_api
            assert session is not None
            place = venue.place_order

            async def place_then_wait(request: Any) -> Any:
                # leg A's REST answer reaches the position only after the stream's report: the
                # report finds the position idle (else it would queue behind the answer)
                update = await place(request)
                while request.instrument == PERP and session.sent == 0:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                return update

            venue.place_order = place_then_wait  # type: ignore[method-assign]
            await n.start(journal.run_writer)
            clock_ = EngineClock.start(T0_MS)
            telemetry = RecordingTelemetry()
            manager = PositionManager({"binance": venue}, journal, clock_, telemetry)
            await n.start(manager.run)

            def route(event: VenueEvent) -> None:
                before = session.sent
                manager.route(event)
                if isinstance(event, (OrderReported, FillReported)):
                    name = type(event).__name__
                    routed.append((name, trio.lowlevel.current_task().name, before, session.sent))

            await n.start(venue.run_user_data, UserDataSink(MarketState(clock_), route))
            await venue.instrument_rules()
            rules = {i.id: i for i in await venue.instruments()}
            plan = PositionPlan(
                "in1", LegSpec(rules[PERP], Side.SELL, D("0.01")), LegSpec(rules[SPOT], Side.BUY, D("0.01"))
            )
            quote = await venue.quote(PERP)
            runner = await manager.open_position(plan, ev.EntrySignalled(quote.bid, quote.bid))
            await wait_hedged(runner, telemetry)
            await exit_and_wait_closed(runner)
            await venue.aclose()
            n.cancel_scope.cancel()
    # the first report of leg A's fill: routed in a trio-websocket reader task, and the hedge's
    # frame was written to the WS API before the router returned
    first = next(r for r in routed if r[3] > r[2])
    assert routed.index(first) <= 1, routed
    assert "_reader_task" in first[1] and (first[2], first[3]) == (0, 1), routed
    assert all("_reader_task" in task for _, task, _, _ in routed), routed
