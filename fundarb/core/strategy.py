"""Carry strategy: cost-aware funding forecast, entry/exit with hysteresis, and sizing (pure).

The live engine and the backtester call the SAME functions here, once per decision, with what is
known at that moment. Everything is synchronous and side-effect free; floats are fine inside the
strategy maths (Decimal only at the venue boundary).

Directions: ``+1`` is "short perp, long spot" (earns positive funding); ``-1`` is "long perp, short
spot with borrow" (earns negative funding, pays ``borrow_apr`` on the borrowed spot).

Timing: ``MarketView.funding_history`` holds only rates already *known* at ``now_ms`` (for
Binance, the settled ones; the rate being accrued is not known until settlement).
``published_next_rate`` is set only for venues that fix the next rate a period ahead (Bybit, HTX,
Gate style), and ``None`` otherwise.

Example::

    costs = CostModel.binance_vip0()
    params = StrategyParams()
    view = MarketView(now_ms=0, interval_hours=8, funding_history=(0.0001,) * 21,
                      spot_price=30_000.0, perp_price=30_010.0, volatility=0.6)
    d = decide(None, view, costs, params, SizingBudget(total_capital=1e6, free_capital=1e6))
    d.action, d.reason, d.direction, d.notional     # Action.ENTER, 'carry above entry threshold', 1, ...
"""

from __future__ import annotations

import enum
import math

import attrs

from fundarb.core.errors import InvalidValue

__all__ = [
    "HOURS_PER_YEAR",
    "Action",
    "CarryEstimate",
    "CostModel",
    "Decision",
    "MarketView",
    "OpenPosition",
    "SizingBudget",
    "StrategyParams",
    "capital_per_notional",
    "decide",
    "estimate_carry",
    "forecast_rate",
    "leg_cost",
    "safe_leverage",
    "size_notional",
]

HOURS_PER_YEAR = 8760.0


def _finite(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value):
        raise InvalidValue(f"{attribute.name} must be finite, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0.0 and math.isfinite(value)):
        raise InvalidValue(f"{attribute.name} must be finite and >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise InvalidValue(f"{attribute.name} must be finite and > 0, got {value!r}")


class Action(enum.Enum):
    """What :func:`decide` asks for."""

    ENTER = "enter"
    EXIT = "exit"
    HOLD = "hold"
    STAY_OUT = "stay_out"


@attrs.frozen
class CostModel:
    """Trading costs as fractions of notional (0.0005 = 5 bp) and yearly rates.

    ``perp_fee`` / ``spot_fee`` are what the execution actually pays per trade (maker or taker);
    ``slippage`` is extra adverse price per trade per leg on top of half the quoted spread;
    ``borrow_apr`` is the yearly cost of borrowing spot for the short-spot direction;
    ``basis_risk_apr`` is a yearly charge per unit notional for the risk the perp/spot basis moves
    against the position while held.
    """

    perp_fee: float = attrs.field(default=0.0005, validator=_non_negative)
    spot_fee: float = attrs.field(default=0.001, validator=_non_negative)
    slippage: float = attrs.field(default=0.0001, validator=_non_negative)
    borrow_apr: float = attrs.field(default=0.10, validator=_non_negative)
    basis_risk_apr: float = attrs.field(default=0.01, validator=_non_negative)
    #: price impact per leg per trade, as a fraction of notional per unit of (notional / depth);
    #: used only when the market view carries a ``depth``
    impact: float = attrs.field(default=0.0, validator=_non_negative)

    @classmethod
    def binance_vip0(cls, *, perp_maker: bool = False, borrow_apr: float = 0.10) -> CostModel:
        """Binance entry tier: USDⓈ-M taker 0.05% (maker 0.02% if ``perp_maker``), spot 0.1%."""
        return cls(perp_fee=0.0002 if perp_maker else 0.0005, spot_fee=0.001, borrow_apr=borrow_apr)


@attrs.frozen
class StrategyParams:
    """Tunable parameters. APRs are yearly fractions (0.10 = 10 %/year)."""

    entry_apr: float = attrs.field(default=0.05, validator=_finite)  #: net APR needed to enter
    exit_apr: float = attrs.field(default=0.0, validator=_finite)  #: hold while net APR above this
    horizon_hours: float = attrs.field(default=24.0 * 30, validator=_positive)  #: cost amortisation
    max_break_even_hours: float = attrs.field(default=24.0 * 30, validator=_positive)
    ewma_halflife: float = attrs.field(default=6.0, validator=_positive)  #: in funding periods
    leverage: float = attrs.field(default=3.0, validator=_positive)  #: perp leverage wanted
    maintenance_margin: float = attrs.field(default=0.005, validator=_non_negative)
    liquidation_sigmas: float = attrs.field(default=4.0, validator=_non_negative)
    topup_delay_hours: float = attrs.field(default=24.0, validator=_positive)  #: time to move collateral
    short_spot_margin: float = attrs.field(default=0.5, validator=_non_negative)  #: own capital per notional
    max_asset_fraction: float = attrs.field(default=1.0, validator=_positive)  #: of total capital
    max_venue_fraction: float = attrs.field(default=1.0, validator=_positive)
    allow_short_spot: bool = True
    min_notional: float = attrs.field(default=10.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.exit_apr > self.entry_apr:
            raise InvalidValue(f"exit_apr {self.exit_apr} above entry_apr {self.entry_apr}: no hysteresis")
        if self.leverage < 1.0:
            raise InvalidValue(f"leverage must be >= 1, got {self.leverage}")


@attrs.frozen
class MarketView:
    """What is known about one (venue, symbol) at ``now_ms``.

    ``funding_history``: known rates per period, oldest first (may be empty). ``spread`` fields are
    relative full spreads (0.0002 = 2 bp). ``volatility`` is the annualised volatility of the perp's
    log price. ``depth`` (quote currency available near the touch, per leg) is optional.
    """

    now_ms: int
    interval_hours: float
    funding_history: tuple[float, ...]
    spot_price: float
    perp_price: float
    volatility: float
    published_next_rate: float | None = None
    spot_spread: float = 0.0
    perp_spread: float = 0.0
    depth: float | None = None
    venue: str = ""
    symbol: str = ""

    def __attrs_post_init__(self) -> None:
        # one combined check (this is built once per decision): positive prices and interval,
        # non-negative volatility and spreads, all finite
        ok = (
            self.interval_hours > 0
            and self.spot_price > 0
            and self.perp_price > 0
            and self.volatility >= 0
            and self.spot_spread >= 0
            and self.perp_spread >= 0
            and math.isfinite(
                self.interval_hours
                + self.spot_price
                + self.perp_price
                + self.volatility
                + self.spot_spread
                + self.perp_spread
            )
        )
        if not ok:
            raise InvalidValue(
                "MarketView needs finite positive interval and prices, finite non-negative volatility "
                f"and spreads; got interval={self.interval_hours!r} spot={self.spot_price!r} "
                f"perp={self.perp_price!r} vol={self.volatility!r} spreads={self.spot_spread!r}/{self.perp_spread!r}"
            )


@attrs.frozen
class OpenPosition:
    """The position currently held for the candidate, as the caller's books see it."""

    direction: int  # +1 short perp / long spot, -1 long perp / short spot
    notional: float = attrs.field(validator=_non_negative)
    entered_ms: int = 0

    def __attrs_post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise InvalidValue(f"direction must be +1 or -1, got {self.direction}")


@attrs.frozen
class SizingBudget:
    """Capital available to a new position, in quote currency."""

    total_capital: float = attrs.field(validator=_positive)
    free_capital: float = attrs.field(validator=_non_negative)
    asset_used: float = attrs.field(default=0.0, validator=_non_negative)  #: notional on this asset
    venue_used: float = attrs.field(default=0.0, validator=_non_negative)  #: notional on this venue


@attrs.frozen
class CarryEstimate:
    """Expected carry of one direction, all yearly fractions of notional unless named otherwise."""

    direction: int
    rate_per_period: float  #: forecast funding per period (signed, venue convention)
    gross_apr: float  #: direction * forecast, annualised
    borrow_apr: float
    basis_charge_apr: float
    entry_cost: float  #: fraction of notional, both legs
    exit_cost: float
    net_entry_apr: float  #: carry minus running costs minus round trip amortised over the horizon
    net_hold_apr: float  #: carry minus running costs, plus the exit cost that holding saves, amortised
    break_even_hours: float  #: hours of carry needed to pay the round trip (inf if never)


@attrs.frozen
class Decision:
    """The outcome of :func:`decide`: an action, a direction, a target notional and why."""

    action: Action
    direction: int  #: 0 when flat and staying flat
    notional: float  #: target notional in quote currency (0 for EXIT / STAY_OUT)
    leverage: float  #: perp leverage to use (after the volatility cap)
    reason: str
    estimate: CarryEstimate | None


def forecast_rate(
    history: tuple[float, ...], published_next: float | None, params: StrategyParams, interval_hours: float
) -> float:
    """Expected funding per period over the horizon.

    An EWMA (half-life ``params.ewma_halflife`` periods) of the known history; where the venue
    has published the next rate, that rate counts for the first period of the horizon.
    """
    ewma = 0.0
    if history:
        # normalised exponential weights: the latest rate weighs 1, one half-life back 1/2, ...
        decay = 0.5 ** (1.0 / params.ewma_halflife)
        num = den = 0.0
        w = 1.0
        for r in reversed(history):
            num += w * r
            den += w
            w *= decay
        ewma = num / den
    if published_next is None:
        return ewma if history else 0.0
    n = max(params.horizon_hours / interval_hours, 1.0)
    base = ewma if history else published_next
    return (published_next + (n - 1.0) * base) / n


def leg_cost(fee: float, spread: float, slippage: float) -> float:
    """Cost of one trade on one leg, as a fraction of notional: fee + half spread + slippage."""
    return fee + 0.5 * spread + slippage


def estimate_carry(
    view: MarketView,
    costs: CostModel,
    params: StrategyParams,
    direction: int,
    forecast: float | None = None,
    notional: float = 0.0,
) -> CarryEstimate:
    """Expected net carry of ``direction`` (+1 or -1) for ``view``; see :class:`CarryEstimate`.

    ``forecast`` (rate per period) defaults to :func:`forecast_rate` of the view. Where the view
    has a ``depth``, each leg's trade also pays ``costs.impact * notional / depth``.
    """
    if direction not in (1, -1):
        raise InvalidValue(f"direction must be +1 or -1, got {direction}")
    f = (
        forecast_rate(view.funding_history, view.published_next_rate, params, view.interval_hours)
        if forecast is None
        else forecast
    )
    periods_per_year = HOURS_PER_YEAR / view.interval_hours
    gross = direction * f * periods_per_year
    borrow = costs.borrow_apr if direction == -1 else 0.0
    one_way = leg_cost(costs.perp_fee, view.perp_spread, costs.slippage) + leg_cost(
        costs.spot_fee, view.spot_spread, costs.slippage
    )
    if view.depth is not None and view.depth > 0 and notional > 0:
        one_way += 2.0 * costs.impact * notional / view.depth
    running = gross - borrow - costs.basis_risk_apr
    horizon_years = params.horizon_hours / HOURS_PER_YEAR
    net_entry = running - 2.0 * one_way / horizon_years
    # holding is worth it while the carry expected over the horizon beats paying the exit cost now
    net_hold = running + one_way / horizon_years
    be = 2.0 * one_way * HOURS_PER_YEAR / running if running > 1e-12 else math.inf
    return CarryEstimate(
        direction=direction,
        rate_per_period=f,
        gross_apr=gross,
        borrow_apr=borrow,
        basis_charge_apr=costs.basis_risk_apr,
        entry_cost=one_way,
        exit_cost=one_way,
        net_entry_apr=net_entry,
        net_hold_apr=net_hold,
        break_even_hours=be,
    )


def safe_leverage(volatility: float, params: StrategyParams) -> float:
    """The chosen leverage, cut so the liquidation distance covers the volatility budget.

    At leverage L a perp leg is liquidated after an adverse move of about ``1/L - mm``. We want
    that distance to be at least ``liquidation_sigmas`` standard deviations of the price over the
    time it takes to top up collateral (``topup_delay_hours``).
    """
    move = params.liquidation_sigmas * volatility * math.sqrt(params.topup_delay_hours / HOURS_PER_YEAR)
    cap = 1.0 / (params.maintenance_margin + move) if (params.maintenance_margin + move) > 0 else math.inf
    return max(1.0, min(params.leverage, cap))


def capital_per_notional(direction: int, leverage: float, params: StrategyParams) -> float:
    """Own capital tied per unit of notional: spot cost (or short-spot margin) + perp collateral."""
    spot = 1.0 if direction == 1 else params.short_spot_margin
    return spot + 1.0 / leverage


def size_notional(direction: int, leverage: float, budget: SizingBudget, params: StrategyParams) -> float:
    """Largest notional the free capital, the per-asset cap and the per-venue cap allow (>= 0)."""
    by_capital = budget.free_capital / capital_per_notional(direction, leverage, params)
    by_asset = params.max_asset_fraction * budget.total_capital - budget.asset_used
    by_venue = params.max_venue_fraction * budget.total_capital - budget.venue_used
    return max(0.0, min(by_capital, by_asset, by_venue))


def decide(
    position: OpenPosition | None,
    view: MarketView,
    costs: CostModel,
    params: StrategyParams,
    budget: SizingBudget,
) -> Decision:
    """One decision for one candidate (venue, symbol) given what is known at ``view.now_ms``.

    Flat: enter the better direction if its net APR (carry minus borrow, basis charge and the
    round trip amortised over ``horizon_hours``) reaches ``entry_apr`` and it breaks even within
    ``max_break_even_hours`` (and, where the view has a depth, still does at the chosen size,
    after price impact). Holding: exit when the carry expected over the horizon is worse
    than paying the exit cost now (``net_hold_apr < exit_apr``); the reason says whether funding
    itself flipped against the position or the running costs (borrow, basis charge) outweigh it.
    A short dip that costs less than the exit is held through: that is the hysteresis.
    """
    if position is not None:
        est = estimate_carry(view, costs, params, position.direction)
        lev = safe_leverage(view.volatility, params)
        if est.net_hold_apr < params.exit_apr:
            why = (
                "funding flipped against position"
                if est.gross_apr < 0.0
                else "carry no longer pays exit cost"
            )
            return Decision(Action.EXIT, position.direction, 0.0, lev, why, est)
        return Decision(Action.HOLD, position.direction, position.notional, lev, "carry still pays", est)

    f = forecast_rate(view.funding_history, view.published_next_rate, params, view.interval_hours)
    best: CarryEstimate | None = None
    for direction in (1, -1) if params.allow_short_spot else (1,):
        est = estimate_carry(view, costs, params, direction, f)
        if best is None or est.net_entry_apr > best.net_entry_apr:
            best = est
    assert best is not None
    lev = safe_leverage(view.volatility, params)
    if best.net_entry_apr < params.entry_apr:
        return Decision(Action.STAY_OUT, 0, 0.0, lev, "carry below entry threshold", best)
    if best.break_even_hours > params.max_break_even_hours:
        return Decision(Action.STAY_OUT, 0, 0.0, lev, "break-even too long", best)
    notional = size_notional(best.direction, lev, budget, params)
    if notional < params.min_notional:
        return Decision(Action.STAY_OUT, 0, 0.0, lev, "no capital within caps", best)
    if view.depth is not None and costs.impact > 0:
        sized = estimate_carry(view, costs, params, best.direction, f, notional)
        if sized.net_entry_apr < params.entry_apr:
            return Decision(Action.STAY_OUT, 0, 0.0, lev, "carry below entry threshold at this size", sized)
        best = sized
    return Decision(Action.ENTER, best.direction, notional, lev, "carry above entry threshold", best)
