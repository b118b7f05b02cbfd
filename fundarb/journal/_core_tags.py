"""Journal tags of the core model values and the normalized venue events.

A tag is forever: never re-use or change one (old journals would stop decoding). Add new ones.
"""

from __future__ import annotations

from fundarb.core import model, venue_events
from fundarb.journal.codec import CODEC, Codec

__all__ = ["CORE_TAGS", "register_core"]

CORE_TAGS: dict[str, type] = {
    "model.instrument_id": model.InstrumentId,
    "model.instrument": model.Instrument,
    "model.quote": model.Quote,
    "model.funding_snapshot": model.FundingSnapshot,
    "model.order_request": model.OrderRequest,
    "model.order_update": model.OrderUpdate,
    "model.fill": model.Fill,
    "model.balance": model.Balance,
    "model.venue_position": model.VenuePosition,
    "model.funding_payment": model.FundingPayment,
    "venue.quote_received": venue_events.QuoteReceived,
    "venue.funding_received": venue_events.FundingReceived,
    "venue.order_reported": venue_events.OrderReported,
    "venue.fill_reported": venue_events.FillReported,
    "venue.position_reported": venue_events.PositionReported,
    "venue.balance_reported": venue_events.BalanceReported,
    "venue.funding_settled": venue_events.FundingSettled,
    "venue.stream_disconnected": venue_events.StreamDisconnected,
    "venue.stream_resynced": venue_events.StreamResynced,
}
"""Tag -> class for every core value and venue event the journal knows out of the box."""


def register_core(codec: Codec = CODEC) -> None:
    """Register :data:`CORE_TAGS` in ``codec`` (idempotent)."""
    for tag, cls in CORE_TAGS.items():
        codec.register(cls, tag)


register_core()
