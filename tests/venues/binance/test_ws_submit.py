"""Two-phase spot orders over the WebSocket API: ``BinanceVenue.start_order`` writes the signed
frame from synchronous code (``WsApiSession.submit``) and ``finish_order`` awaits the answer.

Adapter and loopback ``BinanceServer`` on 127.0.0.1: the frame has left by the time
``start_order`` returns; ``None`` (nothing sent) whenever it cannot leave at once; the answers,
errors and lost connections come out of ``finish_order`` as they do out of ``place_order``.
Time is Trio's MockClock.
"""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing
from wsproto.events import TextMessage

from fundarb.core.model import OrderRequest, OrderStatus, Side
from fundarb.core.venue_events import FillReported, StreamResynced
from fundarb.venues.binance._endpoints import Family
from fundarb.venues.binance._frame_writer import PARTIAL_WRITE, FrameWriter
from fundarb.venues.errors import (
    BadPrecision,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    TimestampOutsideWindow,
)

from .test_loopback import PERP, SPOT, Loop, loopback, next_matching, order_of
from .test_ws_orders import session_of, user_data


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


async def ready(lp: Loop) -> D:
    """Connect the WS API and load the filters; the price at which a spot buy fills at once."""
    await lp.venue.instrument_rules()
    return (await lp.venue.quote(SPOT)).ask + 1


def buy(cid: str, price: D, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid, SPOT, Side.BUY, D(qty), price)


async def test_the_frame_leaves_in_start_order_and_finish_order_returns_the_ack(clock):
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            receive = await user_data(lp)
            price = await ready(lp)
            served = lp.server.statistics().requests
            started = v.start_order(buy("now-1", price))
            assert started is not None
            assert session.sent == 1  # written before anything was awaited
            ack = await v.finish_order(started)
            assert (ack.client_order_id, ack.status, ack.filled_qty, ack.avg_price) == (
                "now-1", OrderStatus.FILLED, D("0.01"), price - 1,
            )  # fmt: skip
            assert session.answered == 1 and "pending=0" in repr(session)
            assert lp.server.statistics().requests == served + 1  # one WS-API request, no REST call
            await next_matching(receive, order_of("now-1", OrderStatus.FILLED))
            fill = await next_matching(receive, lambda e: isinstance(e, FillReported))
            assert fill.fill.client_order_id == "now-1"
            # the answer's usage fed the spot limiter, as place_order's does
            assert v.rest.limiters[Family.SPOT].used("orders", "10s", v.rest.wall_ms()) >= 1


async def test_start_order_declines_having_sent_nothing(clock, monkeypatch):
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            price = (await v.quote(SPOT)).ask + 1
            assert v.start_order(buy("no-1", price)) is None  # the WS API is not connected
            await user_data(lp)
            assert v.start_order(buy("no-2", price)) is None  # the filters are not loaded yet
            await v.instrument_rules()
            assert v.start_order(OrderRequest("no-3", PERP, Side.BUY, D("0.010"), D("29000.0"))) is None
            off_step = buy("no-4", price, qty="0.0000001")
            assert v.start_order(off_step) is None  # a filter violation: place_order raises it
            with pytest.raises(BadPrecision) as info:
                await v.place_order(off_step)
            assert info.value.code == "local"

            limiter, clock_offset = v.rest.limiters[Family.SPOT], v.rest.clocks[Family.SPOT]
            limiter.ban(5, trio.current_time())
            assert v.start_order(buy("no-5", price)) is None  # the budget asks for a wait
            await trio.sleep(6)
            clock_offset.synced_at_ms -= 31 * 60 * 1000
            assert v.start_order(buy("no-6", price)) is None  # the clock needs a re-sync first
            await v.rest.sync_clock(Family.SPOT)
            async with session._ws._stream_lock:  # type: ignore[union-attr]  # trio-websocket is writing
                assert v.start_order(buy("no-7", price)) is None
            with monkeypatch.context() as patch:
                patch.setattr(FrameWriter, "write", lambda self, frame: None)  # EAGAIN
                assert v.start_order(buy("no-8", price)) is None
            assert session.sent == 0 and "pending=0" in repr(session)

            started = v.start_order(buy("yes-9", price))  # and once everything is ready, it goes
            assert started is not None and session.sent == 1
            assert (await v.finish_order(started)).status is OrderStatus.FILLED
            for cid in ("no-1", "no-5", "no-8"):
                with pytest.raises(OrderNotFound):
                    await v.query_order(SPOT, cid)


async def test_connection_lost_after_the_write_is_outcome_unknown(clock):
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session, control = lp.venue, session_of(lp), lp.server.control
            receive = await user_data(lp)
            price = await ready(lp)
            control.lose_ack_next("WS-API", "order.place")  # executed, then the socket drops
            started = v.start_order(buy("lost-1", price))
            assert started is not None
            with pytest.raises(OutcomeUnknown, match="connection lost after the request was sent"):
                await v.finish_order(started)
            assert (await v.query_order(SPOT, "lost-1")).status is OrderStatus.FILLED
            assert v.start_order(buy("lost-2", price)) is None  # reconnecting: nothing goes out now
            await next_matching(receive, lambda e: isinstance(e, StreamResynced) and e.stream == "spot-user")
            started = v.start_order(buy("lost-3", price))
            assert started is not None
            assert (await v.finish_order(started)).status is OrderStatus.FILLED
            assert "pending=0" in repr(session)


async def test_a_torn_write_reports_the_order_lost_and_the_stream_reconnects(clock, monkeypatch):
    def torn(self: FrameWriter, frame: str) -> bool:
        data = self._proto.send(TextMessage(data=frame))
        sent = self._sock.send(data[: len(data) // 2])  # what a full send buffer leaves of it
        return self._lost(sent, len(data))  # closes the socket, as the real partial write does

    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            receive = await user_data(lp)
            price = await ready(lp)
            with monkeypatch.context() as patch:
                patch.setattr(FrameWriter, "write", torn)
                started = v.start_order(buy("torn-1", price))
            assert started is not None and session.sent == 1
            with pytest.raises(OutcomeUnknown, match=re.escape(PARTIAL_WRITE)):
                await v.finish_order(started)
            await next_matching(receive, lambda e: isinstance(e, StreamResynced) and e.stream == "spot-user")
            with pytest.raises(OrderNotFound):  # half a frame is no request: the engine's query says so
                await v.query_order(SPOT, "torn-1")
            started = v.start_order(buy("torn-2", price))
            assert started is not None
            assert (await v.finish_order(started)).status is OrderStatus.FILLED


async def test_errors_and_deadline_come_out_of_finish_order(clock):
    with trio.fail_after(120):
        async with loopback(call_timeout=3.0) as lp:
            v, session, control = lp.venue, session_of(lp), lp.server.control
            await user_data(lp)
            price = await ready(lp)
            control.rate_limit_next("WS-API", "order.place", retry_after=30)
            started = v.start_order(buy("err-1", price))
            assert started is not None
            with pytest.raises(RateLimited) as info:
                await v.finish_order(started)
            assert info.value.retry_after == 30
            assert v.start_order(buy("err-2", price)) is None  # the family is banned: wait for it
            await trio.sleep(31)

            control.silence_streams()  # executed, never answered
            begun = trio.current_time()
            started = v.start_order(buy("err-3", price))
            assert started is not None
            with pytest.raises(OutcomeUnknown, match=r"no answer within 3\.0s"):
                await v.finish_order(started)
            assert trio.current_time() - begun == pytest.approx(3.0, abs=0.1)
            assert "pending=0" in repr(session)
            control.resume_streams()
            assert (await v.query_order(SPOT, "err-3")).status is OrderStatus.FILLED


async def test_minus_1021_resyncs_the_clock_and_sends_again_once(clock, monkeypatch):
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session = lp.venue, session_of(lp)
            await user_data(lp)
            price = await ready(lp)
            v.rest.clocks[Family.SPOT].offset_ms += 10_000  # 10 s fast: refused, not executed
            started = v.start_order(buy("ts-1", price))
            assert started is not None and session.sent == 1
            ack = await v.finish_order(started)
            assert ack.status is OrderStatus.FILLED
            assert session.sent == 2 and lp.server.statistics().errors.get(-1021) == 1

            async def no_resync(family: Family) -> int:  # the re-sync does not help
                return 0

            monkeypatch.setattr(v.rest, "sync_clock", no_resync)
            v.rest.clocks[Family.SPOT].offset_ms += 10_000
            started = v.start_order(buy("ts-2", price))
            assert started is not None
            with pytest.raises(TimestampOutsideWindow):  # one retry only
                await v.finish_order(started)
            assert session.sent == 4 and lp.server.statistics().errors.get(-1021) == 3
            monkeypatch.undo()  # REST re-syncs on its own -1021 again
            with pytest.raises(OrderNotFound):
                await v.query_order(SPOT, "ts-2")


async def test_minus_1021_with_the_ws_api_gone_meanwhile_sends_over_rest(clock, monkeypatch):
    """The retry after -1021 cannot take the WS API (the connection dropped during the re-sync):
    REST sends it, as place_order does when the WS API declines."""
    with trio.fail_after(120):
        async with loopback() as lp:
            v, session, control = lp.venue, session_of(lp), lp.server.control
            await user_data(lp)
            price = await ready(lp)
            resync = v.rest.sync_clock

            async def resync_then_drop(family: Family) -> Any:
                served = await resync(family)
                control.drop_streams("ws-api")
                while session.connected:  # noqa: ASYNC110 - the reader notices the drop
                    await trio.sleep(0.001)
                return served

            monkeypatch.setattr(v.rest, "sync_clock", resync_then_drop)
            v.rest.clocks[Family.SPOT].offset_ms += 10_000
            started = v.start_order(buy("gone-1", price))
            assert started is not None
            ack = await v.finish_order(started)
            assert (ack.client_order_id, ack.status) == ("gone-1", OrderStatus.FILLED)
            assert session.sent == 1  # the retry went over REST
            assert (await v.query_order(SPOT, "gone-1")).filled_qty == D("0.01")
