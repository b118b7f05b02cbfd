"""One suite, run against both backends (SQLite file, real PostgreSQL in a fresh schema)."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest
import trio

from fundarb.core import venue_events as ve
from fundarb.core.model import OrderStatus
from fundarb.journal import (
    CODEC,
    SCHEMA_VERSION,
    Entry,
    JournalClosed,
    JournalCorrupt,
    JournalFull,
    JournalSchemaTooNew,
    JournalWriteFailed,
    PositionChange,
    register_projector,
)
from fundarb.journal import migrations as mig

from .conftest import run_sql
from .samples import FILL, MARKET_REQUEST, QUOTE, REQUEST, SAMPLES, UPDATE

IO_TIMEOUT = 20


@attrs.frozen
class StateChanged:
    """A test stand-in for the engine's position transition event."""

    state: str


CODEC.register(StateChanged, "test.state_changed")
register_projector(StateChanged, lambda p, pid: [PositionChange(p.state)] if pid else [])


def _entries(n: int, pid: str | None = None) -> list[Entry]:
    return [Entry(ve.QuoteReceived(attrs.evolve(QUOTE, ts_ms=i)), ts_ms=i, position_id=pid) for i in range(n)]


async def test_append_read_round_trip(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            values = list(SAMPLES.values())
            entries = [
                Entry(v, ts_ms=1000 + i, position_id="p1" if i % 2 else None) for i, v in enumerate(values)
            ]
            seqs = await j.append(entries)
            assert seqs == list(range(1, len(values) + 1))
            records = await j.read()
            assert [r.payload for r in records] == values
            assert [r.seq for r in records] == seqs
            assert [r.ts_ms for r in records] == [e.ts_ms for e in entries]
            assert [r.position_id for r in records] == [e.position_id for e in entries]
            assert [r.kind for r in records] == [CODEC.tag_of(v) for v in values]
            assert [r.seq for r in await j.read(from_seq=5, limit=3)] == [5, 6, 7]
            assert await j.read(from_seq=len(values) + 1) == []
            assert await j.last_seq() == len(values)


async def test_seq_is_monotonic_and_gap_free_under_concurrency(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal(max_batch=7) as j, trio.open_nursery() as nursery:
            await nursery.start(j.run_writer)
            returned: list[int] = []

            async def critical(k: int) -> None:
                for i in range(5):
                    returned.extend(await j.append(_entries(1 + (i % 3), pid=f"p{k}")))

            async def batched() -> None:
                for i in range(60):
                    j.append_nowait(Entry(StateChanged(f"s{i}"), ts_ms=i))
                    if i % 10 == 0:
                        await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as workers:
                for k in range(4):
                    workers.start_soon(critical, k)
                workers.start_soon(batched)
            await j.flush()
            seqs = [r.seq for r in await j.read()]
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(seqs) == 4 * (1 + 2 + 3 + 1 + 2) + 60
            assert len(set(returned)) == len(returned) == 4 * 9
            nursery.cancel_scope.cancel()


async def test_append_writes_queued_entries_first_so_seq_order_is_call_order(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            j.append_nowait(Entry(StateChanged("a"), ts_ms=1))
            j.append_nowait(Entry(StateChanged("b"), ts_ms=2))
            [seq] = await j.append([Entry(REQUEST, ts_ms=3, position_id="p1")])
            assert seq == 3
            assert [r.payload for r in await j.read()] == [StateChanged("a"), StateChanged("b"), REQUEST]


async def test_durable_across_close_and_reopen(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            await j.append(_entries(10, pid="p1"))
        async with open_test_journal() as j:
            assert await j.last_seq() == 10
            assert await j.append(_entries(2)) == [11, 12]
            records = await j.read()
            assert [r.seq for r in records] == list(range(1, 13))
            assert records[3].payload == _entries(10)[3].payload


async def test_batched_entries_are_flushed_on_close_without_a_writer(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            for e in _entries(25):
                j.append_nowait(e)
            assert j.statistics().pending == 25
        async with open_test_journal() as j:
            assert await j.last_seq() == 25


async def test_batched_writer_flushes_when_cancelled(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            with trio.CancelScope() as outer:
                async with trio.open_nursery() as nursery:
                    await nursery.start(j.run_writer)
                    for e in _entries(3000):
                        j.append_nowait(e)
                    outer.cancel()  # the writer has not run yet: everything is still queued
            assert outer.cancelled_caught
            assert j.statistics().pending == 0
            assert await j.last_seq() == 3000


async def test_batched_writer_writes_in_the_background(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal(max_batch=100) as j, trio.open_nursery() as nursery:
            await nursery.start(j.run_writer)
            for e in _entries(1000):
                j.append_nowait(e)
            while await j.last_seq() < 1000:  # no flush(): only the writer task writes
                await trio.lowlevel.checkpoint()
            assert j.statistics().pending == 0
            assert j.statistics().writes >= 10  # in batches of at most max_batch
            nursery.cancel_scope.cancel()


async def test_append_nowait_refuses_over_the_limit(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal(max_pending=5) as j:
            for e in _entries(5):
                j.append_nowait(e)
            with pytest.raises(JournalFull, match="run_writer"):
                j.append_nowait(_entries(1)[0])
            await j.flush()
            j.append_nowait(_entries(1)[0])
        async with open_test_journal() as j:
            assert await j.last_seq() == 6


async def test_bad_payload_fails_at_the_call_site(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            with pytest.raises(Exception, match="not registered"):
                await j.append([Entry(object(), ts_ms=1)])
            with pytest.raises(TypeError):
                j.append_nowait(REQUEST)  # not wrapped in an Entry
            assert await j.last_seq() == 0


async def test_closed_journal_refuses_use(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            pass
        with pytest.raises(JournalClosed):
            await j.append(_entries(1))
        with pytest.raises(JournalClosed):
            j.append_nowait(_entries(1)[0])
        with pytest.raises(JournalClosed):
            await j.read()


async def test_projections(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            await j.append([Entry(REQUEST, ts_ms=10, position_id="p1")])
            await j.append([Entry(StateChanged("open-leg-A"), ts_ms=11, position_id="p1")])
            j.append_nowait(Entry(ve.OrderReported(UPDATE), ts_ms=12, position_id="p1"))
            j.append_nowait(Entry(ve.FillReported(FILL), ts_ms=13, position_id="p1"))
            j.append_nowait(Entry(MARKET_REQUEST, ts_ms=14, position_id="p2"))
            await j.flush()
            filled = attrs.evolve(
                UPDATE, status=OrderStatus.FILLED, filled_qty=D("0.010"), venue_order_id=None
            )
            await j.append([Entry(ve.OrderReported(filled), ts_ms=15, position_id="p1")])

            positions = {p.position_id: p for p in await j.positions()}
            assert positions["p1"].state == "open-leg-A"
            assert (positions["p1"].first_seq, positions["p1"].last_seq) == (1, 6)
            assert positions["p1"].last_kind == "venue.order_reported" and positions["p1"].updated_ms == 15
            assert positions["p2"].state is None and positions["p2"].last_seq == 5

            orders = {o.client_order_id: o for o in await j.orders()}
            a1 = orders["p1-A1"]
            assert (a1.status, a1.filled_qty, a1.quantity, a1.price) == (
                "FILLED",
                D("0.010"),
                D("0.010"),
                D("30000.5"),
            )
            assert a1.venue_order_id == "8675309"  # a report without it keeps the known id
            assert (a1.position_id, a1.instrument, a1.side) == ("p1", "binance:perp:BTCUSDT", "SELL")
            assert (a1.first_seq, a1.last_seq) == (1, 6)
            b2 = orders["p1-B2"]
            assert (b2.status, b2.position_id, b2.price, b2.filled_qty) == ("INTENT", "p2", None, None)
            assert [o.client_order_id for o in await j.orders(position_id="p2")] == ["p1-B2"]
        async with open_test_journal() as j:  # projections are tables: they survive a restart
            assert {p.position_id for p in await j.positions()} == {"p1", "p2"}


async def test_meta_and_config_snapshot(open_test_journal, backend) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            meta = await j.meta()
            assert (meta.backend, meta.schema_version, meta.config) == (backend, SCHEMA_VERSION, None)
            await j.record_config({"venues": ["binance", "bybit"], "max_notional": D("1000.50")}, ts_ms=77)
        async with open_test_journal() as j:
            meta = await j.meta()
            assert meta.config == {"max_notional": "1000.50", "venues": ["binance", "bybit"]}
            assert meta.config_ms == 77


# --- migrations -----------------------------------------------------------------------------------


async def test_migrations_fresh_reopen_and_upgrade(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            assert j.schema_version == SCHEMA_VERSION
            await j.append(_entries(1))
            rows = await run_sql(j, "SELECT version, name FROM schema_version ORDER BY version")
            assert rows == [(m.version, m.name) for m in mig.MIGRATIONS]
        async with open_test_journal() as j:  # re-open: nothing applied twice, data kept
            assert len(await run_sql(j, "SELECT version FROM schema_version")) == len(mig.MIGRATIONS)
            assert await j.last_seq() == 1
        extra = mig.Migration(
            SCHEMA_VERSION + 1,
            "operator_notes",
            {
                b: "CREATE TABLE operator_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"
                for b in mig.BACKENDS
            },
        )
        async with open_test_journal(migrations=(*mig.MIGRATIONS, extra)) as j:
            assert j.schema_version == SCHEMA_VERSION + 1
            assert await run_sql(j, "SELECT COUNT(*) FROM operator_notes") == [(0,)]
            assert await j.last_seq() == 1
        # this code (which knows only the packaged migrations) must now refuse the journal
        with pytest.raises(JournalSchemaTooNew, match=f"version {SCHEMA_VERSION + 1} is newer"):
            async with open_test_journal():
                pass


async def test_failed_migration_is_rolled_back(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            pass
        broken = mig.Migration(
            SCHEMA_VERSION + 1,
            "broken",
            {b: "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;" for b in mig.BACKENDS},
        )
        with pytest.raises(Exception, match="syntax"):
            async with open_test_journal(migrations=(*mig.MIGRATIONS, broken)):
                pass
        async with open_test_journal() as j:
            assert j.schema_version == SCHEMA_VERSION
            with pytest.raises(Exception, match="half_done"):
                await run_sql(j, "SELECT * FROM half_done")


# --- bad rows -------------------------------------------------------------------------------------


async def _allow_tampering(j) -> None:
    """Disable the append-only guard, as a failing disk or a careless hand would bypass it."""
    if j.backend == "sqlite":
        await run_sql(j, "DROP TRIGGER journal_no_update")
    else:
        await run_sql(j, "ALTER TABLE journal DISABLE TRIGGER journal_no_change")


async def test_the_journal_is_append_only(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            await j.append(_entries(2))
            for stmt in ("UPDATE journal SET kind = 'x'", "DELETE FROM journal"):
                with pytest.raises(Exception, match="append-only"):
                    await run_sql(j, stmt)
            assert await j.last_seq() == 2


@pytest.mark.parametrize("damage", ["truncated", "bit_flip", "unknown_kind", "bad_json_good_crc"])
async def test_a_bad_row_is_named_and_nothing_is_overwritten(open_test_journal, damage) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            await j.append(_entries(5))
            [original] = await j.read_raw(from_seq=3, limit=1)
            await _allow_tampering(j)
            if damage == "truncated":
                await run_sql(j, "UPDATE journal SET payload = ? WHERE seq = 3", original.data[:20])
            elif damage == "bit_flip":
                flipped = original.data.replace(b'"ts_ms":2', b'"ts_ms":3')
                await run_sql(j, "UPDATE journal SET payload = ? WHERE seq = 3", flipped)
            elif damage == "unknown_kind":
                await run_sql(j, "UPDATE journal SET kind = 'engine.from_the_future' WHERE seq = 3")
            else:
                import zlib

                await run_sql(j, "UPDATE journal SET payload = ? WHERE seq = 3", b"{oops")
                await run_sql(j, "UPDATE journal SET crc = ? WHERE seq = 3", zlib.crc32(b"{oops"))
        async with open_test_journal() as j:
            with pytest.raises(JournalCorrupt, match="seq=3") as info:
                await j.read()
            assert info.value.seq == 3
            expected = {
                "truncated": "checksum",
                "bit_flip": "checksum",
                "unknown_kind": "unknown kind",
                "bad_json_good_crc": "not valid JSON",
            }[damage]
            assert expected in str(info.value)
            assert [r.seq for r in await j.read(limit=2)] == [1, 2]  # rows before it still decode
            # nothing is overwritten or dropped: the bad row stays, new rows go after it
            assert await j.append(_entries(1)) == [6]
            raw = await j.read_raw()
            assert [r.seq for r in raw] == [1, 2, 3, 4, 5, 6]
            assert raw[2].seq == 3 and (raw[2].data != original.data or raw[2].kind != original.kind)
            assert [r.seq for r in await j.read(from_seq=4)] == [4, 5, 6]


# --- uncertain outcome of a failed write ----------------------------------------------------------


class _Boom(Exception):
    pass


@pytest.mark.parametrize("committed", [True, False])
async def test_a_failed_write_is_resolved_without_loss_or_duplicates(open_test_journal, committed) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            await j.append(_entries(2))
            for i in range(3):
                j.append_nowait(Entry(StateChanged(f"q{i}"), ts_ms=i))
            real_write = j._db_write

            async def failing_write(first_seq, rows, proj):
                if committed:
                    await real_write(first_seq, rows, proj)  # the commit happened, then the link broke
                raise _Boom

            j._db_write = failing_write
            with pytest.raises(_Boom):
                await j.append([Entry(REQUEST, ts_ms=9, position_id="p1")])
            j._db_write = real_write
            await j.append([Entry(StateChanged("after"), ts_ms=10)])
            payloads = [r.payload for r in await j.read()]
            queued = [StateChanged("q0"), StateChanged("q1"), StateChanged("q2")]
            if committed:
                assert payloads[2:] == [*queued, REQUEST, StateChanged("after")]
            else:  # the queued (non-critical) entries are written once; the failed critical one is not
                assert payloads[2:] == [*queued, StateChanged("after")]
            assert [r.seq for r in await j.read()] == list(range(1, len(payloads) + 1))


async def test_read_one_position(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as j:
            for i in range(12):
                await j.append([Entry(StateChanged(f"s{i}"), ts_ms=i, position_id=f"p{i % 3}")])
            p1 = await j.read(position_id="p1")
            assert [r.seq for r in p1] == [2, 5, 8, 11]
            assert [r.payload.state for r in await j.read(6, 1, position_id="p1")] == ["s7"]
            assert await j.read(position_id="nobody") == []


def test_entry_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="ts_ms"):
        Entry(REQUEST, ts_ms=-1)
    with pytest.raises(ValueError, match="ts_ms"):
        Entry(REQUEST, ts_ms=True)
    with pytest.raises(ValueError, match="position_id"):
        Entry(REQUEST, ts_ms=1, position_id="")


async def test_a_second_writer_is_detected_and_nothing_queued_is_lost(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal() as first:
            await first.append(_entries(2))
            async with open_test_journal() as second:  # a second engine on the same journal
                assert await second.append([Entry(StateChanged("intruder"), ts_ms=1, position_id="p9")]) == [
                    3
                ]
            first.append_nowait(Entry(StateChanged("queued"), ts_ms=2, position_id="p1"))
            with pytest.raises(JournalWriteFailed, match="another process") as info:
                await first.append([Entry(REQUEST, ts_ms=3, position_id="p1")])
            assert "seq 3" in str(info.value)
            assert first.statistics().pending == 1  # the queued entry is queued again, not dropped
            await first.flush()
            payloads = [r.payload for r in await first.read()]
            assert payloads[2:] == [StateChanged("intruder"), StateChanged("queued")]


async def test_a_critical_append_waits_for_at_most_one_batch(open_test_journal) -> None:
    with trio.fail_after(IO_TIMEOUT):
        async with open_test_journal(max_batch=10) as j, trio.open_nursery() as nursery:
            await nursery.start(j.run_writer)
            for e in _entries(1000):
                j.append_nowait(e)
            await trio.lowlevel.checkpoint()  # the writer starts its first batch
            writes_before = j.statistics().writes
            [seq] = await j.append([Entry(REQUEST, ts_ms=1, position_id="p1")])
            assert seq == 1001  # after everything queued before it
            assert j.statistics().writes - writes_before <= 2  # one writer batch, then its own write
            nursery.cancel_scope.cancel()


async def test_cancelled_appends_leave_a_consistent_journal(open_test_journal) -> None:
    import random

    with trio.fail_after(60):
        async with open_test_journal() as j:
            t0 = trio.current_time()
            for i in range(20):
                await j.append([Entry(StateChanged(f"w{i}"), ts_ms=i, position_id="p1")])
            typical = (trio.current_time() - t0) / 20
            rng = random.Random(11)
            durable: set[str] = set()
            for i in range(200):
                j.append_nowait(Entry(StateChanged(f"q{i}"), ts_ms=i, position_id="p2"))
                with trio.move_on_after(rng.uniform(0, 2 * typical)):
                    await j.append([Entry(StateChanged(f"c{i}"), ts_ms=i, position_id="p1")])
                    durable.add(f"c{i}")
            await j.flush()
            names = [r.payload.state for r in await j.read()]
            assert [r.seq for r in await j.read()] == list(range(1, len(names) + 1))
            assert len(names) == len(set(names))  # no duplicates
            assert durable <= set(names)  # every append that returned is there
            assert {f"q{i}" for i in range(200)} <= set(names)  # no queued entry was dropped
            assert [n for n in names if n.startswith("q")] == [f"q{i}" for i in range(200)]  # in order
