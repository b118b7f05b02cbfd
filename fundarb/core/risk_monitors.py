"""Decision logic of the live risk monitors. The engine's Trio tasks observe; these decide.

- :func:`margin_action`: a perp leg's margin ladder, NONE / ALERT / TOP_UP / REDUCE_PAIRWISE /
  UNWIND, from its liquidation distance and margin ratio and the free collateral;
- :func:`adl_action`: the same ladder for a venue's ADL-rank warning;
- :func:`rehedge_for_venue_fill`: a liquidation or ADL fill -> the trade on the surviving leg
  that restores the position's delta;
- :func:`delta_breaches`: net delta per asset across venues against a tolerance;
- :func:`apply_stale_data`, :func:`apply_clock_skew`, :func:`apply_daily_loss`: rules that set
  (and lift again) REDUCING on an instrument, a venue or the whole book;
- :func:`detect_funding_flip`: a funding rate changed sign (beyond a dead band).

The engine maps the ladder onto the position machine: TOP_UP -> a collateral transfer;
REDUCE_PAIRWISE -> ``ReduceRequested(reduce_quantity)``; UNWIND -> ``RiskBreached(MARGIN)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_UP, Decimal
from itertools import pairwise
from typing import Any

import attrs

from fundarb.core.errors import InvalidValue
from fundarb.core.model import ZERO, Fill, FundingSnapshot, InstrumentId, Side, VenueFillKind, VenuePosition
from fundarb.core.risk import DailyPnl, Exposure, RiskLimits
from fundarb.core.risk_modes import ModeChanged, ModeScope, ModeSource, TradingMode, TradingModes

__all__ = [
    "CLOCK_SKEW_RULE",
    "DAILY_LOSS_RULE",
    "STALE_DATA_RULE",
    "AdlPolicy",
    "DeltaBreach",
    "FundingFlip",
    "MarginAction",
    "MarginActionKind",
    "MarginLadder",
    "Rehedge",
    "adl_action",
    "apply_clock_skew",
    "apply_daily_loss",
    "apply_stale_data",
    "delta_breaches",
    "detect_funding_flip",
    "estimate_clock_skew",
    "funding_sign",
    "margin_action",
    "rehedge_for_venue_fill",
]

STALE_DATA_RULE = "stale-data"
CLOCK_SKEW_RULE = "clock-skew"
DAILY_LOSS_RULE = "daily-loss"
_CENT = Decimal("0.01")


def _fraction(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value < 1:
        raise InvalidValue(f"{attribute.name}: must be a Decimal in (0, 1), got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidValue(f"{attribute.name}: must be a finite Decimal >= 0, got {value!r}")


def _check_time(now_ms: int, what: str = "now_ms") -> None:
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        raise InvalidValue(f"{what}: must be a non-negative int of ms, got {now_ms!r}")


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


# --- venue-generated fills ----------------------------------------------------------------------


@attrs.frozen
class Rehedge:
    """Trade ``side`` ``quantity`` on ``instrument`` (the surviving leg of ``position_id``) at once,
    because the venue traded the other leg on its own (``cause``)."""

    position_id: str
    instrument: InstrumentId
    side: Side
    quantity: Decimal
    cause: VenueFillKind
    detail: str

    @property
    def quantity_delta(self) -> Decimal:
        """The surviving leg's signed quantity change."""
        return self.quantity * self.side.sign


def rehedge_for_venue_fill(fill: Fill, legs: Sequence[Exposure]) -> Rehedge | None:
    """The re-hedge for a venue-generated ``fill``, given one position's ``legs`` as held *before*
    the fill. None when the fill is not on one of these legs or no other leg of the same asset
    survives to trade.

    The re-hedge restores the position's delta: the surviving leg trades the fill's quantity
    the other way; when that shrinks the surviving leg it is capped at what that leg holds.
    """
    if fill.venue_generated is None:
        raise InvalidValue(f"{fill.trade_id}: not a venue-generated fill")
    hit = next((e for e in legs if e.instrument == fill.instrument), None)
    if hit is None:
        return None
    survivors = sorted(
        (e for e in legs if e.instrument != fill.instrument and e.asset == hit.asset and e.quantity != 0),
        key=lambda e: -abs(e.quantity),
    )
    if not survivors:
        return None
    leg = survivors[0]
    side = fill.side.opposite
    qty = fill.quantity
    if leg.quantity * side.sign < 0:
        qty = min(qty, abs(leg.quantity))
    kind = fill.venue_generated
    return Rehedge(
        hit.position_id,
        leg.instrument,
        side,
        qty,
        kind,
        f"{kind.value} {fill.side.value} {fill.quantity} on {fill.instrument}: {side.value} {qty} on {leg.instrument}",
    )


# --- net delta ----------------------------------------------------------------------------------


@attrs.frozen
class DeltaBreach:
    """Net delta of ``asset`` across every venue is beyond its tolerance."""

    asset: str
    net_quantity: Decimal
    net_notional: Decimal
    tolerance: Decimal
    ts_ms: int


def delta_breaches(
    exposures: Iterable[Exposure],
    tolerance: Decimal,
    now_ms: int,
    per_asset: Mapping[str, Decimal] | None = None,
) -> list[DeltaBreach]:
    """Every asset whose net held notional (``|sum of signed quantities| x`` the highest mark
    among its legs) is *above* its tolerance (quote units; ``per_asset`` overrides), by asset."""
    _check_time(now_ms)
    if not isinstance(tolerance, Decimal) or not tolerance.is_finite() or tolerance < 0:
        raise InvalidValue(f"tolerance: must be a finite Decimal >= 0, got {tolerance!r}")
    net: dict[str, Decimal] = {}
    price: dict[str, Decimal] = {}
    for e in exposures:
        net[e.asset] = net.get(e.asset, ZERO) + e.quantity
        price[e.asset] = max(price.get(e.asset, ZERO), e.price)
    out = []
    for asset in sorted(net):
        tol = (per_asset or {}).get(asset, tolerance)
        notional = abs(net[asset]) * price[asset]
        if notional > tol:
            out.append(DeltaBreach(asset, net[asset], notional, tol, now_ms))
    return out


# --- rules that set modes -----------------------------------------------------------------------


def apply_stale_data(
    modes: TradingModes, last_update_ms: Mapping[InstrumentId, int], stale_after_ms: int, now_ms: int
) -> tuple[TradingModes, list[ModeChanged]]:
    """REDUCING (rule ``"stale-data"``) for every instrument not updated for *more than*
    ``stale_after_ms``; the rule's opinion is lifted for every instrument that is fresh again."""
    _check_time(now_ms)
    _check_time(stale_after_ms, "stale_after_ms")
    verdicts: dict[ModeScope, TradingMode] = {}
    reasons: dict[ModeScope, str] = {}
    for iid, last in last_update_ms.items():
        _check_time(last, f"last update of {iid}")
        scope = ModeScope.instrument(iid)
        age = now_ms - last
        stale = age > stale_after_ms
        verdicts[scope] = TradingMode.REDUCING if stale else TradingMode.ACTIVE
        reasons[scope] = f"no market data for {age} ms (> {stale_after_ms})" if stale else "fresh"
    return modes.apply_rule(STALE_DATA_RULE, verdicts, now_ms, reasons)


def estimate_clock_skew(sent_ms: int, server_ms: int, received_ms: int) -> int:
    """The venue's clock minus ours, from one request: ``server - (sent + received) / 2``."""
    for name, t in (("sent_ms", sent_ms), ("server_ms", server_ms), ("received_ms", received_ms)):
        _check_time(t, name)
    if received_ms < sent_ms:
        raise InvalidValue(f"clock skew: received {received_ms} before sent {sent_ms}")
    return server_ms - (sent_ms + received_ms) // 2


def apply_clock_skew(
    modes: TradingModes, venue: str, skew_ms: int, limit_ms: int, now_ms: int
) -> tuple[TradingModes, list[ModeChanged]]:
    """REDUCING (rule ``"clock-skew"``) for ``venue`` while ``|skew_ms| > limit_ms``; lifted when
    back within the limit."""
    _check_time(limit_ms, "limit_ms")
    bad = abs(skew_ms) > limit_ms
    mode = TradingMode.REDUCING if bad else TradingMode.ACTIVE
    why = f"clock skew {skew_ms} ms vs limit {limit_ms} ms"
    return modes.set(ModeScope.venue(venue), mode, ModeSource.rule(CLOCK_SKEW_RULE), now_ms, why)


def apply_daily_loss(
    modes: TradingModes, pnl: DailyPnl, limits: RiskLimits, now_ms: int
) -> tuple[TradingModes, list[ModeChanged]]:
    """Global REDUCING (rule ``"daily-loss"``) once today's PnL reaches ``-max_daily_loss``;
    lifted when a new UTC day starts (or the loss recovers)."""
    total = pnl.at(now_ms).total
    hit = total <= -limits.max_daily_loss
    mode = TradingMode.REDUCING if hit else TradingMode.ACTIVE
    why = f"daily pnl {total} vs limit -{limits.max_daily_loss}"
    return modes.set(ModeScope.GLOBAL, mode, ModeSource.rule(DAILY_LOSS_RULE), now_ms, why)


# --- funding sign flips -------------------------------------------------------------------------


@attrs.frozen
class FundingFlip:
    """Funding on ``instrument`` changed sign from ``previous_sign`` to ``sign`` (+1/-1)."""

    instrument: InstrumentId
    previous_sign: int
    sign: int
    rate: Decimal
    ts_ms: int


def funding_sign(rate: Decimal, dead_band: Decimal = ZERO) -> int:
    """+1 above ``dead_band``, -1 below ``-dead_band``, 0 inside it (noise around zero)."""
    if rate > dead_band:
        return 1
    if rate < -dead_band:
        return -1
    return 0


def detect_funding_flip(
    last_sign: int, snapshot: FundingSnapshot, dead_band: Decimal = ZERO
) -> tuple[int, FundingFlip | None]:
    """Compare ``snapshot`` with the last sign seen outside the dead band (0: none yet).

    Returns the sign to remember (unchanged while inside the dead band) and a flip record when
    the rate crossed from one side of the band to the other.
    """
    if last_sign not in (-1, 0, 1):
        raise InvalidValue(f"last_sign: must be -1, 0 or 1, got {last_sign!r}")
    if not isinstance(dead_band, Decimal) or not dead_band.is_finite() or dead_band < 0:
        raise InvalidValue(f"dead_band: must be a finite Decimal >= 0, got {dead_band!r}")
    sign = funding_sign(snapshot.rate, dead_band)
    if sign == 0:
        return last_sign, None
    if last_sign != 0 and sign != last_sign:
        return sign, FundingFlip(snapshot.instrument, last_sign, sign, snapshot.rate, snapshot.ts_ms)
    return sign, None
