"""FaultyVenue over a SimVenue: every fault kind, reproducibility, and FaultPlan parsing."""

from __future__ import annotations

import random
import statistics
from decimal import Decimal as D
from typing import Any

import pytest
import trio
import trio.testing

from fundarb.core.model import (
    InstrumentId,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Wallet,
)
from fundarb.core.venue_events import (
    OrderReported,
    QuoteReceived,
    StreamDisconnected,
    StreamResynced,
    VenueEvent,
)
from fundarb.sim.drivers import ScriptedDriver, ScriptPoint
from fundarb.sim.fault_plan import FaultPlan
from fundarb.sim.faults import FaultyVenue
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue
from fundarb.venues.errors import (
    BadPrecision,
    OrderRejected,
    OutcomeUnknown,
    PostOnlyWouldCross,
    RateLimited,
    VenueUnavailable,
)
from fundarb.venues.protocol import Venue

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")


def faulty(plan: dict[str, Any], seed: int = 1, **kw: Any) -> tuple[FaultyVenue, SimVenue]:
    inner = SimVenue.for_tests(**kw)
    return FaultyVenue(inner, FaultPlan.from_dict(plan), random.Random(seed)), inner


def market(cid: str, qty: str = "0.01", side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(cid, PERP, side, D(qty), None, OrderType.MARKET)


def drain(recv: trio.MemoryReceiveChannel[VenueEvent]) -> list[VenueEvent]:
    out = []
    while True:
        try:
            out.append(recv.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_lost_ack_order_exists_at_inner_venue(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"lost_ack_rate": 1.0})
    assert isinstance(v, Venue)
    with trio.fail_after(5):
        with pytest.raises(OutcomeUnknown):
            await v.place_order(market("la1"))
        assert (await inner.query_order(PERP, "la1")).status is OrderStatus.FILLED
        assert (await v.query_order(PERP, "la1")).filled_qty == D("0.01")  # reads are not affected
    assert v.injected == {"lost_ack": 1}


async def test_rate_limited_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"rate_limit_rate": 1.0, "retry_after_s": 2.5})
    with pytest.raises(RateLimited) as exc:
        await v.place_order(market("rl1"))
    assert exc.value.retry_after == 2.5
    assert await inner.open_orders() == [] and await inner.positions() == []


async def test_timeouts_and_5xx(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"latency_ms": {"p50": 5000}, "timeout_s": 3, "timeout_applied_rate": 1.0})
    t0 = trio.current_time()
    with pytest.raises(VenueUnavailable):
        await v.positions()
    assert trio.current_time() - t0 == pytest.approx(3)
    with pytest.raises(OutcomeUnknown):
        await v.place_order(market("to1"))
    assert (await inner.query_order(PERP, "to1")).status is OrderStatus.FILLED  # applied anyway
    v5, inner5 = faulty({"error_5xx_rate": 1.0, "error_5xx_applied_rate": 0.0})
    with pytest.raises(VenueUnavailable):
        await v5.balances()
    with pytest.raises(OutcomeUnknown):
        await v5.place_order(market("x1"))
    assert await inner5.positions() == []  # 5xx before it was applied


async def test_latency_distribution(autojump_clock: trio.testing.MockClock) -> None:
    v, _ = faulty({"latency_ms": {"p50": 20, "p99": 200}})
    samples = []
    for _ in range(400):
        t0 = trio.current_time()
        await v.server_time_ms()
        samples.append(trio.current_time() - t0)
    assert statistics.median(samples) == pytest.approx(0.020, rel=0.2)
    assert 0.1 < sorted(samples)[int(0.99 * len(samples))] < 0.4


async def test_injected_rejections(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"reject_rates": {"precision": 1.0}})
    with pytest.raises(BadPrecision):
        await v.place_order(market("r1"))
    assert await inner.open_orders() == [] and await inner.positions() == []
    p, _ = faulty({"reject_rates": {"post_only_would_cross": 1.0}})
    assert (await p.place_order(market("r2"))).status is OrderStatus.FILLED  # not post-only: unaffected
    with pytest.raises(PostOnlyWouldCross):
        await p.place_order(
            OrderRequest("r3", PERP, Side.BUY, D("0.01"), D("20000"), time_in_force=TimeInForce.POST_ONLY)
        )


async def test_cancel_fill_race(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"cancel_fill_race_rate": 1.0})
    await v.place_order(OrderRequest("cf1", PERP, Side.BUY, D("0.01"), D("29000")))
    with pytest.raises(OrderRejected):
        await v.cancel_order(PERP, "cf1")
    q = await inner.query_order(PERP, "cf1")
    assert q.status is OrderStatus.FILLED and q.filled_qty == D("0.01")
    assert len(await inner.fills_since(PERP, 0)) == 1


async def test_maintenance_window_and_clock_skew(autojump_clock: trio.testing.MockClock) -> None:
    v, _ = faulty({"maintenance": [{"start_s": 10, "end_s": 70}], "clock_skew_ms": -1500})
    assert await v.server_time_ms() == SIM_EPOCH_MS - 1500
    await trio.sleep(20)
    with pytest.raises(VenueUnavailable):
        await v.quote(PERP)
    await trio.sleep(60)
    assert (await v.quote(PERP)).bid > 0


async def test_slow_transfer(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"transfer_delay_s": 30})
    t0 = trio.current_time()
    await v.transfer("USDT", D(100), Wallet.SPOT, Wallet.FUTURES)
    assert trio.current_time() - t0 == pytest.approx(30)
    futures = [b for b in await inner.balances() if b.wallet is Wallet.FUTURES]
    assert futures[0].free == D(100_100)


async def run_user_stream(
    v: FaultyVenue, inner: SimVenue, seconds: float, orders: int = 6
) -> list[VenueEvent]:
    send, recv = trio.open_memory_channel[VenueEvent](10_000)
    with trio.fail_after(10 * seconds + 60):
        async with trio.open_nursery() as n:
            await n.start(v.run_user_data, send)
            for k in range(orders):
                await inner.place_order(market(f"u{k}", side=Side.BUY if k % 2 == 0 else Side.SELL))
                await trio.sleep(seconds / orders)
            await trio.sleep(10)
            n.cancel_scope.cancel()
    return drain(recv)


async def test_user_stream_drop_then_resync(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"ws_drops": [{"at_s": 25, "down_s": 20, "stream": "user"}]})
    events = await run_user_stream(v, inner, 60)
    kinds = [type(e) for e in events]
    assert kinds.count(StreamDisconnected) == 1 and kinds.count(StreamResynced) == 1
    d, r = kinds.index(StreamDisconnected), kinds.index(StreamResynced)
    assert d < r and r == d + 1  # nothing arrives while down
    orders = {e.update.client_order_id for e in events if isinstance(e, OrderReported)}
    assert orders == {"u0", "u1", "u2", "u5"}  # u3 (30 s) and u4 (40 s) were placed while down


async def test_user_stream_silent_stall(autojump_clock: trio.testing.MockClock) -> None:
    v, inner = faulty({"stalls": [{"start_s": 25, "end_s": 45, "stream": "user"}]})
    events = await run_user_stream(v, inner, 60)
    assert not [e for e in events if isinstance(e, StreamDisconnected | StreamResynced)]
    assert {e.update.client_order_id for e in events if isinstance(e, OrderReported)} == {
        "u0",
        "u1",
        "u2",
        "u5",
    }


async def test_user_stream_duplicates_reorders_and_late(autojump_clock: trio.testing.MockClock) -> None:
    clean_v, clean_inner = faulty({}, seed=5)
    clean = await run_user_stream(clean_v, clean_inner, 60)
    v, inner = faulty({"user_duplicate_rate": 0.3, "user_reorder_rate": 0.3, "user_late_rate": 0.2}, seed=5)
    noisy = await run_user_stream(v, inner, 60)
    assert len(noisy) > len(clean)
    assert set(map(repr, noisy)) == set(map(repr, clean))  # nothing lost, nothing invented
    assert [repr(e) for e in noisy] != [repr(e) for e in clean]
    assert v.injected.get("duplicated_event", 0) > 0 and v.injected.get("reordered_event", 0) > 0
    assert v.injected.get("late_event", 0) > 0


async def test_stale_quotes_stop_updating(autojump_clock: trio.testing.MockClock) -> None:
    driver = ScriptedDriver(
        [
            ScriptPoint(SIM_EPOCH_MS, "BTCUSDT", D(30000), D(30000)),
            ScriptPoint(SIM_EPOCH_MS + 3_600_000, "BTCUSDT", D(36000), D(36000)),
        ]
    )
    inner = SimVenue.for_tests(driver=driver)
    v = FaultyVenue(
        inner, FaultPlan.from_dict({"stale_quotes": [{"start_s": 300, "end_s": 900}]}), random.Random(1)
    )
    send, recv = trio.open_memory_channel[VenueEvent](10_000)
    with trio.fail_after(2000):
        async with trio.open_nursery() as n:
            await n.start(v.run_market_data, [PERP], send)
            await trio.sleep(600)
            during = await v.quote(PERP)
            await trio.sleep(600)
            after = await v.quote(PERP)
            n.cancel_scope.cancel()
    quotes = [e.quote for e in drain(recv) if isinstance(e, QuoteReceived)]
    frozen = [q for q in quotes if SIM_EPOCH_MS + 300_000 <= q.ts_ms < SIM_EPOCH_MS + 900_000]
    assert not frozen  # the stream repeats the pre-window quote (its old timestamp)
    assert during.ts_ms < SIM_EPOCH_MS + 300_000 and after.bid > during.bid
    repeated = [q for q in quotes if q == during]
    assert len(repeated) >= 9  # one per market step (60 s) inside the 600 s window


def outcomes(seed: int) -> list[str]:
    async def main() -> list[str]:
        v, _ = faulty(
            {
                "lost_ack_rate": 0.3,
                "rate_limit_rate": 0.2,
                "error_5xx_rate": 0.2,
                "latency_ms": {"p50": 10, "p99": 100},
            },
            seed=seed,
        )
        out = []
        for k in range(40):
            try:
                u = await v.place_order(market(f"d{k}", side=Side.BUY if k % 2 else Side.SELL))
                out.append(u.status.value)
            except Exception as exc:
                out.append(type(exc).__name__)
            out.append(str(trio.current_time()))
        return out

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_same_seed_same_faults() -> None:
    a = outcomes(11)
    assert a == outcomes(11) and a != outcomes(12)
    assert {"OutcomeUnknown", "RateLimited", "FILLED"} <= set(a)


def test_fault_plan_from_dict_validates() -> None:
    plan = FaultPlan.from_dict(
        {
            "latency_ms": {"p50": 20, "p99": 200},
            "latency_ms_by_call": {"place_order": {"p50": 50}},
            "lost_ack_rate": 0.1,
            "ws_drops": [{"at_s": 5, "down_s": 2, "stream": "user"}],
            "reject_rates": {"insufficient_margin": 0.05},
            "clock_skew_ms": 1200,
        }
    )
    assert plan.latency_for("place_order").p50 == 50 and plan.latency_for("quote").p99 == 200
    assert plan.ws_drops[0].end_s == 7
    for bad in (
        {"lost_ack_rat": 0.1},
        {"lost_ack_rate": 1.5},
        {"latency_ms": {"p50": 20, "p99": 10}},
        {"reject_rates": {"nope": 0.1}},
        {"maintenance": [{"start_s": 10, "end_s": 5}]},
        {"stalls": [{"start_s": 1, "end_s": 5, "stream": "fix"}]},
        {"clock_skew_ms": 1.5},
        {"timeout_s": -1},
    ):
        with pytest.raises(ValueError):
            FaultPlan.from_dict(bad)
