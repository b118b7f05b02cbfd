"""The venue error taxonomy: every adapter maps its wire errors into these few classes.

Hierarchy (the engine decides by class, never by a venue's code)::

    VenueError
     ├── RateLimited              429/418 or a venue's "too many requests"; retry after ``retry_after`` s
     ├── OrderRejected            the venue refused the request; nothing happened (code, reason)
     │    ├── InsufficientMargin
     │    ├── BadPrecision        price/quantity off tick, lot, min quantity or min notional
     │    ├── ReduceOnlyRejected
     │    └── PostOnlyWouldCross
     ├── OrderNotFound            an authoritative "no such order" (never inferred from a network error)
     ├── TimestampOutsideWindow   our clock drifted outside recvWindow; resync time, then retry
     ├── OutcomeUnknown           a request may or may not have taken effect (timeout, 5xx after send)
     ├── VenueUnavailable         could not reach the venue or it is in maintenance; nothing was sent
     └── VenueProtocolError       the venue sent something we cannot parse (its misbehaviour, not ours)
          └── DecodeError         a frame failed to decode (malformed JSON, bad types, NaN, ...)

``OutcomeUnknown`` is the one that matters: after it the engine must query by client order id
and reconcile, never assume success or failure.
"""

from __future__ import annotations

from fundarb.core.errors import FundarbError

__all__ = [
    "BadPrecision",
    "DecodeError",
    "InsufficientMargin",
    "OrderNotFound",
    "OrderRejected",
    "OutcomeUnknown",
    "PostOnlyWouldCross",
    "RateLimited",
    "ReduceOnlyRejected",
    "TimestampOutsideWindow",
    "VenueError",
    "VenueProtocolError",
    "VenueUnavailable",
]


class VenueError(FundarbError):
    """Base class of the taxonomy. ``venue`` names the venue; ``code`` is the venue's own code."""

    def __init__(self, message: str, *, venue: str = "", code: int | str | None = None) -> None:
        super().__init__(message)
        self.venue = venue
        self.code = code


class RateLimited(VenueError):
    """Too many requests. Wait ``retry_after`` seconds before the next call to this venue."""

    def __init__(self, message: str, *, retry_after: float, venue: str = "", code: int | str | None = None):
        super().__init__(message, venue=venue, code=code)
        self.retry_after = retry_after


class OrderRejected(VenueError):
    """The venue refused the order or cancel; it had no effect. ``reason`` is the venue's text."""

    def __init__(self, message: str, *, reason: str = "", venue: str = "", code: int | str | None = None):
        super().__init__(message, venue=venue, code=code)
        self.reason = reason or message


class InsufficientMargin(OrderRejected):
    """Not enough margin or balance for the order."""


class BadPrecision(OrderRejected):
    """Price or quantity breaks the instrument's filters."""


class ReduceOnlyRejected(OrderRejected):
    """A reduce-only order would have increased the position (or there is none)."""


class PostOnlyWouldCross(OrderRejected):
    """A post-only order would have taken liquidity."""


class OrderNotFound(VenueError):
    """The venue says it has no order with this client order id."""


class TimestampOutsideWindow(VenueError):
    """Request timestamp outside ``recvWindow`` (Binance -1021): resync the clock offset."""


class OutcomeUnknown(VenueError):
    """The request may have taken effect. Query by client order id before doing anything else."""


class VenueUnavailable(VenueError):
    """The venue could not be reached, or is in maintenance. The request was not processed."""


class VenueProtocolError(VenueError):
    """The venue sent something we could not understand."""


class DecodeError(VenueProtocolError):
    """A frame could not be decoded into events. ``raw`` holds (a prefix of) the offending input."""

    def __init__(self, message: str, *, raw: str = "", venue: str = "") -> None:
        super().__init__(message, venue=venue)
        self.raw = raw[:500]
