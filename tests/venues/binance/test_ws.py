"""Websocket streams against a trio-websocket server on 127.0.0.1 (port 0)."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from decimal import Decimal as D
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from fundarb.core.model import InstrumentId, Market
from fundarb.core.venue_events import (
    FundingReceived,
    OrderReported,
    QuoteReceived,
    StreamDisconnected,
    StreamResynced,
)
from fundarb.venues.binance import Credentials, sign
from fundarb.venues.binance._auth import ws_api_payload
from fundarb.venues.binance._endpoints import BaseUrls
from fundarb.venues.binance._ws import ReconnectPolicy
from fundarb.venues.binance.client import BinanceVenue
from fundarb.venues.errors import VenueUnavailable

from .conftest import payload
from .fake_rest import FakeRest, json_response, wall_ms

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BTC_PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
FAST = ReconnectPolicy(initial=0.1, maximum=1.0, budget=3)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 20 ms of real idleness, so loopback I/O completes first."""
    return trio.testing.MockClock(autojump_threshold=0.02)


def make_venue(port: int, fake: FakeRest, **kw: Any) -> BinanceVenue:
    urls = BaseUrls(
        spot="http://rest.invalid",
        futures="http://rest.invalid",
        spot_stream=f"ws://127.0.0.1:{port}",
        spot_ws_api=f"ws://127.0.0.1:{port}/ws-api/v3",
        futures_stream=f"ws://127.0.0.1:{port}",
    )
    kw.setdefault("reconnect", FAST)
    # A long watchdog unless a test is about it: a mock-clock jump while real loopback I/O is in
    # flight must not look like a silent socket.
    kw.setdefault("watchdog", 1000.0)
    return BinanceVenue(
        Credentials("ws-test-key", SECRET),
        base_urls=urls,
        transport=httpx.MockTransport(fake),
        wall_ms=wall_ms,
        **kw,
    )


def mark_frame(rate: str) -> str:
    data = dict(payload("usdm_ws_mark_price.json"), r=rate)
    return orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": data}).decode()


async def serve(nursery: trio.Nursery, handler: Any) -> int:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return int(server.port)


async def test_market_data_subscribe_receive_drop_reconnect_resync(clock: trio.testing.MockClock) -> None:
    paths: list[str] = []
    market_connections = 0

    async def handler(request: WebSocketRequest) -> None:
        nonlocal market_connections
        paths.append(request.path)
        ws = await request.accept()
        try:
            if request.path.startswith("/market/"):
                market_connections += 1
                await ws.send_message(mark_frame("0.00010000" if market_connections == 1 else "0.00020000"))
                if market_connections == 1:
                    await ws.aclose()  # drop the first market connection
                    return
            elif request.path.startswith("/public/"):
                await ws.send_message(
                    orjson.dumps(payload("usdm_ws_book_ticker.json") | {"s": "BTCUSDT"}).decode()
                )
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.default("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake)
            await nursery.start(v.run_market_data, [BTC_PERP], send)
            seen: list[Any] = []
            quotes = []
            async for event in receive:
                if isinstance(event, QuoteReceived):
                    quotes.append(event)
                    continue
                seen.append(event)
                if isinstance(event, FundingReceived) and event.funding.rate == D("0.00020000"):
                    break
            nursery.cancel_scope.cancel()
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "FundingReceived",
        "StreamDisconnected",
        "FundingReceived",
        "StreamResynced",
        "FundingReceived",
    ]
    assert seen[0].funding.rate == D("0.00010000")
    assert seen[0].funding.mark == D("11794.15000000")
    assert seen[1].stream == "usdm-market" and seen[1].venue == "binance"
    assert seen[2].funding.rate == D("0.00038246")  # the REST resync (premiumIndex)
    assert seen[3].stream == "usdm-market"
    assert quotes and quotes[0].quote.instrument == BTC_PERP
    assert paths.count("/market/stream?streams=btcusdt@markPrice@1s") == 2  # resubscribed
    assert "/public/stream?streams=btcusdt@bookTicker" in paths


async def _silent_handler(stream: trio.SocketStream) -> None:
    """Complete the websocket handshake, then never read or write again (a hung peer)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return
        data += chunk
    m = re.search(rb"Sec-WebSocket-Key:\s*(\S+)", data, re.IGNORECASE)
    assert m is not None
    accept = base64.b64encode(hashlib.sha1(m.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await trio.sleep_forever()


async def test_silent_socket_is_detected_by_the_watchdog(clock: trio.testing.MockClock) -> None:
    fake = FakeRest()
    fake.default("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, _silent_handler, 0)
            port = listeners[0].socket.getsockname()[1]
            v = make_venue(port, fake, watchdog=10.0)
            instruments = [InstrumentId("binance", Market.SPOT, "BTCUSDT")]
            fake.default(
                "GET", "/api/v3/ticker/bookTicker", json_response(payload("spot_rest_book_ticker.json"))
            )
            await nursery.start(v.run_market_data, instruments, send)
            t0 = trio.current_time()
            first = await receive.receive()
            detected = trio.current_time() - t0
            events = [first]
            while not isinstance(events[-1], StreamResynced):
                events.append(await receive.receive())
            nursery.cancel_scope.cancel()
    assert isinstance(first, StreamDisconnected)
    assert "watchdog" in first.reason and first.stream == "spot-book"
    assert 10.0 <= detected <= 15.5  # ping every 5 s, no pong within 10 s
    assert isinstance(events[-2], QuoteReceived)  # REST resync before trusting the stream again


async def test_reconnect_budget_exhausted_raises_venue_unavailable(clock: trio.testing.MockClock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    send, _receive = trio.open_memory_channel[Any](100)
    v = make_venue(port, FakeRest())
    with trio.fail_after(60), pytest.raises(VenueUnavailable, match="gave up after 4"):
        await v.run_market_data([BTC_PERP], send)


async def test_user_data_listen_key_and_ws_api_subscription(clock: trio.testing.MockClock) -> None:
    paths: list[str] = []
    subscribe_requests: list[dict[str, Any]] = []

    async def handler(request: WebSocketRequest) -> None:
        paths.append(request.path)
        ws = await request.accept()
        try:
            if request.path.startswith("/private/ws"):
                frame = payload("usdm_ws_order_trade_update_partial.json")
                await ws.send_message(orjson.dumps(frame).decode())
            elif request.path == "/ws-api/v3":
                req = orjson.loads(await ws.get_message())
                subscribe_requests.append(req)
                answer = {"id": req["id"], "status": 200, "result": {"subscriptionId": 0}}
                await ws.send_message(orjson.dumps(answer).decode())
                await ws.send_message(orjson.dumps(payload("spot_uds_execution_report.json")).decode())
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.default("POST", "/fapi/v1/listenKey", json_response(payload("usdm_rest_listen_key.json")))
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake)
            await nursery.start(v.run_user_data, send)
            got = [await receive.receive() for _ in range(3)]
            nursery.cancel_scope.cancel()
    orders = {e.update.client_order_id for e in got if isinstance(e, OrderReported)}
    assert orders == {"fa.p7.perp.0", "mUvoqJxFIILMdfAW5iGSOW"}
    key = payload("usdm_rest_listen_key.json")["listenKey"]
    assert f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE" in paths
    [req] = subscribe_requests
    assert req["method"] == "userDataStream.subscribe.signature"
    params = req["params"]
    assert params["apiKey"] == "ws-test-key"
    assert params["signature"] == sign(SECRET, ws_api_payload(params))
    assert fake.calls("POST", "/fapi/v1/listenKey")[0].headers["X-MBX-APIKEY"] == "ws-test-key"


async def test_expired_listen_key_reconnects_with_a_new_key(clock: trio.testing.MockClock) -> None:
    paths: list[str] = []

    async def handler(request: WebSocketRequest) -> None:
        paths.append(request.path)
        ws = await request.accept()
        try:
            if request.path.startswith("/private/ws") and len([p for p in paths if "/private/" in p]) == 1:
                await ws.send_message(
                    orjson.dumps({"e": "listenKeyExpired", "E": 1, "listenKey": "k1"}).decode()
                )
            elif request.path.startswith("/private/ws"):
                await ws.send_message(
                    orjson.dumps(payload("usdm_ws_order_trade_update_partial.json")).decode()
                )
            elif request.path == "/ws-api/v3":
                req = orjson.loads(await ws.get_message())
                await ws.send_message(orjson.dumps({"id": req["id"], "status": 200, "result": {}}).decode())
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.queue(
        "POST", "/fapi/v1/listenKey", json_response({"listenKey": "k1"}), json_response({"listenKey": "k2"})
    )
    fake.default("GET", "/fapi/v1/openOrders", json_response([]))
    fake.default("GET", "/api/v3/openOrders", json_response([]))
    fake.default("GET", "/fapi/v3/positionRisk", json_response(payload("usdm_rest_position_risk_v3.json")))
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake)
            await nursery.start(v.run_user_data, send)
            got = []
            while not any(isinstance(e, OrderReported) for e in got):
                got.append(await receive.receive())
            nursery.cancel_scope.cancel()
    kinds = [type(e).__name__ for e in got]
    assert kinds == ["StreamDisconnected", "PositionReported", "StreamResynced", "OrderReported"]
    assert got[0].reason == "listen key expired" and got[0].stream == "usdm-private"
    assert got[1].position.quantity == D("30")  # resynced over REST before the stream is trusted again
    private = [p for p in paths if p.startswith("/private/")]
    assert [p.split("listenKey=")[1].split("&")[0] for p in private] == ["k1", "k2"]


async def test_keepalive_minus_1125_reconnects(clock: trio.testing.MockClock) -> None:
    connections = 0

    async def handler(request: WebSocketRequest) -> None:
        nonlocal connections
        ws = await request.accept()
        try:
            if request.path.startswith("/private/ws"):
                connections += 1
            elif request.path == "/ws-api/v3":
                req = orjson.loads(await ws.get_message())
                await ws.send_message(orjson.dumps({"id": req["id"], "status": 200, "result": {}}).decode())
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.default("POST", "/fapi/v1/listenKey", json_response({"listenKey": "k"}))
    fake.queue(
        "PUT",
        "/fapi/v1/listenKey",
        json_response({"code": -1125, "msg": "This listenKey does not exist."}, 400),
    )
    fake.default("GET", "/fapi/v1/openOrders", json_response([]))
    fake.default("GET", "/api/v3/openOrders", json_response([]))
    fake.default("GET", "/fapi/v3/positionRisk", json_response([]))
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(4000):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake, watchdog=300.0)  # few pings over the 30 virtual minutes
            await nursery.start(v.run_user_data, send)
            t0 = trio.current_time()
            lost = await receive.receive()
            elapsed = trio.current_time() - t0
            resynced = await receive.receive()
            nursery.cancel_scope.cancel()
    assert isinstance(lost, StreamDisconnected) and lost.reason == "listen key expired"
    assert 1800 <= elapsed < 1810  # the first keep-alive, 30 min in
    assert isinstance(resynced, StreamResynced)
    assert connections == 2 and len(fake.calls("POST", "/fapi/v1/listenKey")) == 2


async def test_refused_ws_api_subscription_exhausts_the_budget(clock: trio.testing.MockClock) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            if request.path == "/ws-api/v3":
                req = orjson.loads(await ws.get_message())
                answer = {"id": req["id"], "status": 401, "error": {"code": -2015, "msg": "Invalid API-key"}}
                await ws.send_message(orjson.dumps(answer).decode())
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.default("POST", "/fapi/v1/listenKey", json_response({"listenKey": "k"}))
    send, _receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake)
            with pytest.raises(VenueUnavailable, match="spot-user: gave up"):
                await v.run_user_data(send)
            nursery.cancel_scope.cancel()


async def test_failing_resync_counts_against_the_budget(clock: trio.testing.MockClock) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            if request.path.startswith("/market/"):
                await ws.send_message(mark_frame("0.00010000"))
                await ws.aclose()  # every market connection drops at once
                return
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    fake = FakeRest()
    fake.default("GET", "/fapi/v1/premiumIndex", httpx.Response(502))  # the REST resync never works
    send, receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await serve(nursery, handler)
            v = make_venue(port, fake)
            with pytest.raises(VenueUnavailable, match="usdm-market: gave up after 4"):
                await v.run_market_data([BTC_PERP], send)
            nursery.cancel_scope.cancel()
    send.close()
    events = [e async for e in receive]
    funding = [e for e in events if isinstance(e, FundingReceived)]
    lost = [e for e in events if isinstance(e, StreamDisconnected)]
    assert len(lost) == 1  # one loss; the stream was never trusted again, so no second notice
    assert not any(isinstance(e, StreamResynced) for e in events)
    assert len(funding) >= 1 and all(f.funding.rate == D("0.00010000") for f in funding)


def test_market_streams_are_split_per_connection_limits() -> None:
    v = make_venue(1, FakeRest())
    perps = [InstrumentId("binance", Market.PERPETUAL, f"S{n}USDT") for n in range(450)]
    spots = [InstrumentId("binance", Market.SPOT, f"S{n}USDT") for n in range(3)]
    names = [s.name for s in v._streams.market_specs(perps + spots)]
    assert names == [
        "usdm-market", "usdm-public", "usdm-market-2", "usdm-public-2", "usdm-market-3", "usdm-public-3",
        "spot-book",
    ]  # fmt: skip
