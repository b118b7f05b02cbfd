"""Honesty tests (issue 8 item 4): analytic PnL, costs only, exact fee sensitivity, no lookahead."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fundarb.backtest.engine import BacktestConfig, run_sleeve
from fundarb.backtest.loader import default_data_dir
from fundarb.backtest.market import build_sleeve, load_sleeve
from fundarb.core.strategy import CostModel, StrategyParams, leg_cost

from .synth import bars, flat_sleeve, funding

C = 1_000_000.0
COSTS = CostModel(perp_fee=0.0005, spot_fee=0.001, slippage=0.0001, borrow_apr=0.10, basis_risk_apr=0.01)


def _round_trip(notional: float, cfg: BacktestConfig) -> float:
    one_way = leg_cost(cfg.costs.spot_fee, cfg.spot_spread, cfg.costs.slippage) + leg_cost(
        cfg.costs.perp_fee, cfg.perp_spread, cfg.costs.slippage
    )
    return 2.0 * notional * one_way


@pytest.mark.parametrize("policy", ["strategy", "naive"])
def test_constant_funding_on_flat_prices_is_analytic(policy: str) -> None:
    r, n, lev = 0.0003, 300, 3.0
    cfg = BacktestConfig(costs=COSTS, params=StrategyParams(leverage=lev), policy=policy)
    res = run_sleeve(flat_sleeve([r] * n), C, cfg)
    notional = C / (1.0 + 1.0 / lev)  # all capital: spot cost + perp collateral
    # entered at the first settlement (rate known there), so it collects the n - 1 that follow
    assert res.trades == 1 and res.liquidations == 0 and res.skipped_steps == 0
    assert res.funding_pnl == pytest.approx((n - 1) * r * notional, rel=1e-12)
    assert res.basis_pnl == pytest.approx(0.0, abs=1e-6)
    expected = C + (n - 1) * r * notional - _round_trip(notional, cfg)
    assert res.final_equity == pytest.approx(expected, rel=1e-12)
    assert res.equity[-1] == pytest.approx(expected, rel=1e-12)


def test_zero_funding_naive_loses_exactly_the_costs() -> None:
    cfg = BacktestConfig(costs=COSTS, params=StrategyParams(leverage=2.0), policy="naive")
    res = run_sleeve(flat_sleeve([0.0] * 100), C, cfg)
    notional = C / 1.5
    assert res.funding_pnl == 0.0
    assert res.final_equity - C == pytest.approx(-_round_trip(notional, cfg), rel=1e-12)
    assert res.fees + res.slippage == pytest.approx(_round_trip(notional, cfg), rel=1e-12)


def test_zero_funding_strategy_never_trades() -> None:
    res = run_sleeve(flat_sleeve([0.0] * 100), C, BacktestConfig(costs=COSTS))
    assert res.trades == 0 and res.final_equity == C
    assert res.reasons == {"carry below entry threshold": 100}


@pytest.mark.parametrize("policy", ["strategy", "naive"])
def test_doubling_fees_lowers_pnl_by_exactly_the_fee_difference(policy: str) -> None:
    sl = load_sleeve(default_data_dir(), "binance", "BTCUSDT")
    start = int(np.datetime64("2023-01-01", "ms").astype(np.int64))
    end = int(np.datetime64("2023-03-01", "ms").astype(np.int64))  # no liquidation without rebalancing
    # thresholds far below any carry: the decisions cannot depend on fees
    params = StrategyParams(entry_apr=-10.0, exit_apr=-10.0, max_break_even_hours=1e9, leverage=1.0)
    base = BacktestConfig(
        costs=COSTS,
        params=params,
        policy=policy,
        start_ms=start,
        end_ms=end,
        rebalance_low=0.0,
        rebalance_high=math.inf,
        max_notional=4e5,
    )
    doubled = BacktestConfig(
        costs=CostModel(
            perp_fee=0.001, spot_fee=0.002, slippage=0.0001, borrow_apr=0.10, basis_risk_apr=0.01
        ),
        params=params,
        policy=policy,
        start_ms=start,
        end_ms=end,
        rebalance_low=0.0,
        rebalance_high=math.inf,
        max_notional=4e5,
    )
    a, b = run_sleeve(sl, C, base), run_sleeve(sl, C, doubled)
    assert a.trades == b.trades >= 1 and a.liquidations == b.liquidations == 0
    assert b.fees == pytest.approx(2.0 * a.fees, rel=1e-12)
    assert a.funding_pnl == pytest.approx(b.funding_pnl, rel=1e-12)
    assert a.final_equity - b.final_equity == pytest.approx(b.fees - a.fees, rel=1e-9)
    assert a.equity[-1] - b.equity[-1] == pytest.approx(b.fees - a.fees, rel=1e-9)


def _spike(n: int = 120, j: int = 80) -> list[float]:
    rates = [-0.0001] * n
    rates[j] = 0.05  # a huge positive settlement after a run of negative ones
    return rates


def test_no_lookahead_when_the_rate_is_known_only_at_settlement() -> None:
    """A backtester that saw the rate being settled would enter before the spike and collect it."""
    res = run_sleeve(flat_sleeve(_spike(), lag=0), C, BacktestConfig(costs=COSTS))
    assert res.funding_pnl <= 0.0
    assert res.final_equity <= C


def test_published_ahead_rate_is_usable_with_lag_one() -> None:
    """The same data, from a venue that fixes the rate a period ahead: collecting it is legitimate."""
    res = run_sleeve(flat_sleeve(_spike(), lag=1), C, BacktestConfig(costs=COSTS))
    assert res.trades >= 1
    assert res.funding_pnl > 0.04 * C / 1.5
    assert res.final_equity > C


def test_strategy_sees_only_published_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    import fundarb.backtest.engine as engine

    seen: list[tuple[int, tuple[float, ...], float | None]] = []
    real = engine.decide

    def spy(pos, view, costs, params, budget):  # type: ignore[no-untyped-def]
        seen.append((view.now_ms, view.funding_history, view.published_next_rate))
        return real(pos, view, costs, params, budget)

    monkeypatch.setattr(engine, "decide", spy)
    rates = [i * 1e-6 for i in range(1, 51)]  # each rate identifies its settlement
    sl = flat_sleeve(rates, lag=0)
    run_sleeve(sl, C, BacktestConfig(costs=COSTS))
    assert len(seen) == 50
    for k, (t, hist, nxt) in enumerate(seen):
        assert t == int(sl.times_ms[k])
        assert hist[-1] == rates[k] and nxt is None  # settled at t: known; next: not yet
    seen.clear()
    run_sleeve(flat_sleeve(rates, lag=1), C, BacktestConfig(costs=COSTS))
    for k, (_t, hist, nxt) in enumerate(seen[:-1]):
        assert hist[-1] == rates[k] and nxt == rates[k + 1]


def test_liquidation_inside_a_bar_is_seen() -> None:
    n = 30
    px = np.full(n, 100.0)
    hi = px.copy()
    hi[10] = 150.0  # an intrabar spike the 8h closes never show
    rates = [0.0005] * n
    cfg = BacktestConfig(costs=COSTS, params=StrategyParams(leverage=3.0), policy="naive")
    hourly = build_sleeve(funding(rates), [bars("spot", px)], [bars("perp", px, highs=hi)], lag_periods=0)
    res = run_sleeve(hourly, C, cfg)
    assert res.liquidations == 1
    assert res.basis_pnl < -0.3 * C / (1 + 1 / 3)  # the perp margin (a third of notional) is lost
    closes_only = build_sleeve(funding(rates), [bars("spot", px)], [bars("perp", px)], lag_periods=0)
    assert run_sleeve(closes_only, C, cfg).liquidations == 0
    cfg1 = BacktestConfig(costs=COSTS, params=StrategyParams(leverage=1.0), policy="naive")
    assert run_sleeve(hourly, C, cfg1).liquidations == 0  # 100 % margin survives a +50 % wick


def test_missing_prices_are_skipped_and_counted_not_filled() -> None:
    n = 60
    px = np.full(n, 100.0)
    spot = bars("spot", px)
    keep = np.ones(n, dtype=bool)
    keep[20:30] = False  # ten perp bars missing
    perp_all = bars("perp", px)
    from fundarb.backtest.loader import PriceSeries

    perp = PriceSeries(
        "x",
        "perp",
        "SYN",
        "8h",
        perp_all.open_ms[keep],
        px[keep],
        px[keep],
        px[keep],
        px[keep],
        np.ones(keep.sum()),
    )
    sl = build_sleeve(funding([0.0003] * n), [spot], [perp], lag_periods=0, max_price_age_ms=0)
    assert np.isnan(sl.perp[20:30]).all() and np.isfinite(sl.perp[:20]).all()
    cfg = BacktestConfig(costs=COSTS, params=StrategyParams(leverage=2.0), policy="naive")
    res = run_sleeve(sl, C, cfg)
    assert res.skipped_steps == 10
    # funding of the gap is settled at the next real perp mark, not at an invented one
    notional = C / 1.5
    assert res.funding_pnl == pytest.approx((n - 1) * 0.0003 * notional, rel=1e-12)
