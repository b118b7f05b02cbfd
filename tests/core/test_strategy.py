"""The pure carry strategy: forecast, costs, hysteresis, exits, sizing, both directions."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fundarb.core.strategy as strategy_module
from fundarb.core.errors import InvalidValue
from fundarb.core.strategy import (
    Action,
    CostModel,
    MarketView,
    OpenPosition,
    SizingBudget,
    StrategyParams,
    capital_per_notional,
    decide,
    estimate_carry,
    forecast_rate,
    safe_leverage,
    size_notional,
)

COSTS = CostModel(perp_fee=0.0005, spot_fee=0.001, slippage=0.0, borrow_apr=0.10, basis_risk_apr=0.0)
PARAMS = StrategyParams()
BUDGET = SizingBudget(total_capital=1e6, free_capital=1e6)


def view(
    rate: float, n: int = 21, vol: float = 0.5, nxt: float | None = None, interval: float = 8.0
) -> MarketView:
    return MarketView(
        now_ms=0,
        interval_hours=interval,
        funding_history=(rate,) * n,
        spot_price=100.0,
        perp_price=100.0,
        volatility=vol,
        published_next_rate=nxt,
    )


def test_public_names() -> None:
    for name in strategy_module.__all__:
        assert getattr(strategy_module, name).__doc__, name


def test_forecast_is_ewma_and_uses_published_next_rate() -> None:
    assert forecast_rate((0.0001,) * 10, None, PARAMS, 8) == pytest.approx(0.0001)
    assert forecast_rate((), None, PARAMS, 8) == 0.0
    # latest values weigh more
    assert forecast_rate((0.0,) * 10 + (0.001,), None, PARAMS, 8) > forecast_rate(
        (0.001,) + (0.0,) * 10, None, PARAMS, 8
    )
    n = PARAMS.horizon_hours / 8
    assert forecast_rate((0.0,) * 5, 0.01, PARAMS, 8) == pytest.approx(0.01 / n)


def test_interval_aware_annualisation() -> None:
    e8 = estimate_carry(view(0.0001, interval=8), COSTS, PARAMS, 1)
    e1 = estimate_carry(view(0.0001, interval=1), COSTS, PARAMS, 1)
    assert e8.gross_apr == pytest.approx(0.0001 * 1095)
    assert e1.gross_apr == pytest.approx(0.0001 * 8760)


def test_costs_break_even_and_borrow() -> None:
    e = estimate_carry(view(0.0001), COSTS, PARAMS, 1)
    assert e.entry_cost == pytest.approx(0.0015) and e.exit_cost == pytest.approx(0.0015)
    # round trip 0.3 % at 0.0001 per 8 h (0.003 % an hour) -> 100 hours
    assert e.break_even_hours == pytest.approx(0.003 / (0.0001 / 8))
    h = PARAMS.horizon_hours / 8760
    assert e.net_entry_apr == pytest.approx(0.1095 - 0.003 / h)
    assert e.net_hold_apr == pytest.approx(0.1095 + 0.0015 / h)
    short = estimate_carry(view(-0.0003), COSTS, PARAMS, -1)
    assert short.borrow_apr == 0.10 and short.gross_apr == pytest.approx(0.0003 * 1095)
    assert estimate_carry(view(-0.00009), COSTS, PARAMS, -1).break_even_hours == math.inf  # borrow eats it


def test_enter_both_directions() -> None:
    d = decide(None, view(0.0003), COSTS, PARAMS, BUDGET)
    assert d.action is Action.ENTER and d.direction == 1 and d.notional > 0
    d = decide(None, view(-0.0006), COSTS, PARAMS, BUDGET)
    assert d.action is Action.ENTER and d.direction == -1
    no_short = StrategyParams(allow_short_spot=False)
    assert decide(None, view(-0.0006), COSTS, no_short, BUDGET).action is Action.STAY_OUT


def test_stay_out_below_threshold_and_on_long_break_even() -> None:
    d = decide(None, view(0.00005), COSTS, PARAMS, BUDGET)
    assert d.action is Action.STAY_OUT and d.reason == "carry below entry threshold"
    p = StrategyParams(entry_apr=-1.0, exit_apr=-1.0, max_break_even_hours=10.0)
    assert decide(None, view(0.0001), COSTS, p, BUDGET).reason == "break-even too long"


def test_hysteresis_holds_where_it_would_not_enter() -> None:
    pos = OpenPosition(direction=1, notional=1e5)
    for r in (0.00006, 0.0, -0.00001):  # too little to enter; a small dip costs less than exiting
        assert decide(None, view(r), COSTS, PARAMS, BUDGET).action is Action.STAY_OUT
        assert decide(pos, view(r), COSTS, PARAMS, BUDGET).action is Action.HOLD


def test_exits() -> None:
    pos = OpenPosition(direction=1, notional=1e5)
    d = decide(pos, view(-0.0001), COSTS, PARAMS, BUDGET)
    assert d.action is Action.EXIT and d.reason == "funding flipped against position"
    # exit exactly where the carry over the horizon stops beating the exit cost
    h = PARAMS.horizon_hours / 8760
    edge = -0.0015 / h / 1095  # rate per period at which running carry == -exit cost / horizon
    assert decide(pos, view(edge * 0.99), COSTS, PARAMS, BUDGET).action is Action.HOLD
    assert decide(pos, view(edge * 1.01), COSTS, PARAMS, BUDGET).action is Action.EXIT
    # short spot: positive carry from funding, but borrow costs more
    short = OpenPosition(direction=-1, notional=1e5)
    d = decide(short, view(-0.00005), COSTS, PARAMS, BUDGET)
    assert d.action is Action.EXIT and d.reason == "carry no longer pays exit cost"
    assert decide(short, view(0.0001), COSTS, PARAMS, BUDGET).reason == "funding flipped against position"


def test_safe_leverage_falls_with_volatility() -> None:
    assert safe_leverage(0.0, PARAMS) == PARAMS.leverage
    lo, hi = safe_leverage(0.5, PARAMS), safe_leverage(2.0, PARAMS)
    assert 1.0 <= hi < lo <= PARAMS.leverage
    # the liquidation distance at the chosen leverage covers the volatility budget
    move = PARAMS.liquidation_sigmas * 2.0 * math.sqrt(PARAMS.topup_delay_hours / 8760)
    assert 1.0 / hi - PARAMS.maintenance_margin >= move - 1e-12 or hi == 1.0


def test_sizing_caps() -> None:
    p = StrategyParams(leverage=2.0, max_asset_fraction=0.3, max_venue_fraction=0.5)
    assert capital_per_notional(1, 2.0, p) == 1.5
    assert capital_per_notional(-1, 2.0, p) == p.short_spot_margin + 0.5
    b = SizingBudget(total_capital=1e6, free_capital=1e6)
    assert size_notional(1, 2.0, b, p) == pytest.approx(3e5)
    b = SizingBudget(total_capital=1e6, free_capital=1e6, venue_used=4e5)
    assert size_notional(1, 2.0, b, p) == pytest.approx(1e5)
    b = SizingBudget(total_capital=1e6, free_capital=1.5e4)
    assert size_notional(1, 2.0, b, p) == pytest.approx(1e4)
    b = SizingBudget(total_capital=1e6, free_capital=0.0)
    assert decide(None, view(0.001), COSTS, p, b).reason == "no capital within caps"


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(InvalidValue):
        StrategyParams(entry_apr=0.01, exit_apr=0.05)
    with pytest.raises(InvalidValue):
        StrategyParams(leverage=0.5)
    with pytest.raises(InvalidValue):
        CostModel(perp_fee=-0.1)
    with pytest.raises(InvalidValue):
        MarketView(
            now_ms=0, interval_hours=8, funding_history=(), spot_price=math.nan, perp_price=1, volatility=0
        )
    with pytest.raises(InvalidValue):
        OpenPosition(direction=0, notional=1.0)
    with pytest.raises(InvalidValue):
        estimate_carry(view(0.0), COSTS, PARAMS, 2)


@given(
    rate=st.floats(-0.01, 0.01),
    vol=st.floats(0.0, 5.0),
    free=st.floats(0.0, 1e7),
)
def test_decisions_are_consistent(rate: float, vol: float, free: float) -> None:
    b = SizingBudget(total_capital=1e7, free_capital=free)
    d = decide(None, view(rate, vol=vol), COSTS, PARAMS, b)
    assert 1.0 <= d.leverage <= PARAMS.leverage
    if d.action is Action.ENTER:
        assert d.direction * rate > 0
        assert d.notional * capital_per_notional(d.direction, d.leverage, PARAMS) <= free * (1 + 1e-12)
        assert d.estimate is not None and d.estimate.net_entry_apr >= PARAMS.entry_apr
    else:
        assert d.action is Action.STAY_OUT and d.notional == 0.0


def test_depth_impact_can_block_a_large_entry() -> None:
    costs = CostModel(
        perp_fee=0.0005, spot_fee=0.001, slippage=0.0, borrow_apr=0.1, basis_risk_apr=0.0, impact=0.001
    )
    base = view(0.0002)
    assert decide(None, base, costs, PARAMS, BUDGET).action is Action.ENTER  # no depth known: no impact
    deep = MarketView(**{**attrs.asdict(base), "depth": 1e9})
    shallow = MarketView(**{**attrs.asdict(base), "depth": 1e4})
    assert decide(None, deep, costs, PARAMS, BUDGET).action is Action.ENTER
    d = decide(None, shallow, costs, PARAMS, BUDGET)
    assert d.action is Action.STAY_OUT and d.reason == "carry below entry threshold at this size"
    e = estimate_carry(shallow, costs, PARAMS, 1, notional=1e4)
    assert e.entry_cost == pytest.approx(0.0015 + 2 * 0.001)
