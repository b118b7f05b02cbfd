"""A hedged position as a pure state machine: ``step(position, event, now_ms) -> (position, commands)``.

States (values are the names used in diagrams and the journal)::

    PLANNED ─entry─▶ OPENING_LEG_A ─A done─▶ HEDGE_PENDING ─B matches A─▶ HEDGED ─exit─▶ CLOSING ─▶ CLOSED
                          │  (partial fills of A are hedged at once, still OPENING_LEG_A)   │
                          └─ hedge rejected / timeout / venue died / risk ─▶ UNWINDING ─────┴─▶ CLOSED
    HEDGED ─liquidation, ADL, drift─▶ REBALANCING ─▶ HEDGED      any ─resync─▶ RECONCILING ─▶ (resume)
    anything that cannot finish on its own ─▶ FAILED (alert; an operator kills or resolves it)

Every transition lives in :data:`TRANSITIONS`, one :class:`Rule` per (state, event type). A rule
declares the states it may lead to; the guard that picks one of them is the rule's action, in
this module, and :func:`step` refuses an action that lands anywhere undeclared. The table is
checked when the module loads (:func:`validate_table`) and drawn into ``statecharts/`` by
:mod:`fundarb.core.render`, so the diagrams cannot drift from the code.

The machine's promise (checked by the property tests): outside HEDGED and CLOSED, whenever the
legs' held quantities differ by more than venue dust, an order that reduces the difference is
working, or the position is FAILED and an alert was emitted.
Example: ``step(Position(plan), EntrySignalled(price), now_ms)`` -> (OPENING_LEG_A, [PlaceOrder]).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import attrs

from fundarb.core import events as ev
from fundarb.core.commands import (
    Alert,
    ArmTimer,
    Command,
    OrderPurpose,
    QueryOrder,
    Severity,
)
from fundarb.core.errors import TransitionError
from fundarb.core.evolve import evolve
from fundarb.core.model import ZERO
from fundarb.core.position_checks import check_invariant, validate_table
from fundarb.core.position_model import Leg, OrderReport, OrderState, Position, PositionState
from fundarb.core.position_orders import alert, cancel_increasing, place, projected, reduce_to

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Position",
    "PositionState",
    "Rule",
    "check_invariant",
    "step",
    "validate_table",
]


S = PositionState
TERMINAL_STATES = frozenset({S.CLOSED})
_OPENING = (S.OPENING_LEG_A, S.HEDGE_PENDING)
_ACTIVE = (S.OPENING_LEG_A, S.HEDGE_PENDING, S.HEDGED, S.REBALANCING, S.CLOSING, S.UNWINDING, S.RECONCILING)
_WITH_ORDERS = (*_ACTIVE, S.FAILED, S.CLOSED)


Result = tuple[Position, list[Command]]
Action = Callable[[Position, Any, int], Result]


@attrs.frozen
class Rule:
    """One row of the transition table: in ``source``, on ``event``, ``action`` leads to one of
    ``targets``; ``guard`` says in words how the action chooses."""

    source: PositionState
    event: type
    targets: frozenset[PositionState]
    action: Action = attrs.field(eq=False, repr=False)
    guard: str = ""


# --- order bookkeeping ----------------------------------------------------------------------------


def _settle(p: Position, now: int) -> Result:
    """Place what the current state needs and move on when its goal is met."""
    if p.state in _OPENING:
        return _settle_opening(p, now)
    if p.state is S.UNWINDING:
        return _settle_unwinding(p)
    if p.state is S.CLOSING:
        return _settle_closing(p)
    if p.state is S.REBALANCING:
        return _settle_rebalancing(p)
    if p.state is S.HEDGED:
        diff = p.unhedged_qty
        larger = Leg.A if diff > 0 else Leg.B
        if diff != 0 and not p.is_dust(larger, diff):
            return _settle_rebalancing(evolve(p, state=S.REBALANCING))
        return p, []
    if p.state is S.RECONCILING:
        return _settle_reconciling(p, now)
    return p, []


def _settle_opening(p: Position, now: int) -> Result:
    cmds: list[Command] = []
    diff = p.unhedged_qty
    hedge_working = sum((o.remaining for o in p.working(Leg.B, increases=True)), ZERO)
    need = min(diff, p.opened(Leg.A) - p.opened(Leg.B)) - hedge_working
    qty = p.tradable(Leg.B, need)
    if qty > 0:
        p, placed = place(p, Leg.B, OrderPurpose.HEDGE, qty)
        cmds += placed
    naked = diff > 0 and not p.is_dust(Leg.B, diff)
    deadline = p.hedge_deadline_ms if naked else None
    if naked and deadline is None:
        deadline = now + p.plan.hedge_timeout_ms
        cmds.append(ArmTimer(p.id, deadline))
    if p.working(Leg.A, increases=True):
        return evolve(p, state=S.OPENING_LEG_A, hedge_deadline_ms=deadline), cmds
    if naked or p.working(Leg.B, increases=True):
        return evolve(p, state=S.HEDGE_PENDING, hedge_deadline_ms=deadline), cmds
    held_a, held_b = p.held(Leg.A), p.held(Leg.B)  # not naked from here: no hedge deadline
    if held_a == 0 and held_b == 0:
        return evolve(p, state=S.CLOSED, reason="entry not filled", hedge_deadline_ms=None), cmds
    if held_b == 0:  # leg A filled only dust: give it back rather than hold it naked
        why = "entry fill below hedge minimum"
        p2, more = _settle_unwinding(evolve(p, state=S.UNWINDING, reason=why, hedge_deadline_ms=None))
        return p2, cmds + more
    return evolve(p, state=S.HEDGED, hedge_deadline_ms=None), cmds


def _finish_or_fail(p: Position, cmds: list[Command], pending: bool, done: PositionState, why: str) -> Result:
    if pending:  # exposure we must trade away but may not try again: an operator's job now
        msg = f"{why}: gave up after {p.failed_attempts} rejected orders; legs A={p.held(Leg.A)} B={p.held(Leg.B)}"
        p = evolve(p, state=S.FAILED, reason=msg)
        return p, [*cmds, alert(p, Severity.CRITICAL, msg)]
    if p.working():
        return p, cmds
    p = evolve(p, state=done)
    if p.held(Leg.A) != p.held(Leg.B) or (done is S.CLOSED and p.held(Leg.A) > 0):
        cmds.append(alert(p, Severity.INFO, f"dust left: A={p.held(Leg.A)} B={p.held(Leg.B)}"))
    return p, cmds


def _settle_unwinding(p: Position) -> Result:
    p, cmds = cancel_increasing(p)
    p, placed, pending = reduce_to(p, {Leg.A: ZERO, Leg.B: ZERO}, OrderPurpose.UNWIND)
    return _finish_or_fail(p, cmds + placed, pending, S.CLOSED, "unwind")


def _settle_closing(p: Position) -> Result:
    p, cmds = cancel_increasing(p)
    low = min(p.held(Leg.A), p.held(Leg.B))
    if p.working(increases=False):  # a slice is under way: keep the legs level, nothing more
        level = max(ZERO, min(projected(p, Leg.A), projected(p, Leg.B)))
    else:  # lock-step: the next slice starts when both legs finished the last one
        step_qty = p.plan.max_slice_qty
        level = p.exit_target if step_qty is None else max(p.exit_target, low - step_qty)
    p, placed, pending = reduce_to(p, {Leg.A: level, Leg.B: level}, OrderPurpose.EXIT)
    if placed or (p.working() and not pending):
        return p, cmds + placed
    done = S.HEDGED if p.exit_target > 0 and low > 0 else S.CLOSED
    return _finish_or_fail(p, cmds, pending, done, "exit")


def _settle_rebalancing(p: Position) -> Result:
    level = max(ZERO, min(projected(p, Leg.A), projected(p, Leg.B)))
    p, placed, pending = reduce_to(p, {Leg.A: level, Leg.B: level}, OrderPurpose.REBALANCE)
    if placed or (p.working() and not pending):
        return p, placed
    low = min(p.held(Leg.A), p.held(Leg.B))
    return _finish_or_fail(p, [], pending, S.HEDGED if low > 0 else S.CLOSED, "rebalance")


def _settle_reconciling(p: Position, now: int) -> Result:
    resume = p.resume_state or S.HEDGED
    if any(o.state in (OrderState.UNKNOWN, OrderState.PENDING) for o in p.orders):
        # While the venue's answers are outstanding, still work the known exposure down as the
        # resumed state would (orders of unknown outcome count as working, so nothing doubles),
        # but finish nothing until every order is known.
        trial, cmds = _settle(evolve(p, state=S.HEDGE_PENDING if resume in _OPENING else resume), now)
        if trial.state is S.FAILED:
            return trial, cmds
        return evolve(trial, state=S.RECONCILING, reason=p.reason), [
            c for c in cmds if not isinstance(c, Alert)
        ]
    p = evolve(p, resume_state=None)
    if resume in (S.CLOSING, S.UNWINDING):
        return _settle(evolve(p, state=resume), now)
    if resume in _OPENING:
        return _settle_opening(evolve(p, state=S.HEDGE_PENDING), now)
    return _settle(evolve(p, state=S.HEDGED), now)


# --- actions --------------------------------------------------------------------------------------


def _enter(p: Position, e: ev.EntrySignalled, now: int) -> Result:
    p = evolve(p, reference_price=e.reference_price)
    qty = p.tradable(Leg.A, p.plan.leg_a.target_qty)
    if qty == 0 or p.is_dust(Leg.B, qty):
        return evolve(p, state=S.CLOSED, reason="target below the venues' minimum order"), []
    p, cmds = place(p, Leg.A, OrderPurpose.ENTRY, qty, e.limit_price_a)
    p, more = _settle(evolve(p, state=S.OPENING_LEG_A), now)
    return p, cmds + more


def _close_unopened(p: Position, e: Any, now: int) -> Result:
    return evolve(p, state=S.CLOSED, reason=f"cancelled before entry: {type(e).__name__}"), []


def _ignore(p: Position, e: Any, now: int) -> Result:
    return p, []


def _to(state: PositionState, why: Callable[[Any], str], **extra: Any) -> Action:
    def action(p: Position, e: Any, now: int) -> Result:
        p = evolve(p, state=state, reason=why(e), hedge_deadline_ms=None, **extra)
        return _settle(p, now)

    return action


def _order_event(p: Position, e: Any, now: int) -> Result:
    """Fold an order report into the order, then let the state react."""
    order = p.require_order(e.cid)
    p = p.fold_report(e)
    cmds: list[Command] = []
    if isinstance(e, (ev.OrderFilled, ev.OrderPartiallyFilled)) and p.failed_attempts:
        p = evolve(p, failed_attempts=0)  # progress: count consecutive rejections only
    if isinstance(e, ev.OrderRejected) and not e.retryable:
        p = evolve(p, failed_attempts=p.failed_attempts + 1)
        if p.state in _OPENING and order.purpose is OrderPurpose.HEDGE:
            msg = f"hedge {order.cid} rejected ({e.reason}); unwinding leg A"
            p = evolve(p, state=S.UNWINDING, reason=msg, hedge_deadline_ms=None)
            cmds.append(alert(p, Severity.WARNING, msg))
    elif isinstance(e, ev.OrderOutcomeUnknown):
        instrument = p.plan.leg(order.leg).instrument.id
        cmds.append(QueryOrder(p.id, order.leg.value, instrument, order.cid))
    return _after_change(p, cmds, now)


def _after_change(p: Position, cmds: list[Command], now: int) -> Result:
    if p.state in (S.CLOSED, S.FAILED):
        return p, cmds
    p, more = _settle(p, now)
    return p, cmds + more


def _late_order_event(p: Position, e: Any, now: int) -> Result:
    """A report for a position that is already CLOSED: record it; shout if it moved a leg."""
    before = (p.held(Leg.A), p.held(Leg.B))
    p, cmds = _order_event(p, e, now)
    if (p.held(Leg.A), p.held(Leg.B)) != before:
        cmds.append(
            alert(p, Severity.CRITICAL, f"fill after close on {e.cid}: A={p.held(Leg.A)} B={p.held(Leg.B)}")
        )
    return p, cmds


def _hedge_timeout(p: Position, e: ev.HedgeTimedOut, now: int) -> Result:
    diff = p.unhedged_qty
    if p.hedge_deadline_ms is None or now < p.hedge_deadline_ms or diff <= 0 or p.is_dust(Leg.B, diff):
        return p, []
    msg = f"hedge not filled within {p.plan.hedge_timeout_ms} ms; unwinding {diff} naked"
    p, cmds = _settle(evolve(p, state=S.UNWINDING, reason=msg, hedge_deadline_ms=None), now)
    return p, [alert(p, Severity.WARNING, msg), *cmds]


def _venue_down(p: Position, e: ev.VenueDisconnected, now: int) -> Result:
    if not p.plan.leg_of_venue(e.venue):
        return p, []
    msg = f"venue {e.venue} disconnected while opening ({e.reason}); unwinding"
    p, cmds = _settle(evolve(p, state=S.UNWINDING, reason=msg, hedge_deadline_ms=None), now)
    return p, [alert(p, Severity.WARNING, msg), *cmds]


def _resync(p: Position, e: ev.ResyncRequested, now: int) -> Result:
    cmds: list[Command] = []
    for o in p.working():
        p = p.with_order(evolve(o, state=OrderState.UNKNOWN))
        cmds.append(QueryOrder(p.id, o.leg.value, p.plan.leg(o.leg).instrument.id, o.cid))
    resume = p.resume_state if p.state is S.RECONCILING else p.state
    p = evolve(p, state=S.RECONCILING, resume_state=resume, reason=e.reason)
    p, more = _settle(p, now)
    return p, cmds + more


def _risk(p: Position, e: ev.RiskBreached, now: int) -> Result:
    if p.state in _OPENING:
        return _to(S.UNWINDING, lambda e: f"risk: {e.kind.value} {e.detail}")(p, e, now)
    if e.kind is ev.RiskKind.STALE_DATA:
        return p, []  # a hedged position does not need fresh data to stay hedged
    return _to(S.CLOSING, lambda e: f"risk: {e.kind.value} {e.detail}", exit_target=ZERO)(p, e, now)


def _venue_fill(p: Position, e: ev.VenueFillReceived, now: int) -> Result:
    fill = e.fill
    key = f"{fill.instrument.symbol}:{fill.trade_id}"
    legs = [leg for leg in Leg if p.plan.leg(leg).instrument.id == fill.instrument]
    if key in p.trade_keys or not legs:
        return p, []
    leg = legs[0]
    signed = fill.quantity if fill.side is p.plan.leg(leg).side else -fill.quantity
    field = "venue_delta_a" if leg is Leg.A else "venue_delta_b"
    p = evolve(p, **{field: getattr(p, field) + signed}, trade_keys=p.trade_keys | {key})
    kind = fill.venue_generated.value if fill.venue_generated else "venue"
    msg = f"{kind} fill on leg {leg.value}: {fill.side.value} {fill.quantity} @ {fill.price}"
    cmds: list[Command] = [alert(p, Severity.CRITICAL, msg)]
    if p.state in _OPENING:
        p = evolve(p, state=S.UNWINDING, reason=msg, hedge_deadline_ms=None)
    elif p.state is S.HEDGED:
        p = evolve(p, state=S.REBALANCING, reason=msg)
    p, more = _after_change(p, cmds, now)
    return p, more


def _drift(p: Position, e: ev.PositionDrifted, now: int) -> Result:
    leg = Leg(e.leg)
    delta = e.venue_qty - p.held(leg)
    if delta == 0:
        return p, []
    field = "venue_delta_a" if leg is Leg.A else "venue_delta_b"
    p = evolve(p, **{field: getattr(p, field) + delta})
    cmds: list[Command] = [alert(p, Severity.WARNING, f"leg {leg.value} drifted by {delta}")]
    if p.state is S.HEDGED:
        p = evolve(p, state=S.REBALANCING, reason="drift")
    elif p.state in _OPENING:  # the venue disagrees with us mid-entry: stop adding, flatten
        p = evolve(
            p, state=S.UNWINDING, reason=f"drift on leg {leg.value} while opening", hedge_deadline_ms=None
        )
    return _after_change(p, cmds, now)


def _funding(p: Position, e: ev.FundingPaid, now: int) -> Result:
    if e.payment.payment_id in p.funding_ids:
        return p, []
    return evolve(
        p, funding=p.funding + e.payment.amount, funding_ids=p.funding_ids | {e.payment.payment_id}
    ), []


def _reduce(p: Position, e: ev.ReduceRequested, now: int) -> Result:
    low = min(p.held(Leg.A), p.held(Leg.B))
    target = max(ZERO, p.plan.leg_a.instrument.round_qty(low - e.quantity))
    return _to(S.CLOSING, lambda e: f"reduce: {e.reason}", exit_target=target)(p, e, now)


def _kill(p: Position, e: ev.OperatorKilled, now: int) -> Result:
    p = evolve(p, failed_attempts=0)
    return _to(S.UNWINDING, lambda e: f"kill: {e.reason}")(p, e, now)


def _give_up(p: Position, e: ev.CleanupExpired, now: int) -> Result:
    if p.state is S.HEDGED and not p.working():
        return p, []
    msg = f"clean-up expired ({e.reason}) in {p.state.name}: A={p.held(Leg.A)} B={p.held(Leg.B)}, an operator takes over"
    p = evolve(p, state=S.FAILED, reason=msg)
    return p, [alert(p, Severity.CRITICAL, msg)]


def _resolve(p: Position, e: ev.OperatorResolved, now: int) -> Result:
    return evolve(p, state=S.CLOSED, reason=f"resolved by operator: {e.note}"), []


# --- the table ------------------------------------------------------------------------------------

_ORDER_EVENTS: tuple[type, ...] = typing.get_args(OrderReport)  # the order reports, from their union

#: Where each state's own progress (``_settle``) may take it.
_SETTLES_TO: dict[PositionState, frozenset[PositionState]] = {
    S.OPENING_LEG_A: frozenset({S.OPENING_LEG_A, S.HEDGE_PENDING, S.HEDGED, S.UNWINDING, S.CLOSED, S.FAILED}),
    S.HEDGE_PENDING: frozenset({S.HEDGE_PENDING, S.HEDGED, S.UNWINDING, S.CLOSED, S.FAILED}),
    S.HEDGED: frozenset({S.HEDGED, S.REBALANCING, S.CLOSED, S.FAILED}),
    S.REBALANCING: frozenset({S.REBALANCING, S.HEDGED, S.CLOSED, S.FAILED}),
    S.CLOSING: frozenset({S.CLOSING, S.HEDGED, S.CLOSED, S.FAILED}),
    S.UNWINDING: frozenset({S.UNWINDING, S.CLOSED, S.FAILED}),
    S.RECONCILING: frozenset(
        {
            S.RECONCILING,
            S.OPENING_LEG_A,
            S.HEDGE_PENDING,
            S.HEDGED,
            S.REBALANCING,
            S.CLOSING,
            S.UNWINDING,
            S.CLOSED,
            S.FAILED,
        }
    ),
    S.FAILED: frozenset({S.FAILED}),
    S.CLOSED: frozenset({S.CLOSED}),
}


_HELD = (S.HEDGED, S.REBALANCING)
_LEAVING = (S.CLOSING, S.UNWINDING, S.RECONCILING, S.FAILED, S.CLOSED)
_QUIET = (S.HEDGED, S.REBALANCING, *_LEAVING)
_BEFORE = (S.PLANNED,)
_U, _C, _F = S.UNWINDING, S.CLOSED, S.FAILED
_SELF, _ON = "stays", "progresses"  # target markers: the source itself / where its own progress leads
Target = PositionState | str | tuple[str, PositionState]


def _then(state: PositionState) -> tuple[str, PositionState]:
    """Target marker: moves to ``state``, then that state's own progress may take it on."""
    return ("then", state)


# fmt: off
#: One row per (states, event): the action, its guard in words, and where it may lead: a state
#: exactly; _then(X): X or wherever X's own progress leads (_SETTLES_TO); _SELF: stays; _ON:
#: wherever the source state's own progress leads.
_TABLE: tuple[tuple[tuple[PositionState, ...], type, Action, str, tuple[Target, ...]], ...] = (
    (_BEFORE, ev.EntrySignalled, _enter, "place leg A; closed if below the venues' minimum", (S.OPENING_LEG_A, _C)),
    (_BEFORE, ev.ExitSignalled, _close_unopened, "nothing was sent", (_C,)),
    (_BEFORE, ev.OperatorKilled, _close_unopened, "nothing was sent", (_C,)),
    *((_BEFORE, e, _ignore, "nothing to do before entry", (_SELF,)) for e in
      (ev.FundingPaid, ev.ResyncRequested, ev.RiskBreached, ev.VenueDisconnected, ev.HedgeTimedOut)),
    *((_OPENING, e, _order_event, "fold the report, hedge what A filled; a rejected hedge unwinds", (_ON, _then(_U))) for e in _ORDER_EVENTS),
    *(((*_HELD, S.CLOSING, _U, S.RECONCILING), e, _order_event, "fold the report, then progress", (_ON,)) for e in _ORDER_EVENTS),
    *(((_F,), e, _order_event, "record only: an operator decides", (_SELF,)) for e in _ORDER_EVENTS),
    *(((_C,), e, _late_order_event, "record; alert if a leg moved (cancelled, then filled)", (_SELF,)) for e in _ORDER_EVENTS),
    (_OPENING, ev.HedgeTimedOut, _hedge_timeout, "unhedged past the deadline: unwind; else a stale timer", (_SELF, _then(_U))),
    (_QUIET, ev.HedgeTimedOut, _ignore, "stale timer", (_SELF,)),
    (_OPENING, ev.VenueDisconnected, _venue_down, "a leg's venue died: unwind", (_SELF, _then(_U))),
    (_QUIET, ev.VenueDisconnected, _ignore, "hedged or leaving: the shell resyncs on reconnect", (_SELF,)),
    (_ACTIVE, ev.ResyncRequested, _resync, "query every working order, then resume", (_then(S.RECONCILING),)),
    ((_F, _C), ev.ResyncRequested, _ignore, "nothing to resume", (_SELF,)),
    (_OPENING, ev.RiskBreached, _risk, "abort the entry", (_then(_U),)),
    (_HELD, ev.RiskBreached, _risk, "close both legs (stale data alone: stay)", (_SELF, _then(S.CLOSING))),
    (_LEAVING, ev.RiskBreached, _ignore, "already leaving", (_SELF,)),
    (_OPENING, ev.VenueFillReceived, _venue_fill, "liquidation/ADL while opening: unwind", (_SELF, _then(_U))),
    ((S.HEDGED,), ev.VenueFillReceived, _venue_fill, "re-hedge the surviving leg", (_SELF, _then(S.REBALANCING))),
    ((S.REBALANCING, S.CLOSING, _U, S.RECONCILING), ev.VenueFillReceived, _venue_fill, "record the fill and re-level", (_ON,)),
    ((_F, _C), ev.VenueFillReceived, _venue_fill, "record the fill; alert", (_SELF,)),
    (_OPENING, ev.PositionDrifted, _drift, "the venue disagrees mid-entry: unwind", (_SELF, _then(_U))),
    ((S.HEDGED,), ev.PositionDrifted, _drift, "take the venue's quantity and rebalance", (_SELF, _then(S.REBALANCING))),
    ((S.REBALANCING, S.CLOSING, _U, S.RECONCILING), ev.PositionDrifted, _drift, "take the venue's quantity", (_ON,)),
    ((_F, _C), ev.PositionDrifted, _drift, "record only", (_SELF,)),
    ((*_ACTIVE, _F, _C), ev.FundingPaid, _funding, "count each payment once", (_SELF,)),
    (_OPENING, ev.ExitSignalled, _to(_U, lambda e: f"exit while opening: {e.reason}"), "abort the entry", (_then(_U),)),
    (_HELD, ev.ExitSignalled, _to(S.CLOSING, lambda e: f"exit: {e.reason}", exit_target=ZERO), "close both legs in lock-step", (_then(S.CLOSING),)),
    (_LEAVING, ev.ExitSignalled, _ignore, "already leaving", (_SELF,)),
    (_HELD, ev.ReduceRequested, _reduce, "reduce both legs pairwise to a lower level", (_then(S.CLOSING),)),
    ((*_OPENING, *_LEAVING), ev.ReduceRequested, _ignore, "not hedged: nothing to reduce pairwise", (_SELF,)),
    ((*_ACTIVE, _F), ev.OperatorKilled, _kill, "cancel everything, flatten both legs", (_then(_U),)),
    ((_C,), ev.OperatorKilled, _ignore, "already flat", (_SELF,)),
    (_ACTIVE, ev.CleanupExpired, _give_up, "clean-up deadline passed exposed: FAILED, alert", (_SELF, _F)),
    ((S.PLANNED, _F, _C), ev.CleanupExpired, _ignore, "nothing exposed to give up on", (_SELF,)),
    ((_F,), ev.OperatorResolved, _resolve, "an operator confirmed the position is dealt with", (_C,)),
)
# fmt: on


def _build() -> tuple[Rule, ...]:
    rules = []
    for sources, event, action, guard, spec in _TABLE:
        for s in sources:
            targets: set[PositionState] = set()
            for t in spec:
                if t == _SELF:
                    targets.add(s)
                elif t == _ON:
                    targets |= _SETTLES_TO[s]
                elif isinstance(t, tuple):
                    targets |= _SETTLES_TO[t[1]]
                else:
                    assert isinstance(t, PositionState)
                    targets.add(t)
            rules.append(Rule(s, event, frozenset(targets), action, guard))
    return tuple(rules)


TRANSITIONS: tuple[Rule, ...] = _build()
_INDEX: dict[tuple[PositionState, type], Rule] = {(r.source, r.event): r for r in TRANSITIONS}


validate_table(TRANSITIONS, initial=S.PLANNED, terminal=TERMINAL_STATES)


def step(position: Position, event: ev.Event, now_ms: int) -> tuple[Position, list[Command]]:
    """Apply one event. Pure: same inputs, same outputs; never reads a clock.

    Raises :class:`TransitionError` if the table has no rule for (state, event type), or if an
    action lands on a state its rule does not declare (a bug in this module).
    """
    rule = _INDEX.get((position.state, type(event)))
    if rule is None:
        raise TransitionError(f"no transition from {position.state.name} on {type(event).__name__}")
    new, commands = rule.action(position, event, now_ms)
    if new.state not in rule.targets:
        raise TransitionError(
            f"{position.state.name} on {type(event).__name__} reached {new.state.name}, "
            f"not one of {sorted(t.name for t in rule.targets)}"
        )
    return new, commands
