"""The orders a position sends: placing, cancelling, reducing legs to a level, alerts.

Mechanics only (which order, how large, with which client order id); *when* to send them is decided
by the guards next to the transition table in :mod:`fundarb.core.position`.
"""

from __future__ import annotations

from decimal import Decimal

from fundarb.core.client_ids import make_client_order_id
from fundarb.core.commands import Alert, CancelOrder, Command, OrderPurpose, PlaceOrder, Severity
from fundarb.core.evolve import evolve
from fundarb.core.model import ZERO, OrderRequest, OrderType, TimeInForce
from fundarb.core.position_model import Leg, OrderState, Position, TrackedOrder

__all__ = ["alert", "cancel_increasing", "place", "projected", "reduce_to"]

Result = tuple[Position, list[Command]]


def place(p: Position, leg: Leg, purpose: OrderPurpose, qty: Decimal, limit: Decimal | None = None) -> Result:
    """Track and emit a new order on ``leg``: a limit at ``limit`` (entry), else a market order
    (reduce-only when it reduces a perpetual leg). The client order id is the next in sequence."""
    spec = p.plan.leg(leg)
    side = spec.side if purpose.increases else spec.side.opposite
    cid = make_client_order_id(p.id, leg.value, p.next_seq)
    inst = spec.instrument
    if limit is not None:
        request = OrderRequest(
            cid,
            inst.id,
            side,
            qty,
            inst.round_price(limit, side),
            OrderType.LIMIT,
            p.plan.entry_time_in_force,
        )
    else:
        reduce_only = not purpose.increases and inst.is_perpetual
        request = OrderRequest(cid, inst.id, side, qty, None, OrderType.MARKET, TimeInForce.IOC, reduce_only)
    order = TrackedOrder(cid, leg, purpose, side, qty)
    p = evolve(p, orders=(*p.orders, order), next_seq=p.next_seq + 1)
    return p, [PlaceOrder(p.id, leg.value, purpose, request, p.reference_price, p.failed_attempts)]


def alert(p: Position, severity: Severity, message: str) -> Alert:
    """An alert carrying the position's current unhedged quantity."""
    return Alert(p.id, severity, message, p.unhedged_qty)


# --- what each state does next (the guards) -------------------------------------------------------


def cancel_increasing(p: Position) -> Result:
    """Cancel every working order that would grow a leg (once each; unknown ones are queried instead)."""
    cmds: list[Command] = []
    for o in p.working(increases=True):
        if not o.cancel_requested and o.state is not OrderState.UNKNOWN:
            p = p.with_order(evolve(o, cancel_requested=True))
            cmds.append(CancelOrder(p.id, o.leg.value, p.plan.leg(o.leg).instrument.id, o.cid))
    return p, cmds


def reduce_to(
    p: Position, levels: dict[Leg, Decimal], purpose: OrderPurpose
) -> tuple[Position, list[Command], bool]:
    """Place orders bringing each leg down to its level; report whether anything is still to do."""
    cmds: list[Command] = []
    pending = False
    for leg, level in levels.items():
        reducing = sum((o.remaining for o in p.working(leg, increases=False)), ZERO)
        need = p.held(leg) - level - reducing
        qty = p.tradable(leg, need)
        if qty <= 0:
            continue
        if p.failed_attempts >= p.plan.max_attempts:
            pending = True
            continue
        p, placed = place(p, leg, purpose, qty)
        cmds += placed
    return p, cmds, pending


def projected(p: Position, leg: Leg) -> Decimal:
    """What ``leg`` will hold once its working reducing orders fill."""
    return p.held(leg) - sum((o.remaining for o in p.working(leg, increases=False)), ZERO)
