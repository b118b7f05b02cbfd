"""Journal benchmark: latency a durable append adds to the order path, and batched throughput.

For each backend it prints:

- ``critical``: p50 / p99 / p99.9 / max of ``await journal.append([entry])`` for one order-intent
  entry (an ``OrderRequest`` with a position id, projected into the orders table), measured one
  after another from the Trio side, so the thread hop (SQLite) or the trio-asyncio bridge
  (PostgreSQL) is included.
- ``batched``: sustained events/s of ``append_nowait`` with the writer task running, from the
  first enqueue until the last entry is durable (encoding included), over ``--batched`` events.

PostgreSQL runs in a fresh schema that is dropped afterwards. The server's ``fsync`` and
``synchronous_commit`` are printed; ``--pg-sync`` picks the session's ``synchronous_commit``
(``on`` = durable at return, the engine's setting; ``off`` = may lose the last few hundred ms of
commits on a server crash: shown for comparison only).

    python bench/bench_journal.py                       # both backends
    python bench/bench_journal.py --backend sqlite --critical 2000 --batched 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from decimal import Decimal as D
from pathlib import Path

import trio

from fundarb.core import venue_events as ve
from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderType, Quote, Side, TimeInForce
from fundarb.journal import Entry, Journal
from fundarb.journal.postgres import open_postgres_journal
from fundarb.journal.sqlite import open_sqlite_journal

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")


def _order(i: int) -> Entry:
    request = OrderRequest(
        f"p{i % 50}-A{i}", PERP, Side.SELL, D("0.010"), D("30000.5"), OrderType.LIMIT, TimeInForce.IOC
    )
    return Entry(request, ts_ms=1_700_000_000_000 + i, position_id=f"p{i % 50}")


def _quote(i: int) -> Entry:
    q = Quote(PERP, D("30000.1"), D("1.234"), D("30000.2"), D("0.567"), 1_700_000_000_000 + i)
    return Entry(ve.QuoteReceived(q), ts_ms=q.ts_ms)


def _pct(sorted_us: list[float], p: float) -> float:
    k = min(len(sorted_us) - 1, max(0, round(p / 100 * len(sorted_us)) - 1))
    return sorted_us[k]


async def _critical(journal: Journal, n: int) -> list[float]:
    for i in range(min(200, n)):  # warm-up: connections, statement cache, file pages
        await journal.append([_order(-1 - i)])
    lat: list[float] = []
    for i in range(n):
        entry = _order(i)
        t0 = time.perf_counter_ns()
        await journal.append([entry])
        lat.append((time.perf_counter_ns() - t0) / 1000)
    return sorted(lat)


async def _batched(journal: Journal, n: int) -> tuple[float, int]:
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run_writer)
        writes0 = journal.statistics().writes
        t0 = time.perf_counter()
        for i in range(n):
            journal.append_nowait(_quote(i))
            if i % 500 == 0:
                await trio.lowlevel.checkpoint()  # let the writer run, as a real producer would
                while journal.statistics().pending > 50_000:
                    await trio.lowlevel.checkpoint()
        await journal.flush()
        elapsed = time.perf_counter() - t0
        writes = journal.statistics().writes - writes0
        nursery.cancel_scope.cancel()
    return n / elapsed, writes


def _report(label: str, lat: list[float], rate: float, writes: int, n_batched: int) -> None:
    print(
        f"{label:<34} critical append (us): p50 {_pct(lat, 50):7.0f}  p99 {_pct(lat, 99):7.0f}  "
        f"p99.9 {_pct(lat, 99.9):7.0f}  max {lat[-1]:7.0f}  mean {statistics.fmean(lat):7.0f}  (n={len(lat)})"
    )
    print(
        f"{'':<34} batched: {rate:,.0f} events/s sustained over {n_batched:,} events "
        f"({writes} transactions, {n_batched / max(writes, 1):.0f} events each)"
    )


async def bench_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.data_dir) as d:
        path = Path(d) / "journal.sqlite3"
        async with open_sqlite_journal(path) as j:
            lat = await _critical(j, args.critical)
        async with open_sqlite_journal(Path(d) / "batched.sqlite3") as j:
            rate, writes = await _batched(j, args.batched)
        _report("sqlite (WAL, synchronous=FULL)", lat, rate, writes, args.batched)


async def bench_postgres(args: argparse.Namespace) -> None:
    import asyncpg
    import trio_asyncio

    schema = f"fundarb_bench_{uuid.uuid4().hex[:12]}"
    settings = {"synchronous_commit": args.pg_sync}
    try:
        async with open_postgres_journal(args.url, schema=schema, server_settings=settings) as j:

            async def show(conn: asyncpg.Connection) -> tuple[str, str]:
                return await conn.fetchval("SHOW fsync"), await conn.fetchval("SHOW synchronous_commit")

            async def server_settings() -> tuple[str, str]:
                async with j.pool.acquire() as conn:
                    return await show(conn)

            fsync, sync = await trio_asyncio.aio_as_trio(server_settings)()
            lat = await _critical(j, args.critical)
            rate, writes = await _batched(j, args.batched)
        _report(f"postgres (fsync={fsync}, sync_commit={sync})", lat, rate, writes, args.batched)
    finally:
        async with trio_asyncio.open_loop():

            async def drop() -> None:
                conn = await asyncpg.connect(args.url)
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                finally:
                    await conn.close()

            await trio_asyncio.aio_as_trio(drop)()


async def main(args: argparse.Namespace) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"fundarb journal benchmark: {os.cpu_count()} CPUs (load average {load}), "
        f"critical n={args.critical}, batched n={args.batched}"
    )
    if args.backend in ("sqlite", "all"):
        await bench_sqlite(args)
    if args.backend in ("postgres", "all"):
        await bench_postgres(args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    p.add_argument("--url", default=os.environ.get("FUNDARB_TEST_DATABASE_URL") or DEFAULT_URL)
    p.add_argument("--pg-sync", choices=["on", "off", "local", "remote_write", "remote_apply"], default="on")
    p.add_argument("--critical", type=int, default=5000, help="single-entry durable appends to time")
    p.add_argument("--batched", type=int, default=200_000, help="events through the batched path (>= 100k)")
    p.add_argument("--data-dir", default=None, help="where the SQLite files go (a temp dir inside)")
    return p.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse_args())
