"""The websocket face: Binance's market streams, USDⓈ-M user data and the spot WebSocket API.

Routes (one TCP port; the path decides):

* ``/market/stream?streams=<s>@markPrice@1s/...`` (USDⓈ-M mark price and funding) and
  ``/public/stream?streams=<s>@bookTicker/...`` (USDⓈ-M best bid/ask): combined-stream envelopes;
  ``/market/ws/<stream>`` and ``/public/ws/<stream>`` send bare frames;
* ``/stream?streams=<s>@bookTicker`` and ``/ws/<stream>``: spot best bid/ask;
* ``/private/ws?listenKey=<key>``: USDⓈ-M user data (``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``);
* ``/ws-api/v3``: ``userDataStream.subscribe.signature`` (spot) and
  ``userDataStream.subscribe.listenToken`` (cross margin), ``ping``, ``time``, and the spot
  trading methods ``order.place`` / ``order.cancel`` / ``order.status`` (:mod:`._wsapi`).

Each connection runs the venue's own stream (``run_market_data`` / ``run_user_data``) and
encodes what it yields. When that stream reports ``StreamDisconnected`` (a fault plan's drop)
the connection is closed, as a real venue drops a socket. Every connection's TCP stream goes
through a gate that :meth:`~._control.ServerControl.silence_streams` closes (nothing is sent, not
even pongs), and :meth:`~._control.ServerControl.drop_streams` aborts connections outright.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, wrap_server_stream

from fundarb.core.model import InstrumentId, Market, OrderUpdate, Wallet
from fundarb.core.venue_events import FundingReceived, QuoteReceived, StreamDisconnected, VenueEvent
from fundarb.sim.binance_server import _frames as w
from fundarb.sim.binance_server._auth import ApiError, verify_ws_api
from fundarb.sim.binance_server._control import ServerControl
from fundarb.sim.binance_server._state import VENUE, ServerState
from fundarb.sim.binance_server._user import UserFrames
from fundarb.sim.binance_server._wsapi import METHODS, ConnectionDrop
from fundarb.sim.binance_server._wsapi import answer as trading_answer

__all__ = ["GatedStream", "run_ws_server"]

log = logging.getLogger(__name__)


class _Dropped(Exception):
    """The venue's stream behind a WS-API subscription dropped: close the connection."""


class GatedStream(trio.abc.Stream):
    """A TCP stream whose sends wait while the server's websockets are silenced."""

    def __init__(self, inner: trio.abc.Stream, control: ServerControl) -> None:
        self.inner, self.control = inner, control

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send, once the gate is open."""
        await self.control.wait_resumed()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the inner stream."""
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """As the inner stream."""
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        """Not supported by a websocket server; a no-op."""

    async def aclose(self) -> None:
        """Close the inner stream."""
        await self.inner.aclose()


async def run_ws_server(
    state: ServerState, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the websocket routes on ``host:port`` (0 picks one); ``task_status`` gets the port."""

    async def handle(stream: trio.SocketStream) -> None:
        await _connection(state, stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, port, host=host))
        task_status.started(int(listeners[0].socket.getsockname()[1]))


async def _connection(state: ServerState, stream: trio.SocketStream) -> None:
    gated = GatedStream(stream, state.control)
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(10):
                    request = await wrap_server_stream(nursery, gated)
            except (trio.TooSlowError, ConnectionClosed, trio.BrokenResourceError):
                nursery.cancel_scope.cancel()
                return
            await _route(state, request)
            nursery.cancel_scope.cancel()
    except* (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionClosed):
        pass
    finally:
        with trio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


def _streams_of(path: str, query: dict[str, list[str]], prefix: str) -> tuple[list[str], bool] | None:
    """Stream names of a market connection and whether frames are wrapped (combined streams)."""
    rest = path[len(prefix) :]
    if rest == "/stream":
        raw = query.get("streams", [""])[0]
        return [s for s in raw.split("/") if s], True
    if rest.startswith("/ws/"):
        return [s for s in rest[len("/ws/") :].split("/") if s], False
    return None


async def _route(state: ServerState, request: WebSocketRequest) -> None:
    parts = urlsplit(request.path)
    path, query = parts.path, parse_qs(parts.query)
    if path == "/ws-api/v3":
        ws = await request.accept()
        await _session(state, "ws-api", ws, partial(_ws_api, state, ws))
        return
    if path == "/private/ws":
        key = query.get("listenKey", [""])[0]
        if key not in state.listen_keys:
            await request.reject(
                400, body=orjson.dumps({"code": -1125, "msg": "This listenKey does not exist."})
            )
            return
        ws = await request.accept()
        await _session(state, "private", ws, partial(_private, state, ws, key))
        return
    for prefix, route, market in (("/market", "market", Market.PERPETUAL), ("/public", "public", Market.PERPETUAL),
                                  ("", "spot", Market.SPOT)):  # fmt: skip
        if prefix and not path.startswith(prefix + "/"):
            continue
        found = _streams_of(path, query, prefix)
        if found is None:
            break
        try:
            subs = _subscriptions(state, found[0], route, market)
        except ValueError as exc:
            await request.reject(400, body=orjson.dumps({"code": -1121, "msg": str(exc)}))
            return
        ws = await request.accept()
        await _session(state, route, ws, partial(_market, state, ws, subs, wrapped=found[1]))
        return
    await request.reject(404, body=b'{"code":-1000,"msg":"Unknown websocket route."}')


async def _session(state: ServerState, route: str, ws: WebSocketConnection, body: Callable[[], Any]) -> None:
    """Run ``body`` until the peer leaves, the venue's stream drops, or the control drops it."""
    with state.control.connection(route) as scope, scope:
        try:
            await body()
        except* (ConnectionClosed, _Dropped, ConnectionDrop):
            pass
    if scope.cancelled_caught:
        log.info("binance loopback: dropped a %s websocket", route)


async def _send(ws: WebSocketConnection, doc: Any) -> None:
    await ws.send_message(orjson.dumps(doc).decode())


# --- market data ---------------------------------------------------------------------------------


def _subscriptions(
    state: ServerState, names: list[str], route: str, market: Market
) -> dict[tuple[str, InstrumentId], str]:
    """(kind, instrument) -> stream name, for every stream name the route serves."""
    if not names:
        raise ValueError("no streams requested")
    subs: dict[tuple[str, InstrumentId], str] = {}
    for name in names:
        symbol, _, kind = name.partition("@")
        kind = kind.lower()
        iid = InstrumentId(VENUE, market, symbol.upper())
        if iid not in state.instruments:
            raise ValueError(f"Invalid symbol in stream {name!r}.")
        if kind in ("markprice", "markprice@1s") and route == "market":
            subs[("mark", iid)] = name
        elif kind == "bookticker" and route in ("public", "spot"):
            subs[("book", iid)] = name
        else:
            raise ValueError(f"Stream {name!r} is not served on the {route} route.")
    return subs


async def _market(
    state: ServerState, ws: WebSocketConnection, subs: dict[tuple[str, InstrumentId], str], *, wrapped: bool
) -> None:
    instruments = sorted({iid for _kind, iid in subs}, key=str)
    send, receive = trio.open_memory_channel[VenueEvent](256)
    update_id = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(state.venue.run_market_data, instruments, send)
        async for event in receive:
            if isinstance(event, StreamDisconnected):
                break
            if isinstance(event, QuoteReceived):
                name = subs.get(("book", event.quote.instrument))
                update_id += 1
                frame = w.book_ticker_frame(event.quote, update_id) if name else None
            elif isinstance(event, FundingReceived):
                name = subs.get(("mark", event.funding.instrument))
                frame = w.mark_price_frame(event.funding) if name else None
            else:
                continue
            if frame is not None:
                await _send(ws, {"stream": name, "data": frame} if wrapped else frame)
        nursery.cancel_scope.cancel()


# --- user data -----------------------------------------------------------------------------------


def _perp_frames(state: ServerState) -> UserFrames:
    return UserFrames(perp=True, requests=state.requests)


def _spot_frames(state: ServerState, family: str) -> UserFrames:
    def accept(u: OrderUpdate) -> bool:
        return state.families.get(u.client_order_id, "api") == family

    wallet = Wallet.MARGIN if family == "sapi" else Wallet.SPOT
    return UserFrames(perp=False, requests=state.requests, wallet=wallet, accept=accept)


async def _user(
    state: ServerState,
    ws: WebSocketConnection,
    frames: UserFrames,
    *,
    wrap: int | None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Pump the venue's user data into ``ws`` (wrapped for the WS-API subscription ``wrap``)."""
    frames.remember(await state.venue.balances())
    send, receive = trio.open_memory_channel[VenueEvent](1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(state.venue.run_user_data, send)
        task_status.started()
        async for event in receive:
            if isinstance(event, StreamDisconnected):
                break
            for frame in frames.feed(event):
                await _send(ws, frame if wrap is None else {"subscriptionId": wrap, "event": frame})
        nursery.cancel_scope.cancel()


async def _private(state: ServerState, ws: WebSocketConnection, key: str) -> None:
    """USDⓈ-M user data until the venue's stream drops or the listen key expires."""
    expired = state.keys_expired
    async with trio.open_nursery() as nursery:

        async def watch_key() -> None:
            await expired.wait()
            await _send(ws, {"e": "listenKeyExpired", "E": state.now_ms(), "listenKey": key})
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_key)
        await _user(state, ws, _perp_frames(state), wrap=None)
        nursery.cancel_scope.cancel()


async def _ws_api(state: ServerState, ws: WebSocketConnection) -> None:
    """Answer WS-API requests; a subscription starts a user-data pump on this connection."""
    subscriptions = 0
    async with trio.open_nursery() as nursery:
        while True:
            raw = await ws.get_message()
            try:
                doc = orjson.loads(raw)
                request_id, method = doc.get("id"), doc["method"]
                params = doc.get("params") or {}
                if not isinstance(params, dict):
                    raise TypeError("params")
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                await _send(
                    ws, {"id": None, "status": 400, "error": {"code": -1102, "msg": "Malformed request."}}
                )
                continue
            if method in METHODS:
                await _send(ws, await trading_answer(state, request_id, method, params))
                continue
            try:
                if method == "ping":
                    result: Any = {}
                elif method == "time":
                    result = {"serverTime": state.now_ms()}
                elif method == "userDataStream.subscribe.signature":
                    verify_ws_api(params, state.secrets, state.now_ms())
                    result = {"subscriptionId": subscriptions}
                    frames = _spot_frames(state, "api")
                elif method == "userDataStream.subscribe.listenToken":
                    if params.get("listenToken") not in state.listen_tokens:
                        raise ApiError(400, -1209, "Invalid listenToken.")
                    result = {"subscriptionId": subscriptions}
                    frames = _spot_frames(state, "sapi")
                else:
                    raise ApiError(400, -1020, f"Unsupported method {method!r}.")
            except ApiError as err:
                await _send(ws, {"id": request_id, "status": err.status, "error": err.body()})
                continue
            await _send(ws, {"id": request_id, "status": 200, "result": result})
            if "subscriptionId" in result:
                await nursery.start(_user_pump, state, ws, frames, subscriptions)
                subscriptions += 1


async def _user_pump(
    state: ServerState,
    ws: WebSocketConnection,
    frames: UserFrames,
    wrap: int,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await _user(state, ws, frames, wrap=wrap, task_status=task_status)
    raise _Dropped  # the venue's stream dropped: end the whole connection
