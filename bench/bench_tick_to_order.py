"""Tick-to-order latency of the engine's hot path, and the longest event-loop stall.

Two triggers, each measured from the moment the triggering input reaches the engine to the moment
the resulting order request is handed to the venue adapter's ``place_order`` (the call that
serialises and writes it):

* entry: an ``EntrySignalled`` delivered to a new position -> leg A's order;
* hedge: a Binance USDⓈ-M ``ORDER_TRADE_UPDATE`` frame (raw bytes, filling leg A) ->
  ``fundarb.venues.binance.decode`` -> the manager's router -> the position's step -> the journal
  (durable append, journal-before-act) -> the hedge order.

The venue is an in-process recorder (no network), so the figures are the engine's own cost,
including the durable journal append. A watchdog task sleeps 1 ms in a loop and reports the worst
overshoot: the longest stall of the event loop.

    python bench/bench_tick_to_order.py [--events 10000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from decimal import Decimal as D

import orjson
import trio
import trio.lowlevel

from fundarb.core import events as ev
from fundarb.core.model import (
    Instrument,
    InstrumentId,
    Market,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from fundarb.core.position import PositionState
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.engine.app import tune_gc
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager
from fundarb.journal import open_journal
from fundarb.venues.binance import decode

PERP = Instrument(
    InstrumentId("binance", Market.PERPETUAL, "BTCUSDT"),
    "BTC",
    "USDT",
    D("0.1"),
    D("0.001"),
    D("0.001"),
    D("5"),
)
SPOT = Instrument(
    InstrumentId("binance", Market.SPOT, "BTCUSDT"),
    "BTC",
    "USDT",
    D("0.01"),
    D("0.00001"),
    D("0.00001"),
    D("5"),
)


class RecordingVenue:
    """Answers every placement at once and records when it was asked."""

    name = "binance"

    def __init__(self) -> None:
        self.placed: dict[str, int] = {}
        self.waiters: dict[str, trio.Event] = {}

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.placed[request.client_order_id] = time.perf_counter_ns()
        waiter = self.waiters.pop(request.client_order_id, None)
        if waiter is not None:
            waiter.set()
        return OrderUpdate(
            request.instrument,
            request.client_order_id,
            "1",
            OrderStatus.NEW,
            request.side,
            request.quantity,
            D(0),
            None,
            0,
        )

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        return OrderUpdate(
            instrument, client_order_id, "1", OrderStatus.CANCELED, Side.BUY, D(0), D(0), None, 0
        )

    async def aclose(self) -> None:
        pass


def fill_frame(cid: str, qty: str, trade_id: int) -> bytes:
    """A USDⓈ-M ORDER_TRADE_UPDATE frame filling ``cid`` completely."""
    return orjson.dumps(
        {
            "stream": "user",
            "data": {
                "e": "ORDER_TRADE_UPDATE",
                "E": 1700000000123,
                "T": 1700000000120,
                "o": {
                    "s": "BTCUSDT",
                    "c": cid,
                    "S": "SELL",
                    "o": "LIMIT",
                    "f": "IOC",
                    "q": qty,
                    "p": "37000.1",
                    "ap": "37000.1",
                    "sp": "0",
                    "x": "TRADE",
                    "X": "FILLED",
                    "i": 4012345678,
                    "l": qty,
                    "z": qty,
                    "L": "37000.1",
                    "N": "USDT",
                    "n": "0.0296",
                    "T": 1700000000120,
                    "t": trade_id,
                    "b": "0",
                    "a": "0",
                    "m": False,
                    "R": False,
                    "wt": "CONTRACT_PRICE",
                    "ot": "LIMIT",
                    "ps": "BOTH",
                    "cp": False,
                    "rp": "0",
                    "pP": False,
                    "si": 0,
                    "ss": 0,
                    "V": "NONE",
                    "pm": "NONE",
                    "gtd": 0,
                },
            },
        }
    )


async def watchdog(stalls: list[float]) -> None:
    """Sleep 1 ms at a time; record how late each wake-up was."""
    while True:
        t = time.perf_counter()
        await trio.sleep(0.001)
        stalls.append(time.perf_counter() - t - 0.001)


def pct(values: list[int], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1000


async def run(n: int, database_url: str | None) -> None:
    venue = RecordingVenue()
    stalls: list[float] = []
    entry_lat: list[int] = []
    hedge_lat: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with open_journal(database_url, tmp) as journal, trio.open_nursery() as nursery:
            await nursery.start(journal.run_writer)
            manager = PositionManager({"binance": venue}, journal, EngineClock.start())  # type: ignore[dict-item]
            await nursery.start(manager.run)
            nursery.start_soon(watchdog, stalls)
            tune_gc()  # as the engine does once it has started
            for i in range(n):
                pid = f"b{i}"
                plan = PositionPlan(
                    pid,
                    LegSpec(PERP, Side.SELL, D("0.01")),
                    LegSpec(SPOT, Side.BUY, D("0.01")),
                    hedge_timeout_ms=10**9,  # the recorder never fills hedges: no unwinds mid-benchmark
                )
                a_cid, b_cid = f"fa.{pid}.A.1", f"fa.{pid}.B.2"
                placed_a, placed_b = trio.Event(), trio.Event()
                venue.waiters[a_cid], venue.waiters[b_cid] = placed_a, placed_b
                t0 = time.perf_counter_ns()
                await manager.open_position(plan, ev.EntrySignalled(D("37000"), D("37000")))
                await placed_a.wait()
                entry_lat.append(venue.placed[a_cid] - t0)
                await trio.lowlevel.checkpoint()  # let the acknowledgement land
                frame = fill_frame(a_cid, "0.010", 10_000 + i)
                t1 = time.perf_counter_ns()
                for event in decode(frame):
                    manager.route(event)
                await placed_b.wait()
                hedge_lat.append(venue.placed[b_cid] - t1)
                # complete the hedge (not timed) so the position is HEDGED and shuts down quietly
                manager.runners[pid].deliver(ev.OrderStatusReported(b_cid, OrderStatus.FILLED, D("0.010")))
            for runner in manager.runners.values():  # let every position finish hedging (untimed)
                while runner.state is not PositionState.HEDGED:
                    await runner.wait_stepped()
            nursery.cancel_scope.cancel()
    backend = "postgresql" if database_url else "sqlite"
    print(f"tick-to-order, {n} events each, journal={backend} (durable append before every order)")
    print(f"{'trigger':<8} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'mean us':>9}")
    for name, lat in (("entry", entry_lat), ("hedge", hedge_lat)):
        print(
            f"{name:<8} {pct(lat, 0.5):9.1f} {pct(lat, 0.99):9.1f} {pct(lat, 0.999):9.1f} {statistics.mean(lat) / 1000:9.1f}"
        )
    print(f"longest event-loop stall: {max(stalls) * 1e3:.2f} ms over {len(stalls)} watchdog wake-ups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL journal instead of SQLite")
    args = parser.parse_args()
    trio.run(run, args.events, args.database_url)


if __name__ == "__main__":
    main()
