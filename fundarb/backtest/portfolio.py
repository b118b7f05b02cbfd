"""Run several sleeves as one portfolio and summarise it (the numbers `--json` prints).

Capital is split equally between the sleeves; each sleeve is simulated by
:func:`fundarb.backtest.engine.run_sleeve`, and the portfolio's daily equity is their sum.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from fundarb.backtest.engine import BacktestConfig, SleeveResult, combine_daily, run_sleeve
from fundarb.backtest.loader import iter_funding_files, iter_price_files
from fundarb.backtest.market import SleeveData
from fundarb.backtest.metrics import per_year, summarize

__all__ = ["PortfolioResult", "discover_candidates", "run_portfolio"]

Progress = Callable[[int, int, str], None]


@attrs.frozen(eq=False)
class PortfolioResult:
    """Sleeve results, the combined daily equity and the summary dictionary."""

    capital: float
    sleeves: tuple[SleeveResult, ...]
    day_ms: np.ndarray
    equity: np.ndarray
    summary: dict[str, Any]


def discover_candidates(
    data_dir: pathlib.Path | str,
    venues: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(venue, symbol) pairs with funding, linear perp and spot prices; and the ones left out, with why."""
    prices = {(v, m, s) for v, m, s, _i in iter_price_files(data_dir)}
    ok: list[tuple[str, str]] = []
    skipped: list[tuple[str, str, str]] = []
    for v, s in iter_funding_files(data_dir):
        if venues and v not in venues:
            continue
        if symbols and s not in symbols:
            continue
        missing = [m for m in ("perp", "spot") if (v, m, s) not in prices]
        if "perp" in missing and (v, "perp_coin", s) in prices:
            skipped.append((v, s, "coin-margined (inverse) perp: not modelled by the backtester"))
        elif missing:
            skipped.append((v, s, "no " + " and no ".join(missing) + " prices"))
        else:
            ok.append((v, s))
    return ok, skipped


def run_portfolio(
    sleeves: Sequence[SleeveData],
    config: BacktestConfig,
    capital: float = 1_000_000.0,
    progress: Progress | None = None,
) -> PortfolioResult:
    """Simulate every sleeve with ``capital / len(sleeves)`` and summarise the total."""
    if not sleeves:
        raise ValueError("no sleeves to backtest")
    share = capital / len(sleeves)
    results: list[SleeveResult] = []
    for i, sl in enumerate(sleeves):
        if progress is not None:
            progress(i, len(sleeves), f"{sl.venue}:{sl.symbol}")
        results.append(run_sleeve(sl, share, config))
    if progress is not None:
        progress(len(sleeves), len(sleeves), "done")
    day_ms, equity = combine_daily(results)
    return PortfolioResult(
        capital, tuple(results), day_ms, equity, build_summary(capital, results, day_ms, equity)
    )


def _sleeve_summary(r: SleeveResult) -> dict[str, Any]:
    if r.times_ms.size:
        d_ms, eq = combine_daily([r])
        m = summarize(d_ms, eq, base=r.capital)
    else:
        m = summarize(np.zeros(0, dtype=np.int64), np.zeros(0))
    m.update(
        {
            "venue": r.venue,
            "symbol": r.symbol,
            "capital": r.capital,
            "funding_pnl": r.funding_pnl,
            "basis_pnl": r.basis_pnl,
            "fees": r.fees,
            "slippage": r.slippage,
            "borrow_cost": r.borrow_cost,
            "trades": r.trades,
            "rebalances": r.rebalances,
            "liquidations": r.liquidations,
            "skipped_periods": r.skipped_steps,
            "time_in_market": r.time_in_market,
        }
    )
    return m


def build_summary(
    capital: float, results: Sequence[SleeveResult], day_ms: np.ndarray, equity: np.ndarray
) -> dict[str, Any]:
    """The flat summary dictionary: headline metrics, PnL split, counts, per-year and per-symbol."""
    s = summarize(day_ms, equity, base=capital)
    steps = sum(r.times_ms.size for r in results) or 1
    s.update(
        {
            "capital": capital,
            "final_equity": float(equity[-1]) if equity.size else capital,
            "funding_pnl": sum(r.funding_pnl for r in results),
            "basis_pnl": sum(r.basis_pnl for r in results),
            "fees": sum(r.fees for r in results),
            "slippage": sum(r.slippage for r in results),
            "borrow_cost": sum(r.borrow_cost for r in results),
            "trades": sum(r.trades for r in results),
            "rebalances": sum(r.rebalances for r in results),
            "liquidations": sum(r.liquidations for r in results),
            "skipped_periods": sum(r.skipped_steps for r in results),
            "time_in_market": sum(r.time_in_market * r.times_ms.size for r in results) / steps,
            "per_year": per_year(day_ms, equity, base=capital) if equity.size else {},
            "per_symbol": {f"{r.venue}:{r.symbol}": _sleeve_summary(r) for r in results},
        }
    )
    return s
