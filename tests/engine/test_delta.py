"""Delta maintenance: a drift at the venue rebalances the position."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.delta import drift_events, run_delta_maintenance
from fundarb.sim.venue import SimVenue

from .harness import PERP, open_harness, wait_for, wait_state

S = PositionState


async def test_no_drift_no_event(tmp_path, autojump_clock):
    async with open_harness(tmp_path) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        quantities = {p.instrument: p.quantity for p in await h.venue.positions()}
        assert drift_events([runner], quantities) == []


async def test_venue_quantity_drift_is_rebalanced(tmp_path, autojump_clock):
    venue = SimVenue.for_tests()
    async with open_harness(tmp_path, venue) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        # the venue closed 0.03 of the short perp behind our back (an ADL the stream missed)
        from fundarb.core.model import OrderRequest, OrderType, Side, TimeInForce

        await venue.place_order(
            OrderRequest("manual-1", PERP, Side.BUY, D("0.03"), None, OrderType.MARKET, TimeInForce.IOC, True)
        )
        h.nursery.start_soon(run_delta_maintenance, h.manager, {"sim": venue}, 1.0)
        await wait_for(lambda: runner.position.held(Leg.A) == D("0.07") and runner.state is S.HEDGED)
        assert runner.position.held(Leg.B) == D("0.07")  # the spot leg was sold down to match
        with trio.fail_after(5):
            spot = [b for b in await venue.balances() if b.asset == "BTC"]
        assert sum(b.net for b in spot) == D("0.07")
