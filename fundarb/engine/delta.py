"""Delta maintenance: compare each position's perpetual leg with what the venue actually holds.

Fees charged in the base asset, a partial liquidation or an ADL the user stream missed make the
venue's quantity drift from the journal's. Every ``interval`` seconds the venue's perp positions
are compared with the sum of our positions on each instrument; when exactly one position holds
the instrument and all of them are quietly HEDGED (no order in flight, so no race with a fill on
its way), a difference of at least one lot becomes ``PositionDrifted`` and the machine
rebalances. Spot legs are not compared: a spot balance is shared with holdings that are not
ours, so it cannot be attributed to a position.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal

import trio

from fundarb.core import events as ev
from fundarb.core.model import InstrumentId
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.manager import PositionManager
from fundarb.engine.position_runner import PositionRunner
from fundarb.venues.errors import VenueError
from fundarb.venues.protocol import Venue

__all__ = ["drift_events", "run_delta_maintenance"]

log = logging.getLogger("fundarb.delta")


def drift_events(
    runners: list[PositionRunner], venue_qty: Mapping[InstrumentId, Decimal]
) -> list[tuple[PositionRunner, ev.PositionDrifted]]:
    """Which positions drifted from the venue's signed perp quantities (pure)."""
    holders: dict[InstrumentId, list[tuple[PositionRunner, Leg]]] = defaultdict(list)
    for r in runners:
        if r.state is PositionState.CLOSED:
            continue
        for leg in Leg:
            inst = r.position.plan.leg(leg).instrument
            if inst.is_perpetual:
                holders[inst.id].append((r, leg))
    out = []
    for iid, held in holders.items():
        if len(held) != 1:
            continue  # shared instrument: a difference cannot be attributed
        runner, leg = held[0]
        if runner.state is not PositionState.HEDGED or runner.position.working():
            continue
        spec = runner.position.plan.leg(leg)
        ours = runner.position.held(leg) * spec.side.sign
        theirs = venue_qty.get(iid, Decimal(0))
        if abs(theirs - ours) >= spec.instrument.lot_step:
            # the venue's quantity in the leg's direction (a flipped side counts as zero held)
            unsigned = max(theirs * spec.side.sign, Decimal(0))
            out.append((runner, ev.PositionDrifted(leg.value, unsigned)))
    return out


async def run_delta_maintenance(
    manager: PositionManager,
    venues: Mapping[str, Venue],
    interval: float = 30.0,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Service: every ``interval`` seconds, feed drift to the positions it concerns."""
    task_status.started()
    while True:
        await trio.sleep(interval)
        quantities: dict[InstrumentId, Decimal] = {}
        for venue in venues.values():
            try:
                with trio.fail_after(10):
                    for p in await venue.positions():
                        quantities[p.instrument] = p.quantity
            except (VenueError, trio.TooSlowError) as e:
                log.warning("delta check skipped on %s: %s", venue.name, type(e).__name__)
                break
        else:
            for runner, event in drift_events(list(manager.runners.values()), quantities):
                log.warning(
                    "position %s: leg %s drifted, venue holds %s", runner.id, event.leg, event.venue_qty
                )
                runner.deliver(event)
