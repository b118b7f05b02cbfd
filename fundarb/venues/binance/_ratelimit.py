"""A weight-based rate limiter fed by Binance's usage headers (pure; times are passed in).

Binance reports usage after every call: ``X-MBX-USED-WEIGHT-<n><S|M|H|D>`` and
``X-MBX-ORDER-COUNT-<n><S|M|H|D>``, counted in fixed windows aligned to the clock. Before a
call we ask :meth:`RateLimiter.delay` how long to wait so the call stays under
``headroom × limit`` in every window we know of, and after a 429/418 :meth:`RateLimiter.ban`
blocks everything until ``Retry-After`` has passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

__all__ = ["FAPI_LIMITS", "SAPI_LIMITS", "SPOT_LIMITS", "RateLimiter", "window_ms"]

_HEADER = re.compile(r"x-mbx-(used-weight|order-count)-(\d+)([smhd])", re.IGNORECASE)
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: (weights per window, orders per window) defaults from exchangeInfo.rateLimits.
Limits = tuple[dict[str, int], dict[str, int]]
SPOT_LIMITS: Limits = ({"1m": 6000}, {"10s": 100, "1d": 200_000})
FAPI_LIMITS: Limits = ({"1m": 2400}, {"10s": 300, "1m": 1200})
SAPI_LIMITS: Limits = ({"1m": 12_000}, {})


def window_ms(interval: str) -> int:
    """``"10s"`` -> 10000, ``"1m"`` -> 60000."""
    return int(interval[:-1]) * _UNIT_MS[interval[-1].lower()]


@attrs.define
class RateLimiter:
    """Usage budget of one API family (spot ``/api``, ``/sapi`` or ``/fapi``)."""

    weight_limits: dict[str, int] = attrs.field(factory=dict)
    order_limits: dict[str, int] = attrs.field(factory=dict)
    headroom: float = 0.9
    #: (kind, interval) -> (used, wall ms when observed)
    _used: dict[tuple[str, str], tuple[int, int]] = attrs.field(factory=dict)
    _banned_until: float = float("-inf")

    @classmethod
    def with_limits(cls, limits: Limits, headroom: float = 0.9) -> RateLimiter:
        """A limiter from a ``(weight_limits, order_limits)`` pair such as :data:`FAPI_LIMITS`."""
        return cls(dict(limits[0]), dict(limits[1]), headroom)

    def observe(self, headers: Mapping[str, str], wall_ms: int) -> None:
        """Record the usage headers of an answer received at ``wall_ms``."""
        for name, value in headers.items():
            m = _HEADER.fullmatch(name)
            if m is None:
                continue
            try:
                used = int(value)
            except ValueError:
                continue
            kind = "weight" if m.group(1).lower() == "used-weight" else "orders"
            self._used[(kind, f"{m.group(2)}{m.group(3).lower()}")] = (used, wall_ms)

    def used(self, kind: str, interval: str, wall_ms: int) -> int:
        """Last known usage of ``kind`` ("weight" or "orders") in the window containing ``wall_ms``."""
        seen = self._used.get((kind, interval))
        if seen is None:
            return 0
        used, at = seen
        w = window_ms(interval)
        return used if at // w == wall_ms // w else 0

    def ban(self, seconds: float, now: float) -> None:
        """Block every call until ``now + seconds`` (monotonic time, e.g. ``trio.current_time()``)."""
        self._banned_until = max(self._banned_until, now + seconds)

    def delay(self, weight: int, orders: int, wall_ms: int, now: float) -> float:
        """Seconds to wait before a call costing ``weight`` and ``orders`` may be sent."""
        wait = max(0.0, self._banned_until - now)
        for kind, cost, limits in (
            ("weight", weight, self.weight_limits),
            ("orders", orders, self.order_limits),
        ):
            if cost <= 0:
                continue
            for interval, limit in limits.items():
                if self.used(kind, interval, wall_ms) + cost > limit * self.headroom:
                    w = window_ms(interval)
                    wait = max(wait, ((wall_ms // w + 1) * w - wall_ms) / 1000)
        return wait
