"""Request-weight and order-count limits, counted like Binance (pure; time is an argument).

Binance counts per fixed window aligned to its clock and reports the counts after every call
(``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S`` / ``-1M`` / ``-1D``). A request that takes the
weight over the limit is answered 429 / -1003, an order over an order limit 429 / -1015, both
with ``Retry-After`` = seconds to the end of the window.

>>> usage = Usage(weight_limit=3, order_limits={"10s": 1})
>>> usage.charge(2, 0, 0)[1] is None, usage.charge(2, 0, 1_000)[1].code
(True, -1003)
>>> usage.charge(1, 0, 60_000)[0]["X-MBX-USED-WEIGHT-1M"]
'1'
"""

from __future__ import annotations

import math

import attrs

from fundarb.sim.binance_server._auth import ApiError

__all__ = ["Usage", "fapi_usage", "spot_usage"]

_WINDOWS = {"10s": 10_000, "1m": 60_000, "1d": 86_400_000}
_UNITS = {"10s": "10 SECOND", "1m": "1 MINUTE", "1d": "1 DAY"}


def _check_limits(_inst: object, _attr: object, value: dict[str, int]) -> None:
    for interval, limit in value.items():
        if interval not in _WINDOWS or limit < 1:
            raise ValueError(f"order limit {interval}={limit}: intervals are 10s, 1m, 1d and limits >= 1")


@attrs.define
class Usage:
    """The counters of one API family (see the module docstring)."""

    weight_limit: int = attrs.field(validator=attrs.validators.ge(1))
    order_limits: dict[str, int] = attrs.field(factory=dict, validator=_check_limits)
    _counts: dict[tuple[str, str, int], int] = attrs.field(factory=dict)

    def _add(self, kind: str, interval: str, now_ms: int, amount: int) -> tuple[int, int]:
        window = _WINDOWS[interval]
        start = now_ms // window * window
        key = (kind, interval, start)
        self._counts[key] = used = self._counts.get(key, 0) + amount
        if len(self._counts) > 64:  # forget windows that are over
            for old in [k for k in self._counts if k[2] + _WINDOWS[k[1]] <= now_ms]:
                del self._counts[old]
        return used, start + window

    def charge(self, weight: int, orders: int, now_ms: int) -> tuple[dict[str, str], ApiError | None]:
        """Count one request; returns the usage headers and the 429 answer when over a limit."""
        headers: dict[str, str] = {}
        error: ApiError | None = None
        used, end = self._add("weight", "1m", now_ms, weight)
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        if used > self.weight_limit:
            error = ApiError(
                429,
                -1003,
                f"Too much request weight used; current limit is {self.weight_limit} request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API.",
                {"Retry-After": str(max(1, math.ceil((end - now_ms) / 1000)))},
            )
        if orders:
            for interval, limit in sorted(self.order_limits.items(), key=lambda kv: _WINDOWS[kv[0]]):
                count, end = self._add("orders", interval, now_ms, orders)
                headers[f"X-MBX-ORDER-COUNT-{interval.upper()}"] = str(count)
                if count > limit and error is None:
                    error = ApiError(
                        429,
                        -1015,
                        f"Too many new orders; current limit is {limit} orders per {_UNITS[interval]}.",
                        {"Retry-After": str(max(1, math.ceil((end - now_ms) / 1000)))},
                    )
        if error is not None:
            error.headers.update(headers)
        return headers, error


def spot_usage() -> Usage:
    """Binance spot's published limits: 6000 weight per minute, 100 orders per 10 s, 200000 per day."""
    return Usage(6000, {"10s": 100, "1d": 200_000})


def fapi_usage() -> Usage:
    """Binance USDⓈ-M's published limits: 2400 weight per minute, 300 orders per 10 s, 1200 per minute."""
    return Usage(2400, {"10s": 300, "1m": 1200})
