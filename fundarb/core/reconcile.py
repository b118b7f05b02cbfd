"""Reconciliation, pure: (positions rebuilt from the journal, what each venue reports) -> corrections.

After a restart the journal knows what the engine did up to the crash; the venues know what
really happened, including while the engine was down. :func:`reconcile` compares the two and
returns:

* **corrections**: events for the positions, fed through the same pure
  :func:`~fundarb.core.position.step` as live reports (fills we missed become
  ``OrderPartiallyFilled``, a working order's venue status ``OrderStatusReported``, liquidation/ADL
  fills ``VenueFillReceived``, a perp or spot quantity that still disagrees ``PositionDrifted``,
  funding settled while down ``FundingPaid``);
* **orphans**: working orders at the venue carrying our prefix (``fa.``) that no journaled
  position owns, or that a closed position still has: the shell cancels them;
* **failed**: positions that cannot be reconciled (the journal does not replay, a venue could
  not be read, the venue holds the leg in the opposite direction, several positions share a
  mismatched instrument): the shell moves them to FAILED with an alert;
* **differences**: everything found, for the operator (``fundarb reconcile``). Those marked
  ``needs_ack`` stop new entries until an operator acknowledges them.

Quantities are compared with what the journal knows for sure. An order of unknown outcome (sent
before a crash, or still working) may have filled anywhere from nothing to all of it: a venue
quantity inside that band is not drift (correcting it would, say, double an unwind); the
``ResyncRequested`` the engine sends every recovered position queries those orders, and their
answers settle the position. Only a quantity outside the band is corrected or given up on.
Fills are matched to our orders by client order id; a venue whose trade lists carry none (Binance's
``userTrades``/``myTrades``) leaves that to the queries and the band.

Every comparison is idempotent: a fill whose trade id a position already counted, or a funding
payment it already booked, is not corrected again, so reconciling twice changes nothing.

Venue positions are signed (short negative); a leg's held quantity is unsigned in its own
direction. Spot legs are compared with wallet balances (long: free + locked of the base asset;
short: borrowed), but only a shortfall larger than :data:`SPOT_TOLERANCE` of the expected
quantity is corrected, because a spot wallet may hold more than our positions and a fee paid in
the base asset makes it hold slightly less.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

import attrs

from fundarb.core import events as ev
from fundarb.core.errors import TransitionError
from fundarb.core.model import (
    ZERO,
    FundingPayment,
    InstrumentId,
    Market,
    OrderUpdate,
    Side,
)
from fundarb.core.position import step
from fundarb.core.position_model import Leg, OrderState, Position, PositionState
from fundarb.core.reconcile_model import Difference, DiffKind, Reconciliation, VenueSnapshot

__all__ = [
    "SPOT_TOLERANCE",
    "DiffKind",
    "Difference",
    "Reconciliation",
    "VenueSnapshot",
    "funding_key",
    "owner_of",
    "reconcile",
]

S = PositionState

#: A spot shortfall up to this fraction of the expected holding is reported, not corrected.
SPOT_TOLERANCE = Decimal("0.01")


def funding_key(payment: FundingPayment) -> str:
    """One key per (instrument, settlement hour), exactly as the engine's live router keys funding
    (:func:`fundarb.engine.manager.funding_key`; a test keeps the two equal): a payment the
    stream delivered and the same payment read over REST at reconciliation count once."""
    hour = (payment.ts_ms + 1_800_000) // 3_600_000
    return f"{payment.instrument}@{hour}"


def owner_of(cid: str) -> str | None:
    """The position id inside one of our client order ids (``fa.<id>.<leg>.<n>``), else None."""
    parts = cid.split(".")
    if len(parts) == 4 and parts[0] == "fa" and parts[1]:
        return parts[1]
    return None


@attrs.define
class _Work:
    """Mutable scratch of one reconciliation (never escapes :func:`reconcile`)."""

    positions: dict[str, Position]
    now_ms: int
    corrections: list[tuple[str, ev.Event]] = attrs.Factory(list)
    orphans: list[OrderUpdate] = attrs.Factory(list)
    failed: dict[str, str] = attrs.Factory(dict)
    diffs: list[Difference] = attrs.Factory(list)
    drifts: dict[str, list[tuple[str, Leg, Decimal, str]]] = attrs.Factory(dict)
    unconfirmed: frozenset[str] = frozenset()
    reserving: frozenset[str] = frozenset()  # positions with unconfirmed reserved hedge ids

    def live(self, pid: str) -> Position | None:
        """The position ``pid`` if it is still open and not given up on."""
        p = self.positions.get(pid)
        if p is None or p.state is S.CLOSED or pid in self.failed:
            return None
        return p

    def correct(self, pid: str, event: ev.Event) -> None:
        """Apply ``event`` to the scratch copy and keep it as a correction (or fail the position)."""
        p = self.positions[pid]
        try:
            self.positions[pid], _ = step(p, event, self.now_ms)
        except TransitionError as e:
            self.fail(pid, p.plan.leg_a.instrument.id.venue, f"correction {type(event).__name__}: {e}")
            return
        self.corrections.append((pid, event))

    def fail(self, pid: str, venue: str, why: str) -> None:
        """Give up on ``pid``: the shell moves it to FAILED with an alert."""
        if pid not in self.failed:
            self.failed[pid] = why
            self.diffs.append(Difference(DiffKind.UNRECONCILABLE, venue, why, pid, needs_ack=True))

    def diff(self, kind: DiffKind, venue: str, detail: str, **kw: object) -> None:
        """Record a difference."""
        self.diffs.append(Difference(kind, venue, detail, **kw))  # type: ignore[arg-type]


def reconcile(
    positions: Mapping[str, Position],
    snapshots: Mapping[str, VenueSnapshot | str],
    now_ms: int,
    *,
    mismatches: Mapping[str, str] | None = None,
    unconfirmed: Collection[str] = (),
) -> Reconciliation:
    """Compare journal-derived ``positions`` (by id, any state) with each venue's snapshot.

    ``snapshots`` maps a venue name to its snapshot, or to the reason it could not be read;
    ``mismatches`` are positions whose journal did not replay (from
    :func:`fundarb.engine.recovery.fold_journal`); ``unconfirmed`` are reserved hedge client ids
    the journal does not show (hedges that may have been sent, unjournaled, just before a crash:
    their positions look them up and adopt them, so they are neither orphans nor drift).
    Pure and deterministic.
    """
    ids = frozenset(unconfirmed)
    reserving = frozenset(pid for pid in map(owner_of, ids) if pid is not None)
    w = _Work(dict(positions), now_ms, unconfirmed=ids, reserving=reserving)
    for pid, why in sorted((mismatches or {}).items()):
        p = positions.get(pid)
        venue = p.plan.leg_a.instrument.id.venue if p is not None else "?"
        known = p is not None and p.state in (S.CLOSED, S.FAILED)  # already settled or an operator's
        w.diffs.append(Difference(DiffKind.REPLAY_MISMATCH, venue, why, pid, needs_ack=not known))
        if not known:
            w.fail(pid, venue, f"journal does not replay: {why}")
    for venue in sorted(snapshots):
        snap = snapshots[venue]
        if isinstance(snap, str):
            w.diff(DiffKind.VENUE_UNAVAILABLE, venue, snap, needs_ack=True)
            for pid in sorted(w.positions):
                p = w.live(pid)
                if p is not None and p.state is not S.FAILED and p.plan.leg_of_venue(venue):
                    w.fail(pid, venue, f"venue {venue} could not be read: {snap}")
    for venue in sorted(snapshots):
        snap = snapshots[venue]
        if isinstance(snap, str):
            continue
        _orders(w, snap)
        _fills(w, snap)
        _funding(w, snap)
        _perps(w, snap)
        _spot(w, snap)
    _drifts(w)
    return Reconciliation(
        tuple(w.corrections), tuple(w.orphans), tuple(sorted(w.failed.items())), tuple(w.diffs)
    )


# --- the comparisons ------------------------------------------------------------------------------


def _orders(w: _Work, snap: VenueSnapshot) -> None:
    for u in sorted(snap.open_orders, key=lambda u: u.client_order_id):
        cid = u.client_order_id
        pid = owner_of(cid)
        if pid is None:
            w.diff(
                DiffKind.FOREIGN_ORDER,
                snap.venue,
                f"order {cid} is not ours: left alone",
                client_order_id=cid,
            )
            continue
        p = w.positions.get(pid)
        tracked = p.order(cid) if p is not None else None
        if tracked is None and cid in w.unconfirmed:
            _reserved(w, snap.venue, pid, cid, f"working ({u.status.value}, filled {u.filled_qty})")
            continue
        if p is None or tracked is None or p.state is S.CLOSED or not tracked.working:
            why = (
                "no journaled position owns it"
                if p is None
                else "its position never sent it"
                if tracked is None
                else "its position is closed"
                if p.state is S.CLOSED
                else "the journal has it done"
            )
            w.orphans.append(u)
            w.diff(
                DiffKind.ORPHAN_ORDER,
                snap.venue,
                f"{u.side.value} {u.quantity} {u.instrument} working ({u.status.value}, filled {u.filled_qty}): "
                f"{why}; cancelling",
                position_id=pid,
                client_order_id=cid,
                needs_ack=p is not None and p.state is S.CLOSED and u.filled_qty > 0,
            )
            continue
        if u.filled_qty > tracked.filled or tracked.state is not OrderState.WORKING:
            w.diff(
                DiffKind.ORDER_STATUS,
                snap.venue,
                f"{cid}: venue {u.status.value} filled {u.filled_qty}, journal {tracked.state.value} "
                f"filled {tracked.filled}",
                position_id=pid,
                client_order_id=cid,
            )
            w.correct(pid, ev.OrderStatusReported(cid, u.status, u.filled_qty))


def _fills(w: _Work, snap: VenueSnapshot) -> None:
    for f in sorted(snap.fills, key=lambda f: (f.ts_ms, f.trade_id)):
        key = f"{f.instrument.symbol}:{f.trade_id}"
        desc = f"{f.side.value} {f.quantity} {f.instrument} @ {f.price} (trade {f.trade_id})"
        if f.venue_generated is not None:
            if any(key in p.trade_keys for p in w.positions.values()):
                continue
            holders = _holders(w, f.instrument)
            if not holders:
                w.diff(
                    DiffKind.UNOWNED_FILL,
                    snap.venue,
                    f"{f.venue_generated.value} fill {desc}: no position holds it",
                    needs_ack=True,
                )
                continue
            holder = max(holders, key=lambda h: (holders[h], h))
            w.diff(
                DiffKind.VENUE_FILL, snap.venue, f"{f.venue_generated.value} fill {desc}", position_id=holder
            )
            w.correct(holder, ev.VenueFillReceived(f))
            continue
        cid = f.client_order_id
        pid = owner_of(cid)
        if pid is None:
            continue  # someone else's trade on this account: balances show it if it matters
        p = w.positions.get(pid)
        if cid in w.unconfirmed and p is not None and p.order(cid) is None:
            _reserved(w, snap.venue, pid, cid, f"filled {desc}")
            continue
        if p is None or p.order(cid) is None:
            w.diff(
                DiffKind.UNOWNED_FILL,
                snap.venue,
                f"fill of {cid} {desc}: no journaled order",
                position_id=pid,
                client_order_id=cid,
                needs_ack=True,
            )
            continue
        if key in p.trade_keys:
            continue
        if p.state is S.CLOSED:
            w.diff(
                DiffKind.UNOWNED_FILL,
                snap.venue,
                f"fill of {cid} {desc} after its position closed",
                position_id=pid,
                client_order_id=cid,
                needs_ack=True,
            )
            continue
        w.diff(DiffKind.MISSED_FILL, snap.venue, f"{cid}: {desc}", position_id=pid, client_order_id=cid)
        w.correct(pid, ev.OrderPartiallyFilled(cid, f))


def _funding(w: _Work, snap: VenueSnapshot) -> None:
    for pay in sorted(snap.funding, key=lambda x: (x.ts_ms, x.payment_id)):
        holders = _holders(w, pay.instrument)
        total = sum(holders.values(), ZERO)
        if total <= 0:
            continue
        for pid, qty in sorted(holders.items()):
            share = FundingPayment(
                pay.instrument, f"{funding_key(pay)}:{pid}", pay.amount * qty / total, pay.asset, pay.ts_ms
            )
            if share.payment_id in w.positions[pid].funding_ids:
                continue
            w.diff(
                DiffKind.MISSED_FUNDING,
                snap.venue,
                f"{pay.instrument} {share.amount} {pay.asset}",
                position_id=pid,
            )
            w.correct(pid, ev.FundingPaid(share))


def _holders(w: _Work, instrument: InstrumentId) -> dict[str, Decimal]:
    """Open positions holding ``instrument`` -> quantity held on that leg."""
    out: dict[str, Decimal] = {}
    for pid, p in w.positions.items():
        if w.live(pid) is None or p.state is S.FAILED:
            continue
        for leg in Leg:
            if p.plan.leg(leg).instrument.id == instrument and p.held(leg) > 0:
                out[pid] = p.held(leg)
    return out


def _legs_on(w: _Work, venue: str, market: Market) -> dict[InstrumentId, list[tuple[str, Leg]]]:
    """Every (position, leg) of a not-closed position trading ``market`` on ``venue``, by instrument."""
    out: dict[InstrumentId, list[tuple[str, Leg]]] = {}
    for pid in sorted(w.positions):
        p = w.positions[pid]
        if p.state is S.CLOSED:
            continue
        for leg in Leg:
            inst = p.plan.leg(leg).instrument.id
            if inst.venue == venue and inst.market is market:
                out.setdefault(inst, []).append((pid, leg))
    return out


def _sign(side: Side) -> Decimal:
    return Decimal(1) if side is Side.BUY else Decimal(-1)


def _settle_mismatch(
    w: _Work, venue: str, inst: InstrumentId, legs: list[tuple[str, Leg]], actual: Decimal, what: str
) -> None:
    """The venue holds ``actual`` (signed) of ``inst`` where ``legs`` expect something else."""
    fixed = [
        (pid, leg) for pid, leg in legs if w.live(pid) is not None and w.positions[pid].state is not S.FAILED
    ]
    frozen = [(pid, leg) for pid, leg in legs if (pid, leg) not in fixed]
    rest = actual - sum(
        (_sign(w.positions[pid].plan.leg(leg).side) * w.positions[pid].held(leg) for pid, leg in frozen), ZERO
    )
    if not fixed:
        if frozen:  # only FAILED positions trade it: already an operator's, already alerted
            pids = ", ".join(sorted({pid for pid, _ in frozen}))
            w.diff(DiffKind.DRIFT, venue, f"{inst}: {what}; held by FAILED {pids}, left to the operator")
            return
        w.diff(
            DiffKind.UNOWNED_EXPOSURE, venue, f"{inst}: {what}; no open position to correct", needs_ack=True
        )
        return
    if len(fixed) > 1:
        for pid, _ in fixed:
            w.fail(pid, venue, f"{inst}: {what}; shared by {len(fixed)} positions, cannot attribute")
        return
    pid, leg = fixed[0]
    venue_qty = rest * _sign(w.positions[pid].plan.leg(leg).side) + ZERO  # + ZERO: no "-0"
    if venue_qty < 0:
        w.fail(pid, venue, f"{inst}: {what}; the venue holds leg {leg.value} the other way ({venue_qty})")
        return
    w.drifts.setdefault(pid, []).append((venue, leg, venue_qty, f"{inst}: {what}"))


def _perps(w: _Work, snap: VenueSnapshot) -> None:
    actual: dict[InstrumentId, Decimal] = {}
    for vp in snap.positions:
        actual[vp.instrument] = actual.get(vp.instrument, ZERO) + vp.quantity
    legs = _legs_on(w, snap.venue, Market.PERPETUAL)
    for inst in sorted(set(actual) | set(legs), key=str):
        mine = legs.get(inst, [])
        expected = sum(
            (_sign(w.positions[pid].plan.leg(leg).side) * w.positions[pid].held(leg) for pid, leg in mine),
            ZERO,
        )
        have = actual.get(inst, ZERO)
        if have == expected:
            continue
        low, high = _band(w, mine)
        if mine and low <= have <= high:  # orders of unknown outcome explain it: their queries decide
            _pending(w, snap.venue, inst, mine, f"venue position {have}, journal {expected} ({low}..{high})")
            continue
        _settle_mismatch(w, snap.venue, inst, mine, have, f"venue position {have}, journal {expected}")


def _spot(w: _Work, snap: VenueSnapshot) -> None:
    legs = _legs_on(w, snap.venue, Market.SPOT)
    for inst, mine in sorted(legs.items(), key=lambda kv: str(kv[0])):
        base = w.positions[mine[0][0]].plan.leg(mine[0][1]).instrument.base
        long_ = [(pid, leg) for pid, leg in mine if w.positions[pid].plan.leg(leg).side is Side.BUY]
        short = [(pid, leg) for pid, leg in mine if (pid, leg) not in long_]
        wallets = [b for b in snap.balances if b.asset == base]
        held_long = sum((b.free + b.locked for b in wallets), ZERO)
        borrowed = sum((b.borrowed for b in wallets), ZERO)
        for group, have, sign, label in ((long_, held_long, 1, "held"), (short, borrowed, -1, "borrowed")):
            expected = sum((w.positions[pid].held(leg) for pid, leg in group), ZERO)
            shortfall = expected - have
            if not group or shortfall <= expected * SPOT_TOLERANCE:
                continue
            what = f"{base} {label} {have}, journal expects {expected}"
            low = sum(  # unsigned: what the group holds if every working reducing order fills
                (w.positions[pid].held(leg) - _remaining(w.positions[pid], leg, False) for pid, leg in group),
                ZERO,
            )
            if low <= have + expected * SPOT_TOLERANCE:  # working reducing orders explain it
                _pending(w, snap.venue, inst, group, what)
                continue
            # attribute what the wallet has to the group, as a signed spot "position"
            _settle_mismatch(w, snap.venue, inst, group, sign * have, what)


def _reserved(w: _Work, venue: str, pid: str, cid: str, what: str) -> None:
    w.diff(
        DiffKind.RESERVED_ORDER,
        venue,
        f"{cid} {what}: a reserved hedge sent before the crash and not journaled; its position adopts it",
        position_id=pid,
        client_order_id=cid,
    )


def _band(w: _Work, legs: list[tuple[str, Leg]]) -> tuple[Decimal, Decimal]:
    """The signed range the venue may hold for ``legs`` once their orders of unknown outcome
    (sent, working or unanswered) are settled: each may fill anywhere from nothing to all of it.
    A position with unconfirmed reserved hedges may hold up to its full plan on each leg."""
    low = high = ZERO
    for pid, leg in legs:
        p = w.positions[pid]
        sign = _sign(p.plan.leg(leg).side)
        up, down = _remaining(p, leg, True), _remaining(p, leg, False)
        if pid in w.reserving:
            up = max(up, p.plan.leg(leg).target_qty - p.held(leg))
        a, b = sign * (p.held(leg) - down), sign * (p.held(leg) + up)
        low, high = low + min(a, b), high + max(a, b)
    return low, high


def _remaining(p: Position, leg: Leg, increases: bool) -> Decimal:
    return sum((o.remaining for o in p.working(leg, increases=increases)), ZERO)


def _pending(w: _Work, venue: str, inst: InstrumentId, legs: list[tuple[str, Leg]], what: str) -> None:
    pids = sorted({pid for pid, _ in legs})
    w.diff(
        DiffKind.ORDER_STATUS,
        venue,
        f"{inst}: {what}; within what orders of unknown outcome may have done: their queries decide",
        position_id=pids[0] if len(pids) == 1 else None,
    )


def _drifts(w: _Work) -> None:
    """One drifted leg is corrected (the machine re-levels the other leg to it). Both legs of a
    position drifted means someone traded it outside the engine (or a simulated venue lost its
    state): correcting one leg at a time would send an order sized for a half-corrected position,
    so the position is given to an operator instead."""
    for pid in sorted(w.drifts):
        found = w.drifts[pid]
        if pid in w.failed:
            continue
        if len(found) > 1:
            what = "; ".join(f"leg {leg.value} {detail}" for _, leg, _, detail in found)
            w.fail(pid, found[0][0], f"both legs differ from the venue: {what}")
            continue
        venue, leg, qty, detail = found[0]
        w.diff(DiffKind.DRIFT, venue, f"{detail}; leg {leg.value} taken as {qty}", position_id=pid)
        w.correct(pid, ev.PositionDrifted(leg.value, qty))
