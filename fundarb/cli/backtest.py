"""`fundarb backtest`: two-leg carry backtest on the canonical data layout (issue 8).

Prints a summary table (strategy beside the naive always-on carry at the same leverage), a
progress bar on stderr, and with ``--json`` one JSON object as the last stdout line. ``--out DIR``
writes report.md, PNG plots and the daily equity CSV. ``--walk-forward`` chooses parameters on
each training window and reports out-of-sample results only on the following year.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from typing import Any

import attrs
import numpy as np

HELP = "backtest the carry strategy on historical funding and prices"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``fundarb backtest``."""
    parser.add_argument(
        "--data", type=pathlib.Path, default=None, help="data directory (default: vendored data)"
    )
    parser.add_argument(
        "--symbols", nargs="+", default=None, help="e.g. BTCUSDT ETHUSDT (comma lists accepted)"
    )
    parser.add_argument(
        "--venues", nargs="+", default=["binance"], help="venues (default: binance); 'all' for all"
    )
    parser.add_argument("--start", default=None, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--end", default=None, help="end day (exclusive), YYYY-MM-DD (UTC)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write report.md, plots and CSV here")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    parser.add_argument("--walk-forward", action="store_true", help="train on past, score on the next year")
    parser.add_argument("--capital", type=float, default=1_000_000.0)
    parser.add_argument(
        "--leverage", type=float, default=None, help="perp leverage (default: strategy default)"
    )
    parser.add_argument("--entry-apr", type=float, default=None)
    parser.add_argument("--perp-maker", action="store_true", help="perp leg pays the maker fee (0.02%%)")
    parser.add_argument("--borrow-apr", type=float, default=0.10, help="yearly borrow cost of short spot")
    parser.add_argument(
        "--lag",
        action="append",
        default=[],
        metavar="VENUE=N",
        help="information lag in funding periods for a venue (repeatable)",
    )


def _day_ms(s: str | None, name: str) -> int | None:
    if s is None:
        return None
    try:
        return int(np.datetime64(s, "D").astype("datetime64[ms]").astype(np.int64))
    except ValueError:
        raise SystemExit(f"fundarb backtest: bad --{name} {s!r} (expected YYYY-MM-DD)") from None


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return None if out == ["all"] else out


class _Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.enabled = True

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<20}")
        if done >= total:
            sys.stderr.write(f" {time.monotonic() - self.t0:.1f}s\n")
        sys.stderr.flush()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def main(args: argparse.Namespace) -> int:
    """Run the backtest described by ``args``; exit 0, or 2 on bad input."""
    from fundarb.backtest.engine import BacktestConfig
    from fundarb.backtest.loader import LoaderError, default_data_dir
    from fundarb.backtest.market import DEFAULT_INFO_LAG, load_sleeve
    from fundarb.backtest.portfolio import discover_candidates, run_portfolio
    from fundarb.core.errors import InvalidValue
    from fundarb.core.strategy import CostModel, StrategyParams

    data_dir = args.data if args.data is not None else default_data_dir()
    if not data_dir.is_dir():
        print(f"fundarb backtest: data directory not found: {data_dir}", file=sys.stderr)
        return 2
    lags = dict(DEFAULT_INFO_LAG)
    for item in args.lag:
        venue, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            print(f"fundarb backtest: bad --lag {item!r} (expected VENUE=N)", file=sys.stderr)
            return 2
        lags[venue] = int(n)
    try:
        params = StrategyParams()
        changes: dict[str, Any] = {}
        if args.leverage is not None:
            changes["leverage"] = args.leverage
        if args.entry_apr is not None:
            changes["entry_apr"] = args.entry_apr
        params = attrs.evolve(params, **changes)
        costs = CostModel.binance_vip0(perp_maker=args.perp_maker, borrow_apr=args.borrow_apr)
    except (InvalidValue, ValueError) as exc:
        print(f"fundarb backtest: {exc}", file=sys.stderr)
        return 2
    start, end = _day_ms(args.start, "start"), _day_ms(args.end, "end")
    config = BacktestConfig(costs=costs, params=params, start_ms=start, end_ms=end)

    candidates, left_out = discover_candidates(data_dir, _split(args.venues), _split(args.symbols))
    if not candidates:
        print(
            "fundarb backtest: no (venue, symbol) with funding, perp and spot prices matches", file=sys.stderr
        )
        for v, s, why in left_out:
            print(f"  {v}:{s}: {why}", file=sys.stderr)
        return 2
    try:
        sleeves = [load_sleeve(data_dir, v, s, lag_periods=lags.get(v, 0)) for v, s in candidates]
    except LoaderError as exc:
        print(f"fundarb backtest: {exc}", file=sys.stderr)
        return 2
    progress = _Progress()
    notes = [f"data: {data_dir}", "sleeves: " + ", ".join(f"{v}:{s}" for v, s in candidates)]
    notes += [f"left out {v}:{s}: {why}" for v, s, why in left_out]
    notes.append(
        f"costs: perp fee {costs.perp_fee:.4%}, spot fee {costs.spot_fee:.4%}, slippage {costs.slippage:.4%}, "
        f"spreads spot {config.spot_spread:.4%} perp {config.perp_spread:.4%}, borrow {costs.borrow_apr:.1%}/y, "
        f"basis-risk charge {costs.basis_risk_apr:.1%}/y"
    )
    notes.append(
        "information lag (funding periods): "
        + ", ".join(f"{v}={lags.get(v, 0)}" for v in sorted({v for v, _ in candidates}))
    )

    result = run_portfolio(sleeves, config, args.capital, progress)
    naive = run_portfolio(sleeves, attrs.evolve(config, policy="naive"), args.capital)
    walk = None
    if args.walk_forward:
        from fundarb.backtest.walkforward import walk_forward

        try:
            walk = walk_forward(sleeves, config, args.capital, progress=progress)
        except ValueError as exc:
            print(f"fundarb backtest: {exc}", file=sys.stderr)
            return 2

    from fundarb.backtest.report import summary_table, write_report

    cols: dict[str, Any] = {"strategy": result.summary, f"naive {params.leverage:g}x": naive.summary}
    if walk is not None:
        cols = {"strategy OOS": walk.summary, "naive OOS": walk.naive_summary, **cols}
    print(summary_table(cols))
    if result.summary["skipped_periods"]:
        print(f"skipped {result.summary['skipped_periods']} decision times with a missing spot or perp price")
    for v, s, why in left_out:
        print(f"left out {v}:{s}: {why}")
    if args.out is not None:
        paths = write_report(args.out, result, naive, walk, notes)
        print(f"report written: {', '.join(p.name for p in paths)} in {args.out}")
    if args.json:
        payload = dict(result.summary)
        payload["naive"] = {k: v for k, v in naive.summary.items() if k != "per_symbol"}
        if walk is not None:
            payload["walk_forward"] = {
                "out_of_sample": walk.summary,
                "naive_out_of_sample": walk.naive_summary,
                "windows": [attrs.asdict(w) for w in walk.windows],
            }
        print(json.dumps(_jsonable(payload), separators=(",", ":")))
    return 0
