"""A perp leg's margin ladder, pure: NONE / ALERT / TOP_UP / REDUCE_PAIRWISE / UNWIND.

- :func:`margin_action`: from the leg's liquidation distance, margin ratio and free collateral;
- :func:`adl_action`: the same ladder for a venue's ADL-rank warning.

Re-exported by :mod:`fundarb.core.risk_monitors`, which holds the other monitors' rules.
"""

from __future__ import annotations

import enum
from decimal import ROUND_CEILING, ROUND_UP, Decimal
from itertools import pairwise
from typing import Any

import attrs

from fundarb.core.errors import InvalidValue
from fundarb.core.model import ZERO, InstrumentId, VenuePosition

__all__ = ["AdlPolicy", "MarginAction", "MarginActionKind", "MarginLadder", "adl_action", "margin_action"]

_CENT = Decimal("0.01")


def _fraction(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value < 1:
        raise InvalidValue(f"{attribute.name}: must be a Decimal in (0, 1), got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidValue(f"{attribute.name}: must be a finite Decimal >= 0, got {value!r}")


# --- margin ladder ------------------------------------------------------------------------------


class MarginActionKind(enum.Enum):
    """Escalating responses to a perp leg's margin, least to most severe."""

    NONE = "none"
    ALERT = "alert"
    TOP_UP = "top_up"
    REDUCE_PAIRWISE = "reduce_pairwise"
    UNWIND = "unwind"

    @property
    def severity(self) -> int:
        """0..4, larger is more severe."""
        return _SEVERITY[self]


_SEVERITY = {k: i for i, k in enumerate(MarginActionKind)}


@attrs.frozen
class MarginLadder:
    """Thresholds of the margin ladder.

    Liquidation distance is ``|mark - liquidation| / mark``; an action fires when the distance
    is *at or below* its threshold. Margin ratio is ``maintenance margin / margin balance``
    (1 = liquidation); an action fires at or above its threshold. The most severe action
    either measure asks for wins. A top-up or a reduction aims back at ``target_distance`` and
    ``target_ratio``; a reduction is at least ``min_reduce_fraction`` of the leg.
    """

    alert_distance: Decimal = attrs.field(default=Decimal("0.30"), validator=_fraction)
    top_up_distance: Decimal = attrs.field(default=Decimal("0.20"), validator=_fraction)
    reduce_distance: Decimal = attrs.field(default=Decimal("0.12"), validator=_fraction)
    unwind_distance: Decimal = attrs.field(default=Decimal("0.06"), validator=_fraction)
    alert_ratio: Decimal = attrs.field(default=Decimal("0.35"), validator=_fraction)
    top_up_ratio: Decimal = attrs.field(default=Decimal("0.50"), validator=_fraction)
    reduce_ratio: Decimal = attrs.field(default=Decimal("0.65"), validator=_fraction)
    unwind_ratio: Decimal = attrs.field(default=Decimal("0.80"), validator=_fraction)
    target_distance: Decimal = attrs.field(default=Decimal("0.35"), validator=_fraction)
    target_ratio: Decimal = attrs.field(default=Decimal("0.30"), validator=_fraction)
    min_reduce_fraction: Decimal = attrs.field(default=Decimal("0.10"), validator=_fraction)

    def __attrs_post_init__(self) -> None:
        d = [self.target_distance, self.alert_distance, self.top_up_distance]
        d += [self.reduce_distance, self.unwind_distance]
        if not all(a > b for a, b in pairwise(d)):
            raise InvalidValue(
                f"margin ladder: distances must strictly decrease (target, alert..unwind): {d}"
            )
        r = (self.target_ratio, self.alert_ratio, self.top_up_ratio, self.reduce_ratio, self.unwind_ratio)
        if not all(a < b for a, b in pairwise(r)):
            raise InvalidValue(f"margin ladder: ratios must strictly increase (target, alert..unwind): {r}")

    def by_distance(self, distance: Decimal) -> MarginActionKind:
        """The action liquidation distance ``distance`` asks for."""
        for kind, limit in (
            (MarginActionKind.UNWIND, self.unwind_distance),
            (MarginActionKind.REDUCE_PAIRWISE, self.reduce_distance),
            (MarginActionKind.TOP_UP, self.top_up_distance),
            (MarginActionKind.ALERT, self.alert_distance),
        ):
            if distance <= limit:
                return kind
        return MarginActionKind.NONE

    def by_ratio(self, ratio: Decimal) -> MarginActionKind:
        """The action margin ratio ``ratio`` asks for."""
        for kind, limit in (
            (MarginActionKind.UNWIND, self.unwind_ratio),
            (MarginActionKind.REDUCE_PAIRWISE, self.reduce_ratio),
            (MarginActionKind.TOP_UP, self.top_up_ratio),
            (MarginActionKind.ALERT, self.alert_ratio),
        ):
            if ratio >= limit:
                return kind
        return MarginActionKind.NONE


@attrs.frozen
class MarginAction:
    """What to do about one perp leg. ``top_up`` is collateral to transfer in (quote units,
    rounded up to the cent); ``reduce_fraction`` / ``reduce_quantity`` (base units, rounded up to
    the lot) say how much to reduce both legs; ``distance`` and ``ratio`` are the measurements."""

    kind: MarginActionKind
    instrument: InstrumentId
    detail: str
    top_up: Decimal = ZERO
    reduce_fraction: Decimal = ZERO
    reduce_quantity: Decimal = ZERO
    distance: Decimal | None = None
    ratio: Decimal | None = None


def _margin_ratio(pos: VenuePosition) -> Decimal | None:
    if pos.margin_balance is None or pos.margin_balance <= 0:
        return None
    return pos.maintenance_margin / pos.margin_balance


def _reduction(qty: Decimal, fraction: Decimal, lot_step: Decimal | None) -> Decimal:
    out = abs(qty) * fraction
    if lot_step is not None:
        out = (out / lot_step).to_integral_value(rounding=ROUND_UP) * lot_step
    return min(out, abs(qty))


def margin_action(
    position: VenuePosition,
    free_collateral: Decimal,
    ladder: MarginLadder,
    *,
    can_top_up: bool = True,
    lot_step: Decimal | None = None,
) -> MarginAction:
    """The margin ladder's answer for one perp leg.

    A TOP_UP the venue cannot take (``can_top_up=False``) or the free collateral cannot cover in
    full becomes REDUCE_PAIRWISE. A reduction that would have to be the whole leg is an UNWIND.
    The reduction assumes cross margin (the margin stays while the requirement shrinks); under
    isolated margin a reduction barely moves the liquidation price, so the next observation will
    escalate further. A margin balance at or below zero is an UNWIND.
    """
    if not isinstance(free_collateral, Decimal) or not free_collateral.is_finite():
        raise InvalidValue(f"free_collateral: must be a finite Decimal, got {free_collateral!r}")
    iid = position.instrument
    if position.quantity == 0:
        return MarginAction(MarginActionKind.NONE, iid, "flat")
    if position.margin_balance is not None and position.margin_balance <= 0:
        return MarginAction(
            MarginActionKind.UNWIND,
            iid,
            f"margin balance {position.margin_balance} exhausted",
            reduce_fraction=Decimal(1),
            reduce_quantity=abs(position.quantity),
        )
    distance, ratio = position.liquidation_distance, _margin_ratio(position)
    if distance is None and ratio is None:
        return MarginAction(
            MarginActionKind.ALERT, iid, "cannot measure: no liquidation price nor margin balance"
        )
    kind = max(
        (ladder.by_distance(distance) if distance is not None else MarginActionKind.NONE),
        (ladder.by_ratio(ratio) if ratio is not None else MarginActionKind.NONE),
        key=lambda k: k.severity,
    )
    seen = f"distance {_fmt(distance)}, margin ratio {_fmt(ratio)}"
    if kind in (MarginActionKind.NONE, MarginActionKind.ALERT):
        return MarginAction(kind, iid, seen, distance=distance, ratio=ratio)
    if kind is MarginActionKind.TOP_UP:
        need = ZERO
        if distance is not None and distance < ladder.target_distance:
            need = max(
                need, (ladder.target_distance - distance) * position.mark_price * abs(position.quantity)
            )
        if ratio is not None and ratio > ladder.target_ratio:
            assert position.margin_balance is not None
            need = max(need, position.maintenance_margin / ladder.target_ratio - position.margin_balance)
        need = need.quantize(_CENT, rounding=ROUND_CEILING)
        if can_top_up and 0 < need <= free_collateral:
            return MarginAction(
                kind, iid, f"{seen}: top up {need}", top_up=need, distance=distance, ratio=ratio
            )
        why = "venue takes no top-up" if not can_top_up else f"free collateral {free_collateral} < {need}"
        seen = f"{seen}; {why}"
        kind = MarginActionKind.REDUCE_PAIRWISE
    if kind is MarginActionKind.REDUCE_PAIRWISE:
        fraction = ladder.min_reduce_fraction
        if distance is not None and distance > 0:
            fraction = max(fraction, 1 - distance / ladder.target_distance)
        if ratio is not None and ratio > 0:
            fraction = max(fraction, 1 - ladder.target_ratio / ratio)
        qty = _reduction(position.quantity, fraction, lot_step)
        if qty < abs(position.quantity):
            return MarginAction(
                kind,
                iid,
                f"{seen}: reduce both legs by {fraction:.4f}",
                reduce_fraction=fraction,
                reduce_quantity=qty,
                distance=distance,
                ratio=ratio,
            )
        seen = f"{seen}; a reduction would take the whole leg"
    return MarginAction(
        MarginActionKind.UNWIND,
        iid,
        f"{seen}: unwind",
        reduce_fraction=Decimal(1),
        reduce_quantity=abs(position.quantity),
        distance=distance,
        ratio=ratio,
    )


def _fmt(x: Decimal | None) -> str:
    return "unknown" if x is None else f"{x:.4f}"


@attrs.frozen
class AdlPolicy:
    """ADL-rank warning thresholds (the venue's queue rank: higher is closer to being
    auto-deleveraged). At ``alert_rank`` alert; at ``reduce_rank`` reduce both legs by
    ``reduce_fraction`` so fewer contracts stand in the ADL queue."""

    alert_rank: int = 3
    reduce_rank: int = 4
    reduce_fraction: Decimal = attrs.field(default=Decimal("0.25"), validator=_fraction)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.alert_rank <= self.reduce_rank:
            raise InvalidValue(f"adl policy: need 0 < alert_rank <= reduce_rank, got {self}")


def adl_action(
    position: VenuePosition, policy: AdlPolicy, *, lot_step: Decimal | None = None
) -> MarginAction:
    """The response to a perp leg's ADL rank: NONE, ALERT or REDUCE_PAIRWISE."""
    iid, rank = position.instrument, position.adl_rank
    if rank is None or position.quantity == 0 or rank < policy.alert_rank:
        return MarginAction(MarginActionKind.NONE, iid, f"adl rank {rank}")
    if rank < policy.reduce_rank:
        return MarginAction(MarginActionKind.ALERT, iid, f"adl rank {rank} >= {policy.alert_rank}")
    qty = _reduction(position.quantity, policy.reduce_fraction, lot_step)
    return MarginAction(
        MarginActionKind.REDUCE_PAIRWISE,
        iid,
        f"adl rank {rank} >= {policy.reduce_rank}: reduce both legs by {policy.reduce_fraction}",
        reduce_fraction=policy.reduce_fraction,
        reduce_quantity=qty,
    )
