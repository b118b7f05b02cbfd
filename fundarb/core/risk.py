"""The pre-trade risk gate: every order passes :func:`check_order` before it is sent.

Orders are judged by what they do to the book, not only by what they claim:

- **risk-reducing** orders (their declared purpose is HEDGE, REBALANCE, EXIT or UNWIND *and* the
  book confirms it: they shrink the position's leg on that instrument without crossing zero,
  counting the leg's other working reducing orders, or
  shrink the position's net delta in the asset without overshooting) pass in ACTIVE and
  REDUCING with no cap applied, so a cap can never keep a position naked;
- **unwinds** (purpose UNWIND, confirmed to shrink the leg) are the only orders HALTED lets
  through;
- every other order opens or increases exposure and must pass, in this order: the trading mode
  (ACTIVE only, both on its instrument and on its hedge leg's when the intent names it), the
  daily loss limit, the number of open positions, the per-position, per-asset,
  per-venue and total notional caps, the leverage caps and, for a perpetual, the minimum
  liquidation distance at entry (``>= k x`` the asset's 99.9th-percentile 8-hour move, see
  :func:`tail_move`). The first gate that fails is the reason.

Every :class:`RiskDecision` carries a :class:`RiskReason` (a metric label) and a human detail.
Notional caps are on *gross committed* notional: the sum over legs of ``(|held| + working
increasing orders) x price``, both legs of a hedge counted.

Pure: stdlib + attrs, no clock (``now_ms`` comes in), no logging.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal

import attrs

from fundarb.core.commands import OrderPurpose
from fundarb.core.errors import InvalidValue
from fundarb.core.model import ZERO, InstrumentId, Market, Side
from fundarb.core.risk_book import (
    DAY_MS,
    DailyPnl,
    Exposure,
    OrderIntent,
    RiskBook,
    RiskLimits,
    exposures_of,
    utc_day_start,
)
from fundarb.core.risk_modes import TradingMode, TradingModes

__all__ = [
    "DAY_MS",
    "DailyPnl",
    "Exposure",
    "OrderIntent",
    "RiskBook",
    "RiskDecision",
    "RiskLimits",
    "RiskReason",
    "check_order",
    "estimated_liquidation_distance",
    "exposures_of",
    "tail_move",
    "tail_move_from_returns",
    "utc_day_start",
]

_EIGHT_HOURS_MS = 8 * 3_600_000

# --- the decision -----------------------------------------------------------------------------------


class RiskReason(enum.Enum):
    """Why the gate decided as it did. The value is the metric label."""

    ALLOWED = "allowed"  # an increasing order that passed every gate
    REDUCES_RISK = "reduces_risk"  # a confirmed risk-reducing order: caps do not apply
    UNWIND = "unwind"  # a confirmed unwind: passes even HALTED
    MODE_REDUCING = "mode_reducing"
    MODE_HALTED = "mode_halted"
    DAILY_LOSS = "daily_loss"
    MAX_POSITIONS = "max_positions"
    POSITION_NOTIONAL = "position_notional"
    ASSET_NOTIONAL = "asset_notional"
    VENUE_NOTIONAL = "venue_notional"
    TOTAL_NOTIONAL = "total_notional"
    LEVERAGE = "leverage"
    GROSS_LEVERAGE = "gross_leverage"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    MISSING_DATA = "missing_data"  # fail closed: no tail estimate, no leverage for a perp


@attrs.frozen
class RiskDecision:
    """The gate's answer: ``allowed``, a ``reason`` and a ``detail`` for people, plus the mode
    the order was judged under."""

    allowed: bool
    reason: RiskReason
    detail: str
    mode: TradingMode = TradingMode.ACTIVE

    def __attrs_post_init__(self) -> None:
        if self.allowed != (self.reason in _ALLOWING):
            raise InvalidValue(f"risk decision: allowed={self.allowed} contradicts {self.reason.value}")


_ALLOWING = frozenset({RiskReason.ALLOWED, RiskReason.REDUCES_RISK, RiskReason.UNWIND})


def _deny(reason: RiskReason, detail: str, mode: TradingMode) -> RiskDecision:
    return RiskDecision(False, reason, detail, mode)


def _reduces_leg(intent: OrderIntent, book: RiskBook) -> bool:
    leg = book.leg(intent.position_id, intent.instrument)
    if leg is None:
        return False
    return leg.quantity * intent.side.sign < 0 and intent.quantity <= leg.reducible


def _reduces_delta(intent: OrderIntent, book: RiskBook) -> bool:
    delta = book.position_delta(intent.position_id, intent.asset)
    return delta * intent.side.sign < 0 and intent.quantity <= abs(delta)


def _why(modes: TradingModes, instrument: InstrumentId) -> str:
    entry = modes.governing(instrument)
    return "" if entry is None else f" by {entry.source} on {entry.scope}: {entry.reason}"


def check_order(
    intent: OrderIntent, book: RiskBook, limits: RiskLimits, modes: TradingModes, now_ms: int
) -> RiskDecision:
    """Decide whether ``intent`` may be sent now. See the module docstring for the rules."""
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        raise InvalidValue(f"now_ms: must be a non-negative int of ms, got {now_ms!r}")
    mode = modes.effective(intent.instrument)
    reduces_leg = intent.purpose is not OrderPurpose.ENTRY and _reduces_leg(intent, book)
    if intent.purpose is OrderPurpose.UNWIND and reduces_leg:
        return RiskDecision(True, RiskReason.UNWIND, f"unwind {intent.side.value} {intent.quantity}", mode)
    if mode is TradingMode.HALTED:
        return _deny(
            RiskReason.MODE_HALTED, f"HALTED{_why(modes, intent.instrument)}; only unwinds pass", mode
        )
    if reduces_leg or (intent.purpose is not OrderPurpose.ENTRY and _reduces_delta(intent, book)):
        return RiskDecision(
            True, RiskReason.REDUCES_RISK, f"{intent.purpose.value} reduces exposure or delta", mode
        )
    # the order adds exposure: its hedge leg must be tradable too
    judged, leg_note = intent.instrument, ""
    hedge = intent.hedge_instrument
    if hedge is not None and modes.effective(hedge).rank > mode.rank:
        judged, mode, leg_note = hedge, modes.effective(hedge), f" on the hedge leg {hedge}"
    if mode is TradingMode.HALTED:
        return _deny(
            RiskReason.MODE_HALTED, f"HALTED{leg_note}{_why(modes, judged)}; order would add exposure", mode
        )
    if mode is TradingMode.REDUCING:
        return _deny(
            RiskReason.MODE_REDUCING,
            f"REDUCING{leg_note}{_why(modes, judged)}; order would add exposure",
            mode,
        )
    return _check_increase(intent, book, limits, now_ms)


def _check_increase(intent: OrderIntent, book: RiskBook, limits: RiskLimits, now_ms: int) -> RiskDecision:
    active = TradingMode.ACTIVE
    pnl = book.pnl.at(now_ms).total
    if pnl <= -limits.max_daily_loss:
        return _deny(
            RiskReason.DAILY_LOSS, f"daily pnl {pnl} has reached the limit -{limits.max_daily_loss}", active
        )
    open_ids = book.open_positions()
    if intent.position_id not in open_ids and len(open_ids) >= limits.max_open_positions:
        return _deny(
            RiskReason.MAX_POSITIONS,
            f"{len(open_ids)} positions open, limit {limits.max_open_positions}",
            active,
        )
    add = intent.notional
    venue = intent.instrument.venue
    pos_gross, asset_gross, venue_gross, total_gross = book.gross_for(intent.position_id, intent.asset, venue)
    caps = (
        (
            RiskReason.POSITION_NOTIONAL,
            pos_gross,
            limits.max_position_notional,
            f"position {intent.position_id}",
        ),
        (RiskReason.ASSET_NOTIONAL, asset_gross, limits.asset_cap(intent.asset), f"asset {intent.asset}"),
        (RiskReason.VENUE_NOTIONAL, venue_gross, limits.venue_cap(venue), f"venue {venue}"),
        (RiskReason.TOTAL_NOTIONAL, total_gross, limits.max_total_notional, "total"),
    )
    for reason, now_gross, cap, what in caps:
        if now_gross + add > cap:
            return _deny(reason, f"{what} notional {now_gross} + {add} > cap {cap}", active)
    is_perp = intent.instrument.market is Market.PERPETUAL
    if is_perp:
        if intent.leverage is None:
            return _deny(
                RiskReason.MISSING_DATA, f"{intent.instrument}: no leverage given for a perp", active
            )
        if intent.leverage > limits.max_leverage:
            return _deny(
                RiskReason.LEVERAGE, f"leverage {intent.leverage} > cap {limits.max_leverage}", active
            )
    total_after = total_gross + add
    if book.equity <= 0:
        return _deny(RiskReason.GROSS_LEVERAGE, f"equity {book.equity} leaves no room for exposure", active)
    gross_leverage = total_after / book.equity
    if gross_leverage > limits.max_gross_leverage:
        return _deny(
            RiskReason.GROSS_LEVERAGE,
            f"gross leverage {total_after}/{book.equity} = {gross_leverage:.4f} > cap {limits.max_gross_leverage}",
            active,
        )
    if is_perp:
        decision = _check_liquidation(intent, book, limits)
        if decision is not None:
            return decision
    return RiskDecision(True, RiskReason.ALLOWED, "every gate passed", active)


def _check_liquidation(intent: OrderIntent, book: RiskBook, limits: RiskLimits) -> RiskDecision | None:
    active = TradingMode.ACTIVE
    move = book.tail_moves.get(intent.asset)
    if move is None and limits.require_tail_move:
        return _deny(RiskReason.MISSING_DATA, f"no 8-hour tail move known for {intent.asset}", active)
    liq = intent.liquidation_price
    if liq is not None:
        wrong_side = (liq <= intent.price) if intent.side is Side.SELL else (liq >= intent.price)
        if wrong_side:
            return _deny(
                RiskReason.LIQUIDATION_DISTANCE,
                f"liquidation price {liq} is on the wrong side of {intent.price} for a {intent.side.value}",
                active,
            )
        distance = abs(intent.price - liq) / intent.price
        source = f"venue liquidation price {liq}"
    else:
        assert intent.leverage is not None  # checked by the caller
        distance = estimated_liquidation_distance(intent.leverage, limits.maintenance_margin_rate)
        source = f"estimated from leverage {intent.leverage}"
    floor = limits.min_liquidation_distance
    needed = floor if move is None else max(floor, limits.liquidation_k * move)
    if distance < needed:
        by_floor = move is None or floor > limits.liquidation_k * move
        rule = "the floor" if by_floor else f"{limits.liquidation_k} x tail move {move}"
        return _deny(
            RiskReason.LIQUIDATION_DISTANCE,
            f"liquidation distance {distance:.4f} ({source}) < {needed} ({rule})",
            active,
        )
    return None


def estimated_liquidation_distance(leverage: Decimal, maintenance_margin_rate: Decimal) -> Decimal:
    """A conservative liquidation distance for an isolated position at ``leverage``:
    ``1/leverage - maintenance_margin_rate`` (cross margin only lies farther). Never below 0."""
    if leverage <= 0:
        raise InvalidValue(f"leverage: must be > 0, got {leverage}")
    return max(ZERO, 1 / leverage - maintenance_margin_rate)


# --- tail moves ---------------------------------------------------------------------------------------


def _as_float(x: Decimal | float | int, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (Decimal, float, int)):
        raise InvalidValue(f"{what}: expected a number, got {x!r}")
    f = float(x)
    if not math.isfinite(f):
        raise InvalidValue(f"{what}: not finite: {x!r}")
    return f


def tail_move_from_returns(
    returns: Sequence[Decimal | float | int], quantile: float = 0.999, min_samples: int | None = None
) -> Decimal:
    """The ``quantile`` of ``|return|`` over ``returns`` (each already over the horizon you care
    about), interpolated linearly between order statistics and rounded *up* to 1e-6.

    At least ``min_samples`` returns are required (default ``ceil(1 / (1 - quantile))``, 1000 for
    the 99.9th percentile: fewer cannot resolve that tail), else :class:`InvalidValue`.
    """
    if not 0 < quantile < 1:
        raise InvalidValue(f"quantile: must be in (0, 1), got {quantile}")
    need = math.ceil(1 / (1 - quantile) - 1e-9) if min_samples is None else min_samples
    moves = sorted(abs(_as_float(r, "return")) for r in returns)
    if len(moves) < max(need, 1):
        raise InvalidValue(f"tail move: {len(moves)} returns, need at least {max(need, 1)}")
    pos = quantile * (len(moves) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(moves) - 1)
    value = moves[lo] + (moves[hi] - moves[lo]) * (pos - lo)
    return Decimal(repr(value)).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)


def tail_move(
    prices: Sequence[Decimal | float | int],
    step_ms: int,
    horizon_ms: int = _EIGHT_HOURS_MS,
    quantile: float = 0.999,
    min_samples: int | None = None,
) -> Decimal:
    """The ``quantile`` (default 99.9th percentile) of the absolute relative move over
    ``horizon_ms`` (default 8 hours), from ``prices`` sampled every ``step_ms``.

    Uses every overlapping window: ``|p[i+h] / p[i] - 1|`` with ``h = horizon_ms / step_ms``.
    Both directions count (the gate does not know which way the perp leg faces).

    >>> prices = [Decimal(100 + (i % 7)) for i in range(2000)]  # worst 3-step move: 104 -> 100
    >>> tail_move(prices, step_ms=3_600_000, horizon_ms=3 * 3_600_000)
    Decimal('0.038462')
    """
    if not isinstance(step_ms, int) or step_ms <= 0 or not isinstance(horizon_ms, int) or horizon_ms <= 0:
        raise InvalidValue(f"tail move: step {step_ms!r} and horizon {horizon_ms!r} must be ints > 0")
    if horizon_ms % step_ms:
        raise InvalidValue(f"tail move: horizon {horizon_ms} ms is not a multiple of the step {step_ms} ms")
    h = horizon_ms // step_ms
    px = [_as_float(p, "price") for p in prices]
    if any(p <= 0 for p in px):
        raise InvalidValue("tail move: prices must be > 0")
    returns = [px[i + h] / px[i] - 1 for i in range(len(px) - h)]
    return tail_move_from_returns(returns, quantile, min_samples)
