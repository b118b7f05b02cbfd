"""Decision logic of the live risk monitors. The engine's Trio tasks observe; these decide.

- :func:`margin_action` and :func:`adl_action` (from :mod:`fundarb.core.margin_ladder`, re-exported
  here): a perp leg's margin ladder, NONE / ALERT / TOP_UP / REDUCE_PAIRWISE / UNWIND;
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

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import attrs

from fundarb.core.errors import InvalidValue
from fundarb.core.margin_ladder import (
    AdlPolicy,
    MarginAction,
    MarginActionKind,
    MarginLadder,
    adl_action,
    margin_action,
)
from fundarb.core.model import ZERO, Fill, FundingSnapshot, InstrumentId, Side, VenueFillKind
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


def _check_time(now_ms: int, what: str = "now_ms") -> None:
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        raise InvalidValue(f"{what}: must be a non-negative int of ms, got {now_ms!r}")


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
