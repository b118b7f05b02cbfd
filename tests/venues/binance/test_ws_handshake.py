"""A peer that accepts the TCP connection but never answers the websocket handshake must not
hang the stream: the connect is bounded by the watchdog and counts against the reconnect budget."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from fundarb.venues.errors import VenueUnavailable

from .test_ws import BTC_PERP, FakeRest, make_venue


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


async def _mute(stream: trio.SocketStream) -> None:
    """Read the upgrade request, answer nothing, keep the socket open."""
    await stream.receive_some(4096)
    await trio.sleep_forever()


# trio-websocket 0.12 leaves the client socket of a handshake cancelled mid-way to the garbage
# collector (a ResourceWarning, not a hang); the bound itself is what this test is about.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_unanswered_handshake_is_bounded_and_exhausts_the_budget(clock: trio.testing.MockClock) -> None:
    send, _receive = trio.open_memory_channel[Any](100)
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, _mute, 0)
            port = listeners[0].socket.getsockname()[1]
            v = make_venue(port, FakeRest(), watchdog=2.0)
            t0 = trio.current_time()
            with pytest.raises(VenueUnavailable):
                await v.run_market_data([BTC_PERP], send)
            elapsed = trio.current_time() - t0
            nursery.cancel_scope.cancel()
    # 4 attempts of at most 2 s each plus backoff (0.1, 0.2, 0.4): bounded, never hung
    assert elapsed < 20
