"""The spot user-data subscription is signed with the venue's clock, measured first when the
adapter has never synced it: a local clock hours off must not make every subscription fail -1021."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from fundarb.core.venue_events import VenueEvent
from fundarb.sim.binance_server import BinanceServer
from fundarb.venues.binance import Credentials
from fundarb.venues.binance.client import BinanceVenue

from .test_loopback import FAST, KEY, RICH, SECRET, SPOT, T0_MS


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


def skewed_wall_ms() -> int:
    """Our clock is three hours ahead of the venue's."""
    return T0_MS + 3 * 3_600_000 + int(trio.current_time() * 1000)


async def test_user_data_subscribes_with_a_skewed_local_clock(clock: trio.testing.MockClock) -> None:
    server = BinanceServer.for_tests(credentials={KEY: SECRET}, balances=RICH, start_ms=T0_MS)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(server.run)
            venue = BinanceVenue(
                Credentials(KEY, SECRET),
                base_urls=urls.base_urls(),
                wall_ms=skewed_wall_ms,
                reconnect=FAST,
                call_timeout=5.0,
            )
            send, _receive = trio.open_memory_channel[VenueEvent](100)
            await nursery.start(venue.run_user_data, send)  # raises if the subscription keeps failing
            quote = await venue.quote(SPOT)
            assert quote.bid < quote.ask
            assert -1021 not in server.statistics().errors  # never signed with the skewed clock
            await venue.aclose()
            nursery.cancel_scope.cancel()
