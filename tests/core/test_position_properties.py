"""Hypothesis drives the position machine against a model venue that misbehaves like real ones:
late, duplicated and reordered reports, lost acknowledgements, cancel-then-fill, ADL, restarts.

After every step it checks the machine's promises: the exposure invariant, nothing leaves
CLOSED, no leg opens more than its target, and every outcome-unknown is answered by a query.
"""

from __future__ import annotations

from decimal import Decimal as D

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fundarb.core import events as ev
from fundarb.core.commands import Alert, CancelOrder, PlaceOrder, QueryOrder, Severity
from fundarb.core.model import Fill, FundingPayment, Liquidity, OrderStatus
from fundarb.core.position import Position, PositionState, check_invariant, step
from fundarb.core.position_model import Leg

from .factories import PERP, PRICE, plan, venue_fill

S = PositionState


@attrs.define
class VenueOrder:
    """The venue's truth about one of our orders."""

    cid: str
    leg: Leg
    quantity: D
    arrived: bool = True  # False: the request was lost before reaching the venue
    live: bool = False  # accepted and may fill
    done: bool = False
    filled: D = D(0)
    fills: list[Fill] = attrs.Factory(list)


class PositionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pos, _ = step(Position(plan("0.1")), ev.EntrySignalled(PRICE, PRICE), 0)
        self.now = 0
        self.alerted = False
        self.venue: dict[str, VenueOrder] = {}
        self.unacked: list[str] = []  # placed, venue has not answered yet
        self.outbox: list[object] = []  # events delivered late, in any order
        self.queries: list[str] = []
        self.trade = 0
        self._take([c for c in self._initial_commands()])

    def _initial_commands(self):
        o = self.pos.orders[0]
        return [PlaceOrder(self.pos.id, "A", o.purpose, _dummy_request(self.pos, o))]

    # --- plumbing ---

    def _take(self, commands: list) -> None:
        for c in commands:
            if isinstance(c, PlaceOrder):
                o = self.pos.require_order(c.request.client_order_id)
                self.venue[o.cid] = VenueOrder(o.cid, o.leg, c.request.quantity)
                self.unacked.append(o.cid)
            elif isinstance(c, QueryOrder):
                self.queries.append(c.cid)
            elif isinstance(c, CancelOrder):
                v = self.venue[c.cid]
                if v.live:
                    v.live, v.done = False, True
                    self.outbox.append(ev.OrderCancelled(c.cid, v.filled))
                else:
                    self.queries.append(c.cid)  # cancel rejected: the shell asks what happened
            elif isinstance(c, Alert) and c.severity is Severity.CRITICAL:
                self.alerted = True

    def _send(self, event: object) -> list:
        before = self.pos.state
        opened_before = (self.pos.opened(Leg.A), self.pos.opened(Leg.B))
        self.pos, cmds = step(self.pos, event, self.now)  # type: ignore[arg-type]
        if before is S.CLOSED:
            assert self.pos.state is S.CLOSED, "left CLOSED"
        if isinstance(event, ev.OrderOutcomeUnknown):
            assert any(isinstance(c, QueryOrder) and c.cid == event.cid for c in cmds)
        assert self.pos.opened(Leg.A) <= self.pos.plan.leg_a.target_qty
        assert self.pos.opened(Leg.B) <= self.pos.plan.leg_b.target_qty
        assert self.pos.opened(Leg.A) >= opened_before[0] or isinstance(event, ev.OrderNotFound)
        if self.pos.state is S.FAILED and before is not S.FAILED:
            assert any(isinstance(c, Alert) for c in cmds)
        self._take(cmds)
        return cmds

    def _live(self) -> list[VenueOrder]:
        return [v for v in self.venue.values() if v.live]

    # --- the venue answers placements ---

    @precondition(lambda self: self.unacked)
    @rule(data=st.data(), outcome=st.sampled_from(["accept", "reject", "retryable", "lost_ack", "lost"]))
    def answer_placement(self, data, outcome):
        cid = data.draw(st.sampled_from(self.unacked))
        self.unacked.remove(cid)
        v = self.venue[cid]
        if outcome == "accept":
            v.live = True
            self._send(ev.OrderAccepted(cid, f"v-{cid}"))
        elif outcome in ("reject", "retryable"):
            v.done = True
            self._send(ev.OrderRejected(cid, "rejected", "-2010", retryable=outcome == "retryable"))
        elif outcome == "lost_ack":  # placed at the venue, the answer never came
            v.live = True
            self._send(ev.OrderOutcomeUnknown(cid, "timeout"))
        else:  # never reached the venue
            v.arrived, v.done = False, True
            self._send(ev.OrderOutcomeUnknown(cid, "connect error"))

    @precondition(lambda self: any(v.live for v in self.venue.values()))
    @rule(
        data=st.data(),
        fraction=st.sampled_from([D("0.25"), D("0.5"), D("1")]),
        late=st.booleans(),
        final=st.booleans(),
    )
    def venue_fills(self, data, fraction, late, final):
        v = data.draw(st.sampled_from(self._live()))
        inst = self.pos.plan.leg(v.leg).instrument
        remaining = v.quantity - v.filled
        qty = remaining if final else inst.round_qty(remaining * fraction)
        if qty <= 0:
            return
        self.trade += 1
        o = self.pos.require_order(v.cid)
        f = Fill(
            inst.id, v.cid, None, f"T{self.trade}", o.side, qty, PRICE, D("0.01"), "USDT", Liquidity.TAKER, 1
        )
        v.filled += qty
        v.fills.append(f)
        complete = v.filled == v.quantity
        if complete:
            v.live, v.done = False, True
        event = (ev.OrderFilled if complete else ev.OrderPartiallyFilled)(v.cid, f, v.filled)
        if late:
            self.outbox.append(event)
        else:
            self._send(event)

    @precondition(lambda self: any(v.live for v in self.venue.values()))
    @rule(data=st.data())
    def venue_expires_ioc(self, data):
        v = data.draw(st.sampled_from(self._live()))
        v.live, v.done = False, True
        self._send(ev.OrderExpired(v.cid, v.filled))

    @precondition(lambda self: self.outbox)
    @rule(data=st.data(), duplicate=st.booleans())
    def deliver_late(self, data, duplicate):
        i = data.draw(st.integers(0, len(self.outbox) - 1))
        event = self.outbox[i] if duplicate else self.outbox.pop(i)
        self._send(event)

    @precondition(lambda self: self.queries)
    @rule(data=st.data())
    def answer_query(self, data):
        cid = data.draw(st.sampled_from(self.queries))
        self.queries.remove(cid)
        v = self.venue[cid]
        if not v.arrived:
            self._send(ev.OrderNotFound(cid))
            return
        if cid in self.unacked:  # the venue has it; the placement answer is moot now
            self.unacked.remove(cid)
            v.live = not v.done
        status = (
            OrderStatus.NEW
            if v.live
            else (OrderStatus.FILLED if v.filled == v.quantity else OrderStatus.CANCELED)
        )
        self._send(ev.OrderStatusReported(cid, status, v.filled, tuple(v.fills)))

    # --- the world ---

    @rule(ms=st.integers(0, 6000))
    def time_passes(self, ms):
        self.now += ms
        if self.pos.state in (S.OPENING_LEG_A, S.HEDGE_PENDING):
            self._send(ev.HedgeTimedOut())

    @precondition(lambda self: self.pos.state is not S.PLANNED)
    @rule(which=st.sampled_from(["disconnect", "resync", "risk", "exit", "reduce", "funding", "kill"]))
    def outside_world(self, which):
        event = {
            "disconnect": ev.VenueDisconnected("sim", "socket closed"),
            "resync": ev.ResyncRequested("reconnect"),
            "risk": ev.RiskBreached(ev.RiskKind.MARGIN, "margin ratio"),
            "exit": ev.ExitSignalled("edge gone"),
            "reduce": ev.ReduceRequested(D("0.03"), "liquidation distance"),
            "funding": ev.FundingPaid(FundingPayment(PERP.id, f"F{self.now}", D("1"), "USDT", 1)),
            "kill": ev.OperatorKilled("operator"),
        }[which]
        if which == "kill" and self.pos.state is S.CLOSED:
            return
        self._send(event)

    @precondition(
        lambda self: self.pos.state in (S.HEDGED, S.CLOSING, S.REBALANCING) and self.pos.held(Leg.A) > 0
    )
    @rule(fraction=st.sampled_from([D("0.3"), D("1")]))
    def adl_hits_the_perp_leg(self, fraction):
        qty = PERP.round_qty(self.pos.held(Leg.A) * fraction)
        if qty > 0:
            self._send(ev.VenueFillReceived(venue_fill(self.pos, Leg.A, str(qty))))

    @precondition(lambda self: self.pos.state is S.FAILED)
    @rule()
    def operator_resolves(self):
        self._send(ev.OperatorResolved("checked by hand"))

    @invariant()
    def exposure_is_covered(self):
        problem = check_invariant(self.pos, self.alerted)
        assert problem is None, (problem, [(o.cid, o.purpose.value, o.state.value, str(o.filled)) for o in self.pos.orders], self.pos.resume_state)


def _dummy_request(p: Position, o):
    from fundarb.core.model import OrderRequest, OrderType, TimeInForce

    inst = p.plan.leg(o.leg).instrument
    return OrderRequest(o.cid, inst.id, o.side, o.quantity, PRICE, OrderType.LIMIT, TimeInForce.IOC)


PositionMachine.TestCase.settings = settings(
    max_examples=600, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestPositionMachine = PositionMachine.TestCase
