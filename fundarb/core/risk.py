"""The pre-trade risk gate: every order passes :func:`check_order` before it is sent.

Orders are judged by what they do to the book, not only by what they claim:

- **risk-reducing** orders (their declared purpose is HEDGE, REBALANCE, EXIT or UNWIND *and* the
  book confirms it: they shrink the position's leg on that instrument without crossing zero, or
  shrink the position's net delta in the asset without overshooting) pass in ACTIVE and
  REDUCING with no cap applied, so a cap can never keep a position naked;
- **unwinds** (purpose UNWIND, confirmed to shrink the leg) are the only orders HALTED lets
  through;
- every other order opens or increases exposure and must pass, in this order: the trading mode
  (ACTIVE only), the daily loss limit, the number of open positions, the per-position, per-asset,
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
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from types import MappingProxyType
from typing import Any

import attrs

from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.errors import InvalidValue
from fundarb.core.model import ZERO, InstrumentId, Market, Side
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
    "tail_move",
    "tail_move_from_returns",
    "utc_day_start",
]

DAY_MS = 86_400_000
_EIGHT_HOURS_MS = 8 * 3_600_000


# --- validators -----------------------------------------------------------------------------------


def _finite(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidValue(f"{attribute.name}: must be a finite Decimal, got {value!r}")


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    _finite(inst, attribute, value)
    if value <= 0:
        raise InvalidValue(f"{attribute.name}: must be > 0, got {value}")


def _non_negative(inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    _finite(inst, attribute, value)
    if value < 0:
        raise InvalidValue(f"{attribute.name}: must be >= 0, got {value}")


def _optional_positive(inst: Any, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _timestamp(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{attribute.name}: must be a non-negative int of ms, got {value!r}")


def _non_empty(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{attribute.name}: must be a non-empty string, got {value!r}")


def _caps(value: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    out = dict(value)
    for key, cap in out.items():
        if not isinstance(cap, Decimal) or not cap.is_finite() or cap <= 0:
            raise InvalidValue(f"cap for {key!r}: must be a finite Decimal > 0, got {cap!r}")
    return MappingProxyType(out)


def _moves(value: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    out = dict(value)
    for key, move in out.items():
        if not isinstance(move, Decimal) or not move.is_finite() or move < 0:
            raise InvalidValue(f"tail move for {key!r}: must be a finite Decimal >= 0, got {move!r}")
    return MappingProxyType(out)


def utc_day_start(now_ms: int) -> int:
    """Milliseconds of the UTC midnight that starts the day containing ``now_ms``."""
    return now_ms - now_ms % DAY_MS


# --- inputs -----------------------------------------------------------------------------------------


@attrs.frozen
class OrderIntent:
    """An order about to be sent, as the gate sees it.

    ``price`` is the limit price, or the reference price of a market order. ``asset`` is the base
    asset (``"BTC"``) for per-asset caps and delta. For a perpetual that increases exposure the
    gate needs ``leverage`` (the leg's leverage setting) and uses ``liquidation_price`` (the
    venue's estimate at entry) when given, else estimates the distance from the leverage.
    """

    position_id: str = attrs.field(validator=_non_empty)
    instrument: InstrumentId
    asset: str = attrs.field(validator=_non_empty)
    side: Side
    quantity: Decimal = attrs.field(validator=_positive)
    price: Decimal = attrs.field(validator=_positive)
    purpose: OrderPurpose
    leverage: Decimal | None = attrs.field(default=None, validator=_optional_positive)
    liquidation_price: Decimal | None = attrs.field(default=None, validator=_optional_positive)

    @property
    def notional(self) -> Decimal:
        """``quantity x price``."""
        return self.quantity * self.price

    @property
    def signed_quantity(self) -> Decimal:
        """``+quantity`` for a buy, ``-quantity`` for a sell."""
        return self.quantity * self.side.sign

    @classmethod
    def from_command(
        cls,
        cmd: PlaceOrder,
        asset: str,
        *,
        price: Decimal | None = None,
        leverage: Decimal | None = None,
        liquidation_price: Decimal | None = None,
    ) -> OrderIntent:
        """Build from the position machine's :class:`PlaceOrder`. The price is, in order: the
        ``price`` argument, the request's limit price, the command's reference price."""
        req = cmd.request
        px = price if price is not None else (req.price if req.price is not None else cmd.reference_price)
        if px is None:
            raise InvalidValue(
                f"{req.client_order_id}: a market order needs a reference price for the risk gate"
            )
        return cls(
            cmd.position_id,
            req.instrument,
            asset,
            req.side,
            req.quantity,
            px,
            cmd.purpose,
            leverage=leverage,
            liquidation_price=liquidation_price,
        )


@attrs.frozen
class Exposure:
    """One leg of one position: ``quantity`` held (signed, short negative), ``pending`` the
    unsigned quantity of increasing orders still working on it, ``price`` the mark."""

    position_id: str = attrs.field(validator=_non_empty)
    instrument: InstrumentId
    asset: str = attrs.field(validator=_non_empty)
    quantity: Decimal = attrs.field(validator=_finite)
    price: Decimal = attrs.field(validator=_positive)
    pending: Decimal = attrs.field(default=ZERO, validator=_non_negative)

    @property
    def committed_notional(self) -> Decimal:
        """``(|quantity| + pending) x price``: what the caps count."""
        return (abs(self.quantity) + self.pending) * self.price

    @property
    def is_open(self) -> bool:
        """True when anything is held or working."""
        return self.quantity != 0 or self.pending > 0


@attrs.frozen
class DailyPnl:
    """PnL since UTC midnight: ``realised`` since ``day_start_ms`` (trades, fees, funding) plus the
    change of unrealised PnL since then (``unrealised - unrealised_at_start``)."""

    day_start_ms: int = attrs.field(validator=_timestamp)
    realised: Decimal = attrs.field(default=ZERO, validator=_finite)
    unrealised_at_start: Decimal = attrs.field(default=ZERO, validator=_finite)
    unrealised: Decimal = attrs.field(default=ZERO, validator=_finite)

    def __attrs_post_init__(self) -> None:
        if self.day_start_ms % DAY_MS:
            raise InvalidValue(f"day_start_ms: {self.day_start_ms} is not a UTC midnight")

    @classmethod
    def start(cls, now_ms: int, unrealised: Decimal = ZERO) -> DailyPnl:
        """A fresh day containing ``now_ms``, with ``unrealised`` as its baseline."""
        return cls(utc_day_start(now_ms), ZERO, unrealised, unrealised)

    @property
    def total(self) -> Decimal:
        """Realised plus unrealised PnL since the day started (negative is a loss)."""
        return self.realised + self.unrealised - self.unrealised_at_start

    def at(self, now_ms: int) -> DailyPnl:
        """This value as of ``now_ms``: itself on the same day, a fresh day (baseline: the last
        unrealised PnL) on a later one. A time before the day started is an error."""
        day = utc_day_start(now_ms)
        if day == self.day_start_ms:
            return self
        if day < self.day_start_ms:
            raise InvalidValue(f"daily pnl: now {now_ms} is before the day starting {self.day_start_ms}")
        return DailyPnl.start(now_ms, self.unrealised)

    def add_realised(self, amount: Decimal, now_ms: int) -> DailyPnl:
        """Book realised PnL (a fill's PnL, a fee as a negative amount, funding) at ``now_ms``."""
        cur = self.at(now_ms)
        return attrs.evolve(cur, realised=cur.realised + amount)

    def mark(self, unrealised: Decimal, now_ms: int) -> DailyPnl:
        """Record the book's unrealised PnL at ``now_ms``."""
        return attrs.evolve(self.at(now_ms), unrealised=unrealised)


@attrs.frozen
class RiskBook:
    """What the gate needs to know about the book now.

    ``equity`` is total account equity in the quote currency (for gross leverage);
    ``tail_moves`` maps an asset to its 99.9th-percentile 8-hour move as a fraction
    (:func:`tail_move`). Each (position, instrument) appears at most once in ``exposures``.
    """

    exposures: tuple[Exposure, ...]
    equity: Decimal = attrs.field(validator=_finite)
    pnl: DailyPnl
    tail_moves: Mapping[str, Decimal] = attrs.field(factory=dict, converter=_moves)

    def __attrs_post_init__(self) -> None:
        seen: set[tuple[str, InstrumentId]] = set()
        for e in self.exposures:
            key = (e.position_id, e.instrument)
            if key in seen:
                raise InvalidValue(f"risk book: {e.position_id} has two exposures on {e.instrument}")
            seen.add(key)

    def leg(self, position_id: str, instrument: InstrumentId) -> Exposure | None:
        """The exposure of ``position_id`` on ``instrument``, if any."""
        for e in self.exposures:
            if e.position_id == position_id and e.instrument == instrument:
                return e
        return None

    def open_positions(self) -> frozenset[str]:
        """Ids of positions holding or working anything."""
        return frozenset(e.position_id for e in self.exposures if e.is_open)

    def position_delta(self, position_id: str, asset: str) -> Decimal:
        """Net held quantity of ``asset`` in one position (positive: net long)."""
        return sum(
            (e.quantity for e in self.exposures if e.position_id == position_id and e.asset == asset), ZERO
        )

    def asset_delta(self, asset: str) -> Decimal:
        """Net held quantity of ``asset`` over the whole book, every venue."""
        return sum((e.quantity for e in self.exposures if e.asset == asset), ZERO)

    def gross(
        self, *, position_id: str | None = None, asset: str | None = None, venue: str | None = None
    ) -> Decimal:
        """Gross committed notional of the exposures matching every given filter."""
        return sum(
            (
                e.committed_notional
                for e in self.exposures
                if (position_id is None or e.position_id == position_id)
                and (asset is None or e.asset == asset)
                and (venue is None or e.instrument.venue == venue)
            ),
            ZERO,
        )


@attrs.frozen
class RiskLimits:
    """The gate's limits. Notionals and the daily loss are in the quote currency (USD).

    ``max_leverage`` caps a perpetual leg's leverage setting; ``max_gross_leverage`` caps the
    book's gross committed notional over equity. ``liquidation_k`` is the ``k`` in "liquidation
    distance >= k x the 99.9th-percentile 8-hour move"; ``maintenance_margin_rate`` is used to
    estimate the distance from the leverage when the venue gave no liquidation price.
    ``asset_caps`` / ``venue_caps`` override ``max_asset_notional`` / ``max_venue_notional``.
    """

    max_position_notional: Decimal = attrs.field(validator=_positive)
    max_asset_notional: Decimal = attrs.field(validator=_positive)
    max_venue_notional: Decimal = attrs.field(validator=_positive)
    max_total_notional: Decimal = attrs.field(validator=_positive)
    max_leverage: Decimal = attrs.field(validator=_positive)
    max_gross_leverage: Decimal = attrs.field(validator=_positive)
    max_open_positions: int = attrs.field()
    max_daily_loss: Decimal = attrs.field(validator=_positive)
    liquidation_k: Decimal = attrs.field(default=Decimal(3), validator=_positive)
    maintenance_margin_rate: Decimal = attrs.field(default=Decimal("0.005"), validator=_non_negative)
    asset_caps: Mapping[str, Decimal] = attrs.field(factory=dict, converter=_caps)
    venue_caps: Mapping[str, Decimal] = attrs.field(factory=dict, converter=_caps)

    @max_open_positions.validator
    def _check_positions(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidValue(f"max_open_positions: must be an int >= 1, got {value!r}")

    def asset_cap(self, asset: str) -> Decimal:
        """The notional cap of ``asset``."""
        return self.asset_caps.get(asset, self.max_asset_notional)

    def venue_cap(self, venue: str) -> Decimal:
        """The notional cap of ``venue``."""
        return self.venue_caps.get(venue, self.max_venue_notional)


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
    held = ZERO if leg is None else leg.quantity
    return held * intent.side.sign < 0 and intent.quantity <= abs(held)


def _reduces_delta(intent: OrderIntent, book: RiskBook) -> bool:
    delta = book.position_delta(intent.position_id, intent.asset)
    return delta * intent.side.sign < 0 and intent.quantity <= abs(delta)


def check_order(
    intent: OrderIntent, book: RiskBook, limits: RiskLimits, modes: TradingModes, now_ms: int
) -> RiskDecision:
    """Decide whether ``intent`` may be sent now. See the module docstring for the rules."""
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        raise InvalidValue(f"now_ms: must be a non-negative int of ms, got {now_ms!r}")
    mode = modes.effective(intent.instrument)
    governing = modes.governing(intent.instrument)
    why_mode = "" if governing is None else f" by {governing.source} on {governing.scope}: {governing.reason}"
    reduces_leg = intent.purpose is not OrderPurpose.ENTRY and _reduces_leg(intent, book)
    if intent.purpose is OrderPurpose.UNWIND and reduces_leg:
        return RiskDecision(True, RiskReason.UNWIND, f"unwind {intent.side.value} {intent.quantity}", mode)
    if mode is TradingMode.HALTED:
        return _deny(RiskReason.MODE_HALTED, f"HALTED{why_mode}; only unwinds pass", mode)
    if reduces_leg or (intent.purpose is not OrderPurpose.ENTRY and _reduces_delta(intent, book)):
        return RiskDecision(
            True, RiskReason.REDUCES_RISK, f"{intent.purpose.value} reduces exposure or delta", mode
        )
    if mode is TradingMode.REDUCING:
        return _deny(RiskReason.MODE_REDUCING, f"REDUCING{why_mode}; order would add exposure", mode)
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
    caps = (
        (RiskReason.POSITION_NOTIONAL, book.gross(position_id=intent.position_id), limits.max_position_notional,
         f"position {intent.position_id}"),
        (RiskReason.ASSET_NOTIONAL, book.gross(asset=intent.asset), limits.asset_cap(intent.asset),
         f"asset {intent.asset}"),
        (RiskReason.VENUE_NOTIONAL, book.gross(venue=venue), limits.venue_cap(venue), f"venue {venue}"),
        (RiskReason.TOTAL_NOTIONAL, book.gross(), limits.max_total_notional, "total"),
    )  # fmt: skip
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
    total_after = book.gross() + add
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
    if move is None:
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
    needed = limits.liquidation_k * move
    if distance < needed:
        return _deny(
            RiskReason.LIQUIDATION_DISTANCE,
            f"liquidation distance {distance:.4f} ({source}) < {limits.liquidation_k} x tail move {move}",
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
    return Decimal(value).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)


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
