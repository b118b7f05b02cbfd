"""Market state: the latest funding, mark, index and best bid/ask per instrument, with ages.

Market data only matters at its newest value, so ingestion keeps the latest snapshot per
instrument (a conflating store) and never queues stale ticks behind fresh ones: a slow reader
sees the newest value, not a backlog. The venue's bounded channel gives back-pressure; the
ingest loop does O(1) work per frame so it drains faster than any venue sends.

Staleness is judged against the engine clock: an instrument whose newest quote or funding is
older than ``stale_after`` seconds is stale, and the risk manager stops entries on it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from fundarb.core.model import FundingSnapshot, InstrumentId, Quote
from fundarb.core.venue_events import FundingReceived, QuoteReceived, VenueEvent
from fundarb.engine.clock import EngineClock

__all__ = ["InstrumentState", "MarketState", "UserDataSink", "run_ingest"]


@attrs.define
class InstrumentState:
    """Newest data of one instrument and when it arrived (engine clock, ms)."""

    quote: Quote | None = None
    funding: FundingSnapshot | None = None
    quote_at_ms: int = 0
    funding_at_ms: int = 0

    @property
    def updated_at_ms(self) -> int:
        """When anything about this instrument last arrived."""
        return max(self.quote_at_ms, self.funding_at_ms)


@attrs.define
class MarketState:
    """Latest-value store of market data, with a change signal for waiters."""

    clock: EngineClock
    stale_after_ms: int = 10_000
    instruments: dict[InstrumentId, InstrumentState] = attrs.Factory(dict)
    updates: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def apply(self, event: VenueEvent) -> bool:
        """Fold one market-data event in; False if it was not market data."""
        now = self.clock.now_ms()
        if isinstance(event, QuoteReceived):
            st = self.instruments.setdefault(event.quote.instrument, InstrumentState())
            st.quote, st.quote_at_ms = event.quote, now
        elif isinstance(event, FundingReceived):
            st = self.instruments.setdefault(event.funding.instrument, InstrumentState())
            st.funding, st.funding_at_ms = event.funding, now
        else:
            return False
        self.updates += 1
        self._changed.set()
        self._changed = trio.Event()
        return True

    async def wait_changed(self) -> None:
        """Wait for the next market-data update."""
        await self._changed.wait()

    def quote(self, instrument: InstrumentId) -> Quote | None:
        """Newest quote of ``instrument``."""
        st = self.instruments.get(instrument)
        return None if st is None else st.quote

    def funding(self, instrument: InstrumentId) -> FundingSnapshot | None:
        """Newest funding snapshot of ``instrument``."""
        st = self.instruments.get(instrument)
        return None if st is None else st.funding

    def age_ms(self, instrument: InstrumentId) -> int | None:
        """Milliseconds since anything arrived for ``instrument``; None if nothing ever did."""
        st = self.instruments.get(instrument)
        if st is None or st.updated_at_ms == 0:
            return None
        return self.clock.now_ms() - st.updated_at_ms

    def is_stale(self, instrument: InstrumentId) -> bool:
        """True when ``instrument`` has no data, or none newer than ``stale_after``."""
        age = self.age_ms(instrument)
        return age is None or age > self.stale_after_ms

    def stale(self, instruments: list[InstrumentId]) -> list[InstrumentId]:
        """The stale ones among ``instruments``."""
        return [i for i in instruments if self.is_stale(i)]


async def run_ingest(
    receive: trio.MemoryReceiveChannel[VenueEvent],
    market: MarketState,
    on_other: object,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Service: fold market data into ``market``; hand anything else to ``on_other(event)``."""
    task_status.started()
    sink = UserDataSink(market, on_other if callable(on_other) else lambda _event: None)
    async with receive:
        async for event in receive:
            await sink.send(event)


class UserDataSink:
    """Where a venue's user-data stream sends its events: folded into ``market`` or handed to
    ``on_other`` (the router) in the stream's own task, as they are decoded.

    Not a channel on purpose: a leg-A fill must reach its position without a hop through a
    consumer task (each hop runs every other ready task first; this one was ~50 µs of the hedge
    path). Nothing here blocks: ``on_other`` (the router) queues each event for its position, or
    steps an idle position at once (:meth:`~fundarb.engine.position_runner.PositionRunner.deliver_now`).
    Market data keeps its bounded latest-value channels (:func:`run_ingest`).
    """

    def __init__(self, market: MarketState, on_other: Callable[[VenueEvent], None]) -> None:
        self.market = market
        self.on_other = on_other

    def send_now(self, event: VenueEvent) -> None:
        """Apply ``event`` now. A stream that finds this method calls it from its reader task,
        as each frame is parsed (the Binance adapter does)."""
        if not self.market.apply(event):
            self.on_other(event)

    async def send(self, event: VenueEvent) -> None:
        """Apply ``event`` now (no checkpoint: the stream's next read is the caller's)."""
        self.send_now(event)
