"""The gate and the monitors against the real position machine: every order it emits, checked the
way the engine will check it, through entry, hedge, ADL re-hedge and the kill switch."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from fundarb.core import events as ev
from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.errors import InvalidValue
from fundarb.core.model import Fill, Side
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg
from fundarb.core.risk import (
    DAY_MS,
    DailyPnl,
    Exposure,
    OrderIntent,
    RiskBook,
    RiskLimits,
    RiskReason,
    exposures_of,
)
from fundarb.core.risk_manager import RiskManager, RiskManagerConfig
from fundarb.core.risk_modes import ModeScope, TradingMode
from tests.core.factories import PERP, PRICE, SPOT, fill_for, hedged, plan, venue_fill

NOW = 20_000 * DAY_MS
LIMITS = RiskLimits.from_capital(D(100_000), D(3), D(20_000), 4, D(2000))
MARKS = {PERP.id: PRICE, SPOT.id: PRICE}


def book_of(*positions: Position, exclude_cid: str | None = None) -> RiskBook:
    exposures: tuple[Exposure, ...] = ()
    for p in positions:
        exposures += exposures_of(p, MARKS, exclude_cid=exclude_cid)
    return RiskBook(exposures, D(100_000), DailyPnl.start(NOW), {"BTC": D("0.05")})


def intent_for(cmd: PlaceOrder, p: Position) -> OrderIntent:
    other = Leg.B if cmd.leg == "A" else Leg.A
    return OrderIntent.from_command(
        cmd, "BTC", leverage=D(3), hedge_instrument=p.plan.leg(other).instrument.id
    )


def orders(cmds: list[object]) -> list[PlaceOrder]:
    return [c for c in cmds if isinstance(c, PlaceOrder)]


def test_entry_and_hedge_pass_and_the_hedge_passes_even_reducing() -> None:
    risk = RiskManager(RiskManagerConfig(LIMITS))
    p, cmds = step(Position(plan()), ev.EntrySignalled(PRICE, PRICE), NOW)
    (entry,) = orders(cmds)
    assert entry.purpose is OrderPurpose.ENTRY
    d = risk.check(intent_for(entry, p), book_of(p, exclude_cid=entry.request.client_order_id), NOW)
    assert d.reason is RiskReason.ALLOWED
    # without the exclusion the book carries the order itself as pending (it would count twice)
    assert book_of(p).gross() == D("0.1") * PRICE
    assert book_of(p, exclude_cid=entry.request.client_order_id).gross() == 0
    p, _ = step(p, ev.OrderAccepted(entry.request.client_order_id), NOW)
    p, cmds = step(p, ev.OrderFilled(entry.request.client_order_id, _fill(p, entry)), NOW)
    (hedge,) = orders(cmds)
    assert hedge.purpose is OrderPurpose.HEDGE
    risk.operator_set(ModeScope.GLOBAL, TradingMode.REDUCING, NOW, "storm")
    d = risk.check(intent_for(hedge, p), book_of(p, exclude_cid=hedge.request.client_order_id), NOW)
    assert (d.allowed, d.reason) == (True, RiskReason.REDUCES_RISK)
    # a second position's entry is refused in REDUCING
    p2, cmds = step(Position(plan(pid="p2")), ev.EntrySignalled(PRICE, PRICE), NOW)
    (entry2,) = orders(cmds)
    assert (
        risk.check(intent_for(entry2, p2), book_of(p, p2, exclude_cid="x"), NOW).reason
        is RiskReason.MODE_REDUCING
    )


def _fill(p: Position, cmd: PlaceOrder) -> Fill:
    return fill_for(p, cmd.request.client_order_id, cmd.request.quantity)


def test_adl_rehedge_matches_what_the_position_machine_does() -> None:
    risk = RiskManager(RiskManagerConfig(LIMITS))
    p = hedged()
    before = exposures_of(p, MARKS)
    assert [(e.instrument, e.quantity) for e in before] == [(PERP.id, D("-0.1")), (SPOT.id, D("0.1"))]
    fill = venue_fill(p, Leg.A, "0.04")
    rehedge = risk.on_venue_fill(fill, before)
    assert rehedge is not None
    assert (rehedge.instrument, rehedge.side, rehedge.quantity) == (SPOT.id, Side.SELL, D("0.04"))
    p, cmds = step(p, ev.VenueFillReceived(fill), NOW)
    assert p.state is PositionState.REBALANCING
    (order,) = orders(cmds)
    assert (order.request.instrument, order.request.side, order.request.quantity) == (
        rehedge.instrument,
        rehedge.side,
        rehedge.quantity,
    )
    # and the gate lets that re-hedge through even when everything is REDUCING
    risk.operator_set(ModeScope.GLOBAL, TradingMode.REDUCING, NOW, "storm")
    book = book_of(p, exclude_cid=order.request.client_order_id)
    assert risk.check(intent_for(order, p), book, NOW).allowed


def test_after_the_kill_switch_only_the_machines_unwind_orders_pass() -> None:
    risk = RiskManager(RiskManagerConfig(LIMITS))
    risk.kill("operator", NOW)
    p = hedged()
    p, cmds = step(p, ev.OperatorKilled("operator"), NOW)
    placed = orders(cmds)
    assert placed and all(c.purpose is OrderPurpose.UNWIND for c in placed)
    for c in placed:
        d = risk.check(intent_for(c, p), book_of(p, exclude_cid=c.request.client_order_id), NOW)
        assert (d.allowed, d.reason, d.mode) == (True, RiskReason.UNWIND, TradingMode.HALTED)
    # a fresh entry is refused
    p2, cmds = step(Position(plan(pid="p2")), ev.EntrySignalled(PRICE, PRICE), NOW)
    (entry,) = orders(cmds)
    assert risk.check(intent_for(entry, p2), book_of(p, p2), NOW).reason is RiskReason.MODE_HALTED


def test_exposures_need_a_price() -> None:
    h = hedged()
    p = Position(h.plan, h.state, h.orders, h.trade_keys)  # the same legs, no reference price
    assert p.reference_price is None
    with pytest.raises(InvalidValue, match="no mark price"):
        exposures_of(p, {})
    assert len(exposures_of(p, MARKS)) == 2


def test_exposures_carry_working_orders_both_ways() -> None:
    p, _ = step(hedged(), ev.ExitSignalled("edge gone"), NOW)
    assert p.state is PositionState.CLOSING
    working = p.working(increases=False)
    assert working
    exposures = {e.instrument: e for e in exposures_of(p, MARKS)}
    for o in working:
        leg_inst = p.plan.leg(o.leg).instrument.id
        assert exposures[leg_inst].reducing == o.remaining
        assert exposures[leg_inst].reducible == D("0.1") - o.remaining
        without = {e.instrument: e for e in exposures_of(p, MARKS, exclude_cid=o.cid)}
        assert without[leg_inst].reducing == 0
