"""PostgreSQL only: cancellation through trio-asyncio must not leak pool connections."""

from __future__ import annotations

import random

import pytest
import trio

from fundarb.journal import Entry, JournalError
from fundarb.journal.postgres import open_postgres_journal, redact_url

from .conftest import pg_url, run_sql
from .test_journal import StateChanged

pytestmark = pytest.mark.postgres


async def _settle(pool, size: int, idle: int) -> None:
    """Let asyncpg finish the shielded releases it runs after a cancellation (a few ms at most),
    then insist that the pool is back where it was."""
    with trio.move_on_after(5):
        while (pool.get_size(), pool.get_idle_size()) != (size, idle):
            await trio.lowlevel.checkpoint()
    assert (pool.get_size(), pool.get_idle_size()) == (size, idle), "pool size/idle changed"


async def _typical_latency(op, n: int = 30) -> float:
    """Median seconds of ``op`` on this machine now (the tests' cancel points scale with it)."""
    times = []
    for _ in range(n):
        t0 = trio.current_time()
        await op()
        times.append(trio.current_time() - t0)
    return sorted(times)[n // 2]


async def test_cancelling_appends_and_reads_mid_flight_leaks_nothing(schema: str) -> None:
    with trio.fail_after(60):
        app = f"fj-{schema}"  # our own connections only, even with other test workers running
        async with open_postgres_journal(
            pg_url(), schema=schema, min_size=2, max_size=4, server_settings={"application_name": app}
        ) as j:
            pool = j.pool
            await j.append([Entry(StateChanged("warm"), ts_ms=0, position_id="p0")])
            size, idle = pool.get_size(), pool.get_idle_size()
            assert (size, idle) == (2, 1)  # the writer keeps one connection checked out

            warm = iter(range(10**6))
            typical = await _typical_latency(
                lambda: j.append([Entry(StateChanged(f"w{next(warm)}"), ts_ms=0, position_id="p0")])
            )
            rng = random.Random(6)
            outcomes = {"cancelled": 0, "completed": 0}
            durable: set[str] = set()
            attempted: set[str] = set()
            for i in range(300):
                name = f"n{i}"
                with trio.move_on_after(rng.uniform(0, 3 * typical)) as scope:
                    op = i % 4
                    if op in (0, 1):
                        attempted.add(name)
                        await j.append([Entry(StateChanged(name), ts_ms=i, position_id=f"p{i % 5}")])
                        durable.add(name)
                    elif op == 2:
                        await j.read(from_seq=max(0, i - 20))
                    else:
                        await j.positions()
                outcomes["cancelled" if scope.cancelled_caught else "completed"] += 1
            assert outcomes["cancelled"] >= 15 and outcomes["completed"] >= 15, outcomes

            # the pool still serves: a fresh append and a read complete promptly (the append
            # checks the writer's connection out again if a cancelled write gave it back)
            with trio.fail_after(5):
                await j.append([Entry(StateChanged("after"), ts_ms=999, position_id="p0")])
                records = await j.read()
            await _settle(pool, size, idle)

            names = [r.payload.state for r in records]
            assert [r.seq for r in records] == list(range(1, len(records) + 1))  # gap-free
            assert len(names) == len(set(names))  # nothing written twice
            assert durable <= set(names)  # every append that returned is there
            assert {n for n in names if not n.startswith("w")} <= attempted | {"after"}
            # no query of ours is still running server-side
            [(active,)] = await _active_queries(j, app)
            assert active == 0


async def _active_queries(j, app: str) -> list[tuple[int]]:
    return await run_sql(
        j,
        "SELECT COUNT(*)::int FROM pg_stat_activity WHERE application_name = ? "
        "AND state = 'active' AND pid <> pg_backend_pid()",
        app,
    )


async def test_cancelling_the_batched_writer_mid_flight_loses_nothing(schema: str) -> None:
    with trio.fail_after(60):
        async with open_postgres_journal(pg_url(), schema=schema, max_batch=50) as j:
            pool = j.pool
            await j.append([Entry(StateChanged("warm"), ts_ms=0, position_id="p1")])
            size, idle = pool.get_size(), pool.get_idle_size()
            assert (size, idle) == (2, 1)
            typical = await _typical_latency(j.flush)
            rng = random.Random(7)
            total = 1
            for round_ in range(30):
                with trio.move_on_after(rng.uniform(0, 40 * typical)):
                    async with trio.open_nursery() as nursery:
                        await nursery.start(j.run_writer)
                        for k in range(200):
                            j.append_nowait(Entry(StateChanged(f"r{round_}-{k}"), ts_ms=k, position_id="p1"))
                            total += 1
                        await trio.sleep_forever()
            await j.flush()
            await _settle(pool, size, idle)
            records = await j.read()
            assert [r.seq for r in records] == list(range(1, total + 1))
            assert len({r.payload.state for r in records}) == total


async def test_bad_url_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://fundarb:hunter2@127.0.0.1:1/nowhere"
    with trio.fail_after(20), pytest.raises(JournalError) as info:
        async with open_postgres_journal(url):
            pass
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    assert redact_url(url) == "postgresql://fundarb:***@127.0.0.1:1/nowhere"


async def test_schema_name_is_checked() -> None:
    with pytest.raises(ValueError, match="identifier"):
        async with open_postgres_journal(pg_url(), schema='x"; DROP TABLE journal; --'):
            pass
