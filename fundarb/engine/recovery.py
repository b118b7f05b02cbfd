"""Rebuild positions from the journal by folding their events through the same pure ``step``.

Every :class:`~fundarb.engine.records.PositionStepped` records the event, the time it was
applied and the state it led to; replaying them must land on the same states. A mismatch means
the journal and the code disagree (a corrupt journal, or a machine changed under a live book):
the position is reported, never silently trusted.

A :class:`~fundarb.engine.records.HedgeIdsReserved` record extends the position's hedge reservation;
:meth:`Recovered.unconfirmed` names the reserved client ids the journal does not show (hedges
that may have been sent, unjournaled, just before a crash): they are looked up before use.

A :class:`~fundarb.engine.reconcile_records.PositionQuarantined` record (a position that could
not be reconciled with its venues) puts the position in FAILED, as it was when journaled.
"""

from __future__ import annotations

import attrs

from fundarb.core.client_ids import make_client_order_id
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg
from fundarb.engine.reconcile_records import PositionQuarantined
from fundarb.engine.records import HedgeIdsReserved, PositionOpened, PositionStepped
from fundarb.journal.base import Record

__all__ = ["Recovered", "fold_journal"]


@attrs.frozen
class Recovered:
    """Positions rebuilt from a journal, and the ones that did not replay cleanly."""

    positions: dict[str, Position]
    mismatches: dict[str, str]
    last_seq: int
    opened_ms: dict[str, int] = attrs.Factory(dict)
    reserved: dict[str, int] = attrs.Factory(dict)

    def open(self) -> list[Position]:
        """Positions that are not CLOSED (they need the engine again)."""
        return [p for p in self.positions.values() if p.state is not PositionState.CLOSED]

    def unconfirmed(self, pid: str) -> set[str]:
        """Reserved hedge client ids of ``pid`` beyond what the journal shows it minted."""
        p = self.positions.get(pid)
        if p is None or p.state is PositionState.CLOSED:
            return set()
        counters = range(p.next_seq, self.reserved.get(pid, 0) + 1)
        return {make_client_order_id(pid, leg.value, n) for n in counters for leg in Leg}


def fold_journal(records: list[Record]) -> Recovered:
    """Fold journal records (in seq order) into positions."""
    positions: dict[str, Position] = {}
    mismatches: dict[str, str] = {}
    last = 0
    opened_ms: dict[str, int] = {}
    reserved: dict[str, int] = {}
    for rec in records:
        last = rec.seq
        payload = rec.payload
        if isinstance(payload, PositionOpened):
            pid = payload.plan.position_id
            if pid in positions:  # its client order ids would collide with the first one's
                mismatches[pid] = f"seq {rec.seq}: position id {pid} opened twice"
                continue
            positions[pid] = Position(payload.plan)
            opened_ms[pid] = rec.ts_ms
        elif isinstance(payload, HedgeIdsReserved) and rec.position_id in positions:
            reserved[rec.position_id] = max(reserved.get(rec.position_id, 0), payload.through)
        elif isinstance(payload, PositionQuarantined) and rec.position_id in positions:
            pid = rec.position_id
            positions[pid] = attrs.evolve(positions[pid], state=PositionState.FAILED, reason=payload.reason)
        elif isinstance(payload, PositionStepped) and rec.position_id in positions:
            pid = rec.position_id
            if pid in mismatches:
                continue
            try:
                p, _ = step(positions[pid], payload.event, payload.now_ms)
            except Exception as e:  # a journal the code cannot replay: report, do not guess
                mismatches[pid] = f"seq {rec.seq}: {type(e).__name__}: {e}"
                continue
            if p.state.value != payload.state:
                mismatches[pid] = f"seq {rec.seq}: replay gave {p.state.value}, journal says {payload.state}"
            positions[pid] = p
    return Recovered(positions, mismatches, last, opened_ms, reserved)
