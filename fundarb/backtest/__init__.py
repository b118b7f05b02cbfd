"""Backtester: the one data loader, the two-leg engine over :mod:`fundarb.core.strategy`, the
walk-forward and the report.

>>> from fundarb.backtest import BacktestConfig, default_data_dir, load_sleeve, run_portfolio
>>> sleeve = load_sleeve(default_data_dir(), "binance", "BTCUSDT")
>>> result = run_portfolio([sleeve], BacktestConfig(start_ms=1672531200000))
>>> sorted(result.summary)[:3]
['annual_return', 'annual_vol', 'basis_pnl']
"""

from fundarb.backtest.engine import BacktestConfig, SleeveResult, combine_daily, run_sleeve
from fundarb.backtest.loader import (
    FundingSeries,
    LoaderError,
    PriceSeries,
    default_data_dir,
    iter_funding_files,
    iter_price_files,
    load_funding,
    load_prices,
)
from fundarb.backtest.market import DEFAULT_INFO_LAG, SleeveData, build_sleeve, load_sleeve
from fundarb.backtest.metrics import per_year, summarize
from fundarb.backtest.portfolio import PortfolioResult, discover_candidates, run_portfolio
from fundarb.backtest.walkforward import DEFAULT_GRID, WalkForwardResult, WindowResult, walk_forward

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_INFO_LAG",
    "BacktestConfig",
    "FundingSeries",
    "LoaderError",
    "PortfolioResult",
    "PriceSeries",
    "SleeveData",
    "SleeveResult",
    "WalkForwardResult",
    "WindowResult",
    "build_sleeve",
    "combine_daily",
    "default_data_dir",
    "discover_candidates",
    "iter_funding_files",
    "iter_price_files",
    "load_funding",
    "load_prices",
    "load_sleeve",
    "per_year",
    "run_portfolio",
    "run_sleeve",
    "summarize",
    "walk_forward",
]
