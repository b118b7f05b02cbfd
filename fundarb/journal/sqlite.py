"""The embedded journal: SQLite in WAL mode, every call through one thread funnel.

One connection (``check_same_thread=False``, autocommit mode with explicit transactions) is used
only from ``trio.to_thread.run_sync`` under a ``trio.CapacityLimiter(1)``, so exactly one thread
touches it at a time. ``synchronous=FULL``: a commit is on disk when it returns. A thread call is
not abandoned on cancellation, so a write that started always finishes and its outcome is known.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import trio

from fundarb.journal import migrations as mig
from fundarb.journal.base import (
    JournalBase,
    JournalMeta,
    OrderRow,
    PositionRow,
    RawRecord,
    StoredRow,
    config_json,
)
from fundarb.journal.codec import CODEC, Codec
from fundarb.journal.errors import JournalError, JournalWriteFailed
from fundarb.journal.projections import ProjectionBatch

__all__ = ["SqliteJournal", "open_sqlite_journal"]

T = TypeVar("T")

_INSERT = "INSERT INTO journal (seq, ts_ms, kind, position_id, payload, crc) VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_POSITION = """
INSERT INTO positions AS t (position_id, state, first_seq, last_seq, last_kind, updated_ms)
VALUES (?1, ?2, ?3, ?3, ?4, ?5)
ON CONFLICT (position_id) DO UPDATE SET
    state = COALESCE(excluded.state, t.state), last_seq = excluded.last_seq,
    last_kind = excluded.last_kind, updated_ms = excluded.updated_ms
"""
_UPSERT_ORDER = """
INSERT INTO orders AS t (client_order_id, position_id, instrument, side, quantity, price, status,
                         filled_qty, venue_order_id, first_seq, last_seq, updated_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)
ON CONFLICT (client_order_id) DO UPDATE SET
    position_id = COALESCE(excluded.position_id, t.position_id),
    instrument = COALESCE(excluded.instrument, t.instrument),
    side = COALESCE(excluded.side, t.side),
    quantity = COALESCE(excluded.quantity, t.quantity),
    price = COALESCE(excluded.price, t.price),
    status = COALESCE(excluded.status, t.status),
    filled_qty = COALESCE(excluded.filled_qty, t.filled_qty),
    venue_order_id = COALESCE(excluded.venue_order_id, t.venue_order_id),
    last_seq = excluded.last_seq, updated_ms = excluded.updated_ms
"""
_ORDER_COLUMNS = (
    "client_order_id, position_id, instrument, side, quantity, price, status, filled_qty, "
    "venue_order_id, first_seq, last_seq, updated_ms"
)


class SqliteJournal(JournalBase):
    """The SQLite backend. Open with :func:`open_sqlite_journal`."""

    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        codec: Codec = CODEC,
        migrations: tuple[mig.Migration, ...] = mig.MIGRATIONS,
        inline_for_tests: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(codec=codec, **options)
        self.path = Path(path)
        self._migrations = migrations
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._inline = inline_for_tests
        self.schema_version = 0

    async def _call(self, fn: Callable[[], T]) -> T:
        """The funnel: ``fn()`` in a worker thread, one at a time.

        ``inline_for_tests=True`` runs it on the Trio thread instead (blocking the loop for the
        call). Only for tests under Trio's autojump clock, which sees a task waiting on a thread
        as idle and jumps virtual time (firing deadlines) during every journal write.
        """
        if self._inline:
            await trio.lowlevel.checkpoint()
            return fn()
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` through the funnel."""
        conn = self._conn
        if conn is None:
            raise JournalError("SQLite journal is not open")
        return await self._call(lambda: fn(conn, *args))

    # --- lifecycle ------------------------------------------------------------------------------

    async def _open(self) -> None:
        await self._call(lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        self._conn = await self._call(self._connect)
        try:
            self.schema_version = await self._run(_migrate, self._migrations)
        except BaseException:
            await self._close_conn()
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.CancelScope(shield=True):
                await self._call(conn.close)

    async def aclose(self) -> None:
        """Flush what is queued, then close the connection."""
        try:
            await super().aclose()
        finally:
            await self._close_conn()

    # --- backend hooks --------------------------------------------------------------------------

    async def _db_write(self, first_seq: int, rows: list[StoredRow], proj: ProjectionBatch) -> None:
        params = [(first_seq + i, r.ts_ms, r.kind, r.position_id, r.data, r.crc) for i, r in enumerate(rows)]
        try:
            await self._run(_write, params, proj)
        except sqlite3.IntegrityError as exc:
            raise JournalWriteFailed(
                f"{self.path}: seq {first_seq}.. already taken: is another process writing this journal? ({exc})"
            ) from exc
        except sqlite3.Error as exc:  # rolled back in _write
            raise JournalWriteFailed(f"{self.path}: write refused: {exc}") from exc

    async def _db_last_seq(self) -> int:
        return await self._run(_last_seq)

    async def _db_read(self, from_seq: int, limit: int | None, position_id: str | None) -> list[RawRecord]:
        return await self._run(_read, from_seq, limit, position_id)

    # --- projections and meta -------------------------------------------------------------------

    async def positions(self) -> list[PositionRow]:
        """The positions projection, by position id."""
        self._check_open()
        rows = await self._run(
            _fetch,
            "SELECT position_id, state, first_seq, last_seq, last_kind, updated_ms "
            "FROM positions ORDER BY position_id",
            (),
        )
        return [PositionRow(*r) for r in rows]

    async def orders(self, position_id: str | None = None) -> list[OrderRow]:
        """The orders projection, by client order id, optionally of one position."""
        self._check_open()
        args: tuple[str, ...] = ()
        if position_id is None:
            q = f"SELECT {_ORDER_COLUMNS} FROM orders ORDER BY client_order_id"
        else:
            q = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE position_id = ? ORDER BY client_order_id"
            args = (position_id,)
        return [OrderRow.from_row(r) for r in await self._run(_fetch, q, args)]

    async def record_config(self, config: Mapping[str, Any], ts_ms: int) -> None:
        """Store the configuration the engine started with (redacted by the caller)."""
        self._check_open()
        await self._run(_put_meta, "config", config_json(config), ts_ms)

    async def meta(self) -> JournalMeta:
        """Backend, location, schema version and the last recorded configuration."""
        self._check_open()
        rows = await self._run(_fetch, "SELECT value, ts_ms FROM meta WHERE key = 'config'", ())
        config, config_ms = (orjson.loads(rows[0][0]), rows[0][1]) if rows else (None, None)
        return JournalMeta(self.backend, str(self.path), self.schema_version, config, config_ms)


# --- functions run in the funnel thread -----------------------------------------------------------


def _migrate(conn: sqlite3.Connection, migrations: tuple[mig.Migration, ...]) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    for m in mig.pending(current, migrations):
        now = int(time.time() * 1000)
        script = (
            f"BEGIN IMMEDIATE;\n{m.sql_for('sqlite')}\n;"
            f"INSERT INTO schema_version (version, name, applied_ms) VALUES ({m.version}, '{m.name}', {now});"
            "\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = m.version
    return int(current)


def _write(conn: sqlite3.Connection, params: list[tuple[Any, ...]], proj: ProjectionBatch) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_INSERT, params)
        if proj.positions:
            conn.executemany(_UPSERT_POSITION, proj.positions)
        if proj.orders:
            conn.executemany(_UPSERT_ORDER, proj.orders)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])


def _read(
    conn: sqlite3.Connection, from_seq: int, limit: int | None, position_id: str | None
) -> list[RawRecord]:
    where = "seq >= ?" if position_id is None else "seq >= ? AND position_id = ?"
    args: tuple[Any, ...] = (from_seq,) if position_id is None else (from_seq, position_id)
    rows = conn.execute(
        f"SELECT seq, ts_ms, kind, position_id, payload, crc FROM journal WHERE {where} ORDER BY seq LIMIT ?",
        (*args, -1 if limit is None else limit),
    ).fetchall()
    return [RawRecord(s, t, k, p, bytes(d), c) for (s, t, k, p, d, c) in rows]


def _fetch(conn: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return conn.execute(query, args).fetchall()


def _put_meta(conn: sqlite3.Connection, key: str, value: bytes, ts_ms: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value, ts_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms",
        (key, value, ts_ms),
    )


@asynccontextmanager
async def open_sqlite_journal(path: Path, **options: Any) -> AsyncIterator[SqliteJournal]:
    """Open (creating and migrating) the SQLite journal at ``path``; flush and close on exit.

    Start the batched writer yourself: ``await nursery.start(journal.run_writer)``.
    """
    journal = SqliteJournal(path, **options)
    await journal._open()
    try:
        yield journal
    finally:
        await journal.aclose()
