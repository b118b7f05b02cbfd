"""Backend selection, SQLite settings, and the package's public surface."""

from __future__ import annotations

import sqlite3

import pytest
import trio

import fundarb.journal as journal_pkg
from fundarb.journal import JOURNAL_FILENAME, Entry, open_journal
from fundarb.journal.postgres import PostgresJournal
from fundarb.journal.sqlite import SqliteJournal

from .conftest import pg_url, run_sql
from .test_journal import StateChanged


def test_exports_are_exactly_the_public_api() -> None:
    public = {n for n in dir(journal_pkg) if not n.startswith("_")}
    modules = {"base", "codec", "errors", "migrations", "postgres", "projections", "sqlite"}
    assert set(journal_pkg.__all__) == public - modules - {"annotations", "Any", "AsyncIterator", "Path"} - {
        "asynccontextmanager"
    }
    for name in journal_pkg.__all__:
        assert getattr(journal_pkg, name).__doc__ or name.isupper(), name


async def test_no_url_means_sqlite_in_the_data_dir_with_wal_and_full_sync(tmp_path) -> None:
    data_dir = tmp_path / "var" / "nested"
    with trio.fail_after(20):
        async with open_journal(None, data_dir) as j:
            assert isinstance(j, SqliteJournal)
            assert await run_sql(j, "PRAGMA journal_mode") == [("wal",)]
            assert await run_sql(j, "PRAGMA synchronous") == [(2,)]  # FULL
            await j.append([Entry(StateChanged("x"), ts_ms=1, position_id="p1")])
    path = data_dir / JOURNAL_FILENAME
    assert path.exists()
    with sqlite3.connect(path) as conn:  # an operator can query the projections with plain sqlite3
        assert conn.execute("SELECT position_id, state FROM positions").fetchall() == [("p1", "x")]


@pytest.mark.postgres
async def test_a_url_means_postgres(schema: str) -> None:
    with trio.fail_after(20):
        async with open_journal(pg_url(), "/nonexistent", schema=schema) as j:
            assert isinstance(j, PostgresJournal)
            assert (await j.meta()).location.endswith(f"schema={schema}")


async def test_inline_sqlite_keeps_autojump_time_still(tmp_path, autojump_clock) -> None:
    """Under the autojump clock a thread hop lets virtual time jump; the inline test mode does not."""
    for inline in (True, False):
        async with open_journal(None, tmp_path / str(inline), inline_for_tests=inline) as j:
            jumped = False

            async def sleeper() -> None:
                nonlocal jumped
                await trio.sleep(3600)
                jumped = True

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sleeper)
                for i in range(20):
                    await j.append([Entry(StateChanged(f"s{i}"), ts_ms=i, position_id="p1")])
                nursery.cancel_scope.cancel()
            assert await j.last_seq() == 20
            if inline:
                assert not jumped  # (threaded, it may or may not jump: that is the point)
