"""Recovery after a crash: the journal as the crashed engine left it, a venue that kept its state,
then a restart that folds the journal, reconciles with the venue and runs the positions again.

A "crash" here is written precisely: the journal holds exactly what the engine made durable
(through the same pure ``step``), and the venue holds what the engine sent before dying.
"""

from __future__ import annotations

import io
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import orjson
import trio

from fundarb.config import load_config
from fundarb.core import events as ev
from fundarb.core.commands import PlaceOrder
from fundarb.core.model import OrderRequest, OrderType, Side, TimeInForce
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg, LegSpec, PositionPlan
from fundarb.core.reconcile import DiffKind
from fundarb.engine.clock import EngineClock
from fundarb.engine.reconcile import StartupReconciliation, acknowledge, reconcile_on_start
from fundarb.engine.reconcile_records import (
    PositionQuarantined,
    ReconcileReported,
    unacknowledged,
)
from fundarb.engine.records import AlertRaised, HedgeIdsReserved, PositionOpened, PositionStepped
from fundarb.engine.recovery import fold_journal
from fundarb.journal import open_journal
from fundarb.journal.base import Entry
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import VenueUnavailable

from .faulty import HookedVenue
from .harness import PERP, SPOT, Harness, open_harness, wait_state

S = PositionState
T0 = SIM_EPOCH_MS
#: virtual seconds. Each 5 ms of real time a SQLite commit spends in its thread (slow fsync on a
#: busy box) lets the mock clock jump to the next timer (the sim venue's 60 s market steps), so
#: bounds are in virtual time and generous; a real hang still reaches them at once (autojump).
LIMIT = 10**7


class Crashed:
    """Builds the journal a crashed engine left: each event stepped, journaled with its commands."""

    def __init__(self, plan: PositionPlan) -> None:
        self.position = Position(plan)
        self.entries: list[Entry] = [Entry(PositionOpened(plan), T0, plan.position_id)]
        self.placed: list[PlaceOrder] = []

    def apply(self, event: Any, now: int = T0) -> list[Any]:
        self.position, cmds = step(self.position, event, now)
        pid = self.position.id
        self.entries.append(Entry(PositionStepped(event, now, self.position.state.value), now, pid))
        self.entries += [Entry(c, now, pid) for c in cmds if type(c).__name__ != "ArmTimer"]
        self.placed += [c for c in cmds if isinstance(c, PlaceOrder)]
        return cmds

    async def write(self, tmp_path: Path) -> None:
        async with open_journal(None, tmp_path) as journal:
            await journal.append(self.entries)


async def plan_for(venue: Any, pid: str = "c1", qty: str = "0.1") -> PositionPlan:
    instruments = {i.id: i for i in await venue.instruments()}
    return PositionPlan(
        pid,
        LegSpec(instruments[PERP], Side.SELL, D(qty)),
        LegSpec(instruments[SPOT], Side.BUY, D(qty)),
        entry_time_in_force=TimeInForce.IOC,
        hedge_timeout_ms=10**12,  # virtual time may jump (see LIMIT): no hedge timeout in these tests
    )


async def restart(h: Harness) -> StartupReconciliation:
    """What Engine.run does on start: fold, reconcile, adopt, deliver the corrections."""
    records = await h.journal.read()
    startup = await reconcile_on_start(h.journal, {"sim": h.venue}, records, EngineClock.start(T0))
    await h.manager.adopt_recovered(startup.recovered)
    startup.deliver(h.manager.runners)
    return startup


async def spot_held(venue: Any, asset: str = "BTC") -> D:
    return sum((b.free + b.locked for b in await venue.balances() if b.asset == asset), D(0))


async def perp_qty(venue: Any) -> D:
    return sum((p.quantity for p in await venue.positions() if p.instrument == PERP), D(0))


async def test_crash_after_leg_a_was_sent_hedges_once_on_restart(tmp_path, engine_clock):
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    crashed = Crashed(await plan_for(venue))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    [entry] = crashed.placed
    await crashed.write(tmp_path)
    await venue.place_order(entry.request)  # sent, filled at the venue; then kill -9
    assert await perp_qty(venue) == D("-0.1")
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            kinds = [d.kind for d in startup.result.differences]
            assert kinds == [DiffKind.MISSED_FILL], startup.result.differences
            assert not startup.halt_reason
            runner = h.manager.runners["c1"]
            await wait_state(runner, S.HEDGED)
            assert runner.position.held(Leg.A) == runner.position.held(Leg.B) == D("0.1")
    assert await perp_qty(venue) == D("-0.1")
    assert await spot_held(venue) == D("0.1")
    assert len(venue.placed) == len(set(venue.placed)) == 2  # A once (before the crash), B once
    records = await _read(tmp_path)
    recovered = fold_journal(records)
    assert not recovered.mismatches and recovered.positions["c1"].state is S.HEDGED
    [report] = [r.payload for r in records if isinstance(r.payload, ReconcileReported)]
    assert report.positions == 1 and not report.needs_ack


async def test_hedge_sent_under_the_reservation_but_not_journaled_is_adopted_not_resent(
    tmp_path, engine_clock
):
    """The hedge fast path: leg A's entry was journaled with a hedge reservation; leg A filled and
    the hedge went out, but the engine died before the batched records were written."""
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    crashed = Crashed(await plan_for(venue))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    crashed.entries.append(Entry(HedgeIdsReserved(crashed.position.next_seq - 1 + 8), T0, "c1"))
    [entry] = crashed.placed
    await crashed.write(tmp_path)  # durable: the entry and the reservation
    await venue.place_order(entry.request)
    [update] = [
        u for u in await venue.open_orders() if u.client_order_id == entry.request.client_order_id
    ] or [await venue.query_order(PERP, entry.request.client_order_id)]
    hedge_cmds = crashed.apply(
        ev.OrderStatusReported(update.client_order_id, update.status, update.filled_qty)
    )
    [hedge] = [c for c in hedge_cmds if isinstance(c, PlaceOrder)]
    await venue.place_order(hedge.request)  # sent under the reservation; its records were lost
    assert await spot_held(venue) == D("0.1")
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            kinds = {d.kind for d in startup.result.differences}
            assert DiffKind.UNOWNED_FILL not in kinds and DiffKind.ORPHAN_ORDER not in kinds, kinds
            assert not startup.halt_reason
            runner = h.manager.runners["c1"]
            assert hedge.request.client_order_id in runner.unconfirmed
            await wait_state(runner, S.HEDGED)
            assert runner.position.held(Leg.A) == runner.position.held(Leg.B) == D("0.1")
    assert await spot_held(venue) == D("0.1")  # not doubled
    assert venue.placed.count(hedge.request.client_order_id) == 1 and len(venue.placed) == 2


async def test_reserved_id_not_at_the_venue_is_placed_after_one_lookup(tmp_path, engine_clock):
    """The same crash, but the engine died before the hedge left: the lookup finds nothing and the
    hedge is sent under the same client id."""
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    crashed = Crashed(await plan_for(venue))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    crashed.entries.append(Entry(HedgeIdsReserved(crashed.position.next_seq - 1 + 8), T0, "c1"))
    [entry] = crashed.placed
    await crashed.write(tmp_path)
    await venue.place_order(entry.request)
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            assert not startup.halt_reason
            runner = h.manager.runners["c1"]
            await wait_state(runner, S.HEDGED)
    assert await spot_held(venue) == D("0.1") and await perp_qty(venue) == D("-0.1")
    assert len(venue.placed) == len(set(venue.placed)) == 2


async def test_crash_mid_unwind_finishes_the_unwind_without_resending(tmp_path, engine_clock):
    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    crashed = Crashed(await plan_for(venue, "u1"))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    entry = crashed.placed[-1]
    update = await venue.place_order(entry.request)
    fill_events = [
        ev.OrderFilled(entry.request.client_order_id, f, update.filled_qty)
        for f in await venue.fills_since(PERP, 0)
    ]
    for e in fill_events:
        crashed.apply(e)
    hedge = crashed.placed[-1]
    assert hedge.request.instrument == SPOT
    crashed.apply(ev.OrderRejected(hedge.request.client_order_id, "insufficient balance"))
    assert crashed.position.state is S.UNWINDING
    unwind = crashed.placed[-1]
    assert unwind.request.instrument == PERP and unwind.request.side is Side.BUY
    await crashed.write(tmp_path)
    await venue.place_order(unwind.request)  # the unwind went out; the engine died before the report
    assert await perp_qty(venue) == 0
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            assert DiffKind.MISSED_FILL in {d.kind for d in startup.result.differences}
            runner = h.manager.runners["u1"]
            await wait_state(runner, S.CLOSED)
    assert await perp_qty(venue) == 0 and await spot_held(venue) == 0
    assert venue.placed == [entry.request.client_order_id, unwind.request.client_order_id]


async def test_orphans_cancelled_unowned_exposure_halts_until_acknowledged(tmp_path, engine_clock):
    venue = SimVenue.for_tests(speed=1.0)
    quote = await venue.quote(PERP)
    ghost = OrderRequest(
        "fa.ghost.A.1", PERP, Side.SELL, D("0.1"), quote.ask * 2, OrderType.LIMIT, TimeInForce.GTC
    )
    await venue.place_order(ghost)  # rests: an order no journaled position owns
    manual = OrderRequest("manual-1", PERP, Side.BUY, D("0.2"), None, OrderType.MARKET, TimeInForce.IOC)
    await venue.place_order(manual)  # exposure nobody in the journal owns
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            assert startup.cancelled == ("fa.ghost.A.1",)
            assert await venue.open_orders() == []
            assert DiffKind.UNOWNED_EXPOSURE in {d.kind for d in startup.result.differences}
            assert startup.halt_reason  # the engine would open nothing new
            through = await acknowledge(h.journal, "manual long is mine", T0)
            assert not unacknowledged(await h.journal.read())
            assert through >= 1
    # flattened by hand; a restart is now clean and does not halt
    await venue.place_order(
        OrderRequest("manual-2", PERP, Side.SELL, D("0.2"), None, OrderType.MARKET, TimeInForce.IOC)
    )
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            assert not startup.halt_reason and startup.result.clean


async def test_unreadable_venue_quarantines_its_positions_durably(tmp_path, engine_clock):
    inner = SimVenue.for_tests(speed=1.0)
    venue = HookedVenue(inner)
    crashed = Crashed(await plan_for(venue, "q1"))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    await crashed.write(tmp_path)

    async def down() -> list[Any]:
        raise VenueUnavailable("connect timeout", venue="sim")

    venue.positions = down  # type: ignore[method-assign]
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            records = await h.journal.read()
            startup = await reconcile_on_start(
                h.journal, {"sim": venue}, records, EngineClock.start(T0), call_timeout=1.0, attempts=2
            )
            assert [pid for pid, _ in startup.result.failed] == ["q1"]
            assert startup.recovered.positions["q1"].state is S.FAILED
            assert startup.halt_reason
            assert {r.position_id: r.state for r in await h.journal.positions()}["q1"] == "failed"
    records = await _read(tmp_path)
    assert [r.position_id for r in records if isinstance(r.payload, PositionQuarantined)] == ["q1"]
    assert any(isinstance(r.payload, AlertRaised) and r.payload.severity == "critical" for r in records)
    again = fold_journal(records)
    assert again.positions["q1"].state is S.FAILED and not again.mismatches
    assert len(unacknowledged(records)) == 1


async def test_cli_shows_differences_and_acknowledges(tmp_path, engine_clock):
    from fundarb.cli.reconcile import amain

    config = load_config({"FUNDARB_DATA_DIR": str(tmp_path), "FUNDARB_HTTP_BIND": "127.0.0.1:0"})
    async with open_journal(None, tmp_path) as journal:
        await journal.append(
            [Entry(ReconcileReported(("sim",), 1, (), True), T0)]  # as an engine start would leave it
        )
    out = io.StringIO()
    with trio.fail_after(LIMIT):
        assert await amain(config, False, "", True, 5.0, out) == 1
    doc = orjson.loads(out.getvalue())
    assert doc["needs_ack"] and len(doc["unacknowledged"]) == 1 and doc["acknowledged_through"] is None
    out = io.StringIO()
    with trio.fail_after(LIMIT):
        assert await amain(config, True, "seen", False, 5.0, out) == 0
    assert "acknowledged everything through seq 1" in out.getvalue()
    out = io.StringIO()
    with trio.fail_after(LIMIT):
        assert await amain(config, False, "", False, 5.0, out) == 0
    assert "differences (journal vs venues): none" in out.getvalue()


async def _read(tmp_path: Path) -> list[Any]:
    async with open_journal(None, tmp_path) as journal:
        return await journal.read()


def test_cli_ack_refuses_while_an_engine_answers(monkeypatch):
    import argparse
    import socket

    from fundarb.cli import reconcile as cli

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("FUNDARB_HTTP_BIND", f"127.0.0.1:{port}")
        args = argparse.Namespace(ack=True, force=False, note="", json=False, timeout=1.0)
        assert cli.main(args) == 2  # refused before touching the journal


async def test_rate_limit_is_waited_out_not_taken_for_an_unreadable_venue(tmp_path, engine_clock):
    from fundarb.venues.errors import RateLimited

    venue = HookedVenue(SimVenue.for_tests(speed=1.0))
    crashed = Crashed(await plan_for(venue, "r1"))
    quote = await venue.quote(PERP)
    crashed.apply(ev.EntrySignalled(quote.bid, quote.bid))
    await crashed.write(tmp_path)
    limited = [3]  # the first three reads are refused for 5 s each (more than the retry budget)

    async def open_orders(instrument=None):
        if limited[0]:
            limited[0] -= 1
            raise RateLimited("weight budget exhausted", retry_after=5.0, venue="sim")
        return await venue.inner.open_orders(instrument)

    venue.open_orders = open_orders  # type: ignore[method-assign]
    with trio.fail_after(LIMIT):
        async with open_harness(tmp_path, venue) as h:
            startup = await restart(h)
            assert not startup.result.failed and not startup.halt_reason
            assert limited == [0]


def test_a_position_id_opened_twice_does_not_replay():
    from fundarb.journal.base import Record

    venue = SimVenue.for_tests(speed=1.0)
    plan = trio.run(plan_for, venue, "d1")
    opened = PositionOpened(plan)
    records = [
        Record(1, T0, "engine.position_opened", "d1", opened),
        Record(2, T0, "engine.position_opened", "d1", opened),
    ]
    recovered = fold_journal(records)
    assert "opened twice" in recovered.mismatches["d1"]


def test_funding_is_keyed_as_the_live_router_keys_it():
    """A payment streamed before the crash and read again over REST must count once."""
    from fundarb.core.model import FundingPayment
    from fundarb.core.reconcile import funding_key as core_key
    from fundarb.engine.manager import funding_key as live_key

    for ts in (0, T0, T0 + 1_799_999, T0 + 1_800_000, T0 + 28_800_000 - 1):
        pay = FundingPayment(PERP, "x", D("1"), "USDT", ts)
        assert core_key(pay) == live_key(pay)
