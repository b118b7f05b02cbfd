"""The data of a hedged position: its plan, its two legs, the orders it tracks, its state.

The transitions live in :mod:`fundarb.core.position`; this module only holds values and
read-only views of them (held quantities, working orders, dust).

A position has two legs, A and B, of the same base asset and opposite sides. Leg A is the leg
with more execution uncertainty (by default the perpetual, as a limit order near the touch);
leg B is the hedge, sent as leg A fills. Quantities are in base-asset units.

Order tracking is idempotent: an order's filled quantity is the larger of the sum of its distinct
fills and the largest cumulative quantity the venue reported, so a duplicated fill, a status
report that overtakes a fill, or a "cancelled, then filled" sequence is never double-counted.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal

import attrs

from fundarb.core import events as ev
from fundarb.core.commands import OrderPurpose
from fundarb.core.errors import InvalidValue, TransitionError
from fundarb.core.evolve import evolve
from fundarb.core.model import ZERO, Fill, Instrument, Side, TimeInForce

__all__ = ["Leg", "LegSpec", "OrderState", "Position", "PositionPlan", "PositionState", "TrackedOrder"]

_POSITION_ID = re.compile(r"^[A-Za-z0-9]{1,20}$")


class Leg(enum.Enum):
    """Which leg of a hedged position."""

    A = "A"
    B = "B"


@attrs.frozen
class LegSpec:
    """One leg: where, what, which side when opening, and how much (base units)."""

    instrument: Instrument
    side: Side
    target_qty: Decimal

    def __attrs_post_init__(self) -> None:
        if not self.target_qty.is_finite() or self.target_qty <= 0:
            raise InvalidValue(f"target_qty: must be > 0, got {self.target_qty}")


@attrs.frozen
class PositionPlan:
    """Everything fixed about a position when it is created.

    ``position_id`` is part of every client order id (``fa.<id>.A.1``), so it is short and alphanumeric:
    a restarted engine finds its own orders at the venue by it.
    """

    position_id: str
    leg_a: LegSpec
    leg_b: LegSpec
    hedge_timeout_ms: int = 5_000
    entry_time_in_force: TimeInForce = TimeInForce.IOC
    max_slice_qty: Decimal | None = None
    max_attempts: int = 8  # consecutive rejections of reducing orders before FAILED (the shell backs off)

    def __attrs_post_init__(self) -> None:
        if not _POSITION_ID.match(self.position_id):
            raise InvalidValue(f"position_id: 1-20 letters or digits, got {self.position_id!r}")
        a, b = self.leg_a, self.leg_b
        if a.instrument.base != b.instrument.base:
            raise InvalidValue(f"legs trade different assets: {a.instrument.base} vs {b.instrument.base}")
        if a.side is b.side:
            raise InvalidValue("legs must have opposite sides to be hedged")
        if a.target_qty != b.target_qty:
            raise InvalidValue(f"leg targets differ: {a.target_qty} vs {b.target_qty}")
        if self.hedge_timeout_ms <= 0 or self.max_attempts < 1:
            raise InvalidValue("hedge_timeout_ms must be > 0 and max_attempts >= 1")
        if self.max_slice_qty is not None and self.max_slice_qty <= 0:
            raise InvalidValue(f"max_slice_qty: must be > 0, got {self.max_slice_qty}")

    def leg(self, leg: Leg) -> LegSpec:
        """The spec of ``leg``."""
        return self.leg_a if leg is Leg.A else self.leg_b

    def leg_of_venue(self, venue: str) -> tuple[Leg, ...]:
        """The legs that trade on ``venue``."""
        return tuple(leg for leg in Leg if self.leg(leg).instrument.id.venue == venue)


class OrderState(enum.Enum):
    """Our knowledge of an order: sent but unacknowledged, working, unknown, or done."""

    PENDING = "pending"
    WORKING = "working"
    UNKNOWN = "unknown"
    DONE = "done"


@attrs.frozen
class TrackedOrder:
    """One order of a position, as far as we know it."""

    cid: str
    leg: Leg
    purpose: OrderPurpose
    side: Side
    quantity: Decimal
    state: OrderState = OrderState.PENDING
    fill_qty: Decimal = ZERO
    reported_qty: Decimal = ZERO
    cancel_requested: bool = False
    rejected: bool = False

    @property
    def filled(self) -> Decimal:
        """Best knowledge of the cumulative fill."""
        return max(self.fill_qty, self.reported_qty)

    @property
    def working(self) -> bool:
        """True while the order may still fill (including when its state is unknown)."""
        return self.state is not OrderState.DONE

    @property
    def remaining(self) -> Decimal:
        """Quantity that may still fill."""
        return max(self.quantity - self.filled, ZERO) if self.working else ZERO


class PositionState(enum.Enum):
    """Where a hedged position is in its life."""

    PLANNED = "planned"
    OPENING_LEG_A = "open-leg-A"
    HEDGE_PENDING = "hedge-pending"
    HEDGED = "hedged"
    REBALANCING = "rebalancing"
    CLOSING = "closing"
    UNWINDING = "unwinding"
    RECONCILING = "reconciling"
    CLOSED = "closed"
    FAILED = "failed"


@attrs.frozen
class Position:
    """Everything known about one hedged position. Built by :func:`step`, never mutated."""

    plan: PositionPlan
    state: PositionState = PositionState.PLANNED
    orders: tuple[TrackedOrder, ...] = ()
    trade_keys: frozenset[str] = frozenset()
    venue_delta_a: Decimal = ZERO  # venue-generated fills and drift corrections, signed
    venue_delta_b: Decimal = ZERO
    next_seq: int = 1
    failed_attempts: int = 0
    reference_price: Decimal | None = None
    hedge_deadline_ms: int | None = None
    exit_target: Decimal = ZERO
    resume_state: PositionState | None = None
    funding: Decimal = ZERO
    funding_ids: frozenset[str] = frozenset()
    fees_quote: Decimal = ZERO
    reason: str = ""

    @property
    def id(self) -> str:
        """The position id."""
        return self.plan.position_id

    def order(self, cid: str) -> TrackedOrder | None:
        """The tracked order with client order id ``cid``."""
        for o in self.orders:
            if o.cid == cid:
                return o
        return None

    def opened(self, leg: Leg) -> Decimal:
        """Quantity bought (or sold) on ``leg`` by orders that increase it."""
        return sum((o.filled for o in self.orders if o.leg is leg and o.purpose.increases), ZERO)

    def held(self, leg: Leg) -> Decimal:
        """Quantity held on ``leg`` now, in the leg's direction (never below zero)."""
        reduced = sum((o.filled for o in self.orders if o.leg is leg and not o.purpose.increases), ZERO)
        delta = self.venue_delta_a if leg is Leg.A else self.venue_delta_b
        return max(self.opened(leg) - reduced + delta, ZERO)

    @property
    def unhedged_qty(self) -> Decimal:
        """Leg A minus leg B: positive when A is naked."""
        return self.held(Leg.A) - self.held(Leg.B)

    def working(self, leg: Leg | None = None, *, increases: bool | None = None) -> list[TrackedOrder]:
        """Orders that may still fill, optionally of one leg and one direction."""
        return [
            o
            for o in self.orders
            if o.working
            and (leg is None or o.leg is leg)
            and (increases is None or o.purpose.increases is increases)
        ]

    def tradable(self, leg: Leg, qty: Decimal) -> Decimal:
        """The part of ``qty`` the venue of ``leg`` accepts as an order (ZERO: it is dust there)."""
        if qty <= 0:
            return ZERO
        price = self.reference_price if self.reference_price is not None else ZERO
        return self.plan.leg(leg).instrument.tradable_qty(qty, price) if price > 0 else ZERO

    def is_dust(self, leg: Leg, qty: Decimal) -> bool:
        """True when ``qty`` is too small to trade on ``leg``'s venue."""
        return self.tradable(leg, abs(qty)) == 0

    @property
    def dust(self) -> Decimal:
        """The unhedged quantity too small to trade on the leg that would fix it (tracked, never
        dropped): the hedge leg B while opening, the larger leg otherwise."""
        diff = self.unhedged_qty
        if diff == 0:
            return ZERO
        opening = self.state in (PositionState.OPENING_LEG_A, PositionState.HEDGE_PENDING)
        fixer = Leg.B if opening and diff > 0 else (Leg.A if diff > 0 else Leg.B)
        return diff if self.is_dust(fixer, diff) else ZERO

    # --- bookkeeping (no state decisions here: those live in fundarb.core.position) ---

    def require_order(self, cid: str) -> TrackedOrder:
        """The tracked order ``cid``; :class:`TransitionError` if the position never sent it."""
        order = self.order(cid)
        if order is None:
            raise TransitionError(f"position {self.id} in {self.state.name}: no order with client id {cid!r}")
        return order

    def with_order(self, order: TrackedOrder) -> Position:
        """This position with ``order`` replacing the tracked order of the same cid."""
        return evolve(self, orders=tuple(order if o.cid == order.cid else o for o in self.orders))

    def with_fill(
        self, order: TrackedOrder, fill: Fill, cumulative: Decimal | None, state: OrderState | None = None
    ) -> Position:
        """Count ``fill`` on ``order`` once (by trade id); raise the reported cumulative if given;
        move the order to ``state`` if given. One copy of the position (the hot path of a fill)."""
        key = f"{fill.instrument.symbol}:{fill.trade_id}"
        changes: dict[str, object] = {}
        if cumulative is not None and cumulative > order.reported_qty:
            changes["reported_qty"] = cumulative
        if state is not None and state is not order.state:
            changes["state"] = state
        if key in self.trade_keys:
            order = evolve(order, **changes) if changes else order
            return self.with_order(order)
        order = evolve(order, fill_qty=order.fill_qty + fill.quantity, **changes)
        fee = fill.fee if fill.fee_asset == self.plan.leg(order.leg).instrument.quote else ZERO
        return evolve(
            self,
            orders=tuple(order if o.cid == order.cid else o for o in self.orders),
            trade_keys=self.trade_keys | {key},
            reference_price=fill.price,
            fees_quote=self.fees_quote + fee,
        )

    def fold_report(self, e: OrderReport) -> Position:
        """Fold a venue report about one of our orders into its tracked order (idempotent)."""
        order = self.require_order(e.cid)
        p = self
        if isinstance(e, ev.OrderAccepted):
            if order.state in (OrderState.PENDING, OrderState.UNKNOWN):
                p = p.with_order(evolve(order, state=OrderState.WORKING))
        elif isinstance(e, ev.OrderRejected):
            p = p.with_order(evolve(order, state=OrderState.DONE, rejected=True))
        elif isinstance(e, (ev.OrderPartiallyFilled, ev.OrderFilled)):
            if isinstance(e, ev.OrderFilled):
                state: OrderState | None = OrderState.DONE
            else:
                state = OrderState.WORKING if order.state is OrderState.PENDING else None
            p = p.with_fill(order, e.fill, e.cumulative_qty, state)
        elif isinstance(e, (ev.OrderCancelled, ev.OrderExpired)):
            reported = max(order.reported_qty, e.filled_qty)
            p = p.with_order(evolve(order, state=OrderState.DONE, reported_qty=reported))
        elif isinstance(e, ev.OrderStatusReported):
            for fill in e.fills:
                p = p.with_fill(p.require_order(e.cid), fill, None)
            order = p.require_order(e.cid)
            # a stale answer never revives an order we already know is done
            done = e.status.is_terminal or order.state is OrderState.DONE
            state = OrderState.DONE if done else OrderState.WORKING
            p = p.with_order(evolve(order, state=state, reported_qty=max(order.reported_qty, e.filled_qty)))
        elif isinstance(e, ev.OrderNotFound):
            p = p.with_order(evolve(order, state=OrderState.DONE))
        elif isinstance(e, ev.OrderOutcomeUnknown) and order.working:
            p = p.with_order(evolve(order, state=OrderState.UNKNOWN))
        return p


OrderReport = (
    ev.OrderAccepted
    | ev.OrderRejected
    | ev.OrderPartiallyFilled
    | ev.OrderFilled
    | ev.OrderCancelled
    | ev.OrderExpired
    | ev.OrderOutcomeUnknown
    | ev.OrderStatusReported
    | ev.OrderNotFound
)
