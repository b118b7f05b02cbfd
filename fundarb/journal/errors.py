"""Errors raised by the journal.

Hierarchy::

    FundarbError
     └── JournalError               anything the journal refuses or cannot do
          ├── JournalCorrupt        a stored row cannot be decoded exactly (bad bytes, bad checksum,
          │                         unknown kind from a newer version); names the row's seq
          ├── JournalSchemaTooNew   the database was migrated by a newer fundarb; refuse to start
          ├── JournalEncodeError    a payload cannot be journaled (unregistered type, bad value)
          ├── JournalWriteFailed    the database refused a write: nothing of it was stored
          ├── JournalFull           the batched path holds too many unwritten entries
          └── JournalClosed         the journal was used after it was closed

A ``JournalCorrupt`` is never swallowed: a replay that skipped a row would rebuild a position
from a history that is not the one that was acted on.
"""

from __future__ import annotations

from fundarb.core.errors import FundarbError

__all__ = [
    "JournalClosed",
    "JournalCorrupt",
    "JournalEncodeError",
    "JournalError",
    "JournalFull",
    "JournalSchemaTooNew",
    "JournalWriteFailed",
]


class JournalError(FundarbError):
    """Base class of journal errors."""


class JournalCorrupt(JournalError):
    """A stored row cannot be decoded into the value that was written.

    ``seq`` names the row (None when the bytes did not come from a stored row), ``kind`` its tag.
    """

    def __init__(self, message: str, *, seq: int | None = None, kind: str | None = None) -> None:
        where = f"journal row seq={seq}" if seq is not None else "journal payload"
        if kind is not None:
            where += f" kind={kind!r}"
        super().__init__(f"{where}: {message}")
        self.seq = seq
        self.kind = kind


class JournalSchemaTooNew(JournalError):
    """The journal's schema version is newer than this code knows: the engine must not start."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"journal schema version {found} is newer than this fundarb knows ({known}); "
            "upgrade fundarb, never downgrade a journal"
        )
        self.found = found
        self.known = known


class JournalEncodeError(JournalError):
    """A payload cannot be journaled: its type is not registered, or a value cannot be encoded."""


class JournalFull(JournalError):
    """``append_nowait`` found the batched path over its pending limit: the writer cannot keep up."""


class JournalClosed(JournalError):
    """The journal was used after it was closed."""


class JournalWriteFailed(JournalError):
    """The database answered a write with an error, so none of it was stored (the transaction
    rolled back). Queued entries it carried are queued again; a critical append is not durable.

    A seq conflict means another process is writing the same journal: one engine per journal.
    """
