"""The Binance loopback server itself: request checks, error answers, wire shapes, frames, CLI.

REST tests talk raw HTTP (httpx) to a server on 127.0.0.1 port 0, signing like Binance does, so
what is checked is the server's behaviour, not the adapter's. The adapter's own integration tests
against this server are in tests/venues/binance/test_loopback.py.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import trio

from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderStatus, Side, TimeInForce, Wallet
from fundarb.core.venue_events import FillReported, OrderReported
from fundarb.sim.binance_server import BinanceServer, FaultKind, RestFault, ServerControl, ServerUrls
from fundarb.sim.binance_server._auth import ApiError, error_for, verify_signed
from fundarb.sim.binance_server._usage import Usage
from fundarb.sim.binance_server._user import UserFrames
from fundarb.sim.binance_server.server import ShiftedDriver, venue_from_scenario
from fundarb.sim.exchange import SimExchange
from fundarb.sim.instruments import default_instruments
from fundarb.venues.binance import sign
from fundarb.venues.binance._errors import error_from_response
from fundarb.venues.binance._rules import rules_from_exchange_info
from fundarb.venues.binance.decode import BinanceDecoder
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OrderRejected,
    PostOnlyWouldCross,
    RateLimited,
    ReduceOnlyRejected,
    VenueUnavailable,
)

KEY, SECRET = "srv-key", "srv-secret"
SCENARIO = pathlib.Path(__file__).parents[2] / "sim" / "scenarios" / "lost_ack.toml"
START_MS = 1_700_000_000_000
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")


class Client:
    """Raw signed requests, Binance style (all parameters in the query, signature last)."""

    def __init__(self, http: httpx.AsyncClient, server: BinanceServer, ws: str) -> None:
        self.http, self.server, self.ws = http, server, ws

    def now(self) -> int:
        return self.server.state.now_ms()

    async def public(self, method: str, path: str, **params: str) -> httpx.Response:
        return await self.http.request(method, path, params=params)

    async def signed(
        self,
        method: str,
        path: str,
        *,
        key: str = KEY,
        secret: str = SECRET,
        ts: int | str | None = None,
        **params: str,
    ) -> httpx.Response:
        params.setdefault("timestamp", str(self.now() if ts is None else ts))
        query = urlencode(params)
        query += "&signature=" + sign(secret, query)
        return await self.http.request(method, f"{path}?{query}", headers={"X-MBX-APIKEY": key})


@asynccontextmanager
async def served(**kw: Any) -> AsyncIterator[Client]:
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, start_ms=START_MS, **kw)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(server.run)
        async with httpx.AsyncClient(base_url=urls.http) as http:
            yield Client(http, server, urls.ws)
        nursery.cancel_scope.cancel()


def code_of(response: httpx.Response) -> int:
    return int(orjson.loads(response.content)["code"])


# --- request checks ------------------------------------------------------------------------------


def test_binance_documented_signature_is_accepted() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )
    signed = verify_signed(query, "", "k", {"k": secret}, 1499827319559 + 100)
    assert signed.params["symbol"] == "LTCBTC" and "signature" not in signed.params
    # query + body are signed together (Binance's mixed example), signature in the body
    body_query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    signature = sign(secret, body_query + body)
    mixed = verify_signed(body_query, body + "&signature=" + signature, "k", {"k": secret}, 1499827319600)
    assert mixed.params["quantity"] == "1"
    with pytest.raises(ApiError) as info:
        verify_signed(query.replace("quantity=1", "quantity=2"), "", "k", {"k": secret}, 1499827319600)
    assert (info.value.status, info.value.code) == (400, -1022)


async def test_signed_request_checks() -> None:
    with trio.fail_after(30):
        async with served() as c:
            ok = await c.signed("GET", "/fapi/v3/positionRisk")
            assert ok.status_code == 200 and ok.json() == []
            bad_sig = await c.signed("GET", "/fapi/v3/positionRisk", secret="wrong")
            assert (bad_sig.status_code, code_of(bad_sig)) == (400, -1022)
            unknown_key = await c.signed("GET", "/fapi/v3/positionRisk", key="nobody")
            assert (unknown_key.status_code, code_of(unknown_key)) == (401, -2015)
            no_key = await c.http.get("/fapi/v3/positionRisk", params={"timestamp": str(c.now())})
            assert (no_key.status_code, code_of(no_key)) == (401, -2014)
            stale = await c.signed("GET", "/fapi/v3/positionRisk", ts=c.now() - 6000)
            assert (stale.status_code, code_of(stale)) == (400, -1021)
            wide = await c.signed("GET", "/fapi/v3/positionRisk", ts=c.now() - 6000, recvWindow="10000")
            assert wide.status_code == 200
            ahead = await c.signed("GET", "/fapi/v3/positionRisk", ts=c.now() + 1500)
            assert (ahead.status_code, code_of(ahead)) == (400, -1021)
            too_wide = await c.signed("GET", "/fapi/v3/positionRisk", recvWindow="70000")
            assert code_of(too_wide) == -1131
            no_sig = await c.http.get(
                "/fapi/v3/positionRisk", params={"timestamp": str(c.now())}, headers={"X-MBX-APIKEY": KEY}
            )
            assert code_of(no_sig) == -1102
            listen = await c.http.post("/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
            assert listen.status_code == 200 and len(listen.json()["listenKey"]) == 64
            again = await c.http.post("/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
            assert again.json() == listen.json()  # the active key is returned while it lives
            missing = await c.public("GET", "/fapi/v1/nothing")
            assert missing.status_code == 404
            assert c.server.statistics().errors == {
                -1022: 1,
                -2015: 1,
                -2014: 1,
                -1021: 2,
                -1131: 1,
                -1102: 1,
                -1000: 1,
            }


# --- error answers -------------------------------------------------------------------------------


async def test_order_errors_are_binance_codes_the_adapter_maps_back() -> None:
    with trio.fail_after(30):
        async with served() as c:
            book = (await c.public("GET", "/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")).json()
            ask = D(book["askPrice"])

            async def order(**params: str) -> httpx.Response:
                base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
                return await c.signed("POST", "/fapi/v1/order", **{**base, **params})

            cases: list[tuple[httpx.Response, int, type[Exception]]] = [
                (await order(quantity="1000", price=str(ask)), -2019, InsufficientMargin),
                (await order(quantity="0.010", price=str(ask), timeInForce="GTX"), -5022, PostOnlyWouldCross),
                (await order(quantity="0.010", price="29000", reduceOnly="true"), -2022, ReduceOnlyRejected),
                (await order(quantity="0.0101", price="29000"), -1111, BadPrecision),
                (await order(quantity="0.001", price="29000"), -4164, BadPrecision),  # notional 29 < 100
                (await order(symbol="NOPEUSDT", quantity="1", price="1"), -1121, OrderRejected),
                (await order(quantity="abc", price="1"), -1100, OrderRejected),
                (await order(quantity="0.010", price="29000", type="STOP"), -1116, OrderRejected),
                (await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="none"), -2013,
                 OrderNotFound),
                (await c.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="none"), -2011,
                 OrderNotFound),
            ]  # fmt: skip
            for response, code, cls in cases:
                assert response.status_code == 400, response.text
                assert code_of(response) == code, response.text
                err = error_from_response(400, response.content, response.headers, mutating=True)
                assert isinstance(err, cls), (code, err)
            spot_maker = await c.signed(
                "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01",
                price=str(D((await c.public("GET", "/api/v3/ticker/bookTicker", symbol="BTCUSDT")).json()["askPrice"])),
            )  # fmt: skip
            err = error_from_response(400, spot_maker.content, spot_maker.headers, mutating=True)
            assert code_of(spot_maker) == -2010 and isinstance(err, PostOnlyWouldCross)
            # a duplicate client order id is refused and the first order is untouched
            first = await order(quantity="0.010", price="29000", newClientOrderId="dup-1")
            assert first.status_code == 200 and first.json()["status"] == "NEW"
            dup = await order(quantity="0.020", price="29000", newClientOrderId="dup-1")
            assert code_of(dup) == -4116
            query = await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="dup-1")
            assert query.json()["origQty"] == "0.010"


def test_error_for_covers_the_taxonomy() -> None:
    assert error_for(RateLimited("x", retry_after=2.4), Market.SPOT).headers == {"Retry-After": "2"}
    assert error_for(VenueUnavailable("x"), Market.SPOT).status == 503
    assert error_for(InsufficientMargin("x"), Market.SPOT).code == -2010
    assert error_for(OrderNotFound("x"), Market.PERPETUAL, cancel=True).code == -2011


async def test_injected_faults() -> None:
    with trio.fail_after(30):
        async with served() as c:
            control = c.server.control
            control.rate_limit_next("GET", "/fapi/v1/premiumIndex", retry_after=7)
            limited = await c.public("GET", "/fapi/v1/premiumIndex", symbol="BTCUSDT")
            assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
            assert code_of(limited) == -1003
            assert (await c.public("GET", "/fapi/v1/premiumIndex", symbol="BTCUSDT")).status_code == 200
            params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": "0.010", "price": "29000"}  # fmt: skip
            control.fail_next("POST", "/fapi/v1/order", 502, applied=True)
            failed = await c.signed("POST", "/fapi/v1/order", newClientOrderId="f-1", **params)
            assert failed.status_code == 502
            found = await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="f-1")
            assert found.json()["status"] == "NEW"  # executed despite the 502
            control.fail_next("POST", "/fapi/v1/order", 503, applied=False)
            refused = await c.signed("POST", "/fapi/v1/order", newClientOrderId="f-2", **params)
            assert refused.status_code == 503
            gone = await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="f-2")
            assert code_of(gone) == -2013
            assert c.server.statistics().injected == {"rate_limit": 1, "server_error": 2}


def test_control_validates_its_arguments() -> None:
    control = ServerControl()
    with pytest.raises(ValueError):
        control.fail_next("GET", "/x", 404)
    with pytest.raises(ValueError):
        control.rate_limit_next("GET", "/x", retry_after=-1)
    with pytest.raises(ValueError):
        control.inject("GET", "/x", RestFault(FaultKind.LOST_ACK), times=0)
    assert control.take("GET", "/x") is None


# --- wire shapes ---------------------------------------------------------------------------------


async def test_exchange_info_parses_back_into_the_sim_instruments() -> None:
    with trio.fail_after(30):
        async with served() as c:
            expected = {i.id: i for i in default_instruments("binance", ("BTCUSDT", "ETHUSDT"))}
            intervals = {
                r["symbol"]: r["fundingIntervalHours"]
                for r in (await c.public("GET", "/fapi/v1/fundingInfo")).json()
            }
            for market, path in (
                (Market.SPOT, "/api/v3/exchangeInfo"),
                (Market.PERPETUAL, "/fapi/v1/exchangeInfo"),
            ):
                doc = (await c.public("GET", path)).json()
                rules, skipped = rules_from_exchange_info(doc, market, intervals)
                assert skipped == []
                assert {r.instrument.id: r.instrument for r in rules} == {
                    k: v for k, v in expected.items() if k.market is market
                }
            premium = (await c.public("GET", "/fapi/v1/premiumIndex")).json()
            assert [p["symbol"] for p in premium] == ["BTCUSDT", "ETHUSDT"]
            assert all(
                isinstance(p["markPrice"], str) and isinstance(p["nextFundingTime"], int) for p in premium
            )


def test_user_frames_decode_to_the_exchange_events() -> None:
    """Events of a real SimExchange -> frames -> the adapter's decoder -> the same facts."""
    ex = SimExchange(default_instruments("binance", ("BTCUSDT",)), venue="binance", seed=3)
    ex.open_account("main", {(Wallet.FUTURES, "USDT"): D(10_000_000)})
    spot = InstrumentId("binance", Market.SPOT, "BTCUSDT")
    ex.update_market(START_MS, {PERP: D(30000), spot: D(30000)}, {PERP: D("0.0001")})
    ask = ex.quote(PERP, START_MS).ask
    size = ex.quote(PERP, START_MS).ask_size
    request = OrderRequest(
        "uf-1", PERP, Side.BUY, (size * 2).quantize(D("0.001")), ask, time_in_force=TimeInForce.GTC
    )
    ex.place_order("main", request, START_MS)
    frames = UserFrames(perp=True, requests={"uf-1": request})
    decoder = BinanceDecoder()
    sim_events = ex.drain_events("main")
    decoded = [e for ev in sim_events for f in frames.feed(ev) for e in decoder.decode(orjson.dumps(f))]
    sim_fills = [e.fill for e in sim_events if isinstance(e, FillReported)]
    got_fills = [e.fill for e in decoded if isinstance(e, FillReported)]
    assert [(f.quantity, f.price, f.fee, f.client_order_id) for f in got_fills] == [
        (f.quantity, f.price, f.fee, f.client_order_id) for f in sim_fills
    ]
    orders = [e.update for e in decoded if isinstance(e, OrderReported)]
    assert orders[-1].status is OrderStatus.PARTIALLY_FILLED
    assert orders[-1].filled_qty == sum(f.quantity for f in sim_fills)
    assert decoder.statistics().errors == 0
    # the trade comes first, then the account frames it caused (position, balance)
    kinds = [type(e).__name__ for e in decoded]
    assert kinds.index("FillReported") < kinds.index("PositionReported")


# --- command line --------------------------------------------------------------------------------


async def test_cli_serve_prints_its_urls_and_stops_on_sigterm() -> None:
    with trio.fail_after(30):
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "fundarb",
                "sim",
                "serve",
                "--venue",
                "binance",
                "--port",
                "0",
                "--seed",
                "5",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                assert chunk, "server exited before printing its urls"
                line += chunk
            urls = ServerUrls.from_banner(line.decode())
            assert urls.http.startswith("http://127.0.0.1:") and urls.ws.startswith("ws://127.0.0.1:")
            assert urls.base_urls().futures_stream == urls.ws
            async with httpx.AsyncClient(base_url=urls.http) as http:
                answer = (await http.get("/fapi/v1/time")).json()
            assert isinstance(answer["serverTime"], int)
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


def test_cli_serve_refuses_bad_arguments(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from fundarb.__main__ import main

    assert main(["sim", "serve", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(SCENARIO.read_text().replace("lost_ack_rate = 0.25", "no_such_fault = 1"))
    assert main(["sim", "serve", "--scenario", str(bad)]) == 2
    assert "no_such_fault" in capsys.readouterr().err
    assert main(["sim", "serve", "--scenario", str(tmp_path / "missing.toml")]) == 2
    assert main(["sim", "serve", "--speed", "0"]) == 2
    assert main(["sim", "serve", "--port", "70000"]) == 2
    assert main(["sim"]) == 2


async def handshake_status(ws_url: str, target: str) -> int:
    """The HTTP status of a websocket upgrade request to ``target`` (raw TCP, closed after)."""
    host, port = ws_url.removeprefix("ws://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head:
            chunk = await stream.receive_some(1024)
            assert chunk
            head += chunk
    return int(head.split()[1])


async def test_listen_key_lifecycle_and_private_route_checks() -> None:
    from trio_websocket import open_websocket_url

    from fundarb.venues.binance._ws import _close_transport

    with trio.fail_after(30):
        async with served() as c:
            headers = {"X-MBX-APIKEY": KEY}
            key = (await c.http.post("/fapi/v1/listenKey", headers=headers)).json()["listenKey"]
            assert (await c.http.put("/fapi/v1/listenKey", headers=headers)).status_code == 200
            assert await handshake_status(c.ws, f"/private/ws?listenKey={key}") == 101
            async with open_websocket_url(f"{c.ws}/private/ws?listenKey={key}") as ws:
                c.server.expire_listen_keys()
                frame = orjson.loads(await ws.get_message())
                await _close_transport(ws)
            assert (frame["e"], frame["listenKey"]) == ("listenKeyExpired", key)
            expired = await c.http.put("/fapi/v1/listenKey", headers=headers)
            assert (expired.status_code, code_of(expired)) == (400, -1125)
            assert await handshake_status(c.ws, f"/private/ws?listenKey={key}") == 400
            assert await handshake_status(c.ws, "/market/stream?streams=nopeusdt@markPrice@1s") == 400
            assert await handshake_status(c.ws, "/market/stream?streams=btcusdt@bookTicker") == 400
            assert await handshake_status(c.ws, "/elsewhere") == 404
            assert await handshake_status(c.ws, "/public/stream?streams=btcusdt@bookTicker") == 101
            fresh = (await c.http.post("/fapi/v1/listenKey", headers=headers)).json()["listenKey"]
            assert fresh != key


def test_banner_round_trip() -> None:
    urls = ServerUrls(http="http://127.0.0.1:1234", ws="ws://127.0.0.1:5678")
    assert ServerUrls.from_banner(urls.banner() + "\n") == urls
    for bad in ("", "listening http://x", "hello http://a ws://b", "listening ws://a http://b"):
        with pytest.raises(ValueError):
            ServerUrls.from_banner(bad)


async def test_usage_headers_count_weight_and_orders() -> None:
    with trio.fail_after(30):
        async with served() as c:
            first = await c.public("GET", "/api/v3/exchangeInfo")
            assert first.headers["x-mbx-used-weight-1m"] == "20"
            second = await c.public("GET", "/api/v3/time")
            assert second.headers["x-mbx-used-weight-1m"] == "21"
            order = await c.signed(
                "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.010", price="29000",
            )  # fmt: skip
            assert order.status_code == 200
            assert (order.headers["x-mbx-order-count-10s"], order.headers["x-mbx-order-count-1m"]) == (
                "1",
                "1",
            )
            assert order.headers["x-mbx-used-weight-1m"] == "0"  # USDⓈ-M new orders weigh 0
            c.server.state.usage["fapi"] = Usage(1)
            await c.public("GET", "/fapi/v1/time")
            over = await c.public("GET", "/fapi/v1/time")
            assert (over.status_code, code_of(over)) == (429, -1003)
            assert 1 <= int(over.headers["retry-after"]) <= 60


def test_scenario_venue_replays_the_market_from_now_with_its_faults() -> None:
    from fundarb.sim.faults import FaultyVenue
    from fundarb.sim.scenario import load_scenario

    now = 1_750_000_000_000
    venue, sim = venue_from_scenario(str(SCENARIO), seed=None, speed=None, now_ms=now)
    scenario = load_scenario(SCENARIO)
    assert isinstance(venue, FaultyVenue) and venue.plan.lost_ack_rate == 0.25
    assert (sim.start_ms, sim.speed, sim.exchange.venue) == (now, scenario.speed, "binance")
    original = scenario.driver(scenario.seed)
    shifted = ShiftedDriver(original, now - scenario.start_ms)
    for minutes in (0, 30, 45):
        t = minutes * 60_000
        a, b = original.tick_at(scenario.start_ms + t), shifted.tick_at(now + t)
        assert (b.ts_ms, b.spot, b.perp, b.funding) == (now + t, a.spot, a.perp, a.funding)
    assert shifted.start_ms == now and shifted.symbols == original.symbols
    assert sim.driver.tick_at(now).spot["BTCUSDT"] == D(30000)
