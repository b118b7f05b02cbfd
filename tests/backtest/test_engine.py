"""Engine mechanics beyond the honesty set: borrow, transfer delay, gaps, real-data bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from fundarb.backtest.engine import BacktestConfig, combine_daily, run_sleeve
from fundarb.backtest.loader import default_data_dir
from fundarb.backtest.market import HOUR_MS, YEAR_MS, build_sleeve, known_counts, load_sleeve
from fundarb.core.strategy import CostModel, StrategyParams

from .synth import bars, flat_sleeve, funding

C = 1_000_000.0
COSTS = CostModel(perp_fee=0.0005, spot_fee=0.001, slippage=0.0001, borrow_apr=0.10, basis_risk_apr=0.01)


def test_negative_funding_short_spot_pays_borrow_exactly() -> None:
    n, r = 200, -0.001
    params = StrategyParams(leverage=2.0, short_spot_margin=0.5)
    res = run_sleeve(flat_sleeve([r] * n), C, BacktestConfig(costs=COSTS, params=params))
    assert res.trades == 1 and res.liquidations == 0
    notional = C / (0.5 + 0.5)  # short-spot margin + perp collateral per unit notional
    assert res.funding_pnl == pytest.approx((n - 1) * -r * notional, rel=1e-12)
    held_ms = (n - 1) * 8 * HOUR_MS
    assert res.borrow_cost == pytest.approx(0.10 * notional * held_ms / YEAR_MS, rel=1e-12)


def test_transfer_delay_decides_whether_a_squeeze_liquidates() -> None:
    n = 40
    px = 100.0 * 1.12 ** np.clip(np.arange(n) - 5, 0, 6)  # +12 % a period for six periods, then flat
    sl = build_sleeve(funding([0.0003] * n), [bars("spot", px)], [bars("perp", px)], lag_periods=0)
    params = StrategyParams(leverage=3.0)
    fast = run_sleeve(
        sl, C, BacktestConfig(costs=COSTS, params=params, policy="naive", transfer_delay_hours=0.0)
    )
    slow = run_sleeve(
        sl, C, BacktestConfig(costs=COSTS, params=params, policy="naive", transfer_delay_hours=1e4)
    )
    assert fast.liquidations == 0 and fast.rebalances >= 1
    assert slow.liquidations >= 1


def test_equity_is_flat_through_a_price_gap() -> None:
    n = 40
    px = np.linspace(100, 140, n)
    keep = np.ones(n, dtype=bool)
    keep[10:15] = False
    perp_all = bars("perp", px)
    from fundarb.backtest.loader import PriceSeries

    perp = PriceSeries(
        "x", "perp", "SYN", "8h", perp_all.open_ms[keep], px[keep], px[keep], px[keep], px[keep], px[keep]
    )
    sl = build_sleeve(funding([0.0] * n), [bars("spot", px)], [perp], lag_periods=0, max_price_age_ms=0)
    res = run_sleeve(sl, C, BacktestConfig(costs=COSTS, params=StrategyParams(leverage=1.0), policy="naive"))
    assert res.skipped_steps == 5
    assert np.ptp(res.equity[9:15]) == 0.0  # neither leg is marked while one is missing


def test_known_counts_prefix_per_lag() -> None:
    f = funding([0.0] * 5)
    assert known_counts(f, 0).tolist() == [1, 2, 3, 4, 5]
    assert known_counts(f, 1).tolist() == [2, 3, 4, 5, 5]
    with pytest.raises(ValueError):
        known_counts(f, -1)


def test_real_data_books_balance_and_daily_combination() -> None:
    sl = load_sleeve(default_data_dir(), "binance", "ETHUSDT")
    res = run_sleeve(sl, C, BacktestConfig())
    assert res.equity[-1] == pytest.approx(res.final_equity, rel=1e-12)
    assert res.times_ms[0] >= int(
        np.datetime64("2023-01-01", "ms").astype(np.int64)
    )  # coverage starts with prices
    days, eq = combine_daily([res])
    assert np.all(np.diff(days) == 86_400_000) and eq[-1] == pytest.approx(res.final_equity)


def test_bad_capital_rejected() -> None:
    with pytest.raises(ValueError):
        run_sleeve(flat_sleeve([0.0] * 3), 0.0, BacktestConfig())


def test_package_exports_are_documented() -> None:
    import fundarb.backtest as pkg

    for name in pkg.__all__:
        obj = getattr(pkg, name)
        assert isinstance(obj, dict) or obj.__doc__, name
