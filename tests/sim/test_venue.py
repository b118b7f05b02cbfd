"""SimVenue through the Venue protocol, under Trio's autojump clock."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

from fundarb.core.model import (
    InstrumentId,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Wallet,
)
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingReceived,
    FundingSettled,
    OrderReported,
    PositionReported,
    QuoteReceived,
    VenueEvent,
)
from fundarb.sim.drivers import ScriptedDriver, ScriptPoint
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import OrderNotFound, OrderRejected, VenueUnavailable
from fundarb.venues.protocol import Venue

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("sim", Market.SPOT, "BTCUSDT")
H = 3_600_000


async def test_is_a_venue_and_reports_instruments_with_binance_rules() -> None:
    v = SimVenue.for_tests()
    assert isinstance(v, Venue)
    insts = {str(i.id): i for i in await v.instruments()}
    assert set(insts) == {"sim:perp:BTCUSDT", "sim:spot:BTCUSDT", "sim:perp:ETHUSDT", "sim:spot:ETHUSDT"}
    p, s = insts["sim:perp:BTCUSDT"], insts["sim:spot:BTCUSDT"]
    assert (p.tick_size, p.lot_step, p.min_notional) == (D("0.1"), D("0.001"), D("100"))
    assert (s.tick_size, s.lot_step, s.min_notional) == (D("0.01"), D("0.00001"), D("5"))


async def test_sim_time_follows_trio_clock_times_speed(autojump_clock: trio.testing.MockClock) -> None:
    v = SimVenue.for_tests(speed=60.0)
    t0 = await v.server_time_ms()
    assert t0 == SIM_EPOCH_MS
    await trio.sleep(60)  # one trio minute = one sim hour
    assert await v.server_time_ms() == SIM_EPOCH_MS + H


async def test_place_cancel_query_and_reconciliation_queries(autojump_clock: trio.testing.MockClock) -> None:
    v = SimVenue.for_tests(prices={"BTCUSDT": D(30000)})
    with trio.fail_after(5):
        q = await v.quote(PERP)
        assert q.bid < D(30000) < q.ask
        resting = await v.place_order(OrderRequest("r1", PERP, Side.BUY, D("0.01"), D("29000")))
        assert resting.status is OrderStatus.NEW
        assert [o.client_order_id for o in await v.open_orders()] == ["r1"]
        done = await v.cancel_order(PERP, "r1")
        assert done.status is OrderStatus.CANCELED and done.filled_qty == 0
        assert (await v.query_order(PERP, "r1")).status is OrderStatus.CANCELED
        with pytest.raises(OrderNotFound):
            await v.query_order(PERP, "nope")
        with pytest.raises(OrderRejected):
            await v.place_order(OrderRequest("r1", PERP, Side.BUY, D("0.01"), D("29000")))
        filled = await v.place_order(OrderRequest("m1", PERP, Side.SELL, D("0.01"), None, OrderType.MARKET))
        assert filled.status is OrderStatus.FILLED
        (pos,) = await v.positions()
        assert pos.quantity == D("-0.01") and pos.liquidation_price is not None
        assert len(await v.fills_since(PERP, SIM_EPOCH_MS)) == 1
        assert {b.wallet for b in await v.balances()} >= {Wallet.FUTURES, Wallet.SPOT}
        with pytest.raises(OrderRejected):
            await v.quote(InstrumentId("other", Market.SPOT, "BTCUSDT"))


async def test_funding_settles_through_the_venue(autojump_clock: trio.testing.MockClock) -> None:
    v = SimVenue.for_tests(speed=3600.0, funding_rate=D("0.0002"), prices={"BTCUSDT": D(30000)})
    await v.place_order(OrderRequest("s", PERP, Side.SELL, D("0.1"), None, OrderType.MARKET))
    snap = await v.funding(PERP)
    assert snap.next_funding_ms == SIM_EPOCH_MS + 8 * H and snap.rate == D("0.0002")
    await trio.sleep(8)  # eight sim hours
    (pay,) = await v.funding_income_since(0)
    assert pay.ts_ms == SIM_EPOCH_MS + 8 * H and pay.amount == D("0.1") * D(30000) * D("0.0002")


async def test_streams_market_and_user_data(autojump_clock: trio.testing.MockClock) -> None:
    v = SimVenue.for_tests(speed=60.0, funding_rate=D("0.0001"), prices={"BTCUSDT": D(30000)})
    market_send, market_recv = trio.open_memory_channel[VenueEvent](5000)
    user_send, user_recv = trio.open_memory_channel[VenueEvent](1000)
    with trio.fail_after(600):
        async with trio.open_nursery() as n:
            await n.start(v.run_market_data, [PERP, SPOT], market_send)
            await n.start(v.run_user_data, user_send)
            await n.start(v.run_user_data, user_send.clone())  # a second reader of the same venue
            await v.place_order(OrderRequest("s", PERP, Side.SELL, D("0.1"), None, OrderType.MARKET))
            await trio.sleep(8 * 60 + 1)  # past the 08:00 settlement
            n.cancel_scope.cancel()
    market = []
    while True:
        try:
            market.append(market_recv.receive_nowait())
        except trio.WouldBlock:
            break
    quotes = [e for e in market if isinstance(e, QuoteReceived)]
    assert len({q.quote.ts_ms for q in quotes}) >= 8 * 60  # one per sim minute
    assert any(isinstance(e, FundingReceived) for e in market)
    user = []
    while True:
        try:
            user.append(user_recv.receive_nowait())
        except trio.WouldBlock:
            break
    kinds = [type(e) for e in user]
    for k in (OrderReported, FillReported, PositionReported, BalanceReported, FundingSettled):
        assert kinds.count(k) >= 2, k  # both subscribers got it


async def test_scripted_market_fills_resting_order_and_closed_venue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t0 = SIM_EPOCH_MS
    driver = ScriptedDriver(
        [ScriptPoint(t0, "BTCUSDT", D(30000), D(30000)), ScriptPoint(t0 + H, "BTCUSDT", D(29000), D(29000))]
    )
    v = SimVenue.for_tests(driver=driver, speed=60.0)
    await v.place_order(
        OrderRequest("g", PERP, Side.BUY, D("0.01"), D("29500"), time_in_force=TimeInForce.GTC)
    )
    await trio.sleep(60)
    q = await v.query_order(PERP, "g")
    assert q.status is OrderStatus.FILLED and q.avg_price == D("29500")
    await v.aclose()
    with pytest.raises(VenueUnavailable):
        await v.positions()


async def test_same_seed_same_user_events(autojump_clock: trio.testing.MockClock) -> None:
    async def run(seed: int) -> list[str]:
        v = SimVenue.for_tests(seed=seed, speed=600.0)
        send, recv = trio.open_memory_channel[VenueEvent](10_000)
        with trio.fail_after(3600):
            await drive(v, send)
        out = []
        while True:
            try:
                out.append(repr(recv.receive_nowait()))
            except trio.WouldBlock:
                return out

    async def drive(v: SimVenue, send: trio.MemorySendChannel[VenueEvent]) -> None:
        async with trio.open_nursery() as n:
            await n.start(v.run_user_data, send)
            for k in range(5):
                side = Side.BUY if k % 2 == 0 else Side.SELL  # 8 BTC walks past the first level
                await v.place_order(OrderRequest(f"m{k}", PERP, side, D("8"), None, OrderType.MARKET))
                await trio.sleep(3)
            n.cancel_scope.cancel()

    a, b, c = await run(3), await run(3), await run(4)
    assert a == b and a != c
