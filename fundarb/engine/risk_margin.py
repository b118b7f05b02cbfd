"""The margin defence of :class:`~fundarb.engine.risk_service.RiskService`: one pass over a
venue's perp positions through the margin ladder, and the action each answer asks for.

* ALERT: journaled once per escalation;
* TOP_UP: ``Venue.transfer`` of free collateral (``top_up_from`` -> ``top_up_to``);
* REDUCE_PAIRWISE: ``ReduceRequested(qty)`` to each HEDGED position on the instrument, split by
  perp quantity held (never while one of them is mid-rebalance: the next pass judges again);
* UNWIND: ``RiskBreached(MARGIN)`` to each position holding the instrument.

Also marks today's PnL from the venue's book (the daily loss rule). Functions take the service
(its state is theirs to update: this module is the service's, split off for size).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

import trio

from fundarb.core import events as ev
from fundarb.core.model import ZERO, Balance, InstrumentId, Market, VenuePosition
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.core.risk import DailyPnl
from fundarb.core.risk_monitors import MarginAction, MarginActionKind
from fundarb.engine.position_runner import PositionRunner
from fundarb.engine.records import AlertRaised
from fundarb.engine.risk_records import MarginActed
from fundarb.venues.errors import VenueError
from fundarb.venues.protocol import Venue

if TYPE_CHECKING:
    from fundarb.engine.risk_service import RiskService

__all__ = ["check_margin", "mark_book"]

log = logging.getLogger("fundarb.risk")
S = PositionState
_HELD = (S.HEDGED, S.REBALANCING)


async def check_margin(service: RiskService, venue: Venue) -> list[MarginAction]:
    """One margin pass over ``venue``: each perp leg through the ladder, acted on."""
    try:
        with trio.fail_after(service.settings.call_timeout):
            positions = await venue.positions()
            balances = await venue.balances()
    except (VenueError, trio.TooSlowError) as e:  # counted by the breaker's feed
        log.warning("margin check on %s failed: %s", venue.name, type(e).__name__)
        return []
    service.margin_passes += 1
    mark_book(service, venue.name, balances, positions)
    s = service.settings
    free = sum(
        (b.free for b in balances if b.wallet is s.top_up_from and b.asset == s.collateral_asset), ZERO
    )
    actions = []
    for pos in positions:
        if pos.quantity == 0:
            continue
        inst = service.instruments.get(pos.instrument)
        # after a failed or timed-out transfer, this venue's ladder skips TOP_UP for a while
        can_top_up = service.clock.now_ms() >= service._no_top_up_until.get(venue.name, 0)
        action = service.risk.on_position(
            pos, free, can_top_up=can_top_up, lot_step=None if inst is None else inst.lot_step
        )
        actions.append(action)
        free -= await _act(service, venue, pos, action)
    return actions


def mark_book(
    service: RiskService, venue: str, balances: list[Balance], positions: list[VenuePosition]
) -> None:
    """Today's PnL as the change of the book's value since UTC midnight: per venue cash,
    coins at the spot mid, minus debt, plus perp PnL, summed over venues. A venue with a
    coin that has no price yet is not marked (its last value stands)."""
    ca = service.settings.collateral_asset
    marks = {
        iid.symbol: px
        for iid, px in service._marks().items()
        if iid.market is Market.SPOT and iid.venue == venue
    }
    value = ZERO
    for b in balances:
        amount = b.total - b.borrowed
        if b.asset == ca:
            value += amount
        elif amount:
            px = marks.get(f"{b.asset}{ca}")
            if px is None:
                return
            value += amount * px
    service._values[venue] = value + sum((p.unrealized_pnl for p in positions), ZERO)
    total = sum(service._values.values(), ZERO)
    now = service.clock.now_ms()
    service._pnl = DailyPnl.start(now, total) if service._pnl is None else service._pnl.mark(total, now)
    service._modes_changed(service.risk.on_pnl(service._pnl, now))


def _holders(service: RiskService, instrument: InstrumentId) -> list[PositionRunner]:
    return [
        r
        for r in service.manager.active()
        if instrument in (r.position.plan.leg_a.instrument.id, r.position.plan.leg_b.instrument.id)
    ]


async def _act(service: RiskService, venue: Venue, pos: VenuePosition, action: MarginAction) -> Decimal:
    """Carry out one ladder answer; returns the collateral it used."""
    kind, iid = action.kind, pos.instrument
    previous = service._last_kind.get(iid, MarginActionKind.NONE)
    service._last_kind[iid] = kind
    if kind is MarginActionKind.NONE:
        return ZERO
    if kind is MarginActionKind.ALERT:
        if previous is not MarginActionKind.ALERT:
            _record(service, action, "alerted")
            service._journal(AlertRaised("warning", f"margin on {iid}: {action.detail}", ZERO))
        return ZERO
    if service.first_action_ms is None:
        service.first_action_ms = service.clock.now_ms()
    if kind is MarginActionKind.TOP_UP:
        if iid in service._transfers:  # one top-up in flight per leg: the next pass sees its effect
            return ZERO
        service._transfers.add(iid)
        if service._nursery is None:
            await _transfer(service, venue, action)
        else:  # a slow transfer must not stall the other legs' defence
            service._nursery.start_soon(_transfer, service, venue, action)
        return action.top_up
    holders = [r for r in _holders(service, iid) if r.state in _HELD]
    if not holders:
        _record(service, action, "no position to act on")
        return ZERO
    if kind is MarginActionKind.REDUCE_PAIRWISE:
        if any(r.state is not S.HEDGED for r in holders):
            return ZERO  # a reduction or re-hedge is in flight: judge again after it
        total = sum((_perp_held(r) for r in holders), ZERO)
        for r in holders:
            share = action.reduce_quantity * _perp_held(r) / total if total > 0 else ZERO
            qty = r.position.plan.leg_a.instrument.round_qty(share) or share
            r.deliver(ev.ReduceRequested(qty, action.detail))
        _record(service, action, "reduce requested", holders)
        return ZERO
    for r in holders:  # UNWIND
        r.deliver(ev.RiskBreached(ev.RiskKind.MARGIN, action.detail))
    _record(service, action, "unwind requested", holders)
    return ZERO


async def _transfer(service: RiskService, venue: Venue, action: MarginAction) -> None:
    """Move ``action.top_up`` of collateral under ``transfer_timeout``. On failure the venue's
    ladder stops offering TOP_UP for ``top_up_cooldown`` seconds, so the next pass escalates to
    a pairwise reduction instead of waiting on transfers again."""
    s = service.settings
    try:
        with trio.fail_after(s.transfer_timeout):
            await venue.transfer(s.collateral_asset, action.top_up, s.top_up_from, s.top_up_to)
    except (VenueError, trio.TooSlowError) as e:  # a timeout may still land: the next pass sees it
        service._no_top_up_until[venue.name] = service.clock.now_ms() + int(s.top_up_cooldown * 1000)
        _record(service, action, f"transfer failed: {type(e).__name__}")
    else:
        _record(service, action, "transferred")
    finally:
        service._transfers.discard(action.instrument)


def _record(
    service: RiskService, action: MarginAction, outcome: str, holders: list[PositionRunner] | None = None
) -> None:
    record = MarginActed(
        str(action.instrument),
        action.kind.value,
        action.detail,
        outcome,
        ",".join(r.id for r in holders or []),
        action.top_up,
        action.reduce_quantity,
        action.distance,
    )
    service.margin_actions.append(record)
    del service.margin_actions[:-1000]
    service._journal(record)
    log.warning("margin %s on %s: %s (%s)", action.kind.value, action.instrument, outcome, action.detail)


def _perp_held(runner: PositionRunner) -> Decimal:
    plan = runner.position.plan
    leg = Leg.A if plan.leg_a.instrument.is_perpetual else Leg.B
    return runner.position.held(leg)
