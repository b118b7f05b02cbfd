"""Inputs to the position state machine: things that happened, named in the past tense.

The shell turns venue reports, timers, risk decisions and operator actions into these values and
feeds them to :func:`fundarb.core.position.step`. Order events name the order by its client order
id (``cid``); the position knows which leg and purpose each of its orders has.

Quantities in ``filled_qty`` are *cumulative* for the order, as the venues report them, so a
duplicated or reordered report can never double-count.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

from fundarb.core.model import Fill, FundingPayment, OrderStatus

__all__ = [
    "CleanupExpired",
    "EntrySignalled",
    "Event",
    "ExitSignalled",
    "FundingPaid",
    "HedgeTimedOut",
    "OperatorKilled",
    "OperatorResolved",
    "OrderAccepted",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderNotFound",
    "OrderOutcomeUnknown",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderStatusReported",
    "PositionDrifted",
    "ReduceRequested",
    "ResyncRequested",
    "RiskBreached",
    "RiskKind",
    "VenueDisconnected",
    "VenueFillReceived",
]


class RiskKind(enum.Enum):
    """Why the risk manager intervened."""

    MARGIN = "margin"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    ADL = "adl"
    LIQUIDATION = "liquidation"
    STALE_DATA = "stale_data"


# --- strategy and operator ------------------------------------------------------------------------


@attrs.frozen
class EntrySignalled:
    """The strategy approved opening. ``limit_price_a`` prices leg A (None: market order);
    ``reference_price`` prices notional checks of both legs until fills arrive."""

    reference_price: Decimal
    limit_price_a: Decimal | None = None


@attrs.frozen
class ExitSignalled:
    """The strategy wants out (edge gone, funding flipped)."""

    reason: str


@attrs.frozen
class ReduceRequested:
    """Reduce both legs pairwise by ``quantity`` (risk: margin or liquidation distance)."""

    quantity: Decimal
    reason: str


@attrs.frozen
class OperatorKilled:
    """The kill switch: flatten everything now."""

    reason: str


@attrs.frozen
class OperatorResolved:
    """An operator confirmed a FAILED position is dealt with (flat, or taken over by hand)."""

    note: str


# --- order lifecycle ------------------------------------------------------------------------------


@attrs.frozen
class OrderAccepted:
    """The venue acknowledged the order."""

    cid: str
    venue_order_id: str | None = None


@attrs.frozen
class OrderRejected:
    """The venue refused the order; nothing happened. ``retryable`` for rate limits and
    requests that never reached the venue (the same order may be sent again)."""

    cid: str
    reason: str
    code: str = ""
    retryable: bool = False


@attrs.frozen
class OrderPartiallyFilled:
    """A fill that leaves the order working. ``cumulative_qty`` if the venue reported it."""

    cid: str
    fill: Fill
    cumulative_qty: Decimal | None = None


@attrs.frozen
class OrderFilled:
    """The fill that completed the order."""

    cid: str
    fill: Fill
    cumulative_qty: Decimal | None = None


@attrs.frozen
class OrderCancelled:
    """The order was cancelled; ``filled_qty`` is its final cumulative fill."""

    cid: str
    filled_qty: Decimal


@attrs.frozen
class OrderExpired:
    """The order expired (IOC/FOK remainder, post-only reject at the match); final ``filled_qty``."""

    cid: str
    filled_qty: Decimal


@attrs.frozen
class OrderOutcomeUnknown:
    """A request about this order timed out or was cancelled in flight: it may or may not have
    taken effect. The machine answers with a :class:`~fundarb.core.commands.QueryOrder`."""

    cid: str
    reason: str


@attrs.frozen
class OrderStatusReported:
    """The venue's answer to a query: status and cumulative fill, with the fills it listed."""

    cid: str
    status: OrderStatus
    filled_qty: Decimal
    fills: tuple[Fill, ...] = ()


@attrs.frozen
class OrderNotFound:
    """The venue says authoritatively that it never had this order."""

    cid: str


# --- venue, risk and money ------------------------------------------------------------------------


@attrs.frozen
class HedgeTimedOut:
    """The hedge deadline armed by :class:`~fundarb.core.commands.ArmTimer` passed."""


@attrs.frozen
class VenueDisconnected:
    """A venue connection the position depends on died."""

    venue: str
    reason: str = ""


@attrs.frozen
class ResyncRequested:
    """Re-read every order of the position from the venue (after a restart or reconnect)."""

    reason: str


@attrs.frozen
class RiskBreached:
    """The risk manager says this position must not stay as it is."""

    kind: RiskKind
    detail: str = ""


@attrs.frozen
class VenueFillReceived:
    """The venue traded one of our legs on its own: liquidation, ADL or settlement."""

    fill: Fill


@attrs.frozen
class PositionDrifted:
    """Delta maintenance found the venue holds ``venue_qty`` (unsigned, in the leg's direction)
    on ``leg`` ("A" or "B") where the position expected something else."""

    leg: str
    venue_qty: Decimal


@attrs.frozen
class CleanupExpired:
    """The shell's shielded clean-up ran out of time with the position still exposed."""

    reason: str


@attrs.frozen
class FundingPaid:
    """Funding was settled on the perpetual leg (positive: received)."""

    payment: FundingPayment


Event = (
    EntrySignalled
    | ExitSignalled
    | ReduceRequested
    | OperatorKilled
    | OperatorResolved
    | OrderAccepted
    | OrderRejected
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCancelled
    | OrderExpired
    | OrderOutcomeUnknown
    | OrderStatusReported
    | OrderNotFound
    | HedgeTimedOut
    | VenueDisconnected
    | ResyncRequested
    | RiskBreached
    | VenueFillReceived
    | PositionDrifted
    | FundingPaid
    | CleanupExpired
)
