"""Normalized events a venue adapter produces from its wire frames.

Every adapter's ``decode`` and every stream yields these, so the engine never sees a venue's
own field names. They are values (frozen attrs), named in the past tense.
"""

from __future__ import annotations

import attrs

from fundarb.core.model import (
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    OrderUpdate,
    Quote,
    VenuePosition,
)

__all__ = [
    "BalanceReported",
    "FillReported",
    "FundingReceived",
    "FundingSettled",
    "OrderReported",
    "PositionReported",
    "QuoteReceived",
    "StreamDisconnected",
    "StreamResynced",
    "VenueEvent",
]


@attrs.frozen
class QuoteReceived:
    """Best bid/ask changed."""

    quote: Quote


@attrs.frozen
class FundingReceived:
    """Funding rate, next funding time, mark and index were published."""

    funding: FundingSnapshot


@attrs.frozen
class OrderReported:
    """An order's status changed (user-data stream or a REST answer)."""

    update: OrderUpdate


@attrs.frozen
class FillReported:
    """One of our orders traded, or the venue traded for us (``fill.venue_generated``)."""

    fill: Fill


@attrs.frozen
class PositionReported:
    """The venue's view of a perpetual position changed."""

    position: VenuePosition


@attrs.frozen
class BalanceReported:
    """A wallet balance changed."""

    balance: Balance


@attrs.frozen
class FundingSettled:
    """Funding was paid or received on a position."""

    payment: FundingPayment


@attrs.frozen
class StreamDisconnected:
    """A venue stream was lost; its data must not be trusted until :class:`StreamResynced`."""

    venue: str
    stream: str
    reason: str
    ts_ms: int


@attrs.frozen
class StreamResynced:
    """A venue stream reconnected and its state was re-read over REST; trust it again."""

    venue: str
    stream: str
    ts_ms: int


VenueEvent = (
    QuoteReceived
    | FundingReceived
    | OrderReported
    | FillReported
    | PositionReported
    | BalanceReported
    | FundingSettled
    | StreamDisconnected
    | StreamResynced
)
