"""What the engine writes to the journal, and the journal tags of the core's events and commands.

For each position the journal holds a :class:`PositionOpened` (its plan), then for every event
a :class:`PositionStepped` (the event, when it was applied, the state it led to) followed in the
same durable append by the commands it produced. Recovery folds the stepped events through the
same pure :func:`~fundarb.core.position.step` (:mod:`fundarb.engine.recovery`).

A tag is forever: never re-use or change one (old journals would stop decoding).
"""

from __future__ import annotations

import typing
from decimal import Decimal

import attrs

from fundarb.core import commands as cm
from fundarb.core import events as ev
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.journal import projections as pj
from fundarb.journal.codec import CODEC

__all__ = ["TAGS", "AlertRaised", "EngineStarted", "HedgeIdsReserved", "PositionOpened", "PositionStepped"]


@attrs.frozen
class PositionOpened:
    """A new position and everything fixed about it."""

    plan: PositionPlan


@attrs.frozen
class PositionStepped:
    """``event`` was applied at ``now_ms`` and led to ``state`` (a PositionState value)."""

    event: ev.Event
    now_ms: int
    state: str


@attrs.frozen
class HedgeIdsReserved:
    """Hedge orders of this position may be sent with client-id counters up to ``through`` before
    their own records are durable (the records are queued and written in the next batch).

    This is the durable intent for those hedges: written with the step that makes them possible
    (leg A's entry), so a leg-A fill is hedged without waiting for an fsync. After a crash, every
    id in the reservation that the journal does not show is looked up at the venue before it is
    used (:mod:`fundarb.engine.executor`), so a hedge sent but not journaled is found, not doubled.
    """

    through: int


@attrs.frozen
class AlertRaised:
    """An alert from a position or the engine (also sent to the log and metrics)."""

    severity: str
    message: str
    naked_qty: Decimal


@attrs.frozen
class HedgeGapMeasured:
    """Leg-A fill received -> hedge order ``cid`` written, in seconds."""

    cid: str
    seconds: float


@attrs.frozen
class ExposureMeasured:
    """A position's unhedged notional over its life: the integral (notional x seconds) and the peak."""

    naked_notional_seconds: float
    worst_naked_notional: float


@attrs.frozen
class EngineStarted:
    """The engine started in ``mode``; the configuration itself is in the journal's meta."""

    mode: str
    version: str


TAGS: dict[str, type] = {
    "engine.position_opened": PositionOpened,
    "engine.position_stepped": PositionStepped,
    "engine.alert": AlertRaised,
    "engine.started": EngineStarted,
    "engine.hedge_gap": HedgeGapMeasured,
    "engine.exposure": ExposureMeasured,
    "engine.hedge_ids_reserved": HedgeIdsReserved,
    "core.plan": PositionPlan,
    "core.leg_spec": LegSpec,
    **{
        f"cmd.{cls.__name__.lower()}": cls
        for cls in (cm.PlaceOrder, cm.CancelOrder, cm.QueryOrder, cm.Alert, cm.ArmTimer)
    },
    **{f"ev.{cls.__name__.lower()}": cls for cls in typing.get_args(ev.Event)},
}


def _register() -> None:
    for tag, cls in TAGS.items():
        attrs.resolve_types(cls)
        CODEC.register(cls, tag)
    pj.register_projector(PositionStepped, lambda rec, pid: [pj.PositionChange(rec.state)])
    pj.register_projector(
        cm.PlaceOrder, lambda c, pid: [pj.order_intent(c.request, position_id=c.position_id)]
    )


_register()
