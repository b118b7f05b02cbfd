"""Spot orders over Binance's WebSocket API (``order.place`` / ``order.cancel``), adapter and loopback
server together on 127.0.0.1: the same answers and error types as REST, user data on the same
connection, OutcomeUnknown when the connection drops after the request left, REST when it is down.
Time is Trio's MockClock; no test reaches the internet.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from fundarb.core.model import OrderRequest, OrderStatus, Side
from fundarb.core.venue_events import FillReported, StreamResynced, VenueEvent
from fundarb.sim.binance_server import BinanceServer
from fundarb.venues.binance._auth import sign, ws_api_payload
from fundarb.venues.binance._endpoints import Family
from fundarb.venues.binance._wsapi import NotSent, WsApiSession, usage_headers
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
)

from .test_loopback import KEY, PERP, RICH, SECRET, SPOT, T0_MS, Loop, loopback, next_matching, order_of


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


def session_of(lp: Loop) -> WsApiSession:
    session = lp.venue.ws_api
    assert session is not None
    return session


async def user_data(lp: Loop) -> trio.MemoryReceiveChannel[VenueEvent]:
    """Start the user-data streams; the spot one is the WS-API order session."""
    send, receive = trio.open_memory_channel[VenueEvent](10_000)
    await lp.nursery.start(lp.venue.run_user_data, send)
    assert session_of(lp).connected
    return receive


def test_ws_api_signature_reproduces_the_documented_example() -> None:
    # [BN-SPOT-DOCS web-socket-api.md] "SIGNED request example (HMAC)", WIRE.md §1.2
    params: dict[str, str | int] = {
        "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100, "timestamp": 1645423376532,
        "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
    }  # fmt: skip
    payload = ws_api_payload(params)
    assert payload == (
        "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=52000.00"
        "&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC"
        "&timestamp=1645423376532&type=LIMIT"
    )
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert sign(secret, payload) == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    # the signature itself is never part of the payload
    assert ws_api_payload({**params, "signature": "x"}) == payload


def test_rate_limits_array_becomes_usage_headers() -> None:
    rows = [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 12},
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 6000,
            "count": 321,
        },
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 1, "count": 1},
        "junk",
    ]
    assert usage_headers(rows) == {"x-mbx-order-count-10s": "12", "x-mbx-used-weight-1m": "321"}
    assert usage_headers(None) == {}


async def test_spot_order_placed_filled_and_cancelled_over_the_ws_api(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            receive = await user_data(lp)
            quote = await v.quote(SPOT)
            await v.instrument_rules()  # warm: the filters are loaded over REST once
            served = lp.server.statistics().requests

            ack = await v.place_order(OrderRequest("ws-take-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert (ack.client_order_id, ack.status, ack.filled_qty) == (
                "ws-take-1",
                OrderStatus.FILLED,
                D("0.01"),
            )
            assert ack.avg_price == quote.ask
            assert (session.sent, session.answered) == (1, 1)
            assert lp.server.statistics().requests == served + 1  # one WS-API request, no REST call
            # the executionReport still flows on the same connection, to the stream consumer
            report = await next_matching(receive, order_of("ws-take-1", OrderStatus.FILLED))
            assert report.update.filled_qty == D("0.01")
            fill = await next_matching(receive, lambda e: isinstance(e, FillReported))
            assert (fill.fill.client_order_id, fill.fill.quantity) == ("ws-take-1", D("0.01"))
            # the answer's rateLimits fed the REST limiter of the spot family
            limiter = v.rest.limiters[Family.SPOT]
            assert limiter.used("orders", "10s", v.rest.wall_ms()) >= 1

            # a resting bid, cancelled over the WS API; REST sees the same order
            rest = OrderRequest(
                "ws-rest-1", SPOT, Side.BUY, D("0.01"), (quote.bid * D("0.9")).quantize(D("0.01"))
            )
            placed = await v.place_order(rest)
            assert (placed.status, placed.filled_qty) == (OrderStatus.NEW, D(0))
            assert [o.client_order_id for o in await v.open_orders(SPOT)] == ["ws-rest-1"]
            canceled = await v.cancel_order(SPOT, "ws-rest-1")
            assert (canceled.client_order_id, canceled.status) == ("ws-rest-1", OrderStatus.CANCELED)
            assert session.sent == 3
            assert (await v.query_order(SPOT, "ws-rest-1")).status is OrderStatus.CANCELED
            with pytest.raises(OrderNotFound):  # -2011 over the WS API, as over REST
                await v.cancel_order(SPOT, "ws-rest-1")

            # perpetual orders stay on REST
            await v.place_order(OrderRequest("ws-perp-1", PERP, Side.BUY, D("0.010"), D("29000.0")))
            assert session.sent == 4


async def test_rejections_map_to_the_rest_error_types(clock: trio.testing.MockClock) -> None:
    errors: dict[bool, type[Exception]] = {}
    with trio.fail_after(120):
        for ws_orders in (True, False):
            async with loopback(ws_orders=ws_orders) as lp:
                if ws_orders:
                    await user_data(lp)
                quote = await lp.venue.quote(SPOT)
                # 100 BTC for 1M USDT
                request = OrderRequest(
                    "ws-big-1", SPOT, Side.BUY, D("100"), (quote.ask * 2).quantize(D("0.01"))
                )
                with pytest.raises(InsufficientMargin) as info:  # -2010 insufficient balance
                    await lp.venue.place_order(request)
                assert info.value.code == -2010
                errors[ws_orders] = type(info.value)
                if ws_orders:
                    assert session_of(lp).sent == 1
                    # a quantity off the step size, past the local check: -1013 -> BadPrecision
                    bad = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0000001",
                           "newClientOrderId": "ws-bad-1"}  # fmt: skip
                    with pytest.raises(BadPrecision) as precision:
                        await session_of(lp).call("order.place", bad, mutating=True)
                    assert precision.value.code == -1013
                else:
                    assert lp.venue.ws_api is None
    assert errors[True] is errors[False]


async def test_rate_limited_answer_and_clock_resync(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session, control = lp.venue, session_of(lp), lp.server.control
            await user_data(lp)
            quote = await v.quote(SPOT)
            control.rate_limit_next("WS-API", "order.place", retry_after=30)
            with pytest.raises(RateLimited) as info:
                await v.place_order(OrderRequest("ws-429-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert info.value.retry_after == 30
            assert control.injected["rate_limit"] == 1
            # the ban covers the family: the next order does not go out over the WS API at all
            with pytest.raises(NotSent):
                await session.call("order.place", {"symbol": "BTCUSDT"}, mutating=True)
            await trio.sleep(31)
            with pytest.raises(OrderNotFound):
                await v.query_order(SPOT, "ws-429-1")

            # a clock 10 s fast: -1021, the spot clock is re-measured and the order sent again
            v.rest.clocks[Family.SPOT].offset_ms += 10_000
            sent = session.sent
            ack = await v.place_order(OrderRequest("ws-1021-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert ack.status is OrderStatus.FILLED
            assert session.sent == sent + 2
            assert lp.server.statistics().errors.get(-1021) == 1


async def test_connection_dropped_after_sending_is_outcome_unknown(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session, control = lp.venue, session_of(lp), lp.server.control
            receive = await user_data(lp)
            quote = await v.quote(SPOT)
            control.lose_ack_next("WS-API", "order.place")  # executed, then the socket drops
            request = OrderRequest("ws-lost-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1)
            with pytest.raises(OutcomeUnknown, match="connection lost after the request was sent"):
                await v.place_order(request)
            assert control.injected["lost_ack"] == 1
            assert not session.connected
            # the engine resolves it by client order id over REST: the order did execute
            found = await v.query_order(SPOT, "ws-lost-1")
            assert (found.status, found.filled_qty) == (OrderStatus.FILLED, D("0.01"))
            # while reconnecting, orders go over REST; after the resync, over the WS API again
            await next_matching(receive, lambda e: isinstance(e, StreamResynced) and e.stream == "spot-user")
            assert session.connected
            sent = session.sent
            again = await v.place_order(OrderRequest("ws-after-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert again.status is OrderStatus.FILLED and session.sent == sent + 1


async def test_no_answer_by_the_deadline_is_outcome_unknown(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback(call_timeout=3.0) as lp:
            v, control = lp.venue, lp.server.control
            await user_data(lp)
            quote = await v.quote(SPOT)
            control.silence_streams()  # the server executes but sends nothing back
            started = trio.current_time()
            with pytest.raises(OutcomeUnknown, match=r"no answer within 3\.0s"):
                await v.place_order(OrderRequest("ws-slow-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert trio.current_time() - started == pytest.approx(3.0, abs=0.1)
            control.resume_streams()
            assert (await v.query_order(SPOT, "ws-slow-1")).status is OrderStatus.FILLED


async def test_orders_go_over_rest_when_the_ws_api_is_not_connected(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            assert not session.connected  # user data never started
            quote = await v.quote(SPOT)
            ack = await v.place_order(OrderRequest("ws-none-1", SPOT, Side.BUY, D("0.01"), quote.ask + 1))
            assert ack.status is OrderStatus.FILLED
            assert session.sent == 0
            with pytest.raises(NotSent):
                await session.call("order.place", {}, mutating=True)
        # margin orders (/sapi) are not on the spot WS API: no session at all
        async with loopback(spot_margin=True) as lp:
            assert lp.venue.ws_api is None


# --- the server's WS-API face, raw -------------------------------------------------------------


def _signed(params: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    out = {**params, "apiKey": KEY, "timestamp": T0_MS + int(trio.current_time() * 1000)}
    out["signature"] = sign(secret, ws_api_payload(out))
    return out


async def test_server_answers_order_place_in_binance_shapes(clock: trio.testing.MockClock) -> None:
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, balances=RICH, start_ms=T0_MS)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
             "newClientOrderId": "raw-1"}  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(server.run)
            async with open_websocket_url(f"{urls.ws}/ws-api/v3") as ws:
                await ws.send_message(
                    orjson.dumps({"id": 7, "method": "order.place", "params": _signed(order)}).decode()
                )
                ok = orjson.loads(await ws.get_message())
                assert (ok["id"], ok["status"]) == (7, 200)
                result = ok["result"]
                assert (result["clientOrderId"], result["status"], result["executedQty"]) == (
                    "raw-1", "FILLED", "0.01",
                )  # fmt: skip
                kinds = {(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in ok["rateLimits"]}
                assert ("REQUEST_WEIGHT", "MINUTE", 1) in kinds and ("ORDERS", "SECOND", 10) in kinds

                forged = _signed({**order, "newClientOrderId": "raw-2"}, secret="not-the-secret")
                await ws.send_message(
                    orjson.dumps({"id": "b", "method": "order.place", "params": forged}).decode()
                )
                bad = orjson.loads(await ws.get_message())
                assert (bad["id"], bad["status"], bad["error"]["code"]) == ("b", 400, -1022)

                server.control.rate_limit_next("WS-API", "order.place", retry_after=4)
                params = _signed({**order, "newClientOrderId": "raw-3"})
                await ws.send_message(
                    orjson.dumps({"id": "c", "method": "order.place", "params": params}).decode()
                )
                limited = orjson.loads(await ws.get_message())
                assert (limited["status"], limited["error"]["code"]) == (429, -1003)
                data = limited["error"]["data"]
                assert data["retryAfter"] - data["serverTime"] == 4000

                status = _signed({"symbol": "BTCUSDT", "origClientOrderId": "raw-1"})
                await ws.send_message(
                    orjson.dumps({"id": "d", "method": "order.status", "params": status}).decode()
                )
                queried = orjson.loads(await ws.get_message())
                assert (queried["status"], queried["result"]["status"]) == (200, "FILLED")
            nursery.cancel_scope.cancel()


async def test_frames_fall_back_to_send_message_when_the_lock_is_taken_or_internals_differ() -> None:
    """The write that skips trio-websocket's lock checkpoint is only taken when it is safe."""
    from fundarb.venues.binance._frame_writer import write_uncontended as _write_uncontended

    class Lockless:  # another trio-websocket version: no _stream_lock
        closed = None

    assert not await _write_uncontended(Lockless(), "{}")  # type: ignore[arg-type]

    class Busy:
        closed = None
        _stream = object()
        _wsproto = object()

        def __init__(self) -> None:
            self._stream_lock = trio.Lock()

    busy = Busy()
    await busy._stream_lock.acquire()
    assert not await _write_uncontended(busy, "{}")  # type: ignore[arg-type]  # a writer holds it
