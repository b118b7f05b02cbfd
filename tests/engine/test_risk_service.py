"""The risk service in a running engine: pre-trade gate, modes from rules and the operator, the
kill switch end to end over HTTP, the breaker's feed, the margin ladder's actions, journaling."""

from __future__ import annotations

import argparse
import io
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fundarb.cli import kill as kill_cli
from fundarb.config import load_config
from fundarb.core.model import Balance, InstrumentId, Market, Wallet
from fundarb.core.position import PositionState
from fundarb.core.position_model import Leg
from fundarb.core.risk_modes import ModeScope, TradingMode
from fundarb.engine.app import Engine, run_engine
from fundarb.engine.clock import EngineClock
from fundarb.engine.risk_records import DeltaBreached, GateDecided, MarginActed, ModeSwitched, ObservedVenue
from fundarb.engine.trader import Candidate
from fundarb.metrics import create_metrics
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import OrderNotFound, OrderRejected, VenueUnavailable
from fundarb.venues.protocol import EventSender
from tests.engine.harness import wait_state

TOKEN = "risk-test-token-7c1e9a2b5d"
PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("sim", Market.SPOT, "BTCUSDT")


def sim(**kw: Any) -> SimVenue:
    """A simulated venue stepping its market every second (fresh data for the 5 s stale limit)."""
    return SimVenue.for_tests(step_ms=1000, **kw)


def config(tmp_path: Path, **extra: str) -> Any:
    env = {
        "FUNDARB_DATA_DIR": str(tmp_path),
        "FUNDARB_HTTP_BIND": "127.0.0.1:0",
        "FUNDARB_ADMIN_TOKEN": TOKEN,
        "FUNDARB_SYMBOLS": "BTCUSDT",
        "FUNDARB_ENTRY_APR": "9",  # the strategy itself never enters: tests open what they need
        "FUNDARB_EXIT_APR": "-9",
        "FUNDARB_STALE_AFTER": "5",
        "FUNDARB_STATUS_INTERVAL": "30",
    }
    env.update({f"FUNDARB_{k}": v for k, v in extra.items()})
    return load_config(env)


class StallingVenue:
    """A SimVenue whose market-data stream goes silent (connected, no frames) after ``stall_after``
    seconds: the feed every venue has to watch for."""

    def __init__(self, inner: SimVenue, stall_after: float) -> None:
        self._inner, self.stall_after = inner, stall_after

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def run_market_data(
        self,
        instruments: Sequence[InstrumentId],
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.move_on_after(self.stall_after):
            await self._inner.run_market_data(instruments, send, task_status=task_status)
        await trio.sleep_forever()


class SmallSteps:
    """Keeps virtual time moving in small steps while the journal works in its thread (opening,
    closing): the mock clock would otherwise jump straight to the test's deadline."""

    def __init__(self) -> None:
        self.active = True
        self._wake = trio.Event()

    def set(self, active: bool) -> None:
        self.active = active
        self._wake.set()

    async def run(self) -> None:
        while True:
            if self.active:
                await trio.sleep(0.01)
            else:
                self._wake = trio.Event()
                await self._wake.wait()


@asynccontextmanager
async def running(tmp_path: Path, venue: Any, **extra: str) -> AsyncIterator[Engine]:
    metrics = create_metrics()
    clock = EngineClock.start(base_ms=SIM_EPOCH_MS)
    steps = SmallSteps()
    async with trio.open_nursery() as outer:
        outer.start_soon(steps.run)
        async with trio.open_nursery() as n:
            engine: Engine = await n.start(
                lambda task_status: run_engine(
                    config(tmp_path, **extra),
                    {"sim": venue},
                    metrics=metrics,
                    clock=clock,
                    task_status=task_status,
                )
            )
            steps.set(False)
            yield engine
            steps.set(True)
            n.cancel_scope.cancel()
        outer.cancel_scope.cancel()


async def wait_until(predicate: Any, timeout: float = 120.0, poll: float = 0.25) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` every ``poll`` virtual seconds."""
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (polls engine state)
            await trio.sleep(poll)


def sample(engine: Engine, name: str, **labels: str) -> float:
    return engine.metrics.registry.get_sample_value(name, labels) or 0.0


async def records(engine: Engine, cls: type) -> list[Any]:
    await engine.journal.flush()
    return [r.payload for r in await engine.journal.read() if isinstance(r.payload, cls)]


def candidate(engine: Engine) -> Candidate:
    assert engine.trader is not None
    return engine.trader.candidates[0]


async def test_gate_allows_a_fresh_entry_and_journals_it(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        async with running(tmp_path, sim()) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            assert engine._entries_allowed(candidate(engine)) is None
            assert (
                sample(engine, "fundarb_risk_gate_decisions_total", decision="allow", reason="allowed") == 1
            )
            (decided,) = await records(engine, GateDecided)
            assert decided.allowed and decided.reason == "allowed" and decided.instrument == str(PERP)


async def test_leverage_beyond_the_liquidation_floor_is_refused(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    # 5x leaves ~19.5 % to liquidation, below the 25 % floor (FUNDARB_MIN_LIQ_DISTANCE)
    with trio.fail_after(120):
        async with running(tmp_path, sim(), LEVERAGE="5") as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            blocked = engine._entries_allowed(candidate(engine))
            assert blocked is not None and blocked.startswith("liquidation_distance")
            assert (
                sample(
                    engine,
                    "fundarb_risk_gate_decisions_total",
                    decision="deny",
                    reason="liquidation_distance",
                )
                == 1
            )


async def test_stalled_feed_sets_the_instrument_reducing_and_stops_entries(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    venue = StallingVenue(sim(), stall_after=30)
    with trio.fail_after(300):
        async with running(tmp_path, venue) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            assert engine._entries_allowed(candidate(engine)) is None
            stalled_at = trio.current_time()
            await wait_until(lambda: engine.risk.risk.effective(PERP) is TradingMode.REDUCING, timeout=120)
            reacted = trio.current_time() - stalled_at
            print(f"\nSTALL: entries stopped {reacted - 30:.1f} s after the feed's last frame")
            # 30 s of data, then 5 s stale_after plus at most one 1 s tick
            assert 30 < reacted <= 30 + 5 + 1 + 1
            blocked = engine._entries_allowed(candidate(engine))
            assert blocked is not None and blocked.startswith("mode_reducing") and "stale" in blocked
            switched = await records(engine, ModeSwitched)
            assert any(m.scope == f"instrument:{PERP}" and m.mode == "reducing" for m in switched)
            assert (
                sample(engine, "fundarb_trading_mode_changes_total", scope_kind="instrument", mode="reducing")
                >= 1
            )


async def test_kill_command_halts_globally_flattens_and_journals(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(300):
        async with running(tmp_path, sim()) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            c = candidate(engine)
            runner = await open_carry(engine, c, "k1")
            await wait_state(runner, PositionState.HEDGED)
            # `python -m fundarb kill --reason drill` against the engine's own endpoint
            parser = argparse.ArgumentParser()
            kill_cli.add_arguments(parser)
            args = parser.parse_args(["--reason", "drill", "--url", engine.http_urls[0]])
            out, err = io.StringIO(), io.StringIO()
            code = await kill_cli.amain(args, {"FUNDARB_ADMIN_TOKEN": TOKEN}, out=out, err=err)
            assert code == 0, err.getvalue()
            assert engine.risk.risk.modes.mode_of(ModeScope.GLOBAL) is TradingMode.HALTED
            await wait_state(runner, PositionState.CLOSED)
            assert [p for p in await engine.venues["sim"].positions() if p.quantity] == []
            blocked = engine._entries_allowed(c)
            assert blocked is not None
            switched = await records(engine, ModeSwitched)
            assert any(m.scope == "global" and m.mode == "halted" and m.reason == "drill" for m in switched)
            assert sample(engine, "fundarb_kill_switch_activations_total", source="http") == 1
            assert (
                sample(engine, "fundarb_trading_mode_changes_total", scope_kind="global", mode="halted") == 1
            )
            # the gate itself refuses under HALTED, whatever the engine's own flag says
            engine.halted = ""
            blocked = engine._entries_allowed(c)
            assert blocked is not None and blocked.startswith("mode_halted")


async def open_carry(engine: Engine, c: Candidate, pid: str, qty: str = "0.1") -> Any:
    from fundarb.core import events as ev
    from fundarb.core.model import Side, TimeInForce
    from fundarb.core.position_model import LegSpec, PositionPlan

    plan = PositionPlan(
        pid,
        LegSpec(c.perp, Side.SELL, D(qty)),
        LegSpec(c.spot, Side.BUY, D(qty)),
        entry_time_in_force=TimeInForce.IOC,
    )
    quote = engine.market.quote(c.perp.id)
    assert quote is not None
    return await engine.manager.open_position(plan, ev.EntrySignalled(quote.bid, quote.bid))


async def test_every_order_passes_the_gate_an_oversized_entry_is_refused(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(300):
        async with running(tmp_path, sim()) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            c = candidate(engine)
            ok = await open_carry(engine, c, "g1", qty="0.1")  # 3 000 notional: under every cap
            await wait_state(ok, PositionState.HEDGED)
            big = await open_carry(engine, c, "g2", qty="1")  # 30 000 > the 20 000 position cap
            await wait_state(big, PositionState.CLOSED)
            assert big.position.held(Leg.A) == 0 and big.position.held(Leg.B) == 0
            decided = [d for d in await records(engine, GateDecided) if d.position_id in ("g1", "g2")]
            assert [(d.position_id, d.purpose, d.reason) for d in decided] == [
                ("g1", "entry", "allowed"),
                ("g1", "hedge", "reduces_risk"),
                ("g2", "entry", "position_notional"),
            ]
            assert (
                sample(
                    engine, "fundarb_risk_gate_decisions_total", decision="deny", reason="position_notional"
                )
                == 1
            )
            (refused,) = big.position.orders
            with pytest.raises(OrderNotFound):  # it never reached the venue
                await engine.venues["sim"].query_order(PERP, refused.cid)


async def test_operator_mode_daily_loss_and_clock_skew_block_entries(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(300):
        async with running(tmp_path, sim()) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            risk, c = engine.risk, candidate(engine)
            # the operator halts one venue, then lifts it
            risk.operator_set(ModeScope.venue("sim"), TradingMode.HALTED, "venue maintenance")
            assert (engine._entries_allowed(c) or "").startswith("mode_halted")
            risk.operator_set(ModeScope.venue("sim"), TradingMode.ACTIVE, "maintenance over")
            assert engine._entries_allowed(c) is None
            # a venue clock 3 s ahead (limit 1 s): REDUCING for the venue until it is back
            skewed = SkewedVenue(engine.venues["sim"], engine.clock, 3000)
            (change,) = await risk.check_clock(skewed)
            assert change.scope == ModeScope.venue("sim") and change.mode is TradingMode.REDUCING
            assert (engine._entries_allowed(c) or "").startswith("mode_reducing")
            skewed.skew_ms = 0
            (change,) = await risk.check_clock(skewed)
            assert change.mode is TradingMode.ACTIVE
            # today's book value falls 3 000 (limit 2 000): global REDUCING
            risk.settings = attrs.evolve(risk.settings, margin_interval=None)
            cash = [Balance("sim", Wallet.SPOT, "USDT", D(200_000))]
            risk.mark_book("sim", cash, [])
            risk.mark_book("sim", [attrs.evolve(cash[0], free=D(197_000))], [])
            assert risk.risk.modes.mode_of(ModeScope.GLOBAL) is TradingMode.REDUCING
            assert (engine._entries_allowed(c) or "").startswith("mode_reducing")
            switched = await records(engine, ModeSwitched)
            assert [(m.scope, m.source, m.mode) for m in switched] == [
                ("venue:sim", "operator", "halted"),
                ("venue:sim", "operator", "active"),
                ("venue:sim", "rule:clock-skew", "reducing"),
                ("venue:sim", "rule:clock-skew", "active"),
                ("global", "rule:daily-loss", "reducing"),
            ]


class SkewedVenue:
    """A venue whose server clock is ``skew_ms`` ahead of ours."""

    def __init__(self, inner: Any, clock: EngineClock, skew_ms: int) -> None:
        self._inner, self.clock, self.skew_ms = inner, clock, skew_ms

    @property
    def name(self) -> str:
        return str(self._inner.name)

    async def server_time_ms(self) -> int:
        await trio.lowlevel.checkpoint()
        return self.clock.now_ms() + self.skew_ms


class SlowSpot:
    """A venue whose spot orders take ``delay`` seconds to be accepted (a slow hedge leg)."""

    def __init__(self, inner: SimVenue, delay: float) -> None:
        self._inner, self.delay = inner, delay

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def place_order(self, request: Any) -> Any:
        if request.instrument.market is Market.SPOT:
            await trio.sleep(self.delay)
        return await self._inner.place_order(request)


async def test_net_delta_breach_while_the_hedge_is_slow_is_journaled_and_cleared(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(300):
        async with running(tmp_path, SlowSpot(sim(), 2.0)) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            runner = await open_carry(engine, candidate(engine), "d1", qty="0.1")  # 3 000 > 1 000 tolerance
            await wait_until(lambda: runner.position.held(Leg.A) > 0, poll=0.05)
            await wait_until(lambda: sample(engine, "fundarb_net_delta_notional", asset="BTC") < -1000)
            await wait_state(runner, PositionState.HEDGED)
            await wait_until(lambda: sample(engine, "fundarb_net_delta_notional", asset="BTC") == 0)
            breaches = await records(engine, DeltaBreached)
            assert [(b.asset, b.breached) for b in breaches] == [("BTC", True), ("BTC", False)]
            assert breaches[0].net_quantity == D("-0.1") and breaches[0].tolerance == 1000


async def test_funding_sign_flip_alerts_the_operator(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    from fundarb.engine.records import AlertRaised
    from fundarb.sim.drivers import ScriptedDriver, ScriptPoint

    t0, px = SIM_EPOCH_MS, D(30000)
    driver = ScriptedDriver(
        [
            ScriptPoint(t0, "BTCUSDT", px, px, D("0.0001")),
            ScriptPoint(t0 + 20_000, "BTCUSDT", px, px, D("-0.0002")),
            ScriptPoint(t0 + 60_000, "BTCUSDT", px, px, D("-0.0002")),
        ]
    )
    with trio.fail_after(300):
        async with running(tmp_path, sim(driver=driver)) as engine:
            await wait_until(lambda: bool(engine.risk.funding_flips), timeout=60)
            (flip,) = engine.risk.funding_flips
            assert (flip.instrument, flip.previous_sign, flip.sign) == (PERP, 1, -1)
            assert 20 <= trio.current_time() <= 22
            alerts = [a for a in await records(engine, AlertRaised) if "flipped" in a.message]
            assert len(alerts) == 1 and alerts[0].message.startswith(f"funding on {PERP} flipped +1 -> -1")
            assert sample(engine, "fundarb_funding_flips_total", instrument=str(PERP)) == 1


# --- the breaker's feed --------------------------------------------------------------------------


class Flaky:
    """A minimal venue whose calls fail while ``down``."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = False

    async def quote(self, instrument: InstrumentId) -> str:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise VenueUnavailable("connection refused", venue=self.name)
        return "ok"

    async def place_order(self, request: object) -> None:
        await trio.lowlevel.checkpoint()
        raise OrderRejected("insufficient balance", venue=self.name)


async def test_observed_venue_gate_refuses_before_sending() -> None:
    seen: list[tuple[str, bool]] = []
    venue = ObservedVenue(Flaky(), lambda name, ok: seen.append((name, ok)), gate=lambda request: "too big")
    with pytest.raises(OrderRejected) as refused:
        await venue.place_order(object())
    assert refused.value.code == "risk" and refused.value.reason == "risk gate: too big"
    assert seen == []  # nothing was sent: the breaker is not fed


async def test_observed_venue_reports_api_errors_but_not_refusals() -> None:
    seen: list[tuple[str, bool]] = []
    venue = ObservedVenue(Flaky(), lambda name, ok: seen.append((name, ok)))
    assert await venue.quote(PERP) == "ok"
    with pytest.raises(OrderRejected):
        await venue.place_order(object())
    venue.inner.down = True
    with pytest.raises(VenueUnavailable):
        await venue.quote(PERP)
    assert seen == [("flaky", True), ("flaky", True), ("flaky", False)]


async def test_error_rate_breaker_sets_the_venue_reducing(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        async with running(tmp_path, sim()) as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            for _ in range(30):
                engine.risk.on_venue_call("sim", False)
            assert engine.risk.risk.effective(PERP) is TradingMode.REDUCING
            blocked = engine._entries_allowed(candidate(engine))
            assert blocked is not None and blocked.startswith("mode_reducing")
            switched = await records(engine, ModeSwitched)
            assert any(m.scope == "venue:sim" and m.mode == "reducing" for m in switched)


# --- the margin ladder's actions -----------------------------------------------------------------


async def test_margin_pass_tops_up_from_free_collateral(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    # 0.6 BTC short at 30000 on 3700 USDT of futures margin (~5x): < 20 % from liquidation -> top up
    venue = sim(balances={(Wallet.FUTURES, "USDT"): D(3700), (Wallet.SPOT, "USDT"): D(50000)})
    with trio.fail_after(120):
        async with running(tmp_path, venue, LEVERAGE="3") as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            runner = await open_carry(engine, candidate(engine), "m1", qty="0.6")
            await wait_state(runner, PositionState.HEDGED)
            before = await futures_usdt(engine)
            # the margin monitor (every 5 s) finds the leg too close to liquidation and tops up
            await wait_until(lambda: any(a.kind == "top_up" for a in engine.risk.margin_actions), timeout=30)
            (acted,) = [a for a in engine.risk.margin_actions if a.kind == "top_up"]
            assert acted.outcome == "transferred" and acted.top_up > 0
            assert await futures_usdt(engine) == before + acted.top_up
            assert [a.kind for a in await records(engine, MarginActed)] == ["top_up"]
            (pos,) = [p for p in await engine.venues["sim"].positions() if p.quantity]
            assert pos.liquidation_distance is not None and pos.liquidation_distance > D("0.30")
            # the next pass finds nothing to do
            actions = await engine.risk.check_margin(engine.venues["sim"])
            assert [a.kind.value for a in actions] == ["none"]


class HangingTransfer:
    """A venue whose wallet transfers never answer."""

    def __init__(self, inner: SimVenue) -> None:
        self._inner = inner
        self.transfers = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def transfer(self, *args: Any) -> None:
        self.transfers += 1
        await trio.sleep_forever()


async def test_a_hanging_top_up_does_not_stall_the_monitor_and_escalates_to_reduce(
    tmp_path: Path, engine_clock: trio.testing.MockClock
) -> None:
    venue = HangingTransfer(
        sim(balances={(Wallet.FUTURES, "USDT"): D(3700), (Wallet.SPOT, "USDT"): D(50000)})
    )
    with trio.fail_after(600):
        async with running(tmp_path, venue, LEVERAGE="3") as engine:
            await wait_until(lambda: not engine.market.is_stale(PERP))
            runner = await open_carry(engine, candidate(engine), "h1", qty="0.6")
            await wait_state(runner, PositionState.HEDGED)
            await wait_until(lambda: venue.transfers == 1, timeout=30)
            started = trio.current_time()
            # no second top-up while the first is in flight, but the monitor keeps running
            passes = engine.risk.margin_passes
            await trio.sleep(30)
            assert venue.transfers == 1
            assert engine.risk.margin_passes - passes >= 5  # every 5 s, not stuck on the transfer
            await wait_until(
                lambda: any(a.kind == "reduce_pairwise" for a in engine.risk.margin_actions), timeout=120
            )
            failed, reduced = engine.risk.margin_actions[-2:]
            assert failed.kind == "top_up" and failed.outcome == "transfer failed: TooSlowError"
            assert reduced.outcome == "reduce requested" and reduced.positions == "h1"
            assert 59.5 <= trio.current_time() - started <= 60 + 5 + 1  # transfer deadline + one pass
            await wait_state(runner, PositionState.HEDGED)
            assert runner.position.held(Leg.A) < D("0.6") and runner.position.unhedged_qty == 0


async def futures_usdt(engine: Engine) -> D:
    return next(
        b.free
        for b in await engine.venues["sim"].balances()
        if b.wallet is Wallet.FUTURES and b.asset == "USDT"
    )
