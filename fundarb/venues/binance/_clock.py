"""Estimated offset between the venue's clock and ours (pure; times are passed in).

Binance accepts a signed request iff ``timestamp < serverTime + 1000`` and
``serverTime - timestamp <= recvWindow``. We stamp requests with our clock plus the offset
estimated from a ``/time`` round trip: ``offset = server - (sent + received) / 2``.
"""

from __future__ import annotations

import attrs

__all__ = ["ClockOffset"]


@attrs.define
class ClockOffset:
    """The current estimate. ``synced`` is False until the first :meth:`update`."""

    offset_ms: int = 0
    round_trip_ms: int = 0
    synced: bool = False
    synced_at_ms: int = 0

    def update(self, sent_ms: int, server_ms: int, received_ms: int) -> None:
        """Record one round trip: our send time, the server's time, our receive time."""
        self.round_trip_ms = max(0, received_ms - sent_ms)
        self.offset_ms = server_ms - (sent_ms + received_ms) // 2
        self.synced = True
        self.synced_at_ms = received_ms

    def timestamp(self, local_ms: int) -> int:
        """The venue time corresponding to our ``local_ms``."""
        return local_ms + self.offset_ms

    def is_stale(self, local_ms: int, max_age_ms: int) -> bool:
        """True when never synced or last synced more than ``max_age_ms`` ago."""
        return not self.synced or local_ms - self.synced_at_ms > max_age_ms
