"""Walk-forward never scores parameters on the data that chose them; the CLI's outputs."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from fundarb.__main__ import main as cli_main
from fundarb.backtest.engine import BacktestConfig
from fundarb.backtest.market import HOUR_MS, build_sleeve
from fundarb.backtest.walkforward import walk_forward
from fundarb.core.strategy import CostModel, StrategyParams

from .synth import bars, funding

YEAR_STEPS = 1095


def _two_regimes() -> list:
    # 2023: steady positive funding (carrying pays); 2024: funding that hovers just below the round trip
    rates = np.concatenate(
        [np.full(YEAR_STEPS, 0.0003), np.tile([0.0004, -0.0004], YEAR_STEPS // 2 + 1)[:YEAR_STEPS]]
    )
    n = rates.size
    px = np.full(n, 100.0)
    f = funding(rates)
    return [build_sleeve(f, [bars("spot", px)], [bars("perp", px)], lag_periods=0)]


def test_parameters_are_chosen_on_training_data_only() -> None:
    sleeves = _two_regimes()
    base = BacktestConfig(costs=CostModel(), params=StrategyParams(allow_short_spot=False))
    grid = {"entry_apr": (0.0, 5.0)}  # 5.0: never enters
    wf = walk_forward(sleeves, base, 1e6, grid=grid)
    assert len(wf.windows) == 1
    w = wf.windows[0]
    assert w.train_end < w.test_start and w.test_start == "2024-01-01"
    # training (2023) rewards carrying; the test year would have preferred staying out
    assert w.params == {"entry_apr": 0.0}
    assert w.in_sample["annual_return"] > 0
    stay_out = walk_forward(sleeves, base, 1e6, grid={"entry_apr": (5.0,)})
    assert stay_out.windows[0].out_of_sample["annual_return"] == 0.0
    assert w.out_of_sample["annual_return"] != 0.0  # scored with the train choice, not the test-best
    assert wf.day_ms[0] == int(np.datetime64("2024-01-01", "ms").astype(np.int64))
    assert wf.equity.size == wf.naive_equity.size == wf.summary["days"]


def test_walk_forward_needs_a_year_of_training() -> None:
    n = 500
    px = np.full(n, 100.0)
    sl = build_sleeve(funding([0.0001] * n), [bars("spot", px)], [bars("perp", px)], lag_periods=0)
    with pytest.raises(ValueError, match="not enough data"):
        walk_forward([sl], BacktestConfig(), 1e6)
    assert 8 * HOUR_MS * n < 365 * 24 * HOUR_MS


REQUIRED = {
    "sharpe",
    "annual_return",
    "annual_vol",
    "max_drawdown",
    "calmar",
    "funding_pnl",
    "basis_pnl",
    "fees",
    "borrow_cost",
    "trades",
    "time_in_market",
    "start",
    "end",
    "per_year",
    "per_symbol",
}


def test_cli_json_and_report(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    rc = cli_main(
        [
            "backtest",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--start",
            "2023-03-01",
            "--end",
            "2023-07-01",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    payload = json.loads(lines[-1])
    assert REQUIRED <= payload.keys()
    assert payload["start"] == "2023-03-01" and payload["end"] == "2023-06-30"
    assert set(payload["per_symbol"]) == {"binance:BTCUSDT", "binance:ETHUSDT"}
    assert "naive" in payload and "Sharpe" in "\n".join(lines[:-1])
    for name in (
        "report.md",
        "equity.png",
        "drawdown.png",
        "pnl_split.png",
        "funding_position.png",
        "equity_daily.csv",
    ):
        assert (out / name).stat().st_size > 0, name
    csv = (out / "equity_daily.csv").read_text().splitlines()
    assert csv[0].startswith("date,equity") and len(csv) == 1 + 122


def test_cli_bad_input(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["backtest", "--data", str(tmp_path / "nope")]) == 2
    assert cli_main(["backtest", "--symbols", "NOPE"]) == 2
    assert cli_main(["backtest", "--lag", "binance"]) == 2
    assert cli_main(["backtest", "--leverage", "0.5"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["backtest", "--start", "2023-13-45"])
    err = capsys.readouterr().err
    assert "not found" in err and "VENUE=N" in err
