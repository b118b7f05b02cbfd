"""The values of reconciliation: what a venue reported, what differs, what to do about it.

Kept apart from :mod:`fundarb.core.reconcile` (the comparison itself), which re-exports them.
"""

from __future__ import annotations

import enum

import attrs

from fundarb.core import events as ev
from fundarb.core.model import Balance, Fill, FundingPayment, OrderUpdate, VenuePosition

__all__ = ["DiffKind", "Difference", "Reconciliation", "VenueSnapshot"]


@attrs.frozen
class VenueSnapshot:
    """What one venue reported for reconciliation, read at about the same time."""

    venue: str
    since_ms: int
    open_orders: tuple[OrderUpdate, ...] = ()
    fills: tuple[Fill, ...] = ()
    positions: tuple[VenuePosition, ...] = ()
    balances: tuple[Balance, ...] = ()
    funding: tuple[FundingPayment, ...] = ()


class DiffKind(enum.Enum):
    """What kind of difference between the journal and a venue."""

    MISSED_FILL = "missed-fill"
    ORDER_STATUS = "order-status"
    VENUE_FILL = "venue-fill"
    MISSED_FUNDING = "missed-funding"
    DRIFT = "drift"
    ORPHAN_ORDER = "orphan-order"
    FOREIGN_ORDER = "foreign-order"
    UNOWNED_FILL = "unowned-fill"
    UNOWNED_EXPOSURE = "unowned-exposure"
    SPOT_SHORTFALL = "spot-shortfall"
    REPLAY_MISMATCH = "replay-mismatch"
    VENUE_UNAVAILABLE = "venue-unavailable"
    UNRECONCILABLE = "unreconcilable"
    RESERVED_ORDER = "reserved-order"


@attrs.frozen
class Difference:
    """One difference found, in words, and whether an operator must acknowledge it."""

    kind: DiffKind
    venue: str
    detail: str
    position_id: str | None = None
    client_order_id: str | None = None
    needs_ack: bool = False


@attrs.frozen
class Reconciliation:
    """The outcome of :func:`reconcile`; see the module docstring."""

    corrections: tuple[tuple[str, ev.Event], ...] = ()
    orphans: tuple[OrderUpdate, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    differences: tuple[Difference, ...] = ()

    @property
    def needs_ack(self) -> bool:
        """True when an operator must acknowledge before new positions open."""
        return any(d.needs_ack for d in self.differences)

    @property
    def clean(self) -> bool:
        """True when the journal and the venues agree."""
        return not self.differences
