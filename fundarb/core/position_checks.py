"""Checks of the position machine: the table's shape (run at import) and the exposure invariant.

Kept apart from the table so the table module stays readable; both are pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fundarb.core.errors import TransitionError
from fundarb.core.position_model import Leg, Position, PositionState

__all__ = ["check_invariant", "validate_table"]

S = PositionState


class _RuleLike(Protocol):
    @property
    def source(self) -> PositionState: ...
    @property
    def event(self) -> type: ...
    @property
    def targets(self) -> frozenset[PositionState]: ...


def validate_table(
    rules: Iterable[_RuleLike], *, initial: PositionState, terminal: frozenset[PositionState]
) -> None:
    """Check a transition table; raise :class:`TransitionError` naming the first problem.

    One rule per (state, event); exactly one initial state (no way in) and it is ``initial``;
    every state reachable from it; no trap states (every non-terminal state has a way out);
    terminal states have no way out; a terminal state reachable from every non-terminal state.
    """
    rules = list(rules)
    seen: set[tuple[PositionState, type]] = set()
    for r in rules:
        if (r.source, r.event) in seen:
            raise TransitionError(f"two rules for ({r.source.name}, {r.event.__name__})")
        seen.add((r.source, r.event))
    edges: dict[PositionState, set[PositionState]] = {s: set() for s in PositionState}
    for r in rules:
        edges[r.source] |= r.targets
    incoming = {t for s, ts in edges.items() for t in ts if t is not s}
    starts = [s for s in PositionState if s not in incoming]
    if starts != [initial]:
        raise TransitionError(
            f"expected exactly one initial state {initial.name}, found {[s.name for s in starts]}"
        )

    def reach(start: PositionState) -> set[PositionState]:
        todo, found = [start], {start}
        while todo:
            for t in edges[todo.pop()]:
                if t not in found:
                    found.add(t)
                    todo.append(t)
        return found

    unreachable = set(PositionState) - reach(initial)
    if unreachable:
        raise TransitionError(f"unreachable states: {sorted(s.name for s in unreachable)}")
    for s in PositionState:
        if s in terminal:
            if edges[s] - {s}:
                raise TransitionError(f"terminal state {s.name} has a way out")
            continue
        if not edges[s] - {s}:
            raise TransitionError(f"trap state {s.name}: no way out")
        if not reach(s) & terminal:
            raise TransitionError(f"no terminal state is reachable from {s.name}")


def check_invariant(position: Position, alerted: bool) -> str | None:
    """The machine's promise, as a predicate; returns a description of a breach, or None.

    Outside HEDGED and CLOSED, a difference between the legs' held quantities that a venue would
    accept as an order must have a working order that reduces it, unless the position is FAILED
    and ``alerted`` says an alert was emitted.
    """
    p = position
    if p.state in (S.HEDGED, S.CLOSED, S.PLANNED):
        return None
    diff = p.unhedged_qty
    if diff == 0:
        return None
    if p.state is S.FAILED:
        return None if alerted else "FAILED without an alert"
    larger, smaller = (Leg.A, Leg.B) if diff > 0 else (Leg.B, Leg.A)
    if p.dust != 0:
        return None  # too small for the venue of the leg that would fix it: tracked dust
    if p.working(larger, increases=False) or p.working(smaller, increases=True):
        return None
    return f"{p.state.name}: legs differ by {diff} and no working order reduces the difference"
