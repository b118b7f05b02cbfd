"""Inputs of the risk gate: the order intent, the book's exposures, today's PnL and the limits.

All frozen attrs values; invalid numbers raise :class:`~fundarb.core.errors.InvalidValue` at
construction. :mod:`fundarb.core.risk` re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs

from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.errors import InvalidValue
from fundarb.core.model import ZERO, InstrumentId, Side
from fundarb.core.position_model import Leg, Position

__all__ = [
    "DAY_MS",
    "DailyPnl",
    "Exposure",
    "OrderIntent",
    "RiskBook",
    "RiskLimits",
    "exposures_of",
    "utc_day_start",
]

DAY_MS = 86_400_000

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
    ``hedge_instrument`` names the other leg of the position: an order that adds exposure is
    judged under the more restrictive mode of the two, so no leg is opened whose hedge could
    not follow.
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
    hedge_instrument: InstrumentId | None = None

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
        hedge_instrument: InstrumentId | None = None,
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
            hedge_instrument=hedge_instrument,
        )


@attrs.frozen
class Exposure:
    """One leg of one position: ``quantity`` held (signed, short negative), ``pending`` the
    unsigned quantity of increasing orders still working on it, ``reducing`` that of reducing
    orders still working on it (so two reducing orders cannot together cross zero), ``price``
    the mark."""

    position_id: str = attrs.field(validator=_non_empty)
    instrument: InstrumentId
    asset: str = attrs.field(validator=_non_empty)
    quantity: Decimal = attrs.field(validator=_finite)
    price: Decimal = attrs.field(validator=_positive)
    pending: Decimal = attrs.field(default=ZERO, validator=_non_negative)
    reducing: Decimal = attrs.field(default=ZERO, validator=_non_negative)

    @property
    def reducible(self) -> Decimal:
        """What a further reducing order may still take off: ``|quantity| - reducing``, not below 0."""
        return max(abs(self.quantity) - self.reducing, ZERO)

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

    def gross_for(
        self, position_id: str, asset: str, venue: str
    ) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Gross committed notional of (one position, one asset, one venue, the whole book), in
        one pass: what the gate's four caps compare against."""
        pos = ast = ven = tot = ZERO
        for e in self.exposures:
            n = e.committed_notional
            tot += n
            if e.position_id == position_id:
                pos += n
            if e.asset == asset:
                ast += n
            if e.instrument.venue == venue:
                ven += n
        return pos, ast, ven, tot

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
    ``min_liquidation_distance`` is a fixed floor on that distance (the required distance is the
    larger of the floor and ``k x`` the tail move). With ``require_tail_move`` False, an asset
    without a tail-move estimate is judged by the floor alone instead of being refused.
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
    min_liquidation_distance: Decimal = attrs.field(default=ZERO, validator=_non_negative)
    require_tail_move: bool = True

    @classmethod
    def from_capital(
        cls,
        capital: Decimal,
        leverage: Decimal,
        max_position_notional: Decimal,
        max_open_positions: int,
        daily_loss_limit: Decimal,
        min_liquidation_distance: Decimal = ZERO,
    ) -> RiskLimits:
        """Limits from the few numbers the configuration gives (``FUNDARB_CAPITAL`` and co.).

        A hedged position of size ``N`` ties up ``N`` on the spot leg and ``N / leverage`` as perp
        margin, so ``capital`` carries at most ``N = capital x L / (L + 1)`` and a gross (both legs)
        of twice that: that is the total, per-asset and per-venue cap. Gross leverage is capped at
        2 (both legs over equity); the perp leg at ``leverage``.

        >>> RiskLimits.from_capital(Decimal(100000), Decimal(3), Decimal(20000), 4, Decimal(2000)).max_total_notional
        Decimal('150000')
        """
        total = (2 * capital * leverage / (leverage + 1)).to_integral_value()
        return cls(
            max_position_notional=max_position_notional,
            max_asset_notional=total,
            max_venue_notional=total,
            max_total_notional=total,
            max_leverage=leverage,
            max_gross_leverage=Decimal(2),
            max_open_positions=max_open_positions,
            max_daily_loss=daily_loss_limit,
            min_liquidation_distance=min_liquidation_distance,
        )

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


def exposures_of(
    position: Position, marks: Mapping[InstrumentId, Decimal], *, exclude_cid: str | None = None
) -> tuple[Exposure, ...]:
    """The exposures of one position machine's legs: held quantity (signed by the leg's side) and
    the unfilled rest of its working increasing and reducing orders, priced at ``marks`` (else the
    position's reference price). ``exclude_cid`` leaves out the order being checked, so it is not counted
    twice. Legs with nothing held or working are left out.
    """
    out = []
    for leg in Leg:
        spec = position.plan.leg(leg)
        iid = spec.instrument.id
        held = position.held(leg)
        pending = reducing = ZERO
        for o in position.working(leg):
            if o.cid == exclude_cid:
                continue
            if o.purpose.increases:
                pending += o.remaining
            else:
                reducing += o.remaining
        if held == 0 and pending == 0:
            continue
        price = marks.get(iid, position.reference_price)
        if price is None or price <= 0:
            raise InvalidValue(f"{position.id}: no mark price for {iid} to value its exposure")
        out.append(
            Exposure(position.id, iid, spec.instrument.base, held * spec.side.sign, price, pending, reducing)
        )
    return tuple(out)
