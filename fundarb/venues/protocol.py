"""The Venue protocol: what the engine needs from an exchange, defined once.

The simulator (:mod:`fundarb.sim`) and every real adapter (:mod:`fundarb.venues.binance`, ...)
implement it. All quantities are in base-asset units and all values are core types
(:mod:`fundarb.core.model`), so the engine never sees a venue's wire format.

Rules every implementation keeps:

* Every call has a deadline: the adapter's own ``call_timeout`` (seconds), and the caller may
  nest a tighter ``trio.fail_after``. A *mutating* call (place, cancel, borrow, repay,
  transfer) that times out or is cancelled after the request may have been sent raises
  :class:`~fundarb.venues.errors.OutcomeUnknown` (or is cancelled, which the engine treats the
  same way). A read-only call that times out raises ``VenueUnavailable``.
* Errors are raised only from the taxonomy in :mod:`fundarb.venues.errors`.
* ``run_market_data`` and ``run_user_data`` are long-running services started with
  ``nursery.start``: they push :mod:`fundarb.core.venue_events` into the given channel until
  cancelled. On a dropped or silent connection they push ``StreamDisconnected``, reconnect with
  backoff, resync over REST and then push ``StreamResynced``. When the venue stays unreachable
  past the reconnect budget they raise ``VenueUnavailable`` into the owning nursery.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable

import trio

from fundarb.core.model import (
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Instrument,
    InstrumentId,
    OrderRequest,
    OrderUpdate,
    Quote,
    VenuePosition,
    Wallet,
)
from fundarb.core.venue_events import VenueEvent

__all__ = ["MUTATING_CALLS", "VENUE_CALLS", "EventSender", "Venue"]

#: Every request/response method of the protocol, by name (wrappers that observe or fault calls use it).
VENUE_CALLS: tuple[str, ...] = (
    "instruments",
    "funding",
    "quote",
    "server_time_ms",
    "place_order",
    "cancel_order",
    "query_order",
    "open_orders",
    "positions",
    "balances",
    "fills_since",
    "funding_income_since",
    "borrow",
    "repay",
    "transfer",
)
#: The calls that change state at the venue: a timeout after sending means OutcomeUnknown.
MUTATING_CALLS: frozenset[str] = frozenset({"place_order", "cancel_order", "borrow", "repay", "transfer"})


class EventSender(Protocol):
    """Where a stream puts its events: a ``trio.MemorySendChannel`` or the engine's
    :class:`~fundarb.engine.market.UserDataSink` (which applies them in the stream's task)."""

    async def send(self, value: VenueEvent, /) -> None:
        """Deliver one event, in order."""
        ...


class PlacesNow(Protocol):
    """Optional two-phase placement, for the hedge path (a venue need not offer it).

    ``start_order`` writes the order from the caller's (synchronous) code, with no scheduling
    pass before the bytes leave, and returns a handle; ``finish_order`` awaits the venue's answer
    as ``place_order`` would return it (or raises what it would). ``start_order`` returns None,
    having sent nothing, when the order cannot leave at once; the caller then uses
    ``place_order``. Only :class:`~fundarb.venues.binance.BinanceVenue` (spot over the WebSocket
    API) offers it.
    """

    def start_order(self, request: OrderRequest) -> object | None:
        """Send ``request`` now, or return None having sent nothing."""
        ...

    async def finish_order(self, started: object) -> OrderUpdate:
        """The acknowledgement of an order ``start_order`` sent."""
        ...


@runtime_checkable
class Venue(Protocol):
    """One exchange account: market data, trading, reconciliation queries and user data."""

    @property
    def name(self) -> str:
        """The venue's name as used in :class:`~fundarb.core.model.InstrumentId` (``"binance"``)."""
        ...

    # --- reference and market data ---
    async def instruments(self) -> list[Instrument]:
        """Trading rules for every instrument this account may trade."""
        ...

    async def funding(self, instrument: InstrumentId) -> FundingSnapshot:
        """Current funding rate, next funding time, mark and index of a perpetual."""
        ...

    async def quote(self, instrument: InstrumentId) -> Quote:
        """Best bid/ask snapshot."""
        ...

    async def server_time_ms(self) -> int:
        """The venue's clock, in ms since the epoch."""
        ...

    # --- trading ---
    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Send an order; returns the venue's acknowledgement (status NEW, or already filled)."""
        ...

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Cancel by client order id; returns the final status with the cumulative filled quantity."""
        ...

    async def query_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Look an order up by client order id; raises ``OrderNotFound`` if the venue has none."""
        ...

    # --- reconciliation queries ---
    async def open_orders(self, instrument: InstrumentId | None = None) -> list[OrderUpdate]:
        """Every working order, optionally for one instrument."""
        ...

    async def positions(self) -> list[VenuePosition]:
        """Every non-flat perpetual position."""
        ...

    async def balances(self) -> list[Balance]:
        """Every wallet balance, including margin debt."""
        ...

    async def fills_since(
        self, instrument: InstrumentId, since_ms: int, *, order_id: str | None = None
    ) -> list[Fill]:
        """Our fills on ``instrument`` at or after ``since_ms``, oldest first; with ``order_id``
        (a venue order id) only that order's fills, whenever they happened."""
        ...

    async def funding_income_since(self, since_ms: int) -> list[FundingPayment]:
        """Funding paid or received at or after ``since_ms``, oldest first."""
        ...

    # --- margin and transfers ---
    async def borrow(self, asset: str, amount: Decimal) -> None:
        """Borrow ``amount`` of ``asset`` on the margin account (to short spot)."""
        ...

    async def repay(self, asset: str, amount: Decimal) -> None:
        """Repay margin debt."""
        ...

    async def transfer(self, asset: str, amount: Decimal, source: Wallet, target: Wallet) -> None:
        """Move ``amount`` of ``asset`` between this venue's wallets."""
        ...

    # --- streams (services for nursery.start) ---
    async def run_market_data(
        self,
        instruments: Sequence[InstrumentId],
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Stream quotes and funding for ``instruments`` into ``send`` until cancelled."""
        ...

    async def run_user_data(
        self,
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Stream order updates, fills, positions, balances and funding into ``send``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
