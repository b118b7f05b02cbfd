"""The strategy loop: turn market state into entry and exit signals through core.strategy.

For each configured (venue, symbol) the loop builds a :class:`~fundarb.core.strategy.MarketView`
from what the engine has seen (settled funding rates it observed, the venue's current predicted
rate, prices, spreads, a volatility estimate from the mark), calls the same
:func:`~fundarb.core.strategy.decide` the backtester calls, and acts: a new hedged position on
ENTER, an exit signal on EXIT. Stale market data blocks entries (never exits).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core import strategy as st
from fundarb.core.model import Instrument, InstrumentId, Side, TimeInForce
from fundarb.core.position import PositionState
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.engine.manager import PositionManager
from fundarb.engine.market import MarketState
from fundarb.engine.position_runner import PositionRunner

__all__ = ["Candidate", "CarryTrader"]

log = logging.getLogger("fundarb.trader")
_YEAR_MS = 365 * 24 * 3600 * 1000


@attrs.frozen
class Candidate:
    """One tradable pair: a perpetual and the spot market of the same asset (same venue or not)."""

    perp: Instrument
    spot: Instrument


@attrs.define
class _Tracker:
    """What the loop learns about one perpetual from the stream."""

    settled: deque[float] = attrs.Factory(lambda: deque(maxlen=90))
    next_funding_ms: int | None = None
    last_rate: float | None = None
    last_mark: float | None = None
    last_mark_ms: int | None = None
    var_per_ms: float | None = None  # EWMA of squared log returns per ms

    def observe(self, rate: float, next_ms: int, mark: float, now_ms: int) -> None:
        if self.next_funding_ms is not None and next_ms > self.next_funding_ms and self.last_rate is not None:
            self.settled.append(self.last_rate)  # the period rolled: the last prediction settled
        self.next_funding_ms, self.last_rate = next_ms, rate
        if self.last_mark is not None and self.last_mark_ms is not None and now_ms > self.last_mark_ms:
            r2 = math.log(mark / self.last_mark) ** 2 / (now_ms - self.last_mark_ms)
            self.var_per_ms = r2 if self.var_per_ms is None else 0.99 * self.var_per_ms + 0.01 * r2
        self.last_mark, self.last_mark_ms = mark, now_ms

    def volatility(self, default: float) -> float:
        if self.var_per_ms is None:
            return default
        return math.sqrt(self.var_per_ms * _YEAR_MS)


@attrs.define(eq=False)
class CarryTrader:
    """Evaluates every candidate each ``interval`` seconds and opens or closes positions."""

    market: MarketState
    manager: PositionManager
    candidates: list[Candidate]
    costs: st.CostModel
    params: st.StrategyParams
    capital: float
    max_position_notional: float
    max_open_positions: int
    hedge_timeout_ms: int = 5000
    leg_a_is_perp: bool = True
    entry_time_in_force: TimeInForce = TimeInForce.IOC
    entry_timeout: float = 30.0
    interval: float = 1.0
    default_volatility: float = 0.6
    entries_allowed: Callable[[Candidate], str | None] = lambda c: None  # a reason blocks entries
    held: dict[InstrumentId, PositionRunner] = attrs.Factory(dict)
    decisions: int = 0
    _trackers: dict[InstrumentId, _Tracker] = attrs.Factory(dict)
    _ids: Mapping[str, int] = attrs.Factory(dict)
    _seq: itertools.count[int] = attrs.Factory(lambda: itertools.count(1))
    _nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Service: decide on every candidate at each interval, forever."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                for c in self.candidates:
                    await self.evaluate(c)
                await trio.sleep(self.interval)

    async def _expire_entry(self, runner: PositionRunner) -> None:
        """A resting entry that has not completed in time is abandoned: the machine cancels it
        and unwinds whatever filled (a cancel that races a fill is exactly what it handles)."""
        await trio.sleep(self.entry_timeout)
        if runner.state is PositionState.OPENING_LEG_A:
            runner.deliver(ev.ExitSignalled(f"entry not filled within {self.entry_timeout:g}s"))

    def _view(self, c: Candidate) -> st.MarketView | None:
        funding = self.market.funding(c.perp.id)
        spot_q, perp_q = self.market.quote(c.spot.id), self.market.quote(c.perp.id)
        if funding is None or spot_q is None or perp_q is None:
            return None
        now = self.market.clock.now_ms()
        tr = self._trackers.setdefault(c.perp.id, _Tracker())
        tr.observe(float(funding.rate), funding.next_funding_ms, float(funding.mark), now)
        # The running prediction is not settled yet: the history is what has settled, and until
        # the loop has seen a settlement the prediction is all it knows.
        history = tuple(tr.settled) if tr.settled else (float(funding.rate),)
        return st.MarketView(
            now_ms=now,
            interval_hours=funding.interval_hours,
            funding_history=history,
            spot_price=float(spot_q.mid),
            perp_price=float(perp_q.mid),
            volatility=tr.volatility(self.default_volatility),
            spot_spread=float((spot_q.ask - spot_q.bid) / spot_q.mid),
            perp_spread=float((perp_q.ask - perp_q.bid) / perp_q.mid),
            venue=c.perp.id.venue,
            symbol=c.perp.id.symbol,
        )

    async def evaluate(self, c: Candidate) -> st.Decision | None:
        """One decision for ``c``; acts on it. Returns the decision (None without data)."""
        runner = self.held.get(c.perp.id)
        if runner is not None and runner.state is PositionState.CLOSED:
            del self.held[c.perp.id]
            runner = None
        view = self._view(c)
        if view is None:
            return None
        self.decisions += 1
        open_pos = None
        if runner is not None:
            notional = float(runner.position.plan.leg_a.target_qty) * view.perp_price
            direction = 1 if _perp_side(runner) is Side.SELL else -1
            open_pos = st.OpenPosition(direction, notional)
        used = sum(float(r.position.plan.leg_a.target_qty) * view.perp_price for r in self.held.values())
        budget = st.SizingBudget(self.capital, max(0.0, self.capital - used))
        decision = st.decide(open_pos, view, self.costs, self.params, budget)
        if decision.action is st.Action.EXIT and runner is not None:
            if runner.state in (PositionState.HEDGED, PositionState.REBALANCING):
                runner.deliver(ev.ExitSignalled(decision.reason))
        elif decision.action is st.Action.ENTER and runner is None:
            blocked = self.entries_allowed(c)
            if blocked:
                log.info("entry on %s blocked: %s", c.perp.id, blocked)
            elif len(self.manager.active()) < self.max_open_positions and decision.direction == 1:
                await self._enter(c, decision, view)
        return decision

    async def _enter(self, c: Candidate, d: st.Decision, view: st.MarketView) -> None:
        notional = min(d.notional, self.max_position_notional)
        qty = c.perp.round_qty(Decimal(str(notional / view.perp_price)))
        qty = min(qty, c.spot.round_qty(qty))
        if qty <= 0:
            return
        perp = LegSpec(c.perp, Side.SELL, qty)
        spot = LegSpec(c.spot, Side.BUY, qty)
        a, b = (perp, spot) if self.leg_a_is_perp else (spot, perp)
        # unique across restarts too: milliseconds since the epoch plus a counter (<= 20 characters)
        pid = f"p{self.market.clock.now_ms():x}{next(self._seq)}"
        tif = self.entry_time_in_force
        plan = PositionPlan(pid, a, b, hedge_timeout_ms=self.hedge_timeout_ms, entry_time_in_force=tif)
        quote = self.market.quote(a.instrument.id)
        assert quote is not None
        resting = tif in (TimeInForce.POST_ONLY, TimeInForce.GTC)
        if resting:  # join the passive side: maker fees; it rests until filled or expired
            touch = quote.ask if a.side is Side.SELL else quote.bid
        else:  # a marketable limit at the touch: IOC, so it never rests
            touch = quote.bid if a.side is Side.SELL else quote.ask
        log.info(
            "enter %s %s qty %s: %s (net %.1f%%/y)",
            pid,
            c.perp.id,
            qty,
            d.reason,
            100 * (d.estimate.net_entry_apr if d.estimate else 0),
        )
        runner = await self.manager.open_position(plan, ev.EntrySignalled(touch, touch))
        self.held[c.perp.id] = runner
        if resting and self._nursery is not None:
            self._nursery.start_soon(self._expire_entry, runner)


def _perp_side(runner: PositionRunner) -> Side:
    plan = runner.position.plan
    return plan.leg_a.side if plan.leg_a.instrument.is_perpetual else plan.leg_b.side
