"""The journal interface both backends implement, and the logic they share.

Semantics (identical on SQLite and PostgreSQL):

- **Sequence.** Every row gets ``seq`` = previous + 1, starting at 1: monotonic and gap-free.
  Seqs are assigned by this process under one write lock, never by a database sequence (a
  rolled-back sequence value would leave a gap).
- **Durable appends.** :meth:`Journal.append` returns only after its transaction committed with
  a synchronous commit: "journal before act". It first drains entries queued by
  :meth:`Journal.append_nowait`, in the same transaction, so seq order is call order.
- **Batched appends.** :meth:`Journal.append_nowait` queues an entry (encoded immediately, so a
  bad payload fails at the call site) for the writer task, started by the owner with
  ``await nursery.start(journal.run_writer)``, which writes everything queued in one transaction
  per batch (group commit). Closing the journal, or cancelling the writer, flushes what is queued
  under a shielded deadline. Queued entries are not durable until written.
- **Refused writes.** A write the database answers with an error (constraint, disk full, seq
  taken by another writer) raises :class:`~fundarb.journal.errors.JournalWriteFailed`; its
  queued entries go back to the front of the queue.
- **Uncertain outcome.** If a write is cancelled or fails after it may have reached the database,
  the next write first checks whether it committed (by the highest stored seq) and re-queues its
  batched entries only if it did not: nothing is duplicated, nothing dropped.
- **Reads** decode strictly: a row that cannot be decoded raises
  :class:`~fundarb.journal.errors.JournalCorrupt` naming its seq. :meth:`Journal.read_raw` returns
  rows without decoding, for tools that must show a bad row.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

import attrs
import orjson
import trio

from fundarb.journal.codec import CODEC, Codec
from fundarb.journal.errors import (
    JournalClosed,
    JournalCorrupt,
    JournalError,
    JournalFull,
    JournalWriteFailed,
)
from fundarb.journal.projections import (
    OrderChange,
    PositionChange,
    ProjectionBatch,
    changes_of,
    project_batch,
)

__all__ = [
    "Entry",
    "Journal",
    "JournalBase",
    "JournalMeta",
    "JournalStatistics",
    "OrderRow",
    "PositionRow",
    "RawRecord",
    "Record",
    "StoredRow",
]


def _non_negative_int(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name}: must be a non-negative int, got {value!r}")


def _optional_id(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attribute.name}: must be None or a non-empty string, got {value!r}")


@attrs.frozen
class Entry:
    """Something to journal: a registered attrs ``payload`` at ``ts_ms``, optionally about a position."""

    payload: Any
    ts_ms: int = attrs.field(validator=_non_negative_int)
    position_id: str | None = attrs.field(default=None, validator=_optional_id)


@attrs.frozen
class Record:
    """A journaled entry as read back."""

    seq: int
    ts_ms: int
    kind: str
    position_id: str | None
    payload: Any


@attrs.frozen
class RawRecord:
    """A stored row, undecoded: what a repair tool shows for a corrupt row."""

    seq: int
    ts_ms: int
    kind: str
    position_id: str | None
    data: bytes
    crc: int

    @property
    def crc_ok(self) -> bool:
        """True when ``data`` matches the checksum written with it."""
        return zlib.crc32(self.data) == self.crc


@attrs.frozen
class StoredRow:
    """One row ready for the database: the encoded form of an :class:`Entry`."""

    ts_ms: int
    kind: str
    position_id: str | None
    data: bytes
    crc: int
    payload: Any
    changes: tuple[PositionChange | OrderChange, ...] = ()


@attrs.frozen
class PositionRow:
    """Projection of one position: its latest journaled state and activity."""

    position_id: str
    state: str | None
    first_seq: int
    last_seq: int
    last_kind: str
    updated_ms: int


@attrs.frozen
class OrderRow:
    """Projection of one order by client order id: its latest journaled status."""

    client_order_id: str
    position_id: str | None
    instrument: str | None
    side: str | None
    quantity: Decimal | None
    price: Decimal | None
    status: str | None
    filled_qty: Decimal | None
    venue_order_id: str | None
    first_seq: int
    last_seq: int
    updated_ms: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> OrderRow:
        """Build from a database row in column order (decimals stored as text)."""

        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(v)

        (cid, pid, inst, side, qty, price, status, filled, void, first, last, upd) = row
        return cls(cid, pid, inst, side, dec(qty), dec(price), status, dec(filled), void, first, last, upd)


@attrs.frozen
class JournalMeta:
    """What the journal knows about itself."""

    backend: str
    location: str
    schema_version: int
    config: Mapping[str, Any] | None
    config_ms: int | None


@attrs.frozen
class JournalStatistics:
    """Counters since the journal was opened."""

    last_seq: int | None
    pending: int
    appended: int
    batched: int
    writes: int


class Journal(Protocol):
    """The append-only event journal. See the module docstring for the semantics."""

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Durably append ``entries`` (after anything queued); return their seqs."""
        ...

    def append_nowait(self, entry: Entry) -> None:
        """Queue ``entry`` for the batched writer; raise :class:`JournalFull` over the limit."""
        ...

    async def flush(self) -> None:
        """Write everything queued so far, durably."""
        ...

    async def run_writer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The batched writer service; start with ``nursery.start``."""
        ...

    async def read(
        self, from_seq: int = 0, limit: int | None = None, *, position_id: str | None = None
    ) -> list[Record]:
        """Decoded records with ``seq >= from_seq`` in seq order, at most ``limit``, optionally
        only those of one position."""
        ...

    async def read_raw(
        self, from_seq: int = 0, limit: int | None = None, *, position_id: str | None = None
    ) -> list[RawRecord]:
        """Undecoded rows, selected as by :meth:`read`."""
        ...

    async def last_seq(self) -> int:
        """The highest stored seq (0 when empty)."""
        ...

    async def positions(self) -> list[PositionRow]:
        """The positions projection, by position id."""
        ...

    async def orders(self, position_id: str | None = None) -> list[OrderRow]:
        """The orders projection, by client order id, optionally of one position."""
        ...

    async def meta(self) -> JournalMeta:
        """Backend, location, schema version and the last recorded configuration."""
        ...

    async def record_config(self, config: Mapping[str, Any], ts_ms: int) -> None:
        """Store the configuration the engine started with (redacted by the caller)."""
        ...

    def statistics(self) -> JournalStatistics:
        """Counters since open."""
        ...


class JournalBase:
    """Shared sequencing, batching and decoding; a backend supplies the ``_db_*`` methods."""

    backend = "?"

    def __init__(
        self,
        *,
        codec: Codec = CODEC,
        max_pending: int = 200_000,
        max_batch: int = 2_000,
        close_timeout: float = 10.0,
        batch_window: float = 0.002,
    ) -> None:
        self.codec = codec
        self.batch_window = batch_window
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.close_timeout = close_timeout
        # Queued entries stay unencoded until the writer takes them: encoding is the costly part
        # of an append, and the hot path (a hedge sent under a reservation) should not pay it.
        self._pending: deque[Entry | StoredRow] = deque()
        self._wake = trio.Event()
        self._write_lock = trio.Lock()
        self._next_seq: int | None = None
        # a write whose outcome is unknown: (last seq it would have written, its queued rows)
        self._inflight: tuple[int, list[StoredRow]] | None = None
        self._closed = False
        self._appended = 0
        self._batched = 0
        self._writes = 0

    # --- backend hooks --------------------------------------------------------------------------

    async def _db_write(self, first_seq: int, rows: list[StoredRow], proj: ProjectionBatch) -> None:
        raise NotImplementedError

    async def _db_last_seq(self) -> int:
        raise NotImplementedError

    async def _db_read(self, from_seq: int, limit: int | None, position_id: str | None) -> list[RawRecord]:
        raise NotImplementedError

    # --- encoding -------------------------------------------------------------------------------

    def _store(self, entry: Entry) -> StoredRow:
        if not isinstance(entry, Entry):
            raise TypeError(f"expected a journal Entry, got {type(entry).__name__}")
        kind, data = self.codec.encode(entry.payload)
        changes = changes_of(kind, entry.payload, entry.position_id)
        return StoredRow(entry.ts_ms, kind, entry.position_id, data, zlib.crc32(data), entry.payload, changes)

    def decode(self, raw: RawRecord) -> Record:
        """Decode one stored row; :class:`JournalCorrupt` naming its seq if it cannot be."""
        if not raw.crc_ok:
            raise JournalCorrupt(
                f"checksum mismatch (stored {raw.crc}, computed {zlib.crc32(raw.data)}; "
                f"{len(raw.data)} bytes)",
                seq=raw.seq,
                kind=raw.kind,
            )
        payload = self.codec.decode(raw.kind, raw.data, seq=raw.seq)
        return Record(raw.seq, raw.ts_ms, raw.kind, raw.position_id, payload)

    # --- writing --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise JournalClosed(f"{self.backend} journal is closed")

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Durably append ``entries`` after everything queued; return their seqs."""
        self._check_open()
        rows = [self._store(e) for e in entries]
        async with self._write_lock:
            queued = self._take_pending(None)
            first = await self._write(queued, rows)
        self._appended += len(rows)
        return list(range(first, first + len(rows)))

    def append_nowait(self, entry: Entry) -> None:
        """Queue ``entry`` for the batched writer (not durable until written).

        The entry is checked here (an :class:`Entry` of a registered class) and encoded by the
        writer, off the caller's path."""
        self._check_open()
        if len(self._pending) >= self.max_pending:
            raise JournalFull(
                f"{len(self._pending)} entries wait for the journal writer (limit {self.max_pending}); "
                "is run_writer running?"
            )
        if not isinstance(entry, Entry):
            raise TypeError(f"expected a journal Entry, got {type(entry).__name__}")
        self.codec.tag_of(entry.payload)  # unregistered payloads fail now, not in the writer
        self._pending.append(entry)
        self._batched += 1
        self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far, durably."""
        self._check_open()
        await self._flush_all()

    async def _flush_all(self) -> None:
        async with self._write_lock:
            while self._pending or self._inflight is not None:
                await self._write(self._take_pending(self.max_batch), [])

    def _take_pending(self, limit: int | None) -> list[StoredRow]:
        n = len(self._pending) if limit is None else min(limit, len(self._pending))
        taken = [self._pending.popleft() for _ in range(n)]
        try:
            return [r if isinstance(r, StoredRow) else self._store(r) for r in taken]
        except BaseException:  # nothing taken is lost: put it back, in order
            self._pending.extendleft(reversed(taken))
            raise

    async def _write(self, queued: list[StoredRow], rows: list[StoredRow]) -> int:
        """Write ``queued + rows`` in one transaction under the write lock; return the seq of ``rows[0]``
        (the seq after the queued rows, which may include re-queued rows of an unconfirmed write)."""
        try:
            if self._next_seq is None or self._inflight is not None:
                await self._resolve_inflight(queued)
        except BaseException:  # nothing was written: keep the queued rows, in order
            self._pending.extendleft(reversed(queued))
            raise
        assert self._next_seq is not None
        batch = queued + rows
        first = self._next_seq
        if not batch:
            return first
        proj = project_batch((first + i, r) for i, r in enumerate(batch))
        try:
            await self._db_write(first, batch, proj)
        except JournalWriteFailed:  # known not stored: queue its queued rows again, in order
            self._next_seq = None
            self._pending.extendleft(reversed(queued))
            raise
        except BaseException:  # cancelled or the link broke: it may or may not have committed
            self._next_seq = None
            self._inflight = (first + len(batch) - 1, queued)
            raise
        self._next_seq = first + len(batch)
        self._writes += 1
        return first + len(queued)

    async def _resolve_inflight(self, queued: list[StoredRow]) -> None:
        """Learn the stored last seq; if a write of unknown outcome never committed, put its queued
        rows at the front of ``queued`` (they were queued before anything now in it)."""
        last = await self._db_last_seq()
        if self._inflight is not None:
            inflight_last, inflight_rows = self._inflight
            self._inflight = None
            if last < inflight_last:
                queued[:0] = inflight_rows
        self._next_seq = last + 1

    async def run_writer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write queued entries in batches until the journal closes or this task is cancelled;
        then flush what is left, shielded, within ``close_timeout`` seconds."""
        task_status.started()
        try:
            while not self._closed:
                await self._wake.wait()
                # a group-commit window: whatever queued the first entry (a hedge about to be
                # written to the venue, say) finishes before encoding and the database thread
                # compete with it for the loop and the GIL
                await trio.sleep(self.batch_window)
                self._wake = trio.Event()
                if self._closed:
                    break
                while self._pending or self._inflight is not None:
                    # the lock is taken per batch and trio.Lock is fair, so a critical append
                    # waits for at most one batch, then writes the rest of the queue itself
                    async with self._write_lock:
                        await self._write(self._take_pending(self.max_batch), [])
        finally:
            await self._final_flush()

    async def _final_flush(self) -> None:
        with trio.move_on_after(self.close_timeout, shield=True):
            await self._flush_all()
        if self._pending or self._inflight is not None:
            raise JournalError(
                f"{len(self._pending)} queued journal entries could not be written within "
                f"{self.close_timeout} s"
            )

    # --- reading --------------------------------------------------------------------------------

    async def read(
        self, from_seq: int = 0, limit: int | None = None, *, position_id: str | None = None
    ) -> list[Record]:
        """Decoded records with ``seq >= from_seq`` in seq order, at most ``limit``, optionally
        only those of one position. Page through a long journal with ``from_seq=last.seq + 1``."""
        raw = await self.read_raw(from_seq, limit, position_id=position_id)
        return [self.decode(r) for r in raw]

    async def read_raw(
        self, from_seq: int = 0, limit: int | None = None, *, position_id: str | None = None
    ) -> list[RawRecord]:
        """Undecoded rows, selected as by :meth:`read` (for tools that must show a bad row)."""
        self._check_open()
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return await self._db_read(from_seq, limit, position_id)

    async def last_seq(self) -> int:
        """The highest stored seq (0 when empty)."""
        self._check_open()
        return await self._db_last_seq()

    def statistics(self) -> JournalStatistics:
        """Counters since open."""
        last = None if self._next_seq is None else self._next_seq - 1
        return JournalStatistics(last, len(self._pending), self._appended, self._batched, self._writes)

    async def aclose(self) -> None:
        """Flush what is queued (shielded, bounded by ``close_timeout``) and refuse further use."""
        if self._closed:
            return
        try:
            await self._final_flush()
        finally:
            self._closed = True
            self._wake.set()


def config_json(config: Mapping[str, Any]) -> bytes:
    """The stored form of a configuration snapshot (keys sorted, decimals as strings)."""
    return orjson.dumps(config, option=orjson.OPT_SORT_KEYS, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in a configuration snapshot")
