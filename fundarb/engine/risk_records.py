"""What the risk service writes to the journal, and the venue wrapper that feeds its breaker.

Every risk decision is journaled as one of these records (flat values: strings, Decimals,
ints), under tags of the ``risk.`` area. A tag is forever: never re-use or change one.

:class:`ObservedVenue` wraps any :class:`~fundarb.venues.protocol.Venue` and reports the outcome
of every request/response call (``ok`` or not) to a callback: the API error-rate breaker's feed.
A venue *answer* that refuses (``OrderRejected``, ``OrderNotFound``) counts as ok: the API
worked. Transport failures, rate limits, unknown outcomes and protocol errors count as errors.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import trio

from fundarb.core.model import ZERO, OrderRequest
from fundarb.core.risk import RiskDecision
from fundarb.core.risk_modes import ModeChanged
from fundarb.journal.codec import CODEC
from fundarb.venues.errors import OrderNotFound, OrderRejected, VenueError
from fundarb.venues.protocol import VENUE_CALLS

__all__ = [
    "RISK_TAGS",
    "DeltaBreached",
    "GateDecided",
    "MarginActed",
    "ModeSwitched",
    "ObservedVenue",
    "RehedgeChecked",
    "VenueFillSeen",
]


@attrs.frozen
class GateDecided:
    """The pre-trade gate judged an order (``position_id`` ``"new"`` for an entry not yet made)."""

    allowed: bool
    reason: str
    detail: str
    mode: str
    position_id: str
    instrument: str
    purpose: str

    @classmethod
    def of(cls, decision: RiskDecision, position_id: str, instrument: object, purpose: str) -> GateDecided:
        """Flatten a core :class:`RiskDecision`."""
        return cls(
            decision.allowed,
            decision.reason.value,
            decision.detail,
            decision.mode.value,
            position_id,
            str(instrument),
            purpose,
        )


@attrs.frozen
class ModeSwitched:
    """One trading-mode opinion changed (a flat copy of :class:`~fundarb.core.risk_modes.ModeChanged`)."""

    scope: str
    source: str
    previous: str
    mode: str
    scope_previous: str
    scope_mode: str
    reason: str
    ts_ms: int
    by: str

    @classmethod
    def of(cls, change: ModeChanged) -> ModeSwitched:
        """Flatten a core :class:`ModeChanged`."""
        return cls(
            str(change.scope),
            str(change.source),
            change.previous.value,
            change.mode.value,
            change.scope_previous.value,
            change.scope_mode.value,
            change.reason,
            change.ts_ms,
            str(change.by),
        )


@attrs.frozen
class MarginActed:
    """The margin ladder asked for ``kind`` on a perp leg and the service did ``outcome``
    (``"alerted"``, ``"transferred"``, ``"transfer failed: ..."``, ``"reduce requested"``,
    ``"unwind requested"``, ``"no position to act on"``)."""

    instrument: str
    kind: str
    detail: str
    outcome: str
    positions: str = ""  # comma-separated position ids acted on
    top_up: Decimal = ZERO
    reduce_quantity: Decimal = ZERO
    distance: Decimal | None = None


@attrs.frozen
class VenueFillSeen:
    """A liquidation or ADL fill on one of ``position_id``'s legs, and the re-hedge it needs."""

    position_id: str
    instrument: str
    kind: str
    side: str
    quantity: Decimal
    rehedge: str


@attrs.frozen
class RehedgeChecked:
    """Whether ``position_id`` was hedged again within its hedge deadline after a venue fill."""

    position_id: str
    within_deadline: bool
    seconds: float
    deadline_seconds: float
    state: str


@attrs.frozen
class DeltaBreached:
    """Net delta of ``asset`` across every position and venue went beyond (or back within) the
    tolerance."""

    asset: str
    net_quantity: Decimal
    net_notional: Decimal
    tolerance: Decimal
    breached: bool


RISK_TAGS: dict[str, type] = {
    "risk.gate_decided": GateDecided,
    "risk.mode_switched": ModeSwitched,
    "risk.margin_acted": MarginActed,
    "risk.venue_fill_seen": VenueFillSeen,
    "risk.rehedge_checked": RehedgeChecked,
    "risk.delta_breached": DeltaBreached,
}

for _tag, _cls in RISK_TAGS.items():
    CODEC.register(_cls, _tag)


# --- the breaker's feed -------------------------------------------------------------------------

_OBSERVED = frozenset(VENUE_CALLS)


class ObservedVenue:
    """A venue whose request/response calls report ``on_call(venue_name, ok)``. Everything else
    (the streaming services, test hooks) passes through untouched.

    With a ``gate``, every ``place_order`` first asks ``gate(request)``: a reason refuses the
    order with :class:`~fundarb.venues.errors.OrderRejected` (code ``"risk"``) before anything
    is sent, which the executor turns into a non-retryable ``OrderRejected`` event.
    """

    def __init__(
        self,
        inner: Any,
        on_call: Callable[[str, bool], None],
        gate: Callable[[OrderRequest], str | None] | None = None,
    ) -> None:
        self._inner = inner
        self._on_call = on_call
        self._gate = gate

    @property
    def inner(self) -> Any:
        """The wrapped venue."""
        return self._inner

    @property
    def name(self) -> str:
        """The wrapped venue's name."""
        return str(self._inner.name)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr not in _OBSERVED:
            return value

        async def observed(*args: Any, **kwargs: Any) -> Any:
            if attr == "place_order" and self._gate is not None:
                refused = self._gate(args[0] if args else kwargs["request"])
                if refused:
                    await trio.lowlevel.checkpoint()
                    raise OrderRejected(
                        f"risk gate: {refused}", reason=f"risk gate: {refused}", venue=self.name, code="risk"
                    )
            try:
                result = await value(*args, **kwargs)
            except (OrderRejected, OrderNotFound):
                self._on_call(self.name, True)  # the API answered; the answer was no
                raise
            except VenueError:
                self._on_call(self.name, False)
                raise
            self._on_call(self.name, True)
            return result

        return observed

    def __repr__(self) -> str:
        return f"ObservedVenue({self._inner!r})"
