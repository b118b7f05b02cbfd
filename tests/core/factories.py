"""Builders for core tests: instruments, plans, fills and positions driven into each state."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

from fundarb.core import events as ev
from fundarb.core.commands import PlaceOrder
from fundarb.core.model import Fill, Instrument, InstrumentId, Liquidity, Market, Side, VenueFillKind
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg, LegSpec, PositionPlan

PERP = Instrument(
    InstrumentId("sim", Market.PERPETUAL, "BTCUSDT"),
    "BTC",
    "USDT",
    D("0.1"),
    D("0.001"),
    D("0.001"),
    D("100"),
)
SPOT = Instrument(
    InstrumentId("sim", Market.SPOT, "BTCUSDT"), "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5")
)
PRICE = D("30000")
_trade_ids = itertools.count(1)


def plan(qty: str = "0.1", pid: str = "p1", slice_qty: str | None = None) -> PositionPlan:
    """Short perp (leg A) against long spot (leg B)."""
    return PositionPlan(
        pid,
        LegSpec(PERP, Side.SELL, D(qty)),
        LegSpec(SPOT, Side.BUY, D(qty)),
        hedge_timeout_ms=5000,
        max_slice_qty=None if slice_qty is None else D(slice_qty),
    )


def fill_for(p: Position, cid: str, qty: D | str, trade_id: str | None = None, price: D = PRICE) -> Fill:
    """A fill of our order ``cid`` for ``qty``."""
    o = p.require_order(cid)
    inst = p.plan.leg(o.leg).instrument.id
    tid = trade_id or f"t{next(_trade_ids)}"
    return Fill(inst, cid, None, tid, o.side, D(qty), price, D("0.01"), "USDT", Liquidity.TAKER, 1)


def venue_fill(p: Position, leg: Leg, qty: str, kind: VenueFillKind = VenueFillKind.ADL) -> Fill:
    """A venue-generated fill reducing ``leg``."""
    spec = p.plan.leg(leg)
    tid = f"v{next(_trade_ids)}"
    return Fill(
        spec.instrument.id,
        "autoclose-1",
        None,
        tid,
        spec.side.opposite,
        D(qty),
        PRICE,
        D(0),
        "USDT",
        Liquidity.TAKER,
        1,
        kind,
    )


def placed(commands: list) -> list[PlaceOrder]:
    """The PlaceOrder commands in ``commands``."""
    return [c for c in commands if isinstance(c, PlaceOrder)]


def run(p: Position, *events: object, now: int = 0) -> tuple[Position, list]:
    """Apply ``events`` in order; return the last position and all commands."""
    out: list = []
    for e in events:
        p, cmds = step(p, e, now)  # type: ignore[arg-type]
        out += cmds
    return p, out


def fill_order(p: Position, cid: str, qty: D | str | None = None) -> Position:
    """Fill ``cid`` completely (or ``qty`` of it, completing it)."""
    o = p.require_order(cid)
    q = D(qty) if qty is not None else o.quantity - o.filled
    p, _ = step(p, ev.OrderFilled(cid, fill_for(p, cid, q)), 0)
    return p


def opening(qty: str = "0.1") -> Position:
    """OPENING_LEG_A with the entry order placed and accepted."""
    p, _ = run(Position(plan(qty)), ev.EntrySignalled(PRICE, PRICE), ev.OrderAccepted("fa.p1.A.1"))
    assert p.state is PositionState.OPENING_LEG_A
    return p


def hedge_pending() -> Position:
    """Leg A filled, hedge B working."""
    p = fill_order(opening(), "fa.p1.A.1")
    assert p.state is PositionState.HEDGE_PENDING, p.state
    return p


def hedged() -> Position:
    """Both legs filled 0.1."""
    p = fill_order(hedge_pending(), "fa.p1.B.2")
    assert p.state is PositionState.HEDGED, p.state
    return p


def closing() -> Position:
    p, _ = run(hedged(), ev.ExitSignalled("edge gone"))
    assert p.state is PositionState.CLOSING
    return p


def unwinding() -> Position:
    p, _ = run(hedge_pending(), ev.OrderRejected("fa.p1.B.2", "insufficient balance"))
    assert p.state is PositionState.UNWINDING, p.state
    return p


def rebalancing() -> Position:
    p, _ = run(hedged(), ev.VenueFillReceived(venue_fill(hedged(), Leg.A, "0.04")))
    assert p.state is PositionState.REBALANCING, p.state
    return p


def reconciling() -> Position:
    p, _ = run(opening(), ev.ResyncRequested("restart"))
    assert p.state is PositionState.RECONCILING
    return p


def failed() -> Position:
    p = unwinding()
    while p.state is PositionState.UNWINDING:
        cid = next(o.cid for o in p.working() if not o.purpose.increases)
        p, _ = run(p, ev.OrderRejected(cid, "reduce only rejected", "-2022"))
    assert p.state is PositionState.FAILED, p.state
    return p


def closed() -> Position:
    p = closing()
    for o in p.working():
        p = fill_order(p, o.cid)
    assert p.state is PositionState.CLOSED, p.state
    return p


SAMPLES = {
    PositionState.PLANNED: lambda: Position(plan()),
    PositionState.OPENING_LEG_A: opening,
    PositionState.HEDGE_PENDING: hedge_pending,
    PositionState.HEDGED: hedged,
    PositionState.CLOSING: closing,
    PositionState.UNWINDING: unwinding,
    PositionState.REBALANCING: rebalancing,
    PositionState.RECONCILING: reconciling,
    PositionState.FAILED: failed,
    PositionState.CLOSED: closed,
}
