"""The engine's position tasks against the in-process simulated venue (autojump clock)."""

from __future__ import annotations

from decimal import Decimal as D

import trio

from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.records import HedgeIdsReserved, PositionOpened, PositionStepped
from fundarb.engine.recovery import fold_journal
from fundarb.sim.venue import SimVenue

from .faulty import HookedVenue
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


async def test_hedge_goes_out_under_the_durable_reservation_before_its_own_record(tmp_path, autojump_clock):
    """Journal before act, for the hedge, is the reservation journaled with leg A's entry: when the
    hedge is sent its id is covered by a durable HedgeIdsReserved, and its own PlaceOrder record
    is still queued (written in the next batch, not waited for)."""
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    seen: dict[str, object] = {}
    async with open_harness(tmp_path, venue) as h:

        async def place(request, inner):
            durable = await h.journal.read()
            reserved = [r.payload.through for r in durable if isinstance(r.payload, HedgeIdsReserved)]
            placed = [r.payload.request.client_order_id for r in durable if isinstance(r.payload, PlaceOrder)]
            seen[request.client_order_id] = (max(reserved, default=0), request.client_order_id in placed)
            return await inner(request)

        venue.place_hook = place
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        await h.journal.flush()
        records = await h.journal.read()
    a_cid, b_cid = "fa.t1.A.1", "fa.t1.B.2"
    assert seen[a_cid] == (9, True)  # leg A: durable first, with 8 ids reserved (2..9)
    assert seen[b_cid] == (9, False)  # the hedge: covered by it, its own record not yet written
    hedges = [
        r.payload
        for r in records
        if isinstance(r.payload, PlaceOrder) and r.payload.purpose is OrderPurpose.HEDGE
    ]
    assert [c.request.client_order_id for c in hedges] == [b_cid]  # ... but written afterwards
    assert fold_journal(records).positions["t1"].state is S.HEDGED


async def test_placements_outside_the_reservation_wait_for_the_journal(tmp_path, autojump_clock):
    """Exits and unwinds are never sent ahead of their records."""
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    early: list[str] = []
    async with open_harness(tmp_path, venue) as h:

        async def place(request, inner):
            durable = await h.journal.read()
            placed = {r.payload.request.client_order_id for r in durable if isinstance(r.payload, PlaceOrder)}
            if request.client_order_id not in placed:
                early.append(request.client_order_id)
            return await inner(request)

        venue.place_hook = place
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        h.manager.flatten_all("test")
        await wait_state(runner, S.CLOSED)
    assert early == ["fa.t1.B.2"]  # only the hedge
