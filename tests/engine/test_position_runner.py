"""The engine's position tasks against the in-process simulated venue (autojump clock)."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from fundarb.core.commands import OrderPurpose
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.records import PositionOpened, PositionStepped
from fundarb.engine.recovery import fold_journal
from fundarb.sim.venue import SimVenue

from .harness import open_harness, wait_state

S = PositionState


async def test_happy_path_opens_hedges_and_journals(tmp_path, autojump_clock):
    async with open_harness(tmp_path) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        p = runner.position
        assert p.held(Leg.A) == p.held(Leg.B) == D("0.1")
        positions = {pos.instrument: pos.quantity for pos in await h.venue.positions()}
        assert positions[h.plan().leg_a.instrument.id] == D("-0.1")  # short perp at the venue
        assert len(h.telemetry.hedge_gaps) == 1
        records = await h.journal.read()
        assert any(isinstance(r.payload, PositionOpened) for r in records)
        steps = [r.payload for r in records if isinstance(r.payload, PositionStepped)]
        assert steps[-1].state == "hedged"
        # the journal replays to the same position
        rebuilt = fold_journal(records)
        assert rebuilt.mismatches == {}
        assert rebuilt.positions["t1"].state is S.HEDGED
        assert rebuilt.positions["t1"].held(Leg.B) == D("0.1")


async def test_funding_settles_on_the_hedged_position(tmp_path, autojump_clock):
    venue = SimVenue.for_tests(speed=3600.0, funding_rate=D("0.0003"), step_ms=300_000)
    async with open_harness(tmp_path, venue) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        await trio.sleep(9)  # 9 trio seconds = 9 sim hours: one settlement at least
        assert runner.position.funding > 0  # short perp receives positive funding


async def test_hedge_rejected_unwinds_leg_a(tmp_path, autojump_clock):
    from fundarb.core.model import Wallet

    # no USDT in the spot wallet: the spot hedge is rejected for insufficient balance
    venue = SimVenue.for_tests(balances={(Wallet.FUTURES, "USDT"): D(100_000)})
    async with open_harness(tmp_path, venue) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.CLOSED, S.FAILED)
        assert runner.state is S.CLOSED
        purposes = [o.purpose for o in runner.position.orders]
        assert OrderPurpose.UNWIND in purposes
        assert all(pos.quantity == 0 for pos in await h.venue.positions())
        assert runner.worst_naked_notional > 0
