"""The compact live status line: positions by state, funding collected, fees, equity and PnL."""

from __future__ import annotations

import datetime
import sys
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

import trio

from fundarb.core.model import Market

if TYPE_CHECKING:
    from fundarb.engine.app import Engine

__all__ = ["run_status", "status_line"]


async def equity(engine: Engine) -> Decimal | None:
    """Account value in quote currency across venues (balances at mark, plus perp PnL)."""
    total = Decimal(0)
    for venue in engine.venues.values():
        try:
            with trio.fail_after(2):
                balances = await venue.balances()
                positions = await venue.positions()
        except Exception:  # a status line must never take the engine down
            return None
        marks = {
            i.symbol[: -len(q)]: f.mark
            for i, st in engine.market.instruments.items()
            if i.market is Market.PERPETUAL and (f := st.funding) is not None
            for q in ("USDT",)
            if i.symbol.endswith(q)
        }
        for b in balances:
            price = Decimal(1) if b.asset in ("USDT", "USDC", "USD") else marks.get(b.asset)
            if price is not None:
                total += b.net * price
        total += sum((p.unrealized_pnl for p in positions), Decimal(0))
    return total


def status_line(engine: Engine, value: Decimal | None, start_value: Decimal | None) -> str:
    """One line: time, positions by state, funding, fees, equity and PnL since start."""
    runners = list(engine.manager.runners.values())
    states = Counter(r.state.value for r in runners)
    funding = sum((r.position.funding for r in runners), Decimal(0))
    fees = sum((r.position.fees_quote for r in runners), Decimal(0))
    now = datetime.datetime.fromtimestamp(engine.clock.now_ms() / 1000, datetime.UTC).strftime("%H:%M:%S")
    by_state = " ".join(f"{k}={v}" for k, v in sorted(states.items())) or "none"
    sim_now = ""
    for venue in engine.venues.values():
        t = getattr(venue, "sim_time_ms", None)
        if callable(t):
            sim_now = " sim=" + datetime.datetime.fromtimestamp(t() / 1000, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M"
            )
    pnl = "" if value is None or start_value is None else f" pnl={value - start_value:+.2f}"
    eq = "" if value is None else f" equity={value:.2f}"
    halted = f" HALTED({engine.halted})" if engine.halted else ""
    return f"[{now}{sim_now}] positions: {by_state} | funding={funding:+.4f} fees={fees:.4f}{eq}{pnl}{halted}"


async def run_status(
    engine: Engine,
    interval: float,
    out: TextIO = sys.stdout,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Service: print the status line every ``interval`` seconds and refresh the position gauge."""
    start = await equity(engine)
    task_status.started()
    while True:
        await trio.sleep(interval)
        value = await equity(engine)
        print(status_line(engine, value, start), file=out, flush=True)
        engine.metrics.set_positions_by_state(Counter(r.state.value for r in engine.manager.runners.values()))
        if value is not None and start is not None:
            engine.metrics.set_pnl("total", float(value - start))
