"""Outputs of the position state machine: what the shell must do, named in the imperative.

The shell journals each command (with its client order id) *before* acting on it, then runs it
under a deadline. A command that fails or is cancelled in flight comes back as an event
(``OrderOutcomeUnknown``, ``OrderRejected``), never as an assumption.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

from fundarb.core.model import InstrumentId, OrderRequest

__all__ = [
    "Alert",
    "ArmTimer",
    "CancelOrder",
    "Command",
    "OrderPurpose",
    "PlaceOrder",
    "QueryOrder",
    "Severity",
]


class OrderPurpose(enum.Enum):
    """Why an order exists. ENTRY and HEDGE increase a leg; the others reduce one."""

    ENTRY = "entry"
    HEDGE = "hedge"
    UNWIND = "unwind"
    EXIT = "exit"
    REBALANCE = "rebalance"

    @property
    def increases(self) -> bool:
        """True when filling this order grows the leg."""
        return self in (OrderPurpose.ENTRY, OrderPurpose.HEDGE)


class Severity(enum.Enum):
    """How loudly to tell the operator."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@attrs.frozen
class PlaceOrder:
    """Send ``request`` for ``leg`` ("A" or "B"). ``reference_price`` prices notional checks of
    market orders; ``attempt`` counts the rejections that preceded it."""

    position_id: str
    leg: str
    purpose: OrderPurpose
    request: OrderRequest
    reference_price: Decimal | None = None
    attempt: int = 0  #: consecutive rejections before this order (the shell paces retries by it)


@attrs.frozen
class CancelOrder:
    """Cancel an order by client order id."""

    position_id: str
    leg: str
    instrument: InstrumentId
    cid: str


@attrs.frozen
class QueryOrder:
    """Ask the venue for an order's status and fills by client order id."""

    position_id: str
    leg: str
    instrument: InstrumentId
    cid: str


@attrs.frozen
class Alert:
    """Tell the operator. ``naked_qty`` is the unhedged quantity (leg A minus leg B, base units)."""

    position_id: str
    severity: Severity
    message: str
    naked_qty: Decimal = Decimal(0)


@attrs.frozen
class ArmTimer:
    """Deliver :class:`~fundarb.core.events.HedgeTimedOut` to this position at ``deadline_ms``."""

    position_id: str
    deadline_ms: int


Command = PlaceOrder | CancelOrder | QueryOrder | Alert | ArmTimer
