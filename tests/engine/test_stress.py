"""Stress scenarios against the running engine and the simulator: a 30 % crash in 10 minutes.

The market (``crash_driver``): BTC flat at 30 000 for 2 minutes, linearly down to 21 000 over the
next 10 minutes, then flat; the simulator runs 10 sim seconds per engine second, in 5 s steps.
Its margin model is cross margin on the futures wallet (maintenance 0.5 %, liquidation fee
1.25 %), and it auto-deleverages half of every profitable position on the winning side once the
mark moved more than 20 % within 10 minutes.

* **long perp at 5x** (perp long, spot short of borrowed BTC: the reverse carry), *managed* (margin monitor on,
  every engine second) against *unmanaged* (monitor off): the managed leg is topped up from
  free spot collateral, or reduced pairwise when there is too little, and never liquidated; the
  unmanaged leg is liquidated and the position machine re-hedges the surviving spot leg;
* **short perp at 5x** (the carry trade): ADL takes half the perp leg on the way down and the
  surviving spot leg is re-hedged within the hedge deadline.

Each scenario prints its figures (``-s`` shows them); docs/risk.md quotes a run.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from fundarb.core import events as ev
from fundarb.core.model import Side, TimeInForce, Wallet
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg, LegSpec, PositionPlan
from fundarb.engine.app import Engine
from fundarb.engine.risk_records import MarginActed, RehedgeChecked, VenueFillSeen
from fundarb.sim.drivers import ScriptedDriver, ScriptPoint
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from tests.engine.harness import wait_state
from tests.engine.test_risk_service import PERP, SPOT, candidate, records, running, sample, wait_until

S = PositionState
SYM = "BTCUSDT"
SPEED = 10  # sim seconds per engine second
CRASH_AT_MS = SIM_EPOCH_MS + 120_000
CRASH_END_MS = CRASH_AT_MS + 600_000
END_MS = CRASH_END_MS + 300_000
P0, P1 = D(30000), D(21000)


def crash_driver(rate: D = D("0.0001")) -> ScriptedDriver:
    """30 000 -> 21 000 (-30 %) between CRASH_AT_MS and CRASH_END_MS, spot and perp together."""
    return ScriptedDriver(
        [
            ScriptPoint(SIM_EPOCH_MS, SYM, P0, P0, rate),
            ScriptPoint(CRASH_AT_MS, SYM, P0, P0, rate),
            ScriptPoint(CRASH_END_MS, SYM, P1, P1, rate),
            ScriptPoint(END_MS, SYM, P1, P1, rate),
        ]
    )


def crash_venue(balances: dict[tuple[Wallet, str], D]) -> SimVenue:
    return SimVenue.for_tests(driver=crash_driver(), speed=SPEED, step_ms=5000, balances=balances)


async def book_value(venue: SimVenue) -> D:
    """Everything the account holds at the spot mid: cash, coins, minus debt, plus perp PnL."""
    price = (await venue.quote(SPOT)).mid
    value = D(0)
    for b in await venue.balances():
        amount = b.total - b.borrowed
        value += amount if b.asset == "USDT" else amount * price
    return value + sum((p.unrealized_pnl for p in await venue.positions()), D(0))


async def open_pair(engine: Engine, pid: str, perp_side: Side, qty: D) -> Any:
    c = candidate(engine)
    perp = LegSpec(c.perp, perp_side, qty)
    spot = LegSpec(c.spot, perp_side.opposite, qty)
    plan = PositionPlan(pid, perp, spot, entry_time_in_force=TimeInForce.IOC)
    quote = engine.market.quote(PERP)
    assert quote is not None
    touch = quote.ask if perp_side is Side.BUY else quote.bid
    return await engine.manager.open_position(plan, ev.EntrySignalled(touch, touch))


def sim_s(engine_ms: int) -> float:
    """Sim seconds since the crash began, for an engine-clock time (the sim runs SPEED x)."""
    return ((engine_ms - SIM_EPOCH_MS) * SPEED - (CRASH_AT_MS - SIM_EPOCH_MS)) / 1000


async def run_crash(
    tmp_path: Path, *, perp_side: Side, managed: bool, spare: D, futures: D = D(6100), qty: D = D(1)
) -> dict[str, Any]:
    """One trip through the crash with a hedged position of ``qty`` BTC; returns its figures."""
    balances = {(Wallet.FUTURES, "USDT"): futures, (Wallet.SPOT, "USDT"): spare}
    if perp_side is Side.BUY:  # collateral for borrowing the coins the spot leg sells
        balances[(Wallet.MARGIN, "USDT")] = D(15000) * qty
    venue = crash_venue(balances)
    out: dict[str, Any] = {"managed": managed, "perp": perp_side.value, "spare": spare}
    with trio.fail_after(600):
        # 1 BTC at 30 000 is above the default 20 000 position cap: the gate would refuse it
        async with running(tmp_path, venue, MAX_POSITION_NOTIONAL="40000") as engine:
            engine.risk.settings = attrs.evolve(
                engine.risk.settings, margin_interval=1.0 if managed else None
            )
            await wait_until(lambda: not engine.market.is_stale(PERP))
            if perp_side is Side.BUY:  # the spot leg sells borrowed coins (margin wallet)
                await venue.borrow("BTC", qty)
            value0 = await book_value(venue)
            runner = await open_pair(engine, "s1", perp_side, qty)
            await wait_state(runner, S.HEDGED)
            lowest = D(1)
            while venue.sim_time_ms() < END_MS:
                await trio.sleep(1)
                for p in await venue.positions():
                    if p.quantity and p.liquidation_distance is not None:
                        lowest = min(lowest, p.liquidation_distance)
            await wait_state(runner, S.HEDGED, S.CLOSED, S.FAILED)
            out.update(
                state=runner.state.value,
                held_perp=runner.position.held(Leg.A),
                held_spot=runner.position.held(Leg.B),
                unhedged=runner.position.unhedged_qty,
                loss=value0 - await book_value(venue),
                lowest_distance=lowest,
                liquidations=sample(engine, "fundarb_fills_total", venue="sim", kind="liquidation"),
                adl=sample(engine, "fundarb_fills_total", venue="sim", kind="adl"),
                naked_notional_seconds=runner.naked_notional_seconds,
            )
            await engine.journal.flush()
            journal = await engine.journal.read()
            acted = [(r.ts_ms, r.payload) for r in journal if isinstance(r.payload, MarginActed)]
            out["actions"] = [
                (round(sim_s(ts), 1), a.kind, a.outcome, a.top_up, a.reduce_quantity, a.distance)
                for ts, a in acted
            ]
            out["venue_fills_at_s"] = [
                (round(sim_s(r.ts_ms), 1), r.payload.kind)
                for r in journal
                if isinstance(r.payload, VenueFillSeen)
            ]
            in_crash = [sim_s(ts) for ts, a in acted if sim_s(ts) >= 0 and a.kind != "alert"]
            out["first_action_in_crash_s"] = in_crash[0] if in_crash else None
            out["fills_seen"] = await records(engine, VenueFillSeen)
            out["rehedges"] = await records(engine, RehedgeChecked)
    print("\nSTRESS", {k: v for k, v in out.items() if k != "fills_seen"})
    return out


async def test_crash_long_perp_5x_managed_tops_up_and_beats_unmanaged(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    managed = await run_crash(tmp_path / "managed", perp_side=Side.BUY, managed=True, spare=D(20000))
    assert managed["liquidations"] == 0
    assert managed["state"] == "hedged" and managed["unhedged"] == 0
    top_ups = [a for a in managed["actions"] if a[1] == "top_up" and a[2] == "transferred"]
    assert len(top_ups) >= 2  # at entry (5x starts inside the top-up band) and during the crash
    assert managed["first_action_in_crash_s"] is not None
    assert managed["lowest_distance"] > D("0.06")  # never reached the unwind band

    unmanaged = await run_crash(tmp_path / "unmanaged", perp_side=Side.BUY, managed=False, spare=D(20000))
    assert unmanaged["liquidations"] >= 1
    (rehedge,) = unmanaged["rehedges"]
    assert rehedge.within_deadline, rehedge  # the surviving spot leg was bought back in time
    assert unmanaged["unhedged"] == 0
    assert managed["loss"] < unmanaged["loss"]


async def test_crash_long_perp_5x_short_of_collateral_reduces_pairwise(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    out = await run_crash(tmp_path, perp_side=Side.BUY, managed=True, spare=D(1500))
    assert out["liquidations"] == 0
    assert any(a[1] == "reduce_pairwise" and a[2] == "reduce requested" for a in out["actions"])
    assert out["unhedged"] == 0
    assert out["state"] in ("hedged", "closed")
    assert out["held_perp"] < 1


async def test_crash_short_perp_adl_is_rehedged_within_the_deadline(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    out = await run_crash(tmp_path, perp_side=Side.SELL, managed=True, spare=D(40000))
    assert out["adl"] >= 1 and out["liquidations"] == 0
    (seen,) = out["fills_seen"]
    assert seen.kind == "ADL" and seen.rehedge.startswith("ADL BUY 0.5")  # sell 0.5 spot to follow
    assert out["rehedges"], "no re-hedge was watched"
    assert all(r.within_deadline for r in out["rehedges"]), out["rehedges"]
    assert out["state"] == "hedged" and out["unhedged"] == 0
    assert out["held_perp"] == out["held_spot"] < 1
