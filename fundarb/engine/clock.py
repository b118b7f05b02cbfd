"""The engine's clock: wall-clock milliseconds derived from Trio's clock.

The wall clock is read once, at start; after that time advances with ``trio.current_time()``,
so tests under ``autojump_clock`` are deterministic and instant, and a timer armed for a
wall-clock deadline maps to a Trio deadline exactly.
"""

from __future__ import annotations

import time

import attrs
import trio

__all__ = ["EngineClock"]


@attrs.define
class EngineClock:
    """``now_ms()`` in ms since the epoch; ``trio_deadline(ms)`` for ``trio.sleep_until``."""

    base_ms: int
    base_trio: float

    @classmethod
    def start(cls, base_ms: int | None = None) -> EngineClock:
        """A clock anchored now (inside ``trio.run``); ``base_ms`` overrides the wall clock."""
        wall = time.time_ns() // 1_000_000 if base_ms is None else base_ms
        return cls(wall, trio.current_time())

    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        return self.base_ms + int((trio.current_time() - self.base_trio) * 1000)

    def trio_deadline(self, at_ms: int) -> float:
        """The Trio clock reading at which wall time ``at_ms`` arrives."""
        return self.base_trio + (at_ms - self.base_ms) / 1000
