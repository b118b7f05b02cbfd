"""Stream messages handled in trio-websocket's reader task (``InlineMessages``).

When the event sender has ``send_now`` (the engine's ``UserDataSink``), each user-data frame is
decoded and handed over by the connection's reader task as it is parsed, with no hop to the
session's task; an error of that handling is raised in the session's task (and so out of
``run_user_data``). Without trio-websocket's ``_send_channel`` internal, or with a sender that
has no ``send_now``, messages take ``get_message()`` and ``await send.send()`` as before. Adapter
and loopback server on 127.0.0.1; Trio's MockClock.
"""

from __future__ import annotations

import gc
import math
from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import WebSocketRequest, open_websocket_url, serve_websocket

from fundarb.core.model import OrderRequest, OrderStatus, Side
from fundarb.core.venue_events import FillReported, OrderReported, VenueEvent
from fundarb.venues.binance._inline import HandlerFailed, InlineMessages

from .test_loopback import PERP, SPOT, Loop, loopback, next_matching

_ORDER_EVENTS = (OrderReported, FillReported)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


class Sink:
    """An event sender recording how each event came (``now`` or ``send``) and in which task."""

    def __init__(self, *, inline: bool = True, fail: type | None = None) -> None:
        self._send, self.receive = trio.open_memory_channel[tuple[str, str, VenueEvent]](math.inf)
        self.fail = fail
        if not inline:
            self.send_now = None  # type: ignore[assignment]  # a sender without the method

    def send_now(self, event: VenueEvent) -> None:
        if self.fail is not None and isinstance(event, self.fail):
            raise RuntimeError(f"boom on {type(event).__name__}")
        self._send.send_nowait(("now", trio.lowlevel.current_task().name, event))

    async def send(self, event: VenueEvent) -> None:
        self._send.send_nowait(("send", trio.lowlevel.current_task().name, event))


async def order_events(lp: Loop, sink: Sink, cid: str) -> list[tuple[str, str]]:
    """Place a spot order that fills at once; how its report and fill reached the sink."""
    quote = await lp.venue.quote(SPOT)
    ack = await lp.venue.place_order(OrderRequest(cid, SPOT, Side.BUY, D("0.01"), quote.ask + 1))
    assert ack.status is OrderStatus.FILLED
    seen = []
    for kind in _ORDER_EVENTS:
        how, task, _ = await next_matching(sink.receive, lambda r, kind=kind: isinstance(r[2], kind))
        seen.append((how, task))
    return seen


async def test_user_data_is_handled_in_the_reader_task(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            sink = Sink()
            await lp.nursery.start(lp.venue.run_user_data, sink)
            seen = await order_events(lp, sink, "inline-1")
            # the order's answer came over the same connection and was dispatched there too
            assert lp.venue.ws_api is not None and lp.venue.ws_api.answered == 1
            for how, task in seen:
                assert how == "now" and "_reader_task" in task, (how, task)


async def test_a_sender_without_send_now_gets_messages_from_the_session(
    clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(120):
        async with loopback() as lp:
            sink = Sink(inline=False)
            await lp.nursery.start(lp.venue.run_user_data, sink)
            for how, task in await order_events(lp, sink, "channel-1"):
                assert how == "send" and "_reader_task" not in task, (how, task)


async def test_without_the_channel_internal_messages_take_get_message(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed: list[object] = []

    def missing(cls: Any, ws: Any, handle: Any) -> bool:  # as on a trio-websocket without the internal
        installed.append(ws)
        return False

    monkeypatch.setattr(InlineMessages, "install", classmethod(missing))
    with trio.fail_after(120):
        async with loopback() as lp:
            sink = Sink()
            await lp.nursery.start(lp.venue.run_user_data, sink)
            for how, task in await order_events(lp, sink, "fallback-1"):
                assert how == "send" and "_reader_task" not in task, (how, task)
            assert installed  # it was tried, and declined


async def test_a_handler_error_is_raised_out_of_the_stream(clock: trio.testing.MockClock) -> None:
    """Not swallowed by the reader (trio-websocket would log and go on): the session raises it,
    and it is not taken for a lost connection (no reconnect loop hides a bug)."""
    with trio.fail_after(120):
        with pytest.RaisesGroup(
            pytest.RaisesExc(RuntimeError, match="boom on FillReported"), flatten_subgroups=True
        ):
            async with loopback() as lp:
                sink = Sink(fail=FillReported)
                await lp.nursery.start(lp.venue.run_user_data, sink)
                quote = await lp.venue.quote(PERP)
                await lp.venue.place_order(OrderRequest("bad-1", PERP, Side.BUY, D("0.010"), quote.ask + 50))
                await trio.sleep_forever()  # the stream's failure cancels this


async def test_the_stand_in_passes_errors_through_the_real_channel() -> None:
    send, receive = trio.open_memory_channel[Any](1)
    handled: list[tuple[str | bytes, bool]] = []

    def handle(message: str | bytes) -> None:
        handled.append((message, gc.isenabled()))
        if message == "bad":
            raise ValueError("cannot handle")

    class Ws:
        _send_channel, _recv_channel = send, receive

    ws = Ws()
    assert InlineMessages.install(ws, handle)  # type: ignore[arg-type]
    stand_in = ws._send_channel
    assert isinstance(stand_in, InlineMessages)
    assert gc.isenabled()
    await stand_in.send("ok")
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()  # handled, not queued
    await stand_in.send("bad")
    failed = receive.receive_nowait()
    assert isinstance(failed, HandlerFailed) and isinstance(failed.error, ValueError)
    assert handled == [("ok", False), ("bad", False)]  # no GC pass while a message is handled
    assert gc.isenabled()  # ... and it is back on afterwards
    await stand_in.send("bad")  # queued for the session, which is ending
    await stand_in.send("bad")  # the channel is full: logged, never raised into the reader
    await stand_in.aclose()  # trio-websocket closes "its" channel: the real one closes
    assert isinstance(receive.receive_nowait(), HandlerFailed)
    with pytest.raises(trio.EndOfChannel):
        receive.receive_nowait()


def test_install_declines_without_the_memory_channels() -> None:
    send, receive = trio.open_memory_channel[Any](1)

    class Bare:
        pass

    class Other:
        _send_channel = object()  # some other version's channel type
        _recv_channel = receive

    class Half:
        _send_channel = send  # no receive side to take what is already queued from

    for ws in (Bare(), Other(), Half()):
        assert not InlineMessages.install(ws, lambda m: None)  # type: ignore[arg-type]
    assert Other._send_channel is not send and Half._send_channel is send


async def test_messages_queued_before_the_install_are_handled_first_in_order(
    clock: trio.testing.MockClock,
) -> None:
    """Frames that arrived while the stream subscribed and resynced wait in trio-websocket's
    channel (and one in its blocked reader): they are handled at the install, before the reader
    handles anything newer inline."""

    async def burst(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(6):
            await ws.send_message(f"m{i}")
        await trio.sleep_forever()

    handled: list[object] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, burst, "127.0.0.1", 0, None)
            async with open_websocket_url(f"ws://127.0.0.1:{server.port}/", message_queue_size=1) as ws:
                while ws._send_channel.statistics().tasks_waiting_send == 0:  # noqa: ASYNC110
                    await trio.sleep(0.01)  # one queued, the reader waiting to queue the next
                assert InlineMessages.install(ws, handled.append)
                with trio.move_on_after(1):
                    while True:  # the session's loop: nothing is left for it
                        handled.append(("session", await ws.get_message()))
            nursery.cancel_scope.cancel()
    assert handled == [f"m{i}" for i in range(6)]
