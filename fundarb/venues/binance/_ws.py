"""Websocket sessions: connect, subscribe, watchdog, keep-alive, reconnect, resync.

Every stream is one :func:`run_stream` service. Its life::

    connect (REST first when a listen key/token is needed) -> open -> [subscribe over WS-API]
      -> (after a reconnect: REST resync -> events -> StreamResynced) -> read frames
      -> lost (closed, silent past the watchdog, listen key expired)
      -> StreamDisconnected -> jittered exponential backoff -> connect ...
    more than ``budget`` consecutive failed attempts -> VenueUnavailable (into the owning nursery)

Market streams subscribe through the URL (combined streams ``/stream?streams=a/b``), so a
reconnect resubscribes by construction. The watchdog pings every ``watchdog / 2`` seconds and
declares the socket dead when a pong takes longer than ``watchdog`` (STACK-NOTES: a silent
peer otherwise blocks ``get_message()`` forever). Bad frames are counted by the decoder and
skipped; the session goes on.

The spot user-data connection also carries orders (:mod:`._wsapi`): once subscribed (and
resynced) it is attached to the venue's :class:`~._wsapi.WsApiSession`, the reader hands request
answers to it, and it is detached as soon as the reader stops.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import orjson
import trio
from trio_websocket import (
    ConnectionClosed,
    DisconnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from fundarb.core.model import InstrumentId, Market, Wallet
from fundarb.core.venue_events import (
    FundingReceived,
    QuoteReceived,
    StreamDisconnected,
    StreamResynced,
    VenueEvent,
)
from fundarb.venues.binance import _endpoints as ep
from fundarb.venues.binance._auth import sign, ws_api_payload
from fundarb.venues.binance._endpoints import BaseUrls, Family
from fundarb.venues.binance._errors import LISTEN_KEY_EXPIRED
from fundarb.venues.binance._inline import HandlerFailed, InlineMessages
from fundarb.venues.binance._wsapi import WsApiSession
from fundarb.venues.binance.decode import BinanceDecoder
from fundarb.venues.errors import DecodeError, VenueError, VenueProtocolError, VenueUnavailable
from fundarb.venues.protocol import EventSender

if TYPE_CHECKING:
    from fundarb.venues.binance.client import BinanceVenue

__all__ = ["ReconnectPolicy", "StreamRunner", "StreamSpec", "run_stream"]

log = logging.getLogger(__name__)
VENUE = "binance"
#: Streams one connection may carry (WIRE.md §1.1: 200 on USDⓈ-M; spot allows 1024).
USDM_STREAMS_PER_CONNECTION = 200
SPOT_STREAMS_PER_CONNECTION = 1024
_LOST = (ConnectionClosed, DisconnectionTimeout, HandshakeError, OSError, trio.TooSlowError, VenueError)


@attrs.frozen
class ReconnectPolicy:
    """Backoff ``initial * factor**(n-1)`` capped at ``maximum``, ±``jitter`` (a fraction);
    give up after ``budget`` consecutive failed attempts."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25
    budget: int = 8

    def backoff(self, failures: int, rand: float) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (``rand`` in [0, 1))."""
        base = min(self.maximum, self.initial * self.factor ** max(0, failures - 1))
        return base * (1 - self.jitter + 2 * self.jitter * rand)


@attrs.frozen
class StreamSpec:
    """What one stream connects to and how it recovers."""

    name: str
    connect: Callable[[], Awaitable[str]]
    resync: Callable[[], Awaitable[list[VenueEvent]]]
    decoder: BinanceDecoder
    on_open: Callable[[WebSocketConnection], Awaitable[None]] | None = None
    keepalive: Callable[[], Awaitable[None]] | None = None
    keepalive_interval: float = 30 * 60.0
    #: requests (orders) share this WS-API connection: answers go to the session, not the decoder
    ws_api: WsApiSession | None = None


def _lost_reason(exc: BaseException) -> str | None:
    """A reason string when ``exc`` (or every leaf of a group) is a connection loss, else None."""
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(_LOST)
        if rest is not None or match is None:
            return None
        leaf: BaseException = match
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        return _describe(leaf)
    if isinstance(exc, _LOST):
        return _describe(exc)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or (f"{type(exc.__cause__).__name__}: {exc.__cause__}" if exc.__cause__ else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_stream(
    spec: StreamSpec,
    send: EventSender,
    *,
    watchdog: float = 10.0,
    policy: ReconnectPolicy = ReconnectPolicy(),
    wall_ms: Callable[[], int],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one stream until cancelled; see the module docstring."""
    failures = 0
    live = False  # connected and trusted (resynced) since the last StreamDisconnected
    ever_connected = False
    while True:
        reason = ""
        opened: list[WebSocketConnection] = []
        try:
            url = await spec.connect()
            # trio-websocket's connect_timeout does not cover a peer that accepts the TCP
            # connection and never answers the handshake: bound the whole connect ourselves
            with trio.CancelScope(deadline=trio.current_time() + watchdog) as connecting:
                async with open_websocket_url(url, connect_timeout=watchdog, disconnect_timeout=2.0) as ws:
                    connecting.deadline = math.inf  # connected: the session has its own watchdog
                    opened.append(ws)
                    if spec.on_open is not None:
                        with trio.fail_after(watchdog):
                            await spec.on_open(ws)
                    if ever_connected:
                        for event in await spec.resync():
                            await send.send(event)
                    if spec.ws_api is not None:
                        spec.ws_api.attach(ws)  # requests may go out: the reader starts below
                    if ever_connected:
                        await send.send(StreamResynced(VENUE, spec.name, wall_ms()))
                    else:
                        ever_connected = True
                        task_status.started()
                    failures = 0  # only a connection that subscribed and resynced resets the budget
                    live = True
                    reason = await _session(ws, spec, send, watchdog, wall_ms)
            if connecting.cancelled_caught:
                reason = f"websocket handshake unanswered after {watchdog}s"
        except BaseException as exc:  # classified: only connection losses are retried
            lost = _lost_reason(exc)
            if lost is None:
                raise
            reason = reason or lost  # a close that times out after a loss keeps the loss's reason
        finally:
            if spec.ws_api is not None and opened:
                spec.ws_api.detach(reason or "connection closed")
            for ws in opened:
                await _close_transport(ws)
        if live:
            live = False
            await send.send(StreamDisconnected(VENUE, spec.name, reason, wall_ms()))
        failures += 1
        if failures > policy.budget:
            raise VenueUnavailable(
                f"binance stream {spec.name}: gave up after {failures} failed attempts ({reason})",
                venue=VENUE,
            )
        delay = policy.backoff(failures, random.random())
        log.warning("binance stream %s lost (%s); reconnecting in %.1fs", spec.name, reason, delay)
        await trio.sleep(delay)


async def _close_transport(ws: WebSocketConnection) -> None:
    """Close the TCP stream under ``ws``.

    trio-websocket 0.12 leaves a client socket open (until garbage collection, with a
    ResourceWarning) when the *server* starts the close handshake: the reader stops on the
    server's TCP close without closing its own stream, and ``aclose()`` returns early. Closing
    a trio stream twice is harmless.
    """
    stream = getattr(ws, "_stream", None)
    if stream is not None:
        with trio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


async def _session(
    ws: WebSocketConnection, spec: StreamSpec, send: EventSender, watchdog: float, wall_ms: Callable[[], int]
) -> str:
    lost: list[str] = []

    def lose(why: str, scope: trio.CancelScope) -> None:
        lost.append(why)
        scope.cancel()

    async def ping_watchdog(scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(watchdog / 2)
            try:
                with trio.fail_after(watchdog):
                    await ws.ping()
            except trio.TooSlowError:
                await _close_transport(ws)  # no close handshake with a peer that does not answer
                return lose(f"watchdog: no pong within {watchdog}s", scope)
            except ConnectionClosed as exc:
                return lose(f"closed: {exc.reason}", scope)

    async def keepalive(scope: trio.CancelScope) -> None:
        assert spec.keepalive is not None
        while True:
            await trio.sleep(spec.keepalive_interval)
            try:
                await spec.keepalive()
            except VenueError as exc:
                if exc.code == LISTEN_KEY_EXPIRED:
                    return lose("listen key expired", scope)
                log.warning("binance stream %s: keep-alive failed: %s", spec.name, exc)

    ws_api = spec.ws_api

    def events_of(message: str | bytes, scope: trio.CancelScope) -> list[VenueEvent] | None:
        """The events of one message; None when the session must end (``lose`` was called)."""
        if ws_api is not None and ws_api.dispatch(message):
            return []  # an answer to a request (an order), not an event
        if b"listenKeyExpired" in (message if isinstance(message, bytes) else message.encode()):
            lose("listen key expired", scope)
            return None
        try:
            return spec.decoder.decode(message, received_ms=wall_ms())
        except DecodeError as exc:
            log.warning("binance stream %s: skipped a bad frame: %s", spec.name, exc)
            return []

    try:
        async with trio.open_nursery() as nursery:
            scope = nursery.cancel_scope
            nursery.start_soon(ping_watchdog, scope)
            if spec.keepalive is not None:
                nursery.start_soon(keepalive, scope)
            send_now = getattr(send, "send_now", None)
            if send_now is not None:

                def handle(message: str | bytes) -> None:
                    for event in events_of(message, scope) or ():
                        send_now(event)

                InlineMessages.install(ws, handle)
            while True:
                try:
                    message = await ws.get_message()
                except ConnectionClosed as exc:
                    lose(f"closed: {exc.reason}", scope)
                    break
                if isinstance(message, HandlerFailed):  # the reader's inline handling raised: so do we
                    raise message.error
                events = events_of(message, scope)
                if events is None:
                    break
                for event in events:
                    await send.send(event)
    finally:
        if ws_api is not None:  # no reader, no answers: waiting requests end now, new ones use REST
            ws_api.detach(lost[0] if lost else "stream stopped")
    return lost[0] if lost else "cancelled"


def _chunks(items: Sequence[InstrumentId], size: int) -> list[Sequence[InstrumentId]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _unwrap_unavailable(group: BaseExceptionGroup) -> None:
    """Raise the first VenueUnavailable of ``group`` bare (so owners need no except*)."""
    match, _rest = group.split(VenueUnavailable)
    if match is not None:
        leaf: BaseException = match
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from group


class StreamRunner:
    """Builds and runs the Binance streams of one :class:`~.client.BinanceVenue`."""

    def __init__(
        self, venue: BinanceVenue, urls: BaseUrls, *, watchdog: float, policy: ReconnectPolicy
    ) -> None:
        if watchdog <= 0:
            raise ValueError(f"watchdog must be > 0, got {watchdog}")
        self.venue = venue
        self.urls = urls
        self.watchdog = watchdog
        self.policy = policy

    async def _run_all(
        self, specs: Sequence[StreamSpec], send: EventSender, task_status: trio.TaskStatus[None]
    ) -> None:
        wall = self.venue.rest.wall_ms
        try:
            async with trio.open_nursery() as nursery:
                for spec in specs:
                    await nursery.start(
                        lambda spec=spec, **kw: run_stream(
                            spec, send, watchdog=self.watchdog, policy=self.policy, wall_ms=wall, **kw
                        )
                    )
                task_status.started()
        except BaseExceptionGroup as group:
            _unwrap_unavailable(group)
            raise

    # --- market data ---

    def market_specs(self, instruments: Sequence[InstrumentId]) -> list[StreamSpec]:
        """Specs per route: USDⓈ-M ``/market`` (markPrice@1s), ``/public`` (bookTicker), spot bookTicker;
        split into several connections beyond the per-connection stream limits (200 USDⓈ-M, 1024 spot).
        Names are ``usdm-market``, ``usdm-public``, ``spot-book``, with ``-2``, ``-3``... for extra ones."""
        perps = [i for i in instruments if i.market is Market.PERPETUAL]
        spots = [i for i in instruments if i.market is Market.SPOT]
        specs = []
        for n, chunk in enumerate(_chunks(perps, USDM_STREAMS_PER_CONNECTION), 1):
            suffix = "" if n == 1 else f"-{n}"
            specs.append(self._funding_spec("usdm-market" + suffix, chunk))
            specs.append(self._book_spec("usdm-public" + suffix, f"{self.urls.futures_stream}/public", chunk))
        for n, chunk in enumerate(_chunks(spots, SPOT_STREAMS_PER_CONNECTION), 1):
            specs.append(
                self._book_spec("spot-book" + ("" if n == 1 else f"-{n}"), self.urls.spot_stream, chunk)
            )
        return specs

    def _funding_spec(self, name: str, perps: Sequence[InstrumentId]) -> StreamSpec:
        venue = self.venue
        decoder = BinanceDecoder()
        streams = "/".join(f"{i.symbol.lower()}@markPrice@1s" for i in perps)

        async def connect() -> str:
            decoder.intervals = await venue.funding_intervals()
            return f"{self.urls.futures_stream}/market/stream?streams={streams}"

        async def resync() -> list[VenueEvent]:
            return [FundingReceived(await venue.funding(i)) for i in perps]

        return StreamSpec(name, connect, resync, decoder)

    def _book_spec(self, name: str, base: str, instruments: Sequence[InstrumentId]) -> StreamSpec:
        venue = self.venue
        url = f"{base}/stream?streams=" + "/".join(f"{i.symbol.lower()}@bookTicker" for i in instruments)

        async def connect() -> str:
            return url

        async def resync() -> list[VenueEvent]:
            return [QuoteReceived(await venue.quote(i)) for i in instruments]

        return StreamSpec(name, connect, resync, BinanceDecoder())

    async def run_market_data(
        self, instruments: Sequence[InstrumentId], send: EventSender, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Run the market streams of ``instruments`` until cancelled."""
        if not instruments:
            raise ValueError("run_market_data needs at least one instrument")
        await self._run_all(self.market_specs(instruments), send, task_status)

    # --- user data ---

    def user_specs(self, *, margin: bool) -> list[StreamSpec]:
        """USDⓈ-M ``/private`` with a listen key, and spot (signature) or margin (listen token) WS-API."""
        venue, rest = self.venue, self.venue.rest

        async def private_url() -> str:
            doc = await rest.call(ep.new_listen_key())
            key = doc.get("listenKey") if isinstance(doc, dict) else None
            if not isinstance(key, str) or not key:
                raise VenueProtocolError("binance listenKey: no key in the answer", venue=VENUE)
            return f"{self.urls.futures_stream}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE"

        async def keepalive() -> None:
            await rest.call(ep.keepalive_listen_key())

        futures = StreamSpec(
            "usdm-private", private_url, venue.resync_user, BinanceDecoder(), keepalive=keepalive
        )
        token: list[str] = []

        async def ws_api_url() -> str:
            if margin:
                doc = await rest.call(ep.margin_listen_token())
                value = doc.get("token") if isinstance(doc, dict) else None
                if not isinstance(value, str) or not value:
                    raise VenueProtocolError("binance userListenToken: no token in the answer", venue=VENUE)
                token[:] = [value]
            return self.urls.spot_ws_api

        async def subscribe(ws: WebSocketConnection) -> None:
            creds = rest.credentials
            if creds is None:
                raise VenueUnavailable("binance user data needs API credentials", venue=VENUE)
            params: dict[str, Any]
            if margin:
                method, params = "userDataStream.subscribe.listenToken", {"listenToken": token[0]}
            else:
                if rest.clocks[Family.SPOT].is_stale(rest.wall_ms(), 3_600_000):
                    # the signature's timestamp must be in the venue's recvWindow: measure the
                    # spot clock first if it was never synced (or not for an hour)
                    await rest.sync_clock(Family.SPOT)
                params = {"apiKey": creds.api_key, "timestamp": rest.venue_time_ms(Family.SPOT)}
                params["signature"] = sign(creds.secret.reveal(), ws_api_payload(params))
                method = "userDataStream.subscribe.signature"
            await subscribe_ws_api(ws, method, params)

        name = "margin-user" if margin else "spot-user"
        wallet = Wallet.MARGIN if margin else Wallet.SPOT
        spot = StreamSpec(
            name, ws_api_url, venue.resync_user, BinanceDecoder(spot_wallet=wallet), on_open=subscribe,
            ws_api=None if margin else venue.ws_api,
        )  # fmt: skip
        return [futures, spot]

    async def run_user_data(self, send: EventSender, *, task_status: trio.TaskStatus[None]) -> None:
        """Run the user-data streams until cancelled."""
        margin = self.venue.spot_margin
        await self._run_all(self.user_specs(margin=margin), send, task_status)


async def subscribe_ws_api(ws: WebSocketConnection, method: str, params: dict[str, Any]) -> None:
    """Send a WS-API request and wait for its answer; a non-200 status raises VenueUnavailable."""
    request_id = str(uuid.uuid4())
    await ws.send_message(orjson.dumps({"id": request_id, "method": method, "params": params}).decode())
    while True:
        message = await ws.get_message()
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("id") == request_id:
            if doc.get("status") != 200:
                error = doc.get("error") or {}
                raise VenueUnavailable(
                    f"binance {method} refused: {error}",
                    venue=VENUE,
                    code=error.get("code") if isinstance(error, dict) else None,
                )
            return
