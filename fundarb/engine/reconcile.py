"""Reconciliation with the venues at start (and for ``fundarb reconcile``): the Trio shell.

::

    journal records ─fold_journal─▶ positions ─┐
    every venue: open orders, fills since, ────┼─▶ core.reconcile.reconcile() ─▶ corrections, orphans,
      positions, balances, funding since ──────┘                                failed, differences

:func:`read_snapshots` asks each configured venue (every call under a deadline, retried a few
times; a venue that stays unreadable is reported, and its positions cannot be reconciled).
:func:`reconcile_on_start` then acts, journal first: it journals a
:class:`~fundarb.engine.reconcile_records.ReconcileReported`, moves each position that cannot be
reconciled to FAILED (a journaled :class:`~fundarb.engine.reconcile_records.PositionQuarantined`
and a critical :class:`~fundarb.engine.records.AlertRaised`), cancels orphan orders, and returns
the corrective events for the engine to deliver to the adopted positions
(:meth:`StartupReconciliation.deliver`). While any difference that needs an operator stays
unacknowledged (this start's or an earlier one's), :attr:`StartupReconciliation.halt_reason` is
set and the engine opens no new position; ``fundarb reconcile --ack`` journals the
acknowledgement (:func:`acknowledge`).

Fills and funding are read from the opening of the oldest open position on each venue (minus
:data:`SINCE_SLACK_MS`), so a fill the engine saw but had not journaled before a crash is found
again; positions count each trade id and funding payment once, so re-reading is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from fundarb.core.model import InstrumentId
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.core.reconcile import Reconciliation, VenueSnapshot, reconcile
from fundarb.engine.clock import EngineClock
from fundarb.engine.reconcile_records import (
    PositionQuarantined,
    ReconcileAcknowledged,
    ReconcileReported,
    unacknowledged,
)
from fundarb.engine.records import AlertRaised
from fundarb.engine.recovery import Recovered, fold_journal
from fundarb.journal.base import Entry, Journal, Record
from fundarb.venues.errors import OrderNotFound, RateLimited, VenueError
from fundarb.venues.protocol import Venue

__all__ = [
    "RATE_LIMIT_PATIENCE",
    "SINCE_SLACK_MS",
    "StartupReconciliation",
    "acknowledge",
    "read_snapshots",
    "reconcile_journal",
    "reconcile_on_start",
]

log = logging.getLogger("fundarb.reconcile")

#: fills and funding are read from this long before the oldest open position was opened
SINCE_SLACK_MS = 60_000


@attrs.frozen
class StartupReconciliation:
    """What reconciliation found and did; the engine adopts :attr:`recovered` and delivers the rest."""

    recovered: Recovered
    result: Reconciliation
    cancelled: tuple[str, ...] = ()
    cancel_failures: tuple[str, ...] = ()
    unacknowledged: int = 0

    @property
    def halt_reason(self) -> str:
        """Non-empty while new positions must not open (differences an operator must acknowledge)."""
        if not self.unacknowledged:
            return ""
        return (
            f"{self.unacknowledged} unacknowledged reconciliation report(s): "
            "see `fundarb reconcile`, acknowledge with `fundarb reconcile --ack`"
        )

    def deliver(self, runners: Mapping[str, Any]) -> int:
        """Send each correction to its position's runner (``runners``: id -> runner with
        ``deliver``); return how many were delivered."""
        n = 0
        for pid, event in self.result.corrections:
            runner = runners.get(pid)
            if runner is None:
                log.warning("correction for position %s without a runner: %r", pid, event)
                continue
            runner.deliver(event)
            n += 1
        return n


def _since_by_venue(recovered: Recovered, now_ms: int) -> dict[str, tuple[int, set[InstrumentId]]]:
    out: dict[str, tuple[int, set[InstrumentId]]] = {}
    for pid, p in recovered.positions.items():
        if p.state is PositionState.CLOSED:
            continue
        opened = recovered.opened_ms.get(pid, now_ms)
        for leg in Leg:
            inst = p.plan.leg(leg).instrument.id
            since, instruments = out.get(inst.venue, (now_ms, set()))
            instruments.add(inst)
            out[inst.venue] = (min(since, opened - SINCE_SLACK_MS), instruments)
    return out


#: how long reconciliation waits in total for a venue's rate limit to clear before giving up
RATE_LIMIT_PATIENCE = 120.0


async def _retry(what: str, call: Any, *args: Any, call_timeout: float, attempts: int) -> Any:
    """``call`` under a deadline; failures retried ``attempts`` times. A rate limit is not an
    unreadable venue: it is waited out (its ``retry_after``) for up to :data:`RATE_LIMIT_PATIENCE`."""
    attempt, waited = 1, 0.0
    while True:
        try:
            with trio.fail_after(call_timeout):
                return await call(*args)
        except RateLimited as e:
            pause = max(float(e.retry_after), 0.1)
            if waited + pause > RATE_LIMIT_PATIENCE:
                raise VenueError(f"{what}: rate limited for over {RATE_LIMIT_PATIENCE:.0f} s: {e}") from e
            log.warning("reconcile: %s rate limited, waiting %.1f s", what, pause)
            waited += pause
            await trio.sleep(pause)
        except (VenueError, trio.TooSlowError) as e:
            if attempt >= attempts:
                raise VenueError(f"{what}: {type(e).__name__}: {e}") from e
            log.warning("reconcile: %s failed (%s), retrying", what, e)
            await trio.sleep(0.5 * attempt)
            attempt += 1


async def _snapshot(
    venue: Venue, since_ms: int, instruments: set[InstrumentId], call_timeout: float, attempts: int
) -> VenueSnapshot | str:
    name = venue.name
    try:
        orders = await _retry(
            f"{name} open orders", venue.open_orders, call_timeout=call_timeout, attempts=attempts
        )
        fills = []
        for inst in sorted(instruments, key=str):
            fills += await _retry(
                f"{name} fills of {inst}",
                venue.fills_since,
                inst,
                since_ms,
                call_timeout=call_timeout,
                attempts=attempts,
            )
        positions = await _retry(
            f"{name} positions", venue.positions, call_timeout=call_timeout, attempts=attempts
        )
        balances = await _retry(
            f"{name} balances", venue.balances, call_timeout=call_timeout, attempts=attempts
        )
        funding = (
            await _retry(
                f"{name} funding",
                venue.funding_income_since,
                since_ms,
                call_timeout=call_timeout,
                attempts=attempts,
            )
            if instruments
            else []
        )
    except VenueError as e:
        return str(e)
    return VenueSnapshot(
        name, since_ms, tuple(orders), tuple(fills), tuple(positions), tuple(balances), tuple(funding)
    )


async def read_snapshots(
    venues: Mapping[str, Venue],
    recovered: Recovered,
    now_ms: int,
    *,
    call_timeout: float = 10.0,
    attempts: int = 3,
) -> dict[str, VenueSnapshot | str]:
    """Read every venue's side of reconciliation concurrently; an unreadable venue maps to why."""
    since = _since_by_venue(recovered, now_ms)
    out: dict[str, VenueSnapshot | str] = {}

    async def one(name: str, venue: Venue) -> None:
        since_ms, instruments = since.get(name, (now_ms - SINCE_SLACK_MS, set()))
        out[name] = await _snapshot(venue, max(since_ms, 0), instruments, call_timeout, attempts)

    async with trio.open_nursery() as n:
        for name, venue in venues.items():
            n.start_soon(one, name, venue)
    return out


def reconcile_journal(
    records: Sequence[Record], snapshots: Mapping[str, VenueSnapshot | str], now_ms: int
) -> tuple[Recovered, Reconciliation]:
    """Pure: fold ``records`` and reconcile them with ``snapshots`` (what ``fundarb reconcile`` shows)."""
    recovered = fold_journal(list(records))
    unconfirmed = {cid for pid in recovered.positions for cid in recovered.unconfirmed(pid)}
    return recovered, reconcile(
        recovered.positions, snapshots, now_ms, mismatches=recovered.mismatches, unconfirmed=unconfirmed
    )


async def reconcile_on_start(
    journal: Journal,
    venues: Mapping[str, Venue],
    records: Sequence[Record],
    clock: EngineClock,
    *,
    call_timeout: float = 10.0,
    attempts: int = 3,
) -> StartupReconciliation:
    """Reconcile the journal with ``venues`` and act on it (journal first); see the module docstring."""
    now = clock.now_ms()
    recovered = fold_journal(list(records))
    snapshots = await read_snapshots(venues, recovered, now, call_timeout=call_timeout, attempts=attempts)
    unconfirmed = {cid for pid in recovered.positions for cid in recovered.unconfirmed(pid)}
    result = reconcile(
        recovered.positions, snapshots, now, mismatches=recovered.mismatches, unconfirmed=unconfirmed
    )
    open_count = len(recovered.open())
    report = ReconcileReported(tuple(sorted(venues)), open_count, result.differences, result.needs_ack)
    entries = [Entry(report, now)]
    positions = dict(recovered.positions)
    for pid, why in result.failed:
        p = positions[pid]
        positions[pid] = attrs.evolve(p, state=PositionState.FAILED, reason=why)
        entries.append(Entry(PositionQuarantined(why), now, pid))
        entries.append(Entry(AlertRaised("critical", f"cannot reconcile: {why}", p.unhedged_qty), now, pid))
        log.critical("position %s cannot be reconciled: %s (FAILED; an operator takes over)", pid, why)
    await journal.append(entries)  # journal before act: the cancels below follow the report
    for d in result.differences:
        level = logging.WARNING if d.needs_ack else logging.INFO
        log.log(level, "reconcile %s %s: %s", d.venue, d.kind.value, d.detail)
    cancelled, failures = await _cancel_orphans(venues, result, call_timeout)
    pending = len(unacknowledged(records)) + (1 if result.needs_ack or failures else 0)
    return StartupReconciliation(
        attrs.evolve(recovered, positions=positions), result, cancelled, failures, pending
    )


async def _cancel_orphans(
    venues: Mapping[str, Venue], result: Reconciliation, call_timeout: float
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cancelled: list[str] = []
    failures: list[str] = []
    for u in result.orphans:
        venue = venues.get(u.instrument.venue)
        if venue is None:
            failures.append(f"{u.client_order_id}: venue {u.instrument.venue} not configured")
            continue
        try:
            with trio.move_on_after(call_timeout, shield=True) as scope:
                await venue.cancel_order(u.instrument, u.client_order_id)
            if scope.cancelled_caught:
                failures.append(f"{u.client_order_id}: cancel timed out")
                continue
        except OrderNotFound:
            pass  # it finished meanwhile: nothing left working
        except VenueError as e:
            failures.append(f"{u.client_order_id}: {type(e).__name__}: {e}")
            continue
        cancelled.append(u.client_order_id)
        log.warning("reconcile: cancelled orphan order %s on %s", u.client_order_id, u.instrument)
    for f in failures:
        log.critical("reconcile: orphan order not cancelled: %s", f)
    return tuple(cancelled), tuple(failures)


async def acknowledge(journal: Journal, note: str, now_ms: int) -> int:
    """Journal an operator's acknowledgement of everything up to now; return the seq it covers."""
    through = await journal.last_seq()
    await journal.append([Entry(ReconcileAcknowledged(through, note), now_ms)])
    return through
