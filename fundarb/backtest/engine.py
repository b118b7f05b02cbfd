"""Two-leg carry backtest over :mod:`fundarb.core.strategy` (the same functions the live engine calls).

One *sleeve* per (venue, symbol) gets a fixed share of the capital. At every funding settlement
``t`` of its venue, in this order:

1. collateral transfers that have arrived by ``t`` are credited;
2. if a position is open, the perp leg's margin is checked against the worst perp price of every
   bar that closed in ``(t_prev, t]`` (the bar's high for a short perp, its low for a long one).
   If the perp account's equity at that price falls to the maintenance margin, the perp leg is
   liquidated and its whole remaining margin is lost; the spot leg is then closed at the next mark;
3. both legs are marked to the latest closed bars (basis PnL) and the funding settled at ``t`` is
   paid or received on the perp notional at the mark; borrow accrues on a short spot leg;
4. if either mark is missing, the step is *skipped* (counted, no decision, nothing filled);
5. the perp collateral is rebalanced if it left its band (the transfer lands after a delay);
6. :func:`fundarb.core.strategy.decide` is called with only what is known at ``t`` (rates published
   by ``t`` under the venue's information lag), and its ENTER/EXIT is executed at the marks with
   fees and slippage on both legs.

Returns are on total capital: idle cash, the spot leg's cost (or a short spot leg's margin) and
the perp collateral. A position still open at the end is closed at the last marks, with costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from fundarb.backtest.market import HOUR_MS, YEAR_MS, SleeveData
from fundarb.core.strategy import (
    Action,
    CostModel,
    MarketView,
    OpenPosition,
    SizingBudget,
    StrategyParams,
    decide,
    leg_cost,
)

__all__ = ["BacktestConfig", "SleeveResult", "run_sleeve"]


@attrs.frozen
class BacktestConfig:
    """Everything a run needs besides the data. ``policy``: "strategy" or "naive" (always-on carry)."""

    costs: CostModel = attrs.field(factory=CostModel.binance_vip0)
    params: StrategyParams = attrs.field(factory=StrategyParams)
    policy: str = attrs.field(default="strategy", validator=attrs.validators.in_(("strategy", "naive")))
    spot_spread: float = 0.0002  #: relative full spread assumed (no quote data in the set)
    perp_spread: float = 0.0001
    history_len: int = 21  #: known rates passed to the strategy
    transfer_delay_hours: float = 8.0  #: time for a collateral transfer between legs to land
    rebalance_low: float = 0.5  #: top up when perp equity < low * target collateral
    rebalance_high: float = 2.0  #: withdraw when perp equity > high * target collateral
    default_vol: float = 1.0  #: volatility assumed before enough history exists
    start_ms: int | None = None
    end_ms: int | None = None
    max_notional: float | None = None  #: cap per position (quote); set it to stop compounding


@attrs.frozen(eq=False)
class SleeveResult:
    """Outcome of one sleeve: per-step arrays and PnL totals (quote currency)."""

    venue: str
    symbol: str
    capital: float
    times_ms: np.ndarray  # decision times inside [start, end)
    equity: np.ndarray
    direction: np.ndarray  # int8 position direction after the step's decision
    rates: np.ndarray
    funding_pnl: float
    basis_pnl: float
    fees: float
    slippage: float
    borrow_cost: float
    trades: int  # positions opened
    rebalances: int
    liquidations: int
    skipped_steps: int  # decision times with a missing spot or perp mark
    time_in_market: float  # fraction of elapsed time with a position open
    reasons: dict[str, int]  # decision reason -> count

    @property
    def final_equity(self) -> float:
        """Equity at the end (capital + all PnL)."""
        return self.capital + self.funding_pnl + self.basis_pnl - self.fees - self.slippage - self.borrow_cost


def run_sleeve(data: SleeveData, capital: float, config: BacktestConfig) -> SleeveResult:
    """Simulate one sleeve with ``capital`` under ``config``; see the module docstring."""
    if not (capital > 0 and math.isfinite(capital)):
        raise ValueError(f"capital must be positive, got {capital}")
    costs, params = config.costs, config.params
    times = data.times_ms
    lo_i = 0 if config.start_ms is None else int(np.searchsorted(times, config.start_ms, side="left"))
    hi_i = len(data) if config.end_ms is None else int(np.searchsorted(times, config.end_ms, side="left"))
    # only the span where both legs have prices at all: before the first and after the last
    # joint mark the sleeve is out of coverage (not "missing"); gaps inside it are skipped steps
    both = np.flatnonzero(np.isfinite(data.spot) & np.isfinite(data.perp))
    if both.size:
        lo_i = max(lo_i, int(both[0]))
        hi_i = min(hi_i, int(both[-1]) + 1)
    else:
        hi_i = lo_i
    # plain Python lists are much faster than numpy scalars in the step loop
    t_l = times.tolist()
    r_l = data.rates.tolist()
    iv_l = data.interval_hours.tolist()
    kn_l = data.known.tolist()
    s_l = data.spot.tolist()
    p_l = data.perp.tolist()
    ph_l = data.perp_high.tolist()
    pl_l = data.perp_low.tolist()
    v_l = data.vol.tolist()

    spot_cost = leg_cost(costs.spot_fee, config.spot_spread, costs.slippage)
    perp_cost = leg_cost(costs.perp_fee, config.perp_spread, costs.slippage)
    mm = params.maintenance_margin
    delay_ms = int(config.transfer_delay_hours * HOUR_MS)

    cash = capital  # spot account + idle cash (incl. a short spot leg's sale proceeds)
    perp_acct = 0.0  # perp collateral + realised perp PnL
    pend_perp = 0.0  # in transit to the perp account
    pend_perp_at = 0
    pend_cash = 0.0  # in transit back to the spot account
    pend_cash_at = 0
    d = 0  # direction of the open (hedged) position, 0 when flat
    sd = 0  # direction of the spot leg (stays set after a liquidation until the spot is sold)
    q = 0.0  # base quantity of each leg
    lev = params.leverage
    s_last = p_last = math.nan
    entered_ms = 0
    owed_rates: list[float] = []  # funding settled while the perp mark was missing
    last_borrow_ms = 0
    spot_close_pending = False  # after a liquidation, the spot leg still has to be sold
    no_budget = SizingBudget(total_capital=capital, free_capital=0.0)
    naive_policy = config.policy == "naive"

    funding = basis = fees = slip = borrow = 0.0
    trades = rebalances = liqs = skipped = 0
    in_market_ms = 0
    reasons: dict[str, int] = {}
    out_t: list[int] = []
    out_eq: list[float] = []
    out_dir: list[int] = []
    out_rate: list[float] = []

    def trade_cost(qty: float, s: float, p: float) -> None:
        nonlocal fees, slip
        fees += qty * (s * costs.spot_fee + p * costs.perp_fee)
        slip += qty * (s * (spot_cost - costs.spot_fee) + p * (perp_cost - costs.perp_fee))

    for k in range(lo_i, hi_i):
        t = t_l[k]
        if pend_perp and pend_perp_at <= t:
            perp_acct += pend_perp
            pend_perp = 0.0
        if pend_cash and pend_cash_at <= t:
            cash += pend_cash
            pend_cash = 0.0
        s, p = s_l[k], p_l[k]
        valid = s == s and p == p  # both marks present (not NaN)
        if out_t and (d or spot_close_pending):
            in_market_ms += t - out_t[-1]

        if d:
            # 2. liquidation check on the bars that closed since the previous step
            worst = ph_l[k] if d == 1 else pl_l[k]
            if worst == worst and p_last == p_last:
                eq_w = perp_acct + (-d * q) * (worst - p_last)
                if eq_w <= mm * q * worst:
                    liqs += 1
                    basis -= perp_acct  # the whole perp margin is gone
                    perp_acct = 0.0
                    reasons["liquidated"] = reasons.get("liquidated", 0) + 1
                    spot_close_pending = True
                    owed_rates.clear()
                    p_last = math.nan
                    d = 0
        if spot_close_pending and s == s:
            # sell (or buy back) the orphaned spot leg at the mark
            basis += sd * q * (s - s_last)
            cash += sd * q * s
            fees += q * s * costs.spot_fee
            slip += q * s * (spot_cost - costs.spot_fee)
            cash -= q * s * spot_cost
            q = 0.0
            sd = 0
            spot_close_pending = False
            # leftover perp margin (none after a liquidation) and transfers stay in the books
        if d:
            # 3. marks, funding, borrow
            # both legs are marked together or not at all: half a hedge marked is a fake PnL swing
            rate = r_l[k]
            if valid:
                basis += d * q * (s - s_last)
                s_last = s
                move = (-d * q) * (p - p_last)
                basis += move
                perp_acct += move
                p_last = p
                owed_rates.append(rate)
                for r in owed_rates:
                    pay = d * r * q * p
                    funding += pay
                    perp_acct += pay
                owed_rates.clear()
            else:
                owed_rates.append(rate)
            if d == -1 and s_last == s_last:
                c = costs.borrow_apr * q * s_last * (t - last_borrow_ms) / YEAR_MS
                borrow += c
                cash -= c
                last_borrow_ms = t

        if not valid:
            skipped += 1
            out_t.append(t)
            out_eq.append(cash + (sd * q * s_last if sd else 0.0) + perp_acct + pend_perp + pend_cash)
            out_dir.append(d)
            out_rate.append(r_l[k])
            continue

        if d:
            # 5. collateral band
            target = q * p / lev
            if (
                perp_acct < config.rebalance_low * target or perp_acct > config.rebalance_high * target
            ) and not (pend_perp or pend_cash):
                if d == 1:
                    # resize both legs so the sleeve's money is fully deployed again at the target
                    # leverage (spot sold or bought, perp reduced or added), then move collateral
                    deployable = cash + q * s + perp_acct
                    q_new = max(0.0, deployable / (s * (1.0 + spot_cost) + p * (1.0 / lev + perp_cost)))
                    if config.max_notional is not None:
                        q_new = min(q_new, config.max_notional / p)
                    dq = q_new - q
                    adq = abs(dq)
                    trade_cost(adq, s, p)
                    cash -= dq * s + adq * s * spot_cost
                    perp_acct -= adq * p * perp_cost
                    q = q_new
                    move_amt = q * p / lev - perp_acct
                    if move_amt > 0:
                        cash -= move_amt
                        pend_perp, pend_perp_at = move_amt, t + delay_ms
                    else:
                        perp_acct += move_amt
                        pend_cash, pend_cash_at = -move_amt, t + delay_ms
                    rebalances += 1
                else:
                    need = target - perp_acct
                    if need > 0:
                        # the short spot leg's surplus margin (if any) tops the perp up
                        amount = min(need, max(cash - q * s * (1.0 + params.short_spot_margin), 0.0))
                        if amount > 0:
                            cash -= amount
                            pend_perp, pend_perp_at = amount, t + delay_ms
                            rebalances += 1
                    else:
                        perp_acct += need
                        pend_cash, pend_cash_at = -need, t + delay_ms
                        rebalances += 1

        # 6. decide with what is known at t
        known = kn_l[k]
        settled = min(known, k + 1)
        hist = tuple(r_l[max(0, settled - config.history_len) : settled])
        nxt = r_l[k + 1] if known > k + 1 and k + 1 < len(r_l) else None
        vol = v_l[k] if v_l[k] == v_l[k] else config.default_vol
        view = MarketView(
            now_ms=t,
            interval_hours=float(iv_l[k]),
            funding_history=hist,
            spot_price=s,
            perp_price=p,
            volatility=vol,
            published_next_rate=nxt,
            spot_spread=config.spot_spread,
            perp_spread=config.perp_spread,
            venue=data.venue,
            symbol=data.symbol,
        )
        equity_now = cash + sd * q * s + perp_acct + pend_perp + pend_cash
        if naive_policy:
            action, new_d, notional, new_lev, reason = _naive(d, params, equity_now, cash, spot_close_pending)
        else:
            if d:
                pos: OpenPosition | None = OpenPosition(direction=d, notional=q * p, entered_ms=entered_ms)
                budget = no_budget  # not used while a position is held
            else:
                pos = None
                free_cap = 0.0 if spot_close_pending else max(cash, 0.0)
                budget = SizingBudget(total_capital=max(equity_now, 1e-9), free_capital=free_cap)
            dec = decide(pos, view, costs, params, budget)
            action, new_d, notional, new_lev, reason = (
                dec.action,
                dec.direction,
                dec.notional,
                dec.leverage,
                dec.reason,
            )
        reasons[reason] = reasons.get(reason, 0) + 1

        if action is Action.EXIT and d:
            trade_cost(q, s, p)
            cash += d * q * s - q * s * spot_cost
            cash += perp_acct - q * p * perp_cost
            perp_acct = 0.0
            cash += pend_perp  # in-transit collateral comes back with the account
            pend_perp = 0.0
            d, sd, q = 0, 0, 0.0
        elif action is Action.ENTER and not d and not spot_close_pending:
            if config.max_notional is not None:
                notional = min(notional, config.max_notional)
            lev = new_lev
            d = sd = new_d
            q = notional / p
            trade_cost(q, s, p)
            cash -= d * q * s + q * s * spot_cost
            collateral = q * p / lev
            cash -= collateral
            perp_acct += collateral - q * p * perp_cost
            s_last, p_last = s, p
            entered_ms = t
            last_borrow_ms = t
            trades += 1
        out_t.append(t)
        out_eq.append(cash + (sd * q * s if sd else 0.0) + perp_acct + pend_perp + pend_cash)
        out_dir.append(d)
        out_rate.append(r_l[k])

    # close whatever is open at the last marks
    if (d or spot_close_pending) and out_t:
        if d and s_last == s_last and p_last == p_last:
            trade_cost(q, s_last, p_last)
            cash += d * q * s_last - q * s_last * spot_cost + perp_acct - q * p_last * perp_cost
            perp_acct = 0.0
        elif spot_close_pending and s_last == s_last:
            fees += q * s_last * costs.spot_fee
            slip += q * s_last * (spot_cost - costs.spot_fee)
        out_eq[-1] = capital + funding + basis - fees - slip - borrow
        out_dir[-1] = 0

    span = (out_t[-1] - out_t[0]) if len(out_t) > 1 else 0
    return SleeveResult(
        venue=data.venue,
        symbol=data.symbol,
        capital=capital,
        times_ms=np.asarray(out_t, dtype=np.int64),
        equity=np.asarray(out_eq, dtype=np.float64),
        direction=np.asarray(out_dir, dtype=np.int8),
        rates=np.asarray(out_rate, dtype=np.float64),
        funding_pnl=funding,
        basis_pnl=basis,
        fees=fees,
        slippage=slip,
        borrow_cost=borrow,
        trades=trades,
        rebalances=rebalances,
        liquidations=liqs,
        skipped_steps=skipped,
        time_in_market=(in_market_ms / span) if span else 0.0,
        reasons=reasons,
    )


def _naive(
    d: int, params: StrategyParams, equity: float, cash: float, busy: bool
) -> tuple[Action, int, float, float, str]:
    """Always-on carry: short perp / long spot with all capital at ``params.leverage``, never exits."""
    if d or busy:
        return Action.HOLD, d, 0.0, params.leverage, "naive: hold"
    notional = max(cash, 0.0) / (1.0 + 1.0 / params.leverage)
    return Action.ENTER, 1, notional, params.leverage, "naive: always on"


def combine_daily(results: Sequence[SleeveResult]) -> tuple[np.ndarray, np.ndarray]:
    """Portfolio equity at each UTC day end: the sum of every sleeve's last equity of that day.

    Before a sleeve's first step its capital counts as cash; after its last, its final equity.
    Returns ``(day_start_ms, equity)``.
    """
    day = 86_400_000
    live = [r for r in results if r.times_ms.size]
    if not live:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    first = min(int(r.times_ms[0]) for r in live) // day
    last = max(int(r.times_ms[-1]) for r in live) // day
    days = np.arange(first, last + 1, dtype=np.int64)
    total = np.zeros(days.shape)
    for r in results:
        if not r.times_ms.size:
            total += r.capital
            continue
        dkey = r.times_ms // day
        # index of the last step on or before each day's end
        idx = np.searchsorted(dkey, days, side="right") - 1
        eq = np.where(idx >= 0, r.equity[np.maximum(idx, 0)], r.capital)
        total += eq
    return days * day, total
