"""Backtest report: terminal table, ``report.md``, PNG plots and the daily equity CSV."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fundarb.backtest.metrics import iso_day
from fundarb.backtest.portfolio import PortfolioResult
from fundarb.backtest.walkforward import WalkForwardResult

__all__ = ["summary_table", "write_report"]

_ROWS = (
    ("sharpe", "Sharpe (daily, sqrt 365)", "{:.2f}"),
    ("annual_return", "annual return on total capital", "{:.2%}"),
    ("annual_vol", "annual volatility", "{:.2%}"),
    ("max_drawdown", "max drawdown", "{:.2%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("funding_pnl", "funding PnL", "{:,.0f}"),
    ("basis_pnl", "basis PnL", "{:,.0f}"),
    ("fees", "fees", "{:,.0f}"),
    ("slippage", "slippage", "{:,.0f}"),
    ("borrow_cost", "borrow cost", "{:,.0f}"),
    ("trades", "positions opened", "{}"),
    ("liquidations", "liquidations", "{}"),
    ("skipped_periods", "skipped periods (missing prices)", "{}"),
    ("time_in_market", "time in market", "{:.1%}"),
    ("start", "start", "{}"),
    ("end", "end", "{}"),
)


def _fmt(fmt: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    return fmt.format(v)


def summary_table(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table: one row per metric, one column per named summary."""
    names = list(columns)
    rows = [["metric", *names]]
    for key, label, fmt in _ROWS:
        rows.append([label, *(_fmt(fmt, columns[n].get(key)) for n in names)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _year_rows(
    per_year: Mapping[str, Mapping[str, Any]], naive: Mapping[str, Mapping[str, Any]] | None
) -> list[list[str]]:
    rows = []
    for y, s in per_year.items():
        row = [y, f"{s['sharpe']:.2f}", f"{s['annual_return']:.2%}", f"{s['max_drawdown']:.2%}"]
        if naive is not None and y in naive:
            n = naive[y]
            row += [f"{n['sharpe']:.2f}", f"{n['annual_return']:.2%}", f"{n['max_drawdown']:.2%}"]
        rows.append(row)
    return rows


def write_report(
    out_dir: pathlib.Path | str,
    result: PortfolioResult,
    naive: PortfolioResult | None = None,
    walk: WalkForwardResult | None = None,
    notes: Sequence[str] = (),
) -> list[pathlib.Path]:
    """Write report.md, equity.png, drawdown.png, pnl_split.png, funding_position.png and
    equity_daily.csv into ``out_dir``; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    main_days, main_eq = (walk.day_ms, walk.equity) if walk is not None else (result.day_ms, result.equity)
    naive_eq = walk.naive_equity if walk is not None else (naive.equity if naive is not None else None)
    days = main_days.astype("datetime64[ms]")

    # daily equity CSV
    csv = out / "equity_daily.csv"
    with csv.open("w") as fh:
        fh.write(
            "date,equity"
            + (",naive_equity" if naive_eq is not None and naive_eq.size == main_eq.size else "")
            + "\n"
        )
        for i, ms in enumerate(main_days):
            extra = f",{naive_eq[i]:.2f}" if naive_eq is not None and naive_eq.size == main_eq.size else ""
            fh.write(f"{iso_day(int(ms))},{main_eq[i]:.2f}{extra}\n")
    written.append(csv)

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(days, main_eq, label="strategy" + (" (out of sample)" if walk else ""))
    if naive_eq is not None and naive_eq.size == main_eq.size:
        ax.plot(days, naive_eq, label="naive always-on carry", alpha=0.7)
    ax.set_title("Equity (total capital)")
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(_save(fig, out / "equity.png", plt))

    fig, ax = plt.subplots(figsize=(10, 3))
    for eq, label in ((main_eq, "strategy"), (naive_eq, "naive")):
        if eq is not None and eq.size == main_eq.size and eq.size:
            base = np.concatenate([[result.capital], eq])
            dd = 1.0 - base / np.maximum.accumulate(base)
            ax.fill_between(days, -dd[1:], 0, alpha=0.4, label=label)
    ax.set_title("Drawdown")
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(_save(fig, out / "drawdown.png", plt))

    src = walk.summary if walk is not None else result.summary
    comps = ["funding_pnl", "basis_pnl", "fees", "slippage", "borrow_cost"]
    vals = [src[c] if c in ("funding_pnl", "basis_pnl") else -src[c] for c in comps]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        ["funding", "basis", "fees", "slippage", "borrow"], vals, color=["g", "b", "r", "orange", "purple"]
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("PnL split" + (" (out of sample)" if walk else ""))
    written.append(_save(fig, out / "pnl_split.png", plt))

    show = walk.last_test if walk is not None and walk.last_test is not None else result
    n = max(1, len(show.sleeves))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.5 * n), squeeze=False)
    for ax, r in zip(axes[:, 0], show.sleeves, strict=False):
        if r.times_ms.size:
            t = r.times_ms.astype("datetime64[ms]")
            ax.plot(t, r.rates * 1095 * 100, lw=0.6, label="funding, annualised %")
            ax2 = ax.twinx()
            ax2.step(t, r.direction, where="post", color="r", lw=0.8, label="position (+1 short perp)")
            ax2.set_ylim(-1.5, 1.5)
        ax.set_title(f"{r.venue} {r.symbol}: funding rate vs position")
        ax.grid(alpha=0.3)
    written.append(_save(fig, out / "funding_position.png", plt))

    written.append(_write_md(out / "report.md", result, naive, walk, notes))
    return written


def _save(fig: Any, path: pathlib.Path, plt: Any) -> pathlib.Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _write_md(
    path: pathlib.Path,
    result: PortfolioResult,
    naive: PortfolioResult | None,
    walk: WalkForwardResult | None,
    notes: Sequence[str],
) -> pathlib.Path:
    parts = ["# fundarb backtest report", ""]
    parts += [f"- {n}" for n in notes]
    parts.append("")
    if walk is not None:
        parts += ["## Walk-forward (parameters chosen on the training window, scored on the next year)", ""]
        rows = []
        for w in walk.windows:
            p = ", ".join(f"{k}={v:g}" for k, v in w.params.items())
            i, o, nv = w.in_sample, w.out_of_sample, w.naive_out_of_sample
            rows.append(
                [
                    f"{w.train_start}..{w.train_end}",
                    f"{w.test_start}..{w.test_end}",
                    p,
                    f"{i['sharpe']:.2f}",
                    f"{i['annual_return']:.2%}",
                    f"{o['sharpe']:.2f}",
                    f"{o['annual_return']:.2%}",
                    f"{o['max_drawdown']:.2%}",
                    str(o["liquidations"]),
                    f"{nv['sharpe']:.2f}",
                    f"{nv['annual_return']:.2%}",
                    f"{nv['max_drawdown']:.2%}",
                    str(nv["liquidations"]),
                ]
            )
        parts.append(
            _md_table(
                [
                    "train",
                    "test",
                    "chosen",
                    "IS Sharpe",
                    "IS return",
                    "OOS Sharpe",
                    "OOS return",
                    "OOS max DD",
                    "OOS liq",
                    "naive Sharpe",
                    "naive return",
                    "naive max DD",
                    "naive liq",
                ],
                rows,
            )
        )
        parts += [
            "",
            "### Out-of-sample totals (chained test years) vs naive always-on carry",
            "",
            "```",
            summary_table({"strategy OOS": walk.summary, "naive OOS": walk.naive_summary}),
            "```",
            "",
        ]
        parts += [
            "### Out-of-sample per year",
            "",
            _md_table(
                ["year", "Sharpe", "return", "max DD", "naive Sharpe", "naive return", "naive max DD"],
                _year_rows(walk.summary["per_year"], walk.naive_summary["per_year"]),
            ),
            "",
        ]
    parts += ["## Full-period run with the given parameters", "", "```"]
    cols: dict[str, Mapping[str, Any]] = {"strategy": result.summary}
    if naive is not None:
        cols["naive"] = naive.summary
    parts += [summary_table(cols), "```", "", "### Per year", ""]
    parts.append(
        _md_table(
            ["year", "Sharpe", "return", "max DD", "naive Sharpe", "naive return", "naive max DD"],
            _year_rows(result.summary["per_year"], naive.summary["per_year"] if naive else None),
        )
    )
    parts += ["", "### Per symbol", ""]
    rows = []
    for key, s in result.summary["per_symbol"].items():
        rows.append(
            [
                key,
                f"{s['sharpe']:.2f}",
                f"{s['annual_return']:.2%}",
                f"{s['max_drawdown']:.2%}",
                f"{s['funding_pnl']:,.0f}",
                f"{s['basis_pnl']:,.0f}",
                f"{s['fees'] + s['slippage']:,.0f}",
                f"{s['borrow_cost']:,.0f}",
                str(s["trades"]),
                str(s["liquidations"]),
                str(s["skipped_periods"]),
                f"{s['time_in_market']:.1%}",
            ]
        )
    parts.append(
        _md_table(
            [
                "sleeve",
                "Sharpe",
                "return",
                "max DD",
                "funding",
                "basis",
                "fees+slip",
                "borrow",
                "trades",
                "liq",
                "skipped",
                "in market",
            ],
            rows,
        )
    )
    parts += [
        "",
        "Plots: `equity.png`, `drawdown.png`, `pnl_split.png`, `funding_position.png`; daily equity: "
        "`equity_daily.csv`.",
        "",
    ]
    path.write_text("\n".join(parts))
    return path
