"""Metrics on known curves, and the report with a walk-forward section."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from fundarb.backtest.engine import BacktestConfig
from fundarb.backtest.market import build_sleeve
from fundarb.backtest.metrics import DAY_MS, per_year, summarize
from fundarb.backtest.portfolio import run_portfolio
from fundarb.backtest.report import summary_table, write_report
from fundarb.backtest.walkforward import walk_forward

from .synth import bars, funding

D0 = 1_672_531_200_000  # 2023-01-01


def test_summarize_known_curve() -> None:
    rets = np.array([0.01, -0.02, 0.03, 0.0, 0.01])
    eq = 100.0 * np.cumprod(1 + rets)
    days = D0 + np.arange(rets.size) * DAY_MS
    s = summarize(days, eq, base=100.0)
    assert s["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(365))
    assert s["annual_vol"] == pytest.approx(rets.std(ddof=1) * math.sqrt(365))
    assert s["max_drawdown"] == pytest.approx(0.02)
    assert s["total_return"] == pytest.approx(eq[-1] / 100 - 1)
    assert s["annual_return"] == pytest.approx((eq[-1] / 100) ** (365 / 5) - 1)
    assert s["calmar"] == pytest.approx(s["annual_return"] / 0.02)
    assert s["start"] == "2023-01-01" and s["end"] == "2023-01-05"


def test_per_year_chains_from_previous_year_end() -> None:
    days = D0 - 2 * DAY_MS + np.arange(4) * DAY_MS  # 2022-12-30 .. 2023-01-02
    eq = np.array([101.0, 102.0, 104.04, 106.1208])
    y = per_year(days, eq, base=100.0)
    assert set(y) == {"2022", "2023"}
    assert y["2022"]["total_return"] == pytest.approx(0.02)
    assert y["2023"]["total_return"] == pytest.approx(106.1208 / 102.0 - 1)


def test_report_with_walk_forward(tmp_path: pathlib.Path) -> None:
    n = 2 * 1095
    px = np.full(n, 100.0)
    sl = build_sleeve(funding([0.0003] * n), [bars("spot", px)], [bars("perp", px)], lag_periods=0)
    cfg = BacktestConfig()
    grid = {"entry_apr": (0.0, 0.1)}
    wf = walk_forward([sl], cfg, 1e6, grid=grid)
    res = run_portfolio([sl], cfg)
    naive = run_portfolio([sl], BacktestConfig(policy="naive"))
    paths = write_report(tmp_path, res, naive, wf, notes=["synthetic"])
    md = (tmp_path / "report.md").read_text()
    assert "## Walk-forward" in md and "| 2023-01-01..2023-12-31 | 2024-01-01..2024-12-31 |" in md
    assert "naive OOS" in md and "synthetic" in md
    assert {p.name for p in paths} >= {"report.md", "equity.png", "equity_daily.csv"}
    assert "Sharpe" in summary_table({"a": res.summary})
