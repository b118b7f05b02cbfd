"""The durable journal: append-only events, projections, migrations; SQLite or PostgreSQL.

>>> # async with open_journal(os.environ.get("FUNDARB_DATABASE_URL"), data_dir) as journal:
>>> #     async with trio.open_nursery() as nursery:
>>> #         await nursery.start(journal.run_writer)
>>> #         [seq] = await journal.append([Entry(place_order, ts_ms=now, position_id="p1")])
>>> #         journal.append_nowait(Entry(quote_received, ts_ms=now))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fundarb.journal import _core_tags as _core_tags  # registers the core tags
from fundarb.journal.base import (
    Entry,
    Journal,
    JournalMeta,
    JournalStatistics,
    OrderRow,
    PositionRow,
    RawRecord,
    Record,
)
from fundarb.journal.codec import CODEC, Codec, journaled, register
from fundarb.journal.errors import (
    JournalClosed,
    JournalCorrupt,
    JournalEncodeError,
    JournalError,
    JournalFull,
    JournalSchemaTooNew,
    JournalWriteFailed,
)
from fundarb.journal.migrations import LATEST as SCHEMA_VERSION
from fundarb.journal.projections import (
    OrderChange,
    PositionChange,
    order_intent,
    order_report,
    projector,
    register_projector,
)

__all__ = [
    "CODEC",
    "JOURNAL_FILENAME",
    "SCHEMA_VERSION",
    "Codec",
    "Entry",
    "Journal",
    "JournalClosed",
    "JournalCorrupt",
    "JournalEncodeError",
    "JournalError",
    "JournalFull",
    "JournalMeta",
    "JournalSchemaTooNew",
    "JournalStatistics",
    "JournalWriteFailed",
    "OrderChange",
    "OrderRow",
    "PositionChange",
    "PositionRow",
    "RawRecord",
    "Record",
    "journaled",
    "open_journal",
    "order_intent",
    "order_report",
    "projector",
    "register",
    "register_projector",
]

JOURNAL_FILENAME = "journal.sqlite3"
"""The SQLite journal's file name inside ``$FUNDARB_DATA_DIR``."""


@asynccontextmanager
async def open_journal(
    database_url: str | None, data_dir: Path | str = "./var", **options: Any
) -> AsyncIterator[Journal]:
    """Open the journal: PostgreSQL when ``database_url`` is set, else SQLite at
    ``data_dir/journal.sqlite3``. Migrates at open (refusing a newer schema with
    :class:`JournalSchemaTooNew`); flushes queued entries and closes on exit.

    Options go to the backend (``codec``, ``max_pending``, ``max_batch``, ``close_timeout``;
    PostgreSQL also ``schema``, ``min_size``, ``max_size``, ``server_settings``).
    """
    if database_url:
        from fundarb.journal.postgres import open_postgres_journal

        async with open_postgres_journal(database_url, **options) as pg:
            yield pg
    else:
        from fundarb.journal.sqlite import open_sqlite_journal

        async with open_sqlite_journal(Path(data_dir) / JOURNAL_FILENAME, **options) as lite:
            yield lite
