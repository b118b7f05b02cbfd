"""Backtest benchmark: the full development data set, and a synthetic 100-symbol, 5-year, 8-hourly set.

Targets (issue 8): <= 5 s and <= 30 s on one core. Run: ``python bench/bench_backtest.py [DATA_DIR]``
(default DATA_DIR: ../shared/data next to the repository, else the vendored data).
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

from fundarb.backtest.engine import BacktestConfig
from fundarb.backtest.loader import FundingSeries, PriceSeries, default_data_dir
from fundarb.backtest.market import HOUR_MS, build_sleeve, load_sleeve
from fundarb.backtest.portfolio import discover_candidates, run_portfolio


def bench_dataset(data_dir: pathlib.Path) -> float:
    """Load every (venue, symbol) with funding + perp + spot prices and run strategy and naive."""
    t0 = time.perf_counter()
    cands, _ = discover_candidates(data_dir)
    sleeves = [load_sleeve(data_dir, v, s) for v, s in cands]
    t1 = time.perf_counter()
    res = run_portfolio(sleeves, BacktestConfig())
    naive = run_portfolio(sleeves, BacktestConfig(policy="naive"))
    t2 = time.perf_counter()
    steps = sum(len(s) for s in sleeves)
    print(f"dataset {data_dir}: {len(sleeves)} sleeves, {steps} settlements")
    print(
        f"  load {t1 - t0:.2f} s, strategy + naive runs {t2 - t1:.2f} s, total {t2 - t0:.2f} s (target <= 5 s)"
    )
    print(f"  strategy Sharpe {res.summary['sharpe']:.2f}, naive Sharpe {naive.summary['sharpe']:.2f}")
    return t2 - t0


def synthetic(n_symbols: int = 100, years: int = 5, seed: int = 7) -> list:
    """Random-walk prices with a small basis and AR(1) funding, every 8 hours."""
    rng = np.random.default_rng(seed)
    n = years * 1095
    t0 = 1_577_836_800_000  # 2020-01-01
    times = t0 + np.arange(n, dtype=np.int64) * 8 * HOUR_MS
    sleeves = []
    for i in range(n_symbols):
        ret = rng.normal(0, 0.6 / np.sqrt(1095), n)
        spot = 100.0 * np.exp(np.cumsum(ret))
        perp = spot * (1 + rng.normal(0.0002, 0.0005, n))
        rates = np.empty(n)
        r = 0.0001
        for k in range(n):
            r = 0.0001 + 0.9 * (r - 0.0001) + rng.normal(0, 0.00005)
            rates[k] = r
        f = FundingSeries("syn", f"S{i:03d}USDT", times, rates, np.full(n, 8, dtype=np.int64))
        open_ms = times - 8 * HOUR_MS
        wig = np.abs(rng.normal(0, 0.01, n))
        sp = PriceSeries(
            "syn", "spot", f.symbol, "8h", open_ms, spot, spot * (1 + wig), spot * (1 - wig), spot, np.ones(n)
        )
        pp = PriceSeries(
            "syn", "perp", f.symbol, "8h", open_ms, perp, perp * (1 + wig), perp * (1 - wig), perp, np.ones(n)
        )
        sleeves.append(build_sleeve(f, [sp], [pp], lag_periods=0))
    return sleeves


def bench_synthetic() -> float:
    """Time a strategy run over 100 synthetic symbols x 5 years of 8-hourly settlements."""
    t0 = time.perf_counter()
    sleeves = synthetic()
    t1 = time.perf_counter()
    res = run_portfolio(sleeves, BacktestConfig())
    t2 = time.perf_counter()
    steps = sum(len(s) for s in sleeves)
    print(f"synthetic: {len(sleeves)} symbols x 5 years, {steps} settlements")
    print(
        f"  build {t1 - t0:.2f} s, run {t2 - t1:.2f} s ({(t2 - t1) / steps * 1e6:.1f} us/step), "
        f"total {t2 - t0:.2f} s (target <= 30 s); trades {res.summary['trades']}"
    )
    return t2 - t0


def main() -> int:
    """Print both figures; exit 1 if a target is missed."""
    if len(sys.argv) > 1:
        data = pathlib.Path(sys.argv[1])
    else:
        shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
        data = shared if shared.is_dir() else default_data_dir()
    a = bench_dataset(data)
    b = bench_synthetic()
    return 0 if a <= 5.0 and b <= 30.0 else 1


if __name__ == "__main__":
    sys.exit(main())
