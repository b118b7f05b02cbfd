"""Engine failure paths: partial fills, lost acknowledgements, a venue dying mid-hedge,
cancel-then-fill, and a signal during HEDGE_PENDING."""

from __future__ import annotations

import signal
from decimal import Decimal as D

import trio

from fundarb.config import load_config
from fundarb.core.commands import OrderPurpose
from fundarb.core.model import TimeInForce
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.app import run_engine
from fundarb.engine.clock import EngineClock
from fundarb.engine.records import PositionStepped
from fundarb.sim.book import BookConfig
from fundarb.sim.ledger import ExchangeConfig
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import OrderRejected, OutcomeUnknown

from .faulty import HookedVenue
from .harness import PERP, SPOT, open_harness, wait_for, wait_state

S = PositionState


async def _flat(venue) -> bool:
    return all(p.quantity == 0 for p in await venue.positions())


async def test_partial_fill_of_leg_a_is_hedged_for_what_filled(tmp_path, autojump_clock):
    thin = ExchangeConfig(book=BookConfig(level_notional=D(3000), depth_jitter=0.0))  # 0.1 BTC a level
    venue = SimVenue.for_tests(config=thin)
    async with open_harness(tmp_path, venue) as h:
        runner = await h.open(h.plan(qty="0.25"))
        await wait_state(runner, S.HEDGED, S.CLOSED)
        p = runner.position
        assert runner.state is S.HEDGED
        assert D(0) < p.held(Leg.A) < D("0.25")  # the IOC at the touch filled one level only
        assert p.held(Leg.B) == p.held(Leg.A)


async def test_lost_acknowledgement_is_resolved_by_query_without_a_duplicate(tmp_path, autojump_clock):
    venue = HookedVenue(SimVenue.for_tests())

    async def lose_hedge_ack(request, place):
        update = await place(request)
        if request.instrument == SPOT:
            raise OutcomeUnknown("read timeout after send", venue="sim")
        return update

    venue.place_hook = lose_hedge_ack
    async with open_harness(tmp_path, venue) as h:
        runner = await h.open(h.plan())
        await wait_state(runner, S.HEDGED)
        hedges = [o for o in runner.position.orders if o.purpose is OrderPurpose.HEDGE]
        assert len(hedges) == 1  # queried, never re-sent blindly
        assert [c for c in venue.placed if ".B." in c] == [hedges[0].cid]
        records = await h.journal.read()
        kinds = [type(r.payload).__name__ for r in records]
        assert "QueryOrder" in kinds


async def test_venue_dies_mid_hedge_and_the_shielded_unwind_completes(tmp_path, autojump_clock):
    venue = HookedVenue(SimVenue.for_tests())
    hedge_sent = trio.Event()

    async def stall_hedge(request, place):
        if request.instrument == SPOT:
            hedge_sent.set()
            await trio.sleep(3600)  # the connection is dying: this never returns
        return await place(request)

    venue.place_hook = stall_hedge
    async with open_harness(tmp_path, venue, order_timeout=30.0) as h:
        runner = await h.open(h.plan())
        with trio.fail_after(30):
            await hedge_sent.wait()
        venue.place_hook = None  # REST still answers for the clean-up
        h.manager.venue_down("sim", "websocket closed")
        await wait_state(runner, S.CLOSED, S.FAILED)
        assert runner.state is S.CLOSED
        assert await _flat(venue)
        assert runner.worst_naked_notional > 0  # leg A was naked while the hedge hung
        assert any(o.purpose is OrderPurpose.UNWIND for o in runner.position.orders)


async def test_cancel_then_fill_is_unwound(tmp_path, autojump_clock):
    venue = HookedVenue(SimVenue.for_tests())

    async def fills_before_cancel(instrument, cid):
        await venue.inner.force_fill(instrument, cid)  # the fill wins the race
        raise OrderRejected("Unknown order sent.", reason="Unknown order sent.", venue="sim", code=-2011)

    venue.cancel_hook = fills_before_cancel
    async with open_harness(tmp_path, venue) as h:
        plan = h.plan()
        plan = type(plan)(plan.position_id, plan.leg_a, plan.leg_b, entry_time_in_force=TimeInForce.GTC)
        quote = await venue.quote(PERP)
        runner = await h.open(plan, price=quote.ask + D(500))  # rests far from the touch
        await wait_for(
            lambda: (o := runner.position.order("fa.t1.A.1")) is not None and o.state.value == "working"
        )
        from fundarb.core import events as ev

        runner.deliver(ev.ExitSignalled("edge gone"))
        await wait_state(runner, S.CLOSED, S.FAILED)
        assert runner.state is S.CLOSED
        assert runner.position.order("fa.t1.A.1").filled == D("0.1")  # the late fill was seen
        assert await _flat(venue)


async def test_sigint_during_hedge_pending_hedges_or_flattens_before_exit(tmp_path, autojump_clock):
    inner = SimVenue.for_tests()
    venue = HookedVenue(inner)
    hedge_sent = trio.Event()

    async def slow_hedge(request, place):
        if request.instrument == SPOT and not hedge_sent.is_set():
            hedge_sent.set()
            await trio.sleep(3600)
        return await place(request)

    venue.place_hook = slow_hedge
    config = load_config(
        {
            "FUNDARB_DATA_DIR": str(tmp_path),
            "FUNDARB_HTTP_BIND": "127.0.0.1:0",
            "FUNDARB_STATUS_INTERVAL": "3600",
        }
    )
    with trio.fail_after(120):
        async with trio.open_nursery() as n:
            engine = await n.start(_run, config, venue)
            harness_plan = _plan(engine)
            quote = await inner.quote(PERP)
            runner = await engine.manager.open_position(harness_plan, _entry(quote.bid))
            await hedge_sent.wait()
            await wait_state(runner, S.HEDGE_PENDING)  # leg A's order done, the hedge in flight
            assert runner.position.unhedged_qty == D("0.1")
            signal.raise_signal(signal.SIGINT)
    assert runner.state is S.CLOSED
    assert await _flat(inner)
    steps = [r.payload for r in await _read(tmp_path) if isinstance(r.payload, PositionStepped)]
    assert steps[-1].state == "closed"


async def _run(config, venue, *, task_status):
    await run_engine(
        config, {"sim": venue}, clock=EngineClock.start(SIM_EPOCH_MS), journal_options={"inline_for_tests": True},
        task_status=task_status,
    )


def _plan(engine):
    from fundarb.core.model import Side
    from fundarb.core.position_model import LegSpec, PositionPlan

    c = engine.trader.candidates[0]
    return PositionPlan("sig1", LegSpec(c.perp, Side.SELL, D("0.1")), LegSpec(c.spot, Side.BUY, D("0.1")))


def _entry(price):
    from fundarb.core import events as ev

    return ev.EntrySignalled(price, price)


async def _read(tmp_path):
    from fundarb.journal import open_journal

    async with open_journal(None, tmp_path, inline_for_tests=True) as journal:
        return await journal.read()


def test_an_orders_report_keeps_only_its_own_fills_and_names_them() -> None:
    """Binance's trade lists carry no client ids: rows of the queried venue order are ours (and
    get our client id); other orders' rows, ours or not, are not."""
    from fundarb.core.model import Fill, InstrumentId, Liquidity, Market, Side
    from fundarb.engine.executor import _own_fills

    iid = InstrumentId("binance", Market.SPOT, "BTCUSDT")

    def row(cid: str, vid: str, tid: str) -> Fill:
        return Fill(iid, cid, vid, tid, Side.BUY, D("0.01"), D("30000"), D(0), "USDT", Liquidity.TAKER, 1)

    rows = [row("", "7", "t1"), row("", "8", "t2"), row("fa.p.B.2", "7", "t3"), row("fa.p.B.9", "9", "t4")]
    mine = _own_fills(rows, "fa.p.B.2", "7")
    assert [(f.trade_id, f.client_order_id) for f in mine] == [("t1", "fa.p.B.2"), ("t3", "fa.p.B.2")]
    assert [f.trade_id for f in _own_fills(rows, "fa.p.B.2", None)] == ["t3"]  # no venue id: by client id only
