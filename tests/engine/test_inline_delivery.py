"""``PositionRunner.deliver_now``: a venue report stepped in the caller's task (the user-data reader).

An idle position is stepped at once and its hedge written from the caller's code, with nothing
awaited in between; journal before act still holds (the hedge is covered by the durable
reservation; any other placement waits for its own durable record, appended by the position's
task). A busy, cancelled or not yet running position queues the report, so events stay in
order; a step that raises is handed over and raised by the position's task; an inline step that
closes the position ends its task. Runner, real SQLite journal and a ``PlacesNow`` venue double
(:mod:`.now_venue`); Trio's mock clock.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D

import pytest
import trio

from fundarb.core import events as ev
from fundarb.core.commands import PlaceOrder
from fundarb.core.errors import TransitionError
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.engine.records import ExposureMeasured, HedgeIdsReserved, PositionStepped
from fundarb.journal.base import Entry, Record

from .harness import wait_for, wait_state
from .now_venue import ENTRY, HEDGE, PRICE, Rig, open_rig

S = PositionState


def seq_of(records: list[Record], predicate: Callable[[object], bool]) -> int:
    [seq] = [r.seq for r in records if predicate(r.payload)]
    return seq


def stepped(records: list[Record]) -> list[str]:
    """The events the position applied, in journal order (by type name)."""
    return [type(r.payload.event).__name__ for r in records if isinstance(r.payload, PositionStepped)]


def placed(cid: str) -> Callable[[object], bool]:
    return lambda p: isinstance(p, PlaceOrder) and p.request.client_order_id == cid


async def hedge_pending(r: Rig) -> None:
    """Open, fill leg A inline; the hedge is written and never answered (HEDGE_PENDING)."""
    r.venue.held.add(HEDGE)
    await r.open()
    r.runner.deliver_now(r.venue.fill(ENTRY, "0.1"))
    assert r.runner.state is S.HEDGE_PENDING


async def test_an_idle_position_writes_its_hedge_before_anything_is_awaited(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            before = r.journal.statistics()
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.1"))
            # no checkpoint since the call: stepped here, and the hedge written from here
            assert r.runner.state is S.HEDGE_PENDING
            [hedge] = [s for s in r.venue.sent if s.cid == HEDGE]
            assert (hedge.how, hedge.task) == ("now", trio.lowlevel.current_task().name)
            after = r.journal.statistics()
            assert after.last_seq == before.last_seq  # its records are queued, not yet written ...
            assert after.pending > before.pending
            assert len(r.telemetry.hedge_gaps) == 1  # sent: the hedge gap is measured already
            await wait_state(r.runner, S.HEDGED)
            records = await r.records()
    # ... and journal before act holds through the reservation written with leg A's entry
    reserved = seq_of(records, lambda p: isinstance(p, HedgeIdsReserved))
    assert reserved <= hedge.durable < seq_of(records, placed(HEDGE))
    assert stepped(records)[:3] == ["EntrySignalled", "OrderAccepted", "OrderFilled"]


async def test_a_partial_fill_is_hedged_inline_and_so_is_the_rest(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            me = trio.lowlevel.current_task().name
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.04"))
            assert r.runner.state is S.OPENING_LEG_A
            assert [(s.cid, s.how, s.task) for s in r.venue.sent[1:]] == [(HEDGE, "now", me)]
            await wait_for(lambda: r.runner.position.held(Leg.B) == D("0.04"))  # answered: idle again
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.06"))
            assert [(s.how, s.task) for s in r.venue.sent[1:]] == [("now", me), ("now", me)]
            await wait_state(r.runner, S.HEDGED)
            assert r.runner.position.held(Leg.A) == r.runner.position.held(Leg.B) == D("0.1")


async def test_placements_outside_the_reservation_are_durable_before_they_leave(tmp_path, engine_clock):
    """The inline mirror of test_placements_outside_the_reservation_wait_for_the_journal: a
    hedge rejected on the stream unwinds leg A; the unwind is not a hedge, so the step is handed
    to the position's task, which appends it durably first."""
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await hedge_pending(r)
            sent = len(r.venue.sent)
            r.runner.deliver_now(ev.OrderRejected(HEDGE, "insufficient balance"))
            assert r.runner.state is S.HEDGE_PENDING  # decided, not adopted here
            assert len(r.venue.sent) == sent
            with trio.fail_after(30):
                await r.done.wait()  # unwound and CLOSED: the position's task ended
            assert r.runner.state is S.CLOSED
            records = await r.records()
    early = [s.cid for s in r.venue.sent if s.durable < seq_of(records, placed(s.cid))]
    assert early == [HEDGE]  # only the hedge went out ahead of its own record
    unwinds = [s for s in r.venue.sent if s.cid not in (ENTRY, HEDGE)]
    assert unwinds and all(s.how == "place" for s in unwinds)  # only hedges are written at once


async def test_reports_behind_a_handed_over_step_are_applied_after_it(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await hedge_pending(r)
            r.runner.deliver_now(ev.OrderRejected(HEDGE, "insufficient balance"))  # to the task
            position, pending = r.runner.position, r.journal.statistics().pending
            r.runner.deliver_now(ev.HedgeTimedOut())  # would be stepped at once if it were idle
            r.runner.deliver_now(ev.HedgeTimedOut())
            assert r.runner.position is position  # queued behind it, not stepped
            assert r.journal.statistics().pending == pending
            with trio.fail_after(30):
                await r.done.wait()
            records = await r.records()
    applied = stepped(records)
    at = applied.index("OrderRejected")
    assert applied[at : at + 3] == ["OrderRejected", "HedgeTimedOut", "HedgeTimedOut"]


async def test_a_report_while_the_task_applies_a_step_is_queued(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.1"))
            await wait_state(r.runner, S.HEDGED)
            gate, entered = trio.Event(), trio.Event()
            append = r.journal.append

            async def slow_append(entries: list[Entry]) -> list[int]:
                entered.set()
                await gate.wait()
                return await append(entries)

            r.journal.append = slow_append
            r.runner.deliver(ev.ExitSignalled("test"))  # exits are durable first: the task awaits
            await entered.wait()
            pending = r.journal.statistics().pending
            r.runner.deliver_now(ev.HedgeTimedOut())  # mid-step: queued, not stepped
            assert r.journal.statistics().pending == pending
            del r.journal.append
            gate.set()
            with trio.fail_after(30):
                await r.done.wait()  # both legs exited: CLOSED
            records = await r.records()
    applied = stepped(records)
    assert applied.index("ExitSignalled") < applied.index("HedgeTimedOut")


async def test_a_full_journal_queue_makes_the_inline_step_durable_first(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            limit, r.journal.max_pending = r.journal.max_pending, 0  # append_nowait raises JournalFull
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.1"))
            assert r.runner.state is S.OPENING_LEG_A and HEDGE not in {s.cid for s in r.venue.sent}
            await wait_state(r.runner, S.HEDGE_PENDING, S.HEDGED)
            r.journal.max_pending = limit
            await wait_state(r.runner, S.HEDGED)
            records = await r.records()
    [hedge] = [s for s in r.venue.sent if s.cid == HEDGE]
    assert hedge.how == "now" and hedge.task != trio.lowlevel.current_task().name
    fill_step = seq_of(
        records, lambda p: isinstance(p, PositionStepped) and isinstance(p.event, ev.OrderFilled)
    )
    assert fill_step <= hedge.durable and seq_of(records, placed(HEDGE)) <= hedge.durable


async def test_a_cancelled_position_queues_the_report_for_its_clean_up(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            position = r.runner.position
            r.scope.cancel()  # a venue died or shutdown: the clean-up owns the position now
            r.runner.deliver_now(r.venue.fill(ENTRY, "0.1"))
            assert r.runner.position is position and len(r.venue.sent) == 1
            with trio.fail_after(30):
                await r.done.wait()
            assert r.runner.state is S.CLOSED
            records = await r.records()
    applied = stepped(records)
    assert applied.index("ExitSignalled") < applied.index("OrderFilled")  # the clean-up's own step first
    assert [s.how for s in r.venue.sent].count("now") == 0  # REST fallback: no immediate writes


async def test_a_position_not_running_yet_queues(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path, start=False) as r:
            r.runner.deliver_now(ev.EntrySignalled(PRICE, PRICE))
            assert r.runner.state is S.PLANNED and r.venue.sent == []
            await r.start()
            await wait_state(r.runner, S.OPENING_LEG_A)
            assert [s.cid for s in r.venue.sent] == [ENTRY]


async def test_an_inline_step_that_raises_is_raised_by_the_positions_task(tmp_path, engine_clock):
    returned = False
    with trio.fail_after(60):
        with pytest.RaisesGroup(
            pytest.RaisesExc(TransitionError, match="no transition from PLANNED on OrderAccepted"),
            flatten_subgroups=True,
        ):
            async with open_rig(tmp_path) as r:
                r.runner.deliver_now(ev.OrderAccepted(ENTRY, "v-1"))  # a report before the entry
                returned = True
                assert r.runner.state is S.PLANNED
                await trio.sleep_forever()
    assert returned  # the caller (the stream's reader) was not hit: the position's task raised it


async def test_an_inline_close_ends_the_positions_task(tmp_path, engine_clock):
    with trio.fail_after(60):
        async with open_rig(tmp_path) as r:
            await r.open()
            r.runner.deliver_now(ev.OrderExpired(ENTRY, D(0)))
            assert r.runner.state is S.CLOSED  # nothing filled: nothing to hedge or unwind
            with trio.fail_after(5):
                await r.done.wait()  # the task ended on its own, not cancelled
            assert not r.scope.cancelled_caught
            records = await r.records()
    assert any(isinstance(rec.payload, ExposureMeasured) for rec in records)
    assert stepped(records)[-1] == "OrderExpired"
