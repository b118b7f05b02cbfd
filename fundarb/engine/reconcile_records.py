"""What reconciliation writes to the journal, and the acknowledgement flag it derives from it.

* :class:`ReconcileReported`: one per reconciliation (engine start or ``fundarb reconcile``), with
  every difference found and whether it needs an operator's acknowledgement;
* :class:`PositionQuarantined`: a position that could not be reconciled; recovery folds it into
  the position as FAILED (:func:`fundarb.engine.recovery.fold_journal`), so a restart keeps it so;
* :class:`ReconcileAcknowledged`: an operator acknowledged everything journaled up to ``through_seq``.

:func:`unacknowledged` reads the flag back: the engine opens no new position while it is set.
A tag is forever: never re-use or change one.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from fundarb.core.reconcile import Difference
from fundarb.journal import projections as pj
from fundarb.journal.base import Record
from fundarb.journal.codec import CODEC

__all__ = [
    "TAGS",
    "PositionQuarantined",
    "ReconcileAcknowledged",
    "ReconcileReported",
    "unacknowledged",
]


@attrs.frozen
class ReconcileReported:
    """A reconciliation ran on ``venues``, checked ``positions`` open positions and found ``differences``."""

    venues: tuple[str, ...]
    positions: int
    differences: tuple[Difference, ...]
    needs_ack: bool
    source: str = "engine"


@attrs.frozen
class PositionQuarantined:
    """The position could not be reconciled: it is FAILED from here on (an operator's now)."""

    reason: str


@attrs.frozen
class ReconcileAcknowledged:
    """An operator acknowledged every reconciliation difference journaled up to ``through_seq``."""

    through_seq: int
    note: str


TAGS: dict[str, type] = {
    "engine.reconcile_reported": ReconcileReported,
    "engine.position_quarantined": PositionQuarantined,
    "engine.reconcile_acknowledged": ReconcileAcknowledged,
    "core.reconcile_difference": Difference,
}


def unacknowledged(records: Sequence[Record]) -> list[Record]:
    """The :class:`ReconcileReported` records needing acknowledgement that no later
    :class:`ReconcileAcknowledged` covers, in seq order."""
    acked = 0
    for r in records:
        if isinstance(r.payload, ReconcileAcknowledged):
            acked = max(acked, r.payload.through_seq)
    return [
        r
        for r in records
        if isinstance(r.payload, ReconcileReported) and r.payload.needs_ack and r.seq > acked
    ]


def _register() -> None:
    attrs.resolve_types(Difference)
    for tag, cls in TAGS.items():
        CODEC.register(cls, tag)
    # the positions projection follows the quarantine (what `fold_journal` does)
    pj.register_projector(PositionQuarantined, lambda rec, pid: [pj.PositionChange("failed")])


_register()
