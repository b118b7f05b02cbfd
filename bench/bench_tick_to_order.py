"""Tick-to-order latency of the engine against the Binance-compatible loopback server, and the
longest event-loop stall.

Setup: ``fundarb sim serve``'s Binance face (``BinanceServer``) runs in a child process on
127.0.0.1; this process runs what ``fundarb run`` runs for positions: the real ``BinanceVenue``
adapter (REST signing, websocket user data, WebSocket-API orders), the position manager with its
runners and executors, and a durable SQLite journal (``--database-url`` for PostgreSQL) whose
writer runs as in the engine, with a book of ``--book`` hedged positions held open. Each round
opens a position (leg A: a post-only sell of the perp resting between the server's two price
levels, filled by its next up-step, every ``STEP_MS``), waits for the hedge, and exits it, so the
fill arrives when the engine is otherwise idle, as a leg-A fill does in production.

Two triggers, each timed from the moment the triggering input reaches the engine to the moment
the resulting order's bytes are handed to the kernel:

* entry: ``EntrySignalled`` delivered to a new position -> leg A's order written (REST;
  ``trio.SocketStream.send_all`` entered, the send syscall follows without a yield);
* hedge: leg A's ``ORDER_TRADE_UPDATE`` frame read off the user-data socket (the
  ``receive_some`` that returned its bytes) -> trio-websocket's reader -> ``decode`` -> the
  router -> the idle position stepped in that same task -> the journal queue -> the hedge order
  written (WebSocket API: ``FrameWriter.write``, stamped after its ``send`` returned; when the
  immediate write declines, ``send_all`` entered as above).

Instrumentation (this file only): ``trio.SocketStream.receive_some`` is wrapped to stamp
``time.perf_counter_ns()`` after it returns a fill frame; ``send_all`` and ``FrameWriter.write``
are wrapped to stamp when bytes carrying a tracked client order id pass
(``WsApiSession.send_frame`` marks which masked WebSocket frame carries which id); the
wrappers' own cost is inside the figures. A watchdog task sleeps 1 ms in a loop and reports the
worst overshoot: the longest stall of the event loop.

    python bench/bench_tick_to_order.py [--events 10000] [--book 16] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.model import InstrumentId, Market, Side, TimeInForce, Wallet
from fundarb.core.position import PositionState
from fundarb.core.position_model import LegSpec, PositionPlan
from fundarb.engine.app import tune_gc
from fundarb.engine.clock import EngineClock
from fundarb.engine.manager import PositionManager
from fundarb.engine.market import MarketState, UserDataSink
from fundarb.engine.telemetry import NullTelemetry
from fundarb.engine.venues import loopback_urls
from fundarb.journal import open_journal
from fundarb.sim.drivers import MarketTick
from fundarb.venues.binance import Credentials
from fundarb.venues.binance._endpoints import Family
from fundarb.venues.binance._frame_writer import FrameWriter
from fundarb.venues.binance._ratelimit import FAPI_LIMITS, SAPI_LIMITS, SPOT_LIMITS, RateLimiter
from fundarb.venues.binance._wsapi import WsApiSession
from fundarb.venues.binance.client import BinanceVenue

KEY, SECRET = "bench-key", "bench-secret"
RAISED = 1000  # rate limits of the bench account, x the published ones (server and adapter alike)
STEP_MS = 10  # the server's market steps (real ms: the server runs at speed 1)
LOW, HIGH = D("30000"), D("30020")
RESTING = D("30010")  # leg A: a post-only sell between them, filled by the next up-step
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("binance", Market.SPOT, "BTCUSDT")
S = PositionState

# --- instrumentation -------------------------------------------------------------------------------

FILL_IN: dict[str, int] = {}  # leg-A cid -> when the bytes of its fill frame were read
WRITTEN: dict[str, int] = {}  # cid -> when the bytes of its order were written
_FILL = re.compile(rb'"c":"(fa\.[^".]+\.A\.\d+)"')
_REST_CID = re.compile(rb"newClientOrderId=(fa\.[^&\s]+)")
_WS_CID = re.compile(r'"newClientOrderId":"(fa\.[^"]+)"')
_SENDING: contextvars.ContextVar[str | None] = contextvars.ContextVar("sending", default=None)


def instrument() -> None:
    """Wrap the socket calls that carry frames in and orders out (see the module docstring)."""
    receive_some, send_all = trio.SocketStream.receive_some, trio.SocketStream.send_all
    send_frame = WsApiSession.send_frame

    async def timed_receive_some(self: Any, max_bytes: int | None = None) -> bytes:
        data = await receive_some(self, max_bytes)
        if b"ORDER_TRADE_UPDATE" in data:
            now = time.perf_counter_ns()
            for frame in data.split(b"ORDER_TRADE_UPDATE")[1:]:  # one chunk per frame
                if b'"x":"TRADE"' in frame:  # a fill, not the NEW that acknowledged the order
                    for cid in _FILL.findall(frame):
                        FILL_IN.setdefault(cid.decode(), now)
        return data

    async def timed_send_all(self: Any, data: Any) -> None:
        # stamped on entry: the send syscall follows without a yield (trio yields after it)
        now = time.perf_counter_ns()
        sending = _SENDING.get()
        if sending is not None:  # the WebSocket frame of an order (masked: the id is not visible)
            WRITTEN.setdefault(sending, now)
        elif b"newClientOrderId=" in data:
            for cid in _REST_CID.findall(bytes(data)):
                WRITTEN.setdefault(cid.decode(), now)
        await send_all(self, data)

    async def timed_send_frame(self: Any, ws: Any, frame: str) -> None:
        found = _WS_CID.search(frame)
        token = _SENDING.set(found.group(1) if found else None)
        try:
            await send_frame(self, ws, frame)
        finally:
            _SENDING.reset(token)

    write_now = FrameWriter.write

    def timed_write_now(self: Any, frame: str) -> bool | None:
        written = write_now(self, frame)  # stamped after the send syscall returned: conservative
        found = _WS_CID.search(frame)
        if written and found:
            WRITTEN.setdefault(found.group(1), time.perf_counter_ns())
        return written

    FrameWriter.write = timed_write_now  # type: ignore[method-assign]
    trio.SocketStream.receive_some = timed_receive_some  # type: ignore[method-assign]
    trio.SocketStream.send_all = timed_send_all  # type: ignore[method-assign]
    WsApiSession.send_frame = timed_send_frame  # type: ignore[method-assign]


# --- the server (child process) ----------------------------------------------------------------


@attrs.frozen
class SawDriver:
    """The server's market: every ``STEP_MS`` the price jumps between ``LOW`` and ``HIGH``, so a
    sell resting between them is filled by the next up-step (the fill the bench times)."""

    start_ms: int
    end_ms: int | None = None
    symbols: tuple[str, ...] = ("BTCUSDT",)

    def tick_at(self, ts_ms: int) -> MarketTick:
        """LOW on even steps, HIGH on odd ones; funding 1 bp."""
        price = HIGH if (ts_ms // STEP_MS) % 2 else LOW
        return MarketTick(ts_ms, {"BTCUSDT": price}, {"BTCUSDT": price}, {"BTCUSDT": D("0.0001")})


def serve() -> None:
    """Child mode: a funded Binance loopback server; prints ``listening http://... ws://...``."""
    from fundarb.sim.binance_server import BinanceServer
    from fundarb.sim.binance_server._usage import Usage

    funds = {(Wallet.FUTURES, "USDT"): D(10**9), (Wallet.SPOT, "USDT"): D(10**9)}
    now = time.time_ns() // 1_000_000
    server = BinanceServer.for_tests(
        credentials={KEY: SECRET}, balances=funds, step_ms=STEP_MS, driver=SawDriver(now), start_ms=now
    )
    # a high-tier account: 10k rounds at the published order limits (100 spot orders / 10 s) would
    # take half an hour; the limits are counted as ever, only raised (see RAISED)
    server.state.usage = {
        "api": Usage(6_000 * RAISED, {"10s": 100 * RAISED, "1d": 200_000 * RAISED}),
        "fapi": Usage(2_400 * RAISED, {"10s": 300 * RAISED, "1m": 1_200 * RAISED}),
    }

    async def main() -> None:
        async with trio.open_nursery() as n:
            urls = await n.start(server.run)
            base = urls.base_urls()
            print(f"listening {base.spot} {base.spot_stream}", flush=True)

    trio.run(main)


# --- the engine side ---------------------------------------------------------------------------


async def watchdog(stalls: list[float]) -> None:
    """Sleep 1 ms at a time; record how late each wake-up was."""
    while True:
        t = time.perf_counter()
        await trio.sleep(0.001)
        stalls.append(time.perf_counter() - t - 0.001)


class Settled(NullTelemetry):
    """Telemetry that wakes the bench when a position reaches HEDGED, CLOSED or FAILED (and at no
    other step, so no bench task runs between a fill and its hedge)."""

    def __init__(self) -> None:
        self.events: dict[str, trio.Event] = {}

    def state_changed(self, position_id: str, old: str, new: str) -> None:
        if new in ("hedged", "closed", "failed"):
            self.events.setdefault(position_id, trio.Event()).set()

    async def wait(self, position_id: str) -> None:
        """Until ``position_id`` next settles."""
        await self.events.setdefault(position_id, trio.Event()).wait()
        del self.events[position_id]


async def run(banner: str, n: int, book: int, database_url: str | None) -> dict[str, Any]:
    stalls: list[float] = []
    entry_lat: list[int] = []
    hedge_lat: list[int] = []
    hedged_over_ws = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with open_journal(database_url, tmp) as journal, trio.open_nursery() as nursery:
            venue = BinanceVenue(Credentials(KEY, SECRET), base_urls=loopback_urls(banner), call_timeout=5.0)
            for family, (weights, orders) in (
                (Family.SPOT, SPOT_LIMITS), (Family.FAPI, FAPI_LIMITS), (Family.SAPI, SAPI_LIMITS)
            ):  # fmt: skip
                venue.rest.limiters[family] = RateLimiter.with_limits(
                    ({k: v * RAISED for k, v in weights.items()}, {k: v * RAISED for k, v in orders.items()})
                )
            await nursery.start(journal.run_writer)
            settled = Settled()
            manager = PositionManager({"binance": venue}, journal, EngineClock.start(), settled)
            await nursery.start(manager.run)
            market = MarketState(EngineClock.start())
            await nursery.start(venue.run_user_data, UserDataSink(market, manager.route))  # as the engine
            rules = {i.id: i for i in await venue.instruments()}
            qty = max(rules[PERP].min_qty, rules[SPOT].min_qty) * 10
            await trio.sleep(0.5)  # let every stream connect before timing anything
            tune_gc()  # as the engine does once it has started
            nursery.start_soon(watchdog, stalls)
            warmup = min(200, n // 10)
            closed: list[str] = []
            unhedged: list[str] = []

            async def round_trip(i: int, measured: bool, close: bool) -> None:
                for attempt in range(20):  # placed while the market was up: post-only refused, again
                    if await one_round(f"b{i}r{attempt}", measured, close):
                        return
                raise RuntimeError(f"round {i}: 20 entries refused")

            async def one_round(pid: str, measured: bool, close: bool) -> bool:
                nonlocal hedged_over_ws
                plan = PositionPlan(
                    pid,
                    LegSpec(rules[PERP], Side.SELL, qty),
                    LegSpec(rules[SPOT], Side.BUY, qty),
                    hedge_timeout_ms=5_000,
                    entry_time_in_force=TimeInForce.POST_ONLY,
                )
                t0 = time.perf_counter_ns()
                runner = await manager.open_position(plan, ev.EntrySignalled(LOW, RESTING))
                with stuck_report(runner):
                    while runner.state not in (S.HEDGED, S.CLOSED, S.FAILED):
                        await settled.wait(pid)
                a_cid = f"fa.{pid}.A.1"
                if a_cid not in FILL_IN:  # placed while the market was up: refused, nothing filled
                    manager.runners.pop(pid, None)
                    return False
                b_cid = next(o.cid for o in runner.position.orders if o.leg.value == "B")
                if measured:
                    entry_lat.append(WRITTEN[a_cid] - t0)
                    hedge_lat.append(WRITTEN[b_cid] - FILL_IN[a_cid])
                    hedged_over_ws += venue_used_ws(venue)
                if runner.state is not S.HEDGED:  # the hedge went out but did not fill in time
                    unhedged.append(f"{pid}: {runner.state.value} ({runner.position.reason})")
                    return True
                if close:
                    runner.deliver(ev.ExitSignalled("bench round over"))
                    with stuck_report(runner):
                        while runner.state is not S.CLOSED:
                            await settled.wait(pid)
                    closed.append(pid)
                    if len(closed) > 64:  # forget it once its late stream reports have surely arrived
                        manager.runners.pop(closed.pop(0), None)
                return True

            for i in range(book):  # the book the engine holds while it trades (hedged, idle)
                await round_trip(n + warmup + i, False, False)
            for i in range(n + warmup):
                await round_trip(i, i >= warmup, True)
            nursery.cancel_scope.cancel()
        await venue.aclose()
    return {
        "entry": entry_lat,
        "hedge": hedge_lat,
        "stalls": stalls,
        "ws": hedged_over_ws,
        "unhedged": unhedged,
    }


@contextlib.contextmanager
def stuck_report(runner: Any, timeout: float = 60) -> Iterator[None]:
    """Fail after ``timeout`` seconds with what the position was waiting for."""
    with trio.move_on_after(timeout) as scope:
        yield
    if scope.cancelled_caught:
        orders = [(o.cid, o.state.value, str(o.filled), str(o.quantity)) for o in runner.position.orders]
        raise RuntimeError(
            f"position {runner.id} stuck in {runner.state.value} for {timeout}s: orders {orders}, "
            f"backlog {runner._backlog}, applying {runner._applying}, running {runner._commands is not None}, "
            f"exposure {runner.exposure()}"
        )


def venue_used_ws(venue: BinanceVenue) -> int:
    """1 when the venue's spot orders currently go over the WebSocket API (else 0)."""
    return int(venue.ws_api is not None and venue.ws_api.connected)


def pct(values: list[int], q: float) -> float:
    """The ``q`` quantile of ``values`` (ns), in µs."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> None:
    """Start the server, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--book", type=int, default=16, help="hedged positions held open meanwhile")
    parser.add_argument("--database-url", default=None, help="PostgreSQL journal instead of SQLite")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline().strip().removeprefix("listening ")
        instrument()
        out = trio.run(run, banner, args.events, args.book, args.database_url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    load = os.getloadavg()[0]
    backend = "postgresql" if args.database_url else "sqlite"
    print(
        f"tick-to-order against the Binance loopback server (separate process), {len(out['hedge'])} rounds, "
        f"journal={backend}, load average {load:.2f} over {os.cpu_count()} cpus"
    )
    print(f"hedges sent over the WebSocket API: {out['ws']} of {len(out['hedge'])}")
    if out["unhedged"]:
        print(
            f"rounds whose hedge did not fill in time (unwound): {len(out['unhedged'])}: {out['unhedged'][:3]}"
        )
    print(f"{'trigger':<8} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'mean us':>9} {'max us':>9}")
    for name in ("entry", "hedge"):
        lat = out[name]
        print(
            f"{name:<8} {pct(lat, 0.5):9.1f} {pct(lat, 0.99):9.1f} {pct(lat, 0.999):9.1f} "
            f"{statistics.mean(lat) / 1000:9.1f} {max(lat) / 1000:9.1f}"
        )
    stalls = out["stalls"]
    print(f"longest event-loop stall: {max(stalls) * 1e3:.2f} ms over {len(stalls)} watchdog wake-ups")


if __name__ == "__main__":
    main()
