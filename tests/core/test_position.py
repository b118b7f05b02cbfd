"""The position state machine: one test per table rule, then behaviour of the main paths."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from fundarb.core import events as ev
from fundarb.core.commands import Alert, ArmTimer, CancelOrder, OrderPurpose, QueryOrder, Severity
from fundarb.core.errors import TransitionError
from fundarb.core.model import FundingPayment, OrderStatus, OrderType, Side, TimeInForce
from fundarb.core.position import TRANSITIONS, Position, PositionState, check_invariant, step
from fundarb.core.position_model import Leg, LegSpec, PositionPlan

from .factories import (
    PERP,
    PRICE,
    SAMPLES,
    SPOT,
    fill_for,
    fill_order,
    hedge_pending,
    hedged,
    opening,
    placed,
    plan,
    run,
    venue_fill,
)

S = PositionState


def _some_order(p: Position):
    working = p.working()
    return working[-1] if working else p.orders[-1]


def _event_for(event_type: type, p: Position) -> object:
    """A plausible event of ``event_type`` for sample position ``p``."""
    if event_type is ev.EntrySignalled:
        return ev.EntrySignalled(PRICE, PRICE)
    if event_type in (ev.ExitSignalled,):
        return ev.ExitSignalled("edge gone")
    if event_type is ev.ReduceRequested:
        return ev.ReduceRequested(D("0.05"), "margin")
    if event_type is ev.OperatorKilled:
        return ev.OperatorKilled("operator")
    if event_type is ev.OperatorResolved:
        return ev.OperatorResolved("flattened by hand")
    if event_type is ev.HedgeTimedOut:
        return ev.HedgeTimedOut()
    if event_type is ev.VenueDisconnected:
        return ev.VenueDisconnected("sim", "socket closed")
    if event_type is ev.ResyncRequested:
        return ev.ResyncRequested("reconnect")
    if event_type is ev.RiskBreached:
        return ev.RiskBreached(ev.RiskKind.MARGIN, "ratio 0.8")
    if event_type is ev.VenueFillReceived:
        return ev.VenueFillReceived(venue_fill(p, Leg.A, "0.01"))
    if event_type is ev.PositionDrifted:
        return ev.PositionDrifted("A", D("0.05"))
    if event_type is ev.CleanupExpired:
        return ev.CleanupExpired("deadline")
    if event_type is ev.FundingPaid:
        return ev.FundingPaid(FundingPayment(PERP.id, "f1", D("1.5"), "USDT", 1))
    o = _some_order(p)
    lot = p.plan.leg(o.leg).instrument.lot_step
    qty = max(lot, (o.quantity - o.filled) / 2 // lot * lot)
    return {
        ev.OrderAccepted: lambda: ev.OrderAccepted(o.cid, "v1"),
        ev.OrderRejected: lambda: ev.OrderRejected(o.cid, "rejected", "-2019"),
        ev.OrderPartiallyFilled: lambda: ev.OrderPartiallyFilled(o.cid, fill_for(p, o.cid, qty)),
        ev.OrderFilled: lambda: ev.OrderFilled(o.cid, fill_for(p, o.cid, max(lot, o.quantity - o.filled))),
        ev.OrderCancelled: lambda: ev.OrderCancelled(o.cid, o.filled),
        ev.OrderExpired: lambda: ev.OrderExpired(o.cid, o.filled),
        ev.OrderOutcomeUnknown: lambda: ev.OrderOutcomeUnknown(o.cid, "timeout"),
        ev.OrderStatusReported: lambda: ev.OrderStatusReported(o.cid, OrderStatus.NEW, o.filled),
        ev.OrderNotFound: lambda: ev.OrderNotFound(o.cid),
    }[event_type]()


@pytest.mark.parametrize("rule", TRANSITIONS, ids=lambda r: f"{r.source.name}-{r.event.__name__}")
def test_every_rule_lands_on_a_declared_target(rule):
    p = SAMPLES[rule.source]()
    new, commands = step(p, _event_for(rule.event, p), 10_000)  # type: ignore[arg-type]
    assert new.state in rule.targets
    if rule.source is S.CLOSED:
        assert new.state is S.CLOSED
    if new.state is S.FAILED and rule.source is not S.FAILED:
        assert any(isinstance(c, Alert) and c.severity is Severity.CRITICAL for c in commands)
    if rule.event is ev.OrderOutcomeUnknown:
        assert any(isinstance(c, QueryOrder) for c in commands)


def test_missing_pairs_raise_naming_state_and_event():
    with pytest.raises(TransitionError, match=r"PLANNED.*OrderAccepted"):
        step(Position(plan()), ev.OrderAccepted("fa.p1.A.1"), 0)
    with pytest.raises(TransitionError, match=r"HEDGED.*OperatorResolved"):
        step(hedged(), ev.OperatorResolved("x"), 0)


def test_unknown_client_order_id_is_an_error():
    with pytest.raises(TransitionError, match=r"fa\.p1\.A\.9"):
        step(opening(), ev.OrderAccepted("fa.p1.A.9"), 0)


def test_happy_path_places_leg_a_then_hedge():
    p, cmds = run(Position(plan()), ev.EntrySignalled(PRICE, D("30000.07")))
    (entry,) = placed(cmds)
    assert entry.request.instrument == PERP.id and entry.request.side is Side.SELL
    assert entry.request.order_type is OrderType.LIMIT and entry.request.time_in_force is TimeInForce.IOC
    assert entry.request.price == D("30000.1")  # a sell rounds up to the tick (passive)
    assert entry.request.client_order_id == "fa.p1.A.1"
    p, cmds = run(p, ev.OrderAccepted("fa.p1.A.1"), ev.OrderFilled("fa.p1.A.1", fill_for(p, "fa.p1.A.1", "0.1")))
    (hedge,) = placed(cmds)
    assert hedge.purpose is OrderPurpose.HEDGE and hedge.request.instrument == SPOT.id
    assert hedge.request.side is Side.BUY and hedge.request.quantity == D("0.1")
    assert hedge.request.order_type is OrderType.MARKET
    assert any(isinstance(c, ArmTimer) and c.deadline_ms == 5000 for c in cmds)
    assert p.state is S.HEDGE_PENDING
    p = fill_order(p, "fa.p1.B.2")
    assert p.state is S.HEDGED and p.unhedged_qty == 0 and p.hedge_deadline_ms is None


def test_partial_fills_are_hedged_incrementally():
    p = opening()
    p, cmds = run(p, ev.OrderPartiallyFilled("fa.p1.A.1", fill_for(p, "fa.p1.A.1", "0.04")))
    assert p.state is S.OPENING_LEG_A
    assert [c.request.quantity for c in placed(cmds)] == [D("0.04")]
    p, cmds = run(p, ev.OrderFilled("fa.p1.A.1", fill_for(p, "fa.p1.A.1", "0.06")))
    assert [c.request.quantity for c in placed(cmds)] == [D("0.06")]
    assert p.state is S.HEDGE_PENDING
    p = fill_order(fill_order(p, "fa.p1.B.2"), "fa.p1.B.3")
    assert p.state is S.HEDGED and p.held(Leg.B) == D("0.1")


def test_fill_below_the_hedge_minimum_is_dust_then_given_back():
    spot_first = PositionPlan("p2", LegSpec(SPOT, Side.BUY, D("0.1")), LegSpec(PERP, Side.SELL, D("0.1")))
    p, _ = run(Position(spot_first), ev.EntrySignalled(PRICE, PRICE), ev.OrderAccepted("fa.p2.A.1"))
    p, cmds = run(p, ev.OrderPartiallyFilled("fa.p2.A.1", fill_for(p, "fa.p2.A.1", "0.002")))
    assert placed(cmds) == [] and p.dust == D("0.002")  # $60 < the perp's $100 minimum: tracked dust
    assert check_invariant(p, alerted=False) is None
    p, cmds = run(p, ev.OrderExpired("fa.p2.A.1", D("0.002")))
    assert p.state is S.UNWINDING
    (give_back,) = placed(cmds)
    assert give_back.request.side is Side.SELL and give_back.request.quantity == D("0.002")
    p = fill_order(p, give_back.request.client_order_id)
    assert p.state is S.CLOSED and p.held(Leg.A) == 0


def test_duplicate_fill_is_counted_once():
    p = opening()
    f = fill_for(p, "fa.p1.A.1", "0.04", trade_id="T1")
    p, cmds = run(p, ev.OrderPartiallyFilled("fa.p1.A.1", f), ev.OrderPartiallyFilled("fa.p1.A.1", f))
    assert p.held(Leg.A) == D("0.04") and len(placed(cmds)) == 1


def test_cancelled_then_filled_with_final_quantity_is_not_double_counted():
    p = opening()
    p, _ = run(p, ev.OrderCancelled("fa.p1.A.1", D("0.03")))
    assert p.held(Leg.A) == D("0.03")
    p, cmds = run(p, ev.OrderFilled("fa.p1.A.1", fill_for(p, "fa.p1.A.1", "0.03")))
    assert p.held(Leg.A) == D("0.03") and placed(cmds) == []


def test_cancelled_then_filled_late_is_hedged():
    p = opening()
    p, _ = run(p, ev.OrderCancelled("fa.p1.A.1", D("0")))
    assert p.state is S.CLOSED  # nothing filled, nothing working
    p2 = opening()
    p2, _ = run(p2, ev.OrderCancelled("fa.p1.A.1", D("0")), ev.OrderAccepted("fa.p1.A.1"))
    # a stale report must not revive the cancelled order
    assert p2.state is S.CLOSED


def test_fill_after_close_alerts_and_stays_closed():
    p = opening()
    p, _ = run(p, ev.OrderCancelled("fa.p1.A.1", D("0")))
    p, cmds = run(p, ev.OrderFilled("fa.p1.A.1", fill_for(p, "fa.p1.A.1", "0.05")))
    assert p.state is S.CLOSED
    assert any(isinstance(c, Alert) and c.severity is Severity.CRITICAL for c in cmds)


def test_hedge_rejected_unwinds_leg_a():
    p, cmds = run(hedge_pending(), ev.OrderRejected("fa.p1.B.2", "insufficient balance", "-2010"))
    assert p.state is S.UNWINDING
    (unwind,) = placed(cmds)
    assert unwind.request.instrument == PERP.id and unwind.request.side is Side.BUY
    assert unwind.request.reduce_only and unwind.request.quantity == D("0.1")
    p = fill_order(p, unwind.request.client_order_id)
    assert p.state is S.CLOSED and p.held(Leg.A) == 0


def test_retryable_hedge_rejection_retries_the_hedge():
    p, cmds = run(hedge_pending(), ev.OrderRejected("fa.p1.B.2", "rate limited", "429", retryable=True))
    assert p.state is S.HEDGE_PENDING
    (retry,) = placed(cmds)
    assert retry.purpose is OrderPurpose.HEDGE and retry.request.client_order_id == "fa.p1.B.3"


def test_hedge_timeout_unwinds_and_a_stale_timer_is_ignored():
    p = hedge_pending()
    early, cmds = step(p, ev.HedgeTimedOut(), 4999)
    assert early.state is S.HEDGE_PENDING and cmds == []
    late, cmds = step(p, ev.HedgeTimedOut(), 5000)
    assert late.state is S.UNWINDING
    assert any(isinstance(c, CancelOrder) and c.cid == "fa.p1.B.2" for c in cmds)
    assert any(c.purpose is OrderPurpose.UNWIND for c in placed(cmds))


def test_outcome_unknown_queries_and_a_report_resolves_it():
    p = hedge_pending()
    p, cmds = run(p, ev.OrderOutcomeUnknown("fa.p1.B.2", "timeout"))
    assert cmds == [QueryOrder("p1", "B", SPOT.id, "fa.p1.B.2")]
    assert p.state is S.HEDGE_PENDING and placed(cmds) == []  # never re-send blindly
    p, _ = run(
        p, ev.OrderStatusReported("fa.p1.B.2", OrderStatus.FILLED, D("0.1"), (fill_for(p, "fa.p1.B.2", "0.1"),))
    )
    assert p.state is S.HEDGED


def test_order_not_found_sends_a_new_hedge():
    p, _ = run(hedge_pending(), ev.OrderOutcomeUnknown("fa.p1.B.2", "timeout"))
    p, cmds = run(p, ev.OrderNotFound("fa.p1.B.2"))
    (again,) = placed(cmds)
    assert again.request.client_order_id == "fa.p1.B.3" and again.request.quantity == D("0.1")


def test_venue_disconnect_mid_hedge_unwinds_but_not_when_hedged():
    p, cmds = run(hedge_pending(), ev.VenueDisconnected("sim", "socket closed"))
    assert p.state is S.UNWINDING and placed(cmds)
    h, cmds = run(hedged(), ev.VenueDisconnected("sim"))
    assert h.state is S.HEDGED and cmds == []
    other, _ = run(hedge_pending(), ev.VenueDisconnected("binance"))
    assert other.state is S.HEDGE_PENDING


def test_adl_on_the_perp_leg_rehedges_the_spot_leg():
    p = hedged()
    p, cmds = run(p, ev.VenueFillReceived(venue_fill(p, Leg.A, "0.04")))
    assert p.state is S.REBALANCING
    (sell,) = placed(cmds)
    assert sell.request.instrument == SPOT.id and sell.request.side is Side.SELL
    assert sell.request.quantity == D("0.04")
    p = fill_order(p, sell.request.client_order_id)
    assert p.state is S.HEDGED and p.held(Leg.A) == p.held(Leg.B) == D("0.06")


def test_exit_in_lock_step_slices():
    p = attrs.evolve(hedged(), plan=plan(slice_qty="0.04"))
    p, cmds = run(p, ev.ExitSignalled("edge gone"))
    slices = []
    while placed(cmds):
        round_ = placed(cmds)
        assert sorted(c.leg for c in round_) == ["A", "B"]
        assert all(c.purpose is OrderPurpose.EXIT for c in round_)
        slices.append(round_[0].request.quantity)
        first, second = round_
        cid1, cid2 = first.request.client_order_id, second.request.client_order_id
        p, more = step(p, ev.OrderFilled(cid1, fill_for(p, cid1, first.request.quantity)), 0)
        assert placed(more) == []  # lock-step: the next slice waits for the other leg
        p, cmds = step(p, ev.OrderFilled(cid2, fill_for(p, cid2, second.request.quantity)), 0)
    assert slices == [D("0.04"), D("0.04"), D("0.02")]
    assert p.state is S.CLOSED and p.held(Leg.A) == p.held(Leg.B) == 0


def test_reduce_requested_goes_back_to_hedged_at_the_lower_level():
    p, cmds = run(hedged(), ev.ReduceRequested(D("0.03"), "liquidation distance"))
    assert p.state is S.CLOSING and p.exit_target == D("0.07")
    for c in placed(cmds):
        assert c.request.quantity == D("0.03")
        p = fill_order(p, c.request.client_order_id)
    assert p.state is S.HEDGED and p.held(Leg.A) == D("0.07")


def test_failed_alerts_and_an_operator_resolves_or_kills():
    from .factories import failed

    p = failed()
    assert p.state is S.FAILED and "gave up" in p.reason
    resolved, _ = run(p, ev.OperatorResolved("flattened by hand"))
    assert resolved.state is S.CLOSED
    killed, cmds = run(p, ev.OperatorKilled("retry"))
    assert killed.state is S.UNWINDING and placed(cmds)


def test_funding_is_counted_once():
    pay = FundingPayment(PERP.id, "F1", D("2.5"), "USDT", 1)
    p, _ = run(hedged(), ev.FundingPaid(pay), ev.FundingPaid(pay))
    assert p.funding == D("2.5")


def test_resync_queries_every_working_order_then_resumes():
    p, cmds = run(hedge_pending(), ev.ResyncRequested("restart"))
    assert p.state is S.RECONCILING
    assert cmds == [QueryOrder("p1", "B", SPOT.id, "fa.p1.B.2")]
    p, _ = run(p, ev.OrderStatusReported("fa.p1.B.2", OrderStatus.NEW, D(0)))
    assert p.state is S.HEDGE_PENDING
    p, _ = run(p, ev.ResyncRequested("again"), ev.OrderNotFound("fa.p1.B.2"))
    assert p.state is S.HEDGE_PENDING and p.order("fa.p1.B.3") is not None


def test_entry_below_the_venue_minimum_closes_at_once():
    p, cmds = run(Position(plan("0.001")), ev.EntrySignalled(PRICE, PRICE))
    assert p.state is S.CLOSED and cmds == []  # 0.001 BTC = $30 < the perp's $100 minimum


def test_risk_breach_closes_a_hedged_position_but_stale_data_alone_does_not():
    p, _ = run(hedged(), ev.RiskBreached(ev.RiskKind.LIQUIDATION_DISTANCE, "5%"))
    assert p.state is S.CLOSING
    q, _ = run(hedged(), ev.RiskBreached(ev.RiskKind.STALE_DATA))
    assert q.state is S.HEDGED
    r, _ = run(hedge_pending(), ev.RiskBreached(ev.RiskKind.STALE_DATA))
    assert r.state is S.UNWINDING


def test_plan_validation():
    with pytest.raises(ValueError, match="opposite"):
        PositionPlan("p", LegSpec(PERP, Side.SELL, D("1")), LegSpec(SPOT, Side.SELL, D("1")))
    with pytest.raises(ValueError, match="position_id"):
        PositionPlan("p-1", LegSpec(PERP, Side.SELL, D("1")), LegSpec(SPOT, Side.BUY, D("1")))
