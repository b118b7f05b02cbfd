"""The real Binance adapter against the Binance-compatible loopback server (127.0.0.1, port 0).

Everything goes over real sockets: httpx -> hypercorn for REST, trio-websocket both ways for the
streams, HMAC signatures and recvWindow checked by the server. Time is Trio's MockClock (jumps
only after 20 ms of real idleness, so loopback I/O completes first); no test reaches the internet.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderStatus, Side, Wallet
from fundarb.core.venue_events import (
    FillReported,
    FundingReceived,
    OrderReported,
    PositionReported,
    QuoteReceived,
    StreamDisconnected,
    StreamResynced,
    VenueEvent,
)
from fundarb.sim.binance_server import BinanceServer
from fundarb.sim.binance_server._usage import Usage
from fundarb.sim.faults import FaultPlan, FaultyVenue
from fundarb.venues.binance import Credentials
from fundarb.venues.binance._ws import ReconnectPolicy
from fundarb.venues.binance.client import BinanceVenue
from fundarb.venues.errors import OrderNotFound, OrderRejected, OutcomeUnknown, RateLimited

KEY, SECRET = "loopback-key", "loopback-secret"
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("binance", Market.SPOT, "BTCUSDT")
FAST = ReconnectPolicy(initial=0.2, maximum=2.0, budget=20)
T0_MS = 1_700_000_000_000
RICH = {(Wallet.FUTURES, "USDT"): D(10_000_000), (Wallet.SPOT, "USDT"): D(1_000_000)}


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 20 ms of real idleness."""
    return trio.testing.MockClock(autojump_threshold=0.02)


def wall_ms() -> int:
    """The adapter's wall clock follows Trio's (mock) clock."""
    return T0_MS + int(trio.current_time() * 1000)


@attrs.define
class Loop:
    server: BinanceServer
    venue: BinanceVenue
    nursery: trio.Nursery


@asynccontextmanager
async def loopback(secret: str = SECRET, **venue_kw: Any) -> AsyncIterator[Loop]:
    """A server on port 0 and an adapter pointed at it, both torn down on exit."""
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, balances=RICH, start_ms=T0_MS)
    venue_kw.setdefault("reconnect", FAST)
    venue_kw.setdefault("call_timeout", 5.0)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(server.run)
        venue = BinanceVenue(
            Credentials(KEY, secret), base_urls=urls.base_urls(), wall_ms=wall_ms, **venue_kw
        )
        try:
            yield Loop(server, venue, nursery)
        finally:
            await venue.aclose()
            nursery.cancel_scope.cancel()


async def next_matching(receive: trio.MemoryReceiveChannel[VenueEvent], pred: Callable[[Any], bool]) -> Any:
    """The next event satisfying ``pred`` (others are skipped)."""
    async for event in receive:
        if pred(event):
            return event
    raise AssertionError("stream ended")


def order_of(cid: str, status: OrderStatus | None = None) -> Callable[[Any], bool]:
    return lambda e: (
        isinstance(e, OrderReported)
        and e.update.client_order_id == cid
        and (status is None or e.update.status is status)
    )


async def test_place_fill_and_cancel_with_user_data(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v = lp.venue
            send, receive = trio.open_memory_channel[VenueEvent](1000)
            await lp.nursery.start(v.run_user_data, send)
            quote = await v.quote(PERP)
            assert quote.bid < quote.ask

            # a resting bid well below the market, then its cancel
            rest = OrderRequest("lb-rest-1", PERP, Side.BUY, D("0.010"), D("29000.0"))
            ack = await v.place_order(rest)
            assert (ack.status, ack.filled_qty) == (OrderStatus.NEW, D(0))
            assert [o.client_order_id for o in await v.open_orders(PERP)] == ["lb-rest-1"]
            await next_matching(receive, order_of("lb-rest-1", OrderStatus.NEW))
            canceled = await v.cancel_order(PERP, "lb-rest-1")
            assert canceled.status is OrderStatus.CANCELED
            await next_matching(receive, order_of("lb-rest-1", OrderStatus.CANCELED))
            assert await v.open_orders(PERP) == []
            with pytest.raises(OrderNotFound):  # -2011 Unknown order sent
                await v.cancel_order(PERP, "lb-rest-1")

            # a marketable order fills at once: ack, fill and position on the stream
            take = OrderRequest("lb-take-1", PERP, Side.BUY, D("0.010"), quote.ask + 50)
            filled = await v.place_order(take)
            assert filled.status is OrderStatus.FILLED and filled.filled_qty == D("0.010")
            assert filled.avg_price == quote.ask
            fill = await next_matching(receive, lambda e: isinstance(e, FillReported))
            assert (fill.fill.client_order_id, fill.fill.quantity, fill.fill.price) == (
                "lb-take-1", D("0.010"), quote.ask,
            )  # fmt: skip
            assert fill.fill.fee > 0 and fill.fill.fee_asset == "USDT"
            position = await next_matching(receive, lambda e: isinstance(e, PositionReported))
            assert position.position.quantity == D("0.010")
            [pos] = await v.positions()
            assert (pos.instrument, pos.quantity, pos.entry_price) == (PERP, D("0.010"), quote.ask)
            queried = await v.query_order(PERP, "lb-take-1")
            assert queried.status is OrderStatus.FILLED
            [trade] = await v.fills_since(PERP, 0)
            assert trade.quantity == D("0.010") and trade.price == quote.ask
            # one order's trades by its venue id (Binance's orderId), whatever the window holds
            other = await v.place_order(OrderRequest("lb-take-2", PERP, Side.BUY, D("0.020"), quote.ask + 50))
            assert len(await v.fills_since(PERP, 0)) == 2
            [mine] = await v.fills_since(PERP, 10**15, order_id=filled.venue_order_id)
            assert mine.trade_id == trade.trade_id and mine.client_order_id == ""
            [theirs] = await v.fills_since(PERP, 0, order_id=other.venue_order_id)
            assert theirs.quantity == D("0.020")
            futures = [b for b in await v.balances() if b.wallet is Wallet.FUTURES]
            assert futures and futures[0].free < D(10_000_000)


async def test_spot_order_reported_on_the_ws_api_subscription(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v = lp.venue
            send, receive = trio.open_memory_channel[VenueEvent](1000)
            await lp.nursery.start(v.run_user_data, send)
            quote = await v.quote(SPOT)
            ack = await v.place_order(OrderRequest("lb-spot-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert ack.status is OrderStatus.FILLED
            # one executionReport (x=TRADE) decodes to the order's report, then its fill
            report = await next_matching(receive, order_of("lb-spot-1"))
            assert report.update.status is OrderStatus.FILLED
            fill = await next_matching(receive, lambda e: isinstance(e, FillReported))
            assert fill.fill.instrument == SPOT and fill.fill.quantity == D("0.01")


async def test_partial_fills(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v = lp.venue
            send, receive = trio.open_memory_channel[VenueEvent](1000)
            await lp.nursery.start(v.run_user_data, send)
            quote = await v.quote(PERP)
            # a bid at the best ask for more than the best level holds: part fills, the rest rests
            qty = (quote.ask_size * 2).quantize(D("0.001"))
            ack = await v.place_order(OrderRequest("lb-part-1", PERP, Side.BUY, qty, quote.ask))
            assert ack.status is OrderStatus.PARTIALLY_FILLED
            assert 0 < ack.filled_qty < qty
            report = await next_matching(receive, order_of("lb-part-1"))
            assert report.update.status is OrderStatus.PARTIALLY_FILLED
            assert report.update.filled_qty == ack.filled_qty
            fill = await next_matching(receive, lambda e: isinstance(e, FillReported))
            assert fill.fill.quantity == ack.filled_qty
            [working] = await v.open_orders(PERP)
            assert working.status is OrderStatus.PARTIALLY_FILLED
            canceled = await v.cancel_order(PERP, "lb-part-1")
            assert canceled.status is OrderStatus.CANCELED and canceled.filled_qty == ack.filled_qty
            [pos] = await v.positions()
            assert pos.quantity == ack.filled_qty


async def test_429_is_honoured(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, control = lp.venue, lp.server.control
            await v.funding(PERP)  # warm up: funding intervals cached
            control.rate_limit_next("GET", "/fapi/v1/premiumIndex", retry_after=3)
            started = trio.current_time()
            snapshot = await v.funding(PERP)
            assert snapshot.mark > 0
            assert trio.current_time() - started >= 3.0  # waited Retry-After, then retried
            assert control.injected["rate_limit"] == 1
            # the ban covers the whole API family: the next call waits it out too, none is refused
            # a Retry-After beyond the call deadline: RateLimited, and the order was never placed
            control.rate_limit_next("POST", "/fapi/v1/order", retry_after=30)
            with pytest.raises(RateLimited) as info:
                await v.place_order(OrderRequest("lb-429-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert info.value.retry_after == 30
            await trio.sleep(31)
            with pytest.raises(OrderNotFound):
                await v.query_order(PERP, "lb-429-1")


async def test_lost_acknowledgement_resolved_by_client_order_id(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback(call_timeout=3.0) as lp:
            v, control = lp.venue, lp.server.control
            control.lose_ack_next("POST", "/fapi/v1/order")
            request = OrderRequest("lb-lost-1", PERP, Side.BUY, D("0.010"), D("29000.0"))
            with pytest.raises(OutcomeUnknown):
                await v.place_order(request)
            assert control.injected["lost_ack"] == 1
            found = await v.query_order(PERP, "lb-lost-1")  # the order did reach the venue
            assert (found.client_order_id, found.status, found.quantity) == (
                "lb-lost-1",
                OrderStatus.NEW,
                D("0.010"),
            )
            # a lost cancel acknowledgement: the cancel took effect all the same
            control.lose_ack_next("DELETE", "/fapi/v1/order")
            with pytest.raises(OutcomeUnknown):
                await v.cancel_order(PERP, "lb-lost-1")
            assert (await v.query_order(PERP, "lb-lost-1")).status is OrderStatus.CANCELED
            # a 5xx that was not executed: OutcomeUnknown, and the query says no such order
            control.fail_next("POST", "/fapi/v1/order", 503, applied=False)
            with pytest.raises(OutcomeUnknown):
                await v.place_order(attrs.evolve(request, client_order_id="lb-lost-2"))
            with pytest.raises(OrderNotFound):
                await v.query_order(PERP, "lb-lost-2")


async def test_websocket_drop_reconnect_and_resync(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, control = lp.venue, lp.server.control
            send, receive = trio.open_memory_channel[VenueEvent](10_000)
            await lp.nursery.start(v.run_market_data, [PERP, SPOT], send)
            await lp.nursery.start(v.run_user_data, send)
            await next_matching(receive, lambda e: isinstance(e, FundingReceived))
            await next_matching(receive, lambda e: isinstance(e, QuoteReceived))
            assert control.connections() == 5  # market, public, spot book, private, ws-api

            dropped = control.drop_streams()
            assert dropped == 5
            # an order placed while the streams are down is found by the resync (open orders)
            await v.place_order(OrderRequest("lb-drop-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            names_lost: set[str] = set()
            names_back: set[str] = set()
            resynced_order = False
            while len(names_back) < 5:
                event = await receive.receive()
                if isinstance(event, StreamDisconnected):
                    names_lost.add(event.stream)
                elif isinstance(event, StreamResynced):
                    assert event.stream in names_lost
                    names_back.add(event.stream)
                elif order_of("lb-drop-1")(event):
                    resynced_order = True
            assert (
                names_lost
                == names_back
                == {"usdm-market", "usdm-public", "spot-book", "usdm-private", "spot-user"}
            )
            assert resynced_order
            assert control.connections() == 5
            # and the reconnected streams carry data again
            await next_matching(receive, lambda e: isinstance(e, FundingReceived))
            await v.cancel_order(PERP, "lb-drop-1")
            await next_matching(receive, order_of("lb-drop-1", OrderStatus.CANCELED))


async def test_silent_socket_detected_by_the_watchdog(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback(watchdog=2.0) as lp:
            v, control = lp.venue, lp.server.control
            send, receive = trio.open_memory_channel[VenueEvent](10_000)
            await lp.nursery.start(v.run_market_data, [PERP], send)
            await next_matching(receive, lambda e: isinstance(e, FundingReceived))
            silenced_at = trio.current_time()
            control.silence_streams()  # TCP stays up, nothing is sent: no frames, no pongs
            lost = []
            for _ in range(2):  # both USDⓈ-M streams (/market and /public)
                lost.append(await next_matching(receive, lambda e: isinstance(e, StreamDisconnected)))
            assert all("watchdog" in e.reason for e in lost), lost
            assert trio.current_time() - silenced_at <= 2.0 / 2 + 2.0 + 0.5  # next ping + pong deadline
            # Resume before the first reconnect attempt (backoff >= 0.15 s): trio-websocket 0.12's
            # connect_timeout does not bound a handshake that a silent server never answers.
            control.resume_streams()
            back = {
                (await next_matching(receive, lambda e: isinstance(e, StreamResynced))).stream for _ in lost
            }
            assert back == {e.stream for e in lost} == {"usdm-market", "usdm-public"}
            await next_matching(receive, lambda e: isinstance(e, FundingReceived))


async def test_wrong_secret_is_refused_with_minus_1022(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with loopback(secret="not-the-secret") as lp:
            with pytest.raises(OrderRejected) as info:
                await lp.venue.place_order(OrderRequest("lb-sig-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert info.value.code == -1022
            assert lp.server.statistics().errors == {-1022: 1}


async def test_clock_offset_is_resynced_after_minus_1021(clock: trio.testing.MockClock) -> None:
    """An adapter clock that jumps 10 s ahead: the server answers -1021, the adapter re-syncs
    its offset and the retried order goes through."""
    skew = [0]

    def skewed_wall_ms() -> int:
        return wall_ms() + skew[0]

    with trio.fail_after(60):
        async with loopback() as lp:
            v = lp.venue
            v.rest._wall_ms = skewed_wall_ms
            await v.place_order(OrderRequest("lb-ts-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            skew[0] = 10_000
            assert lp.server.statistics().errors.get(-1021) is None
            ack = await v.place_order(OrderRequest("lb-ts-2", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert ack.status is OrderStatus.NEW
            assert lp.server.statistics().errors[-1021] == 1  # refused once, then accepted after the resync


async def test_fault_layer_behind_the_server(clock: trio.testing.MockClock) -> None:
    """A FaultyVenue behind the server: its lost acks become 503/-1007 (OutcomeUnknown for the
    adapter, resolved by the client order id) and its websocket drop closes the socket."""
    plan = FaultPlan.from_dict(
        {"lost_ack_rate": 1.0, "ws_drops": [{"at_s": 5, "down_s": 3, "stream": "market"}]}
    )
    server = BinanceServer.for_tests(
        credentials={KEY: SECRET}, balances=RICH, start_ms=T0_MS,
        wrap=lambda sim: FaultyVenue(sim, plan, random.Random(1)),
    )  # fmt: skip
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(server.run)
            v = BinanceVenue(
                Credentials(KEY, SECRET), base_urls=urls.base_urls(), wall_ms=wall_ms, reconnect=FAST
            )
            send, receive = trio.open_memory_channel[VenueEvent](10_000)
            await nursery.start(v.run_market_data, [PERP], send)
            with pytest.raises(OutcomeUnknown):
                await v.place_order(OrderRequest("lb-fault-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert (await v.query_order(PERP, "lb-fault-1")).status is OrderStatus.NEW
            assert server.statistics().errors == {-1007: 1}
            # the plan drops the market stream at 5 s for 3 s: the server closes the sockets (and
            # those reopened inside the window), the adapter reconnects and resyncs each time
            lost: set[str] = set()
            resynced: set[str] = set()
            while True:
                event = await receive.receive()
                if isinstance(event, StreamDisconnected):
                    assert event.ts_ms >= T0_MS + 4900  # the plan's clock starts when the server does
                    lost.add(event.stream)
                elif isinstance(event, StreamResynced):
                    resynced.add(event.stream)
                elif isinstance(event, FundingReceived) and event.funding.ts_ms >= T0_MS + 9000:
                    break
            assert lost == resynced == {"usdm-market", "usdm-public"}
            assert plan.ws_drops and server.statistics().connections == 2
            await v.aclose()
            nursery.cancel_scope.cancel()


async def test_expired_listen_key_reconnects_with_a_new_key(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, server = lp.venue, lp.server
            send, receive = trio.open_memory_channel[VenueEvent](10_000)
            await lp.nursery.start(v.run_user_data, send)
            [old_key] = server.state.listen_keys
            server.expire_listen_keys()
            lost = await next_matching(receive, lambda e: isinstance(e, StreamDisconnected))
            assert (lost.stream, lost.reason) == ("usdm-private", "listen key expired")
            back = await next_matching(receive, lambda e: isinstance(e, StreamResynced))
            assert back.stream == "usdm-private"
            [new_key] = server.state.listen_keys
            assert new_key != old_key
            await v.place_order(OrderRequest("lb-key-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            await next_matching(receive, order_of("lb-key-1", OrderStatus.NEW))


async def test_weight_and_order_limits_are_enforced_and_honoured(clock: trio.testing.MockClock) -> None:
    """Small limits on the server: its 429s (-1003 weight, -1015 orders) carry Retry-After to the
    window's end; the adapter waits them out and every call goes through."""
    with trio.fail_after(300):
        async with loopback(call_timeout=90.0) as lp:
            v, server = lp.venue, lp.server
            server.state.usage["fapi"] = Usage(12, {"10s": 2})
            started = trio.current_time()
            for _ in range(20):
                assert (await v.funding(PERP)).mark > 0
            assert server.statistics().errors[-1003] >= 1
            assert trio.current_time() - started >= 30  # at least one window had to be waited out
            for n in range(3):
                await v.place_order(OrderRequest(f"lb-rl-{n}", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert server.statistics().errors.get(-1015, 0) >= 1
            assert len(await v.open_orders(PERP)) == 3
