"""Projections: what an operator can query without replaying the journal.

Two tables are maintained in the same transaction as the rows they summarize:

- ``positions``: one row per position id, touched by every entry that names a position; its
  ``state`` is set by entries whose projector yields a :class:`PositionChange`.
- ``orders``: one row per client order id, from :class:`OrderChange` values (the intent first,
  then the venue's reports). Fields a change leaves ``None`` keep their previous value; the
  latest journaled status wins (journal order, which is the engine's processing order).

Projectors are registered per payload class, so events and commands defined elsewhere plug in::

    @projector(PlaceOrder)
    def _place(cmd, position_id):
        yield order_intent(cmd.request, position_id=cmd.position_id)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from fundarb.core import model, venue_events

__all__ = [
    "OrderChange",
    "PositionChange",
    "ProjectionBatch",
    "changes_of",
    "order_intent",
    "order_report",
    "project_batch",
    "projector",
    "register_projector",
]

T = TypeVar("T")
INTENT = "INTENT"
"""Order status of a journaled intent the venue has not acknowledged yet."""


@attrs.frozen
class PositionChange:
    """Set a position's projected ``state`` (e.g. ``"hedged"``). ``position_id`` defaults to the entry's."""

    state: str
    position_id: str | None = None


@attrs.frozen
class OrderChange:
    """New facts about one order, by client order id. ``None`` fields keep their previous value."""

    client_order_id: str
    status: str | None = None
    position_id: str | None = None
    instrument: str | None = None
    side: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    filled_qty: Decimal | None = None
    venue_order_id: str | None = None


Projector = Callable[[Any, "str | None"], Iterable["PositionChange | OrderChange"]]
"""``fn(payload, position_id)`` -> the changes this payload makes to the projections."""
_PROJECTORS: dict[type, Projector] = {}


def register_projector(cls: type, fn: Projector) -> None:
    """Project every journaled ``cls`` payload through ``fn(payload, position_id)``."""
    if _PROJECTORS.get(cls, fn) is not fn:
        raise ValueError(f"{cls!r} already has a projector")
    _PROJECTORS[cls] = fn


def projector(cls: type) -> Callable[[Projector], Projector]:
    """Decorator form of :func:`register_projector`."""

    def decorate(fn: Projector) -> Projector:
        register_projector(cls, fn)
        return fn

    return decorate


def order_intent(request: model.OrderRequest, *, position_id: str | None = None) -> OrderChange:
    """The projection of an order we are about to send (status ``INTENT``)."""
    return OrderChange(
        client_order_id=request.client_order_id,
        status=INTENT,
        position_id=position_id,
        instrument=str(request.instrument),
        side=request.side.value,
        quantity=request.quantity,
        price=request.price,
    )


def order_report(update: model.OrderUpdate) -> OrderChange:
    """The projection of a venue's order report."""
    return OrderChange(
        client_order_id=update.client_order_id,
        status=update.status.value,
        instrument=str(update.instrument),
        side=update.side.value,
        quantity=update.quantity if update.quantity > 0 else None,
        filled_qty=update.filled_qty,
        venue_order_id=update.venue_order_id,
    )


register_projector(model.OrderRequest, lambda p, _pid: [order_intent(p)])
register_projector(model.OrderUpdate, lambda p, _pid: [order_report(p)])
register_projector(venue_events.OrderReported, lambda p, _pid: [order_report(p.update)])


@attrs.frozen
class ProjectionBatch:
    """Projection rows of one write, at most one per key, ready for an upsert.

    ``positions`` rows: ``(position_id, state, seq, kind, ts_ms)``.
    ``orders`` rows: ``(client_order_id, position_id, instrument, side, quantity, price, status,
    filled_qty, venue_order_id, seq, ts_ms)`` with Decimals as strings.
    """

    positions: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def changes_of(kind: str, payload: Any, position_id: str | None) -> tuple[PositionChange | OrderChange, ...]:
    """The projection changes one entry makes (run when the entry is queued, so errors surface
    at the call site, never inside a write holding other entries)."""
    fn = _PROJECTORS.get(type(payload))
    if fn is None:
        return ()
    changes = tuple(fn(payload, position_id))
    for change in changes:
        if isinstance(change, PositionChange):
            if change.position_id is None and position_id is None:
                raise ValueError(f"{kind}: a PositionChange needs a position id (give the Entry one)")
        elif not isinstance(change, OrderChange):
            raise TypeError(f"{kind}: a projector yielded {type(change).__name__}, not a change")
    return changes


def project_batch(entries: Iterable[tuple[int, Any]]) -> ProjectionBatch:
    """Collapse the projection changes of ``(seq, row)`` pairs, in seq order, into one row per key.

    Each row has ``kind``, ``position_id``, ``ts_ms`` and ``changes`` (from :func:`changes_of`).
    Later entries win field by field; ``None`` never erases a known value.
    """
    positions: dict[str, list[Any]] = {}
    orders: dict[str, list[Any]] = {}
    for seq, entry in entries:
        kind = entry.kind
        if entry.position_id is not None:
            row = positions.setdefault(entry.position_id, [entry.position_id, None, seq, kind, entry.ts_ms])
            row[2:] = [seq, kind, entry.ts_ms]
        for change in entry.changes:
            if isinstance(change, PositionChange):
                pid = change.position_id or entry.position_id
                row = positions.setdefault(pid, [pid, None, seq, kind, entry.ts_ms])
                row[1:] = [change.state, seq, kind, entry.ts_ms]
            else:
                new = [
                    change.client_order_id,
                    change.position_id or entry.position_id,
                    change.instrument,
                    change.side,
                    _s(change.quantity),
                    _s(change.price),
                    change.status,
                    _s(change.filled_qty),
                    change.venue_order_id,
                    seq,
                    entry.ts_ms,
                ]
                old = orders.get(change.client_order_id)
                if old is not None:
                    new = [n if n is not None else o for n, o in zip(new, old, strict=True)]
                orders[change.client_order_id] = new
    return ProjectionBatch(
        positions=[tuple(r) for r in positions.values()], orders=[tuple(r) for r in orders.values()]
    )
