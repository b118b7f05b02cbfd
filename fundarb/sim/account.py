"""One simulated account: wallets, perpetual positions, orders, fills, funding and an event outbox.

Mutable bookkeeping owned by :class:`~fundarb.sim.exchange.SimExchange` (which holds the rules);
this module knows how a fill changes a position (average entry, realized PnL into the futures
wallet) and how to report the account as core values.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from fundarb.core.model import (
    ZERO,
    Fill,
    FundingPayment,
    InstrumentId,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
    Wallet,
)
from fundarb.core.venue_events import VenueEvent
from fundarb.sim.wallets import PendingTransfer, Wallets

__all__ = ["Account", "PerpPosition", "SimOrder"]


@attrs.define
class PerpPosition:
    """Signed quantity (short < 0) and average entry price of one perpetual."""

    quantity: Decimal = ZERO
    entry: Decimal = ZERO

    def apply(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill; returns the realized PnL of the part that closed exposure."""
        q0 = self.quantity
        d = qty * side.sign
        if q0 == 0 or (q0 > 0) == (d > 0):
            self.entry = (abs(q0) * self.entry + qty * price) / (abs(q0) + qty)
            self.quantity = q0 + d
            return ZERO
        closing = min(qty, abs(q0))
        realized = closing * (price - self.entry) * (1 if q0 > 0 else -1)
        self.quantity = q0 + d
        if self.quantity == 0:
            self.entry = ZERO
        elif (self.quantity > 0) != (q0 > 0):
            self.entry = price
        return realized


@attrs.define
class SimOrder:
    """An order as the exchange holds it. ``reserved`` is what is still locked for the rest."""

    request: OrderRequest
    venue_order_id: str
    created_ms: int
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    wallet: Wallet | None = None
    reserved: Decimal = ZERO
    updated_ms: int = 0
    reason: str = ""

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return self.request.quantity - self.filled

    def record_fill(self, qty: Decimal, price: Decimal, ts_ms: int) -> None:
        """Add an execution and move the status to PARTIALLY_FILLED or FILLED."""
        self.filled += qty
        self.cost += qty * price
        self.updated_ms = ts_ms
        self.status = OrderStatus.FILLED if self.remaining == 0 else OrderStatus.PARTIALLY_FILLED

    def update(self) -> OrderUpdate:
        """The core report of this order."""
        req = self.request
        return OrderUpdate(
            instrument=req.instrument,
            client_order_id=req.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            side=req.side,
            quantity=req.quantity,
            filled_qty=self.filled,
            avg_price=(self.cost / self.filled) if self.filled else None,
            ts_ms=self.updated_ms or self.created_ms,
            reason=self.reason,
        )


@attrs.define
class Account:
    """Everything the exchange knows about one account."""

    name: str
    wallets: Wallets
    positions: dict[InstrumentId, PerpPosition] = attrs.field(factory=dict)
    orders: dict[str, SimOrder] = attrs.field(factory=dict)
    fills: list[Fill] = attrs.field(factory=list)
    fills_by_order: dict[str, list[Fill]] = attrs.field(factory=dict)  # venue order id -> its fills
    funding: list[FundingPayment] = attrs.field(factory=list)
    pending: list[PendingTransfer] = attrs.field(factory=list)
    outbox: list[VenueEvent] = attrs.field(factory=list)
    _working: dict[str, SimOrder] = attrs.field(factory=dict)  # placed, not yet seen terminal

    def add_order(self, order: SimOrder) -> None:
        """Track a newly placed order (use this, not ``orders[...] =``: it keeps the working index)."""
        cid = order.request.client_order_id
        self.orders[cid] = order
        self._working[cid] = order

    def position(self, instrument: InstrumentId) -> PerpPosition:
        """The (possibly flat) position of ``instrument``, created on first use."""
        pos = self.positions.get(instrument)
        if pos is None:
            pos = self.positions[instrument] = PerpPosition()
        return pos

    def open_orders(self) -> list[SimOrder]:
        """Working orders in the order they were placed.

        Scans only the orders not yet seen terminal (a terminal status is final), not every order
        the account ever placed: the market loop asks on every step, and a long bench run places
        tens of thousands (the loopback server spent its whole core scanning them)."""
        done = [cid for cid, o in self._working.items() if o.status.is_terminal]
        for cid in done:
            del self._working[cid]
        return list(self._working.values())
