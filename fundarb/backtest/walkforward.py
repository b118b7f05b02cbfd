"""Walk-forward: choose parameters on a training window, score them only on the window that follows.

Test windows are calendar years. For each, every parameter set of the grid is run on the training
window (all earlier data, or the last ``train_years`` years); the best one by the objective, among
those without a liquidation, is then run once on the test year. Nothing is ever scored on the data
that chose it. The out-of-sample curve chains the test years' daily returns; the naive always-on
carry is run on the same test years at the chosen leverage for comparison.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from fundarb.backtest.engine import BacktestConfig
from fundarb.backtest.market import SleeveData
from fundarb.backtest.metrics import per_year, summarize
from fundarb.backtest.portfolio import PortfolioResult, run_portfolio

__all__ = ["DEFAULT_GRID", "WalkForwardResult", "WindowResult", "walk_forward"]

#: parameters searched on each training window (StrategyParams field -> values)
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "entry_apr": (0.0, 0.05, 0.10),
    "leverage": (2.0, 3.0, 5.0),
    "horizon_hours": (720.0, 2160.0),
}

_OBJECTIVES = ("calmar", "sharpe", "annual_return")


@attrs.frozen
class WindowResult:
    """One train/test split: the chosen parameters and both scores side by side."""

    train_start: str
    train_end: str
    test_start: str
    test_end: str
    params: dict[str, float]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any]
    naive_out_of_sample: dict[str, Any]


@attrs.frozen(eq=False)
class WalkForwardResult:
    """All windows plus the chained out-of-sample curves of the strategy and of the naive carry."""

    capital: float
    windows: tuple[WindowResult, ...]
    day_ms: np.ndarray
    equity: np.ndarray
    summary: dict[str, Any]
    naive_equity: np.ndarray
    naive_summary: dict[str, Any]
    last_test: PortfolioResult | None


def _year_ms(y: int) -> int:
    return int(np.datetime64(f"{y:04d}-01-01", "ms").astype(np.int64))


def _score(s: Mapping[str, Any], objective: str) -> float:
    if s["liquidations"] > 0 or s["days"] == 0:
        return -math.inf
    v = float(s[objective])
    return v if math.isfinite(v) else 1e9


def _chain(parts: list[PortfolioResult], capital: float) -> tuple[np.ndarray, np.ndarray]:
    days: list[np.ndarray] = []
    rets: list[np.ndarray] = []
    for p in parts:
        if p.equity.size == 0:
            continue
        path = np.concatenate([[p.capital], p.equity])
        rets.append(path[1:] / path[:-1] - 1.0)
        days.append(p.day_ms)
    if not days:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(days), capital * np.cumprod(1.0 + np.concatenate(rets))


def walk_forward(
    sleeves: Sequence[SleeveData],
    base: BacktestConfig,
    capital: float = 1_000_000.0,
    grid: Mapping[str, Sequence[float]] = DEFAULT_GRID,
    train_years: int | None = None,
    first_test_year: int | None = None,
    objective: str = "calmar",
    min_train_days: int = 365,
    progress: Callable[[int, int, str], None] | None = None,
) -> WalkForwardResult:
    """Run the walk-forward over calendar-year test windows; see the module docstring."""
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}, got {objective!r}")
    t_min = min(int(s.times_ms[0]) for s in sleeves if len(s))
    t_max = max(int(s.times_ms[-1]) for s in sleeves if len(s))
    lo_year = int(str(np.datetime64(t_min, "ms"))[:4])
    hi_year = int(str(np.datetime64(t_max, "ms"))[:4])
    data_start = max(t_min, base.start_ms or t_min)
    first = first_test_year if first_test_year is not None else lo_year + 1
    if base.start_ms is not None:
        first = max(first, int(str(np.datetime64(base.start_ms, "ms"))[:4]) + 1)
    # a test year needs at least ``min_train_days`` of training data before it
    test_years = [
        y for y in range(first, hi_year + 1) if _year_ms(y) - data_start >= min_train_days * 86_400_000
    ]
    if not test_years:
        raise ValueError("not enough data for a walk-forward: need at least one year before a test year")
    keys = list(grid)
    combos = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))]
    total = len(test_years) * (len(combos) + 2)
    done = 0
    windows: list[WindowResult] = []
    tests: list[PortfolioResult] = []
    naives: list[PortfolioResult] = []
    for y in test_years:
        test_start, test_end = _year_ms(y), _year_ms(y + 1)
        if base.end_ms is not None:
            test_end = min(test_end, base.end_ms)
        train_start = data_start if train_years is None else max(data_start, _year_ms(y - train_years))
        best: tuple[float, dict[str, float], dict[str, Any]] | None = None
        for combo in combos:
            params = _with(base, combo)
            if params is None:
                done += 1
                continue
            cfg = attrs.evolve(base, params=params, start_ms=train_start, end_ms=test_start)
            res = run_portfolio(sleeves, cfg, capital)
            sc = _score(res.summary, objective)
            if best is None or sc > best[0]:
                best = (sc, combo, res.summary)
            done += 1
            if progress is not None:
                progress(done, total, f"train {y}")
        assert best is not None
        _, combo, is_summary = best
        params = _with(base, combo)
        assert params is not None
        test = run_portfolio(
            sleeves, attrs.evolve(base, params=params, start_ms=test_start, end_ms=test_end), capital
        )
        naive = run_portfolio(
            sleeves,
            attrs.evolve(base, params=params, policy="naive", start_ms=test_start, end_ms=test_end),
            capital,
        )
        done += 2
        if progress is not None:
            progress(done, total, f"test {y}")
        tests.append(test)
        naives.append(naive)
        windows.append(
            WindowResult(
                train_start=str(np.datetime64(train_start, "ms"))[:10],
                train_end=str(np.datetime64(test_start - 1, "ms"))[:10],
                test_start=str(np.datetime64(test_start, "ms"))[:10],
                test_end=str(np.datetime64(test_end - 1, "ms"))[:10],
                params=combo,
                in_sample=_strip(is_summary),
                out_of_sample=_strip(test.summary),
                naive_out_of_sample=_strip(naive.summary),
            )
        )
    day_ms, eq = _chain(tests, capital)
    _, naive_eq = _chain(naives, capital)
    summary = _totals(summarize(day_ms, eq, base=capital), tests)
    summary["per_year"] = per_year(day_ms, eq, base=capital)
    naive_summary = _totals(summarize(day_ms, naive_eq, base=capital), naives)
    naive_summary["per_year"] = per_year(day_ms, naive_eq, base=capital)
    return WalkForwardResult(capital, tuple(windows), day_ms, eq, summary, naive_eq, naive_summary, tests[-1])


def _with(base: BacktestConfig, combo: Mapping[str, float]) -> Any:
    try:
        kwargs: dict[str, Any] = dict(combo)
        return attrs.evolve(base.params, **kwargs)
    except ValueError:
        return None  # e.g. an exit threshold above the entry threshold: not a valid candidate


_COUNTS = (
    "funding_pnl",
    "basis_pnl",
    "fees",
    "slippage",
    "borrow_cost",
    "trades",
    "liquidations",
    "skipped_periods",
)


def _totals(s: dict[str, Any], parts: list[PortfolioResult]) -> dict[str, Any]:
    for k in _COUNTS:
        s[k] = sum(p.summary[k] for p in parts)
    n = sum(p.summary["days"] for p in parts) or 1
    s["time_in_market"] = sum(p.summary["time_in_market"] * p.summary["days"] for p in parts) / n
    return s


def _strip(s: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in ("per_year", "per_symbol")}
