"""Binance error codes and HTTP statuses -> the venue error taxonomy.

One table (:data:`CODE_TABLE`) maps a code to a class; a few codes depend on the message
(``-2010`` is both "insufficient balance" and "LIMIT_MAKER would take"; ``-2011`` is "unknown
order" or another cancel rejection). Backend-timeout codes and 5xx statuses mean the request
may have executed: ``OutcomeUnknown`` for a mutating call, ``VenueUnavailable`` for a read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    PostOnlyWouldCross,
    RateLimited,
    ReduceOnlyRejected,
    TimestampOutsideWindow,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)

__all__ = [
    "CODE_TABLE",
    "LISTEN_KEY_EXPIRED",
    "error_from_code",
    "error_from_response",
    "error_from_ws_api",
    "retry_after",
]

VENUE = "binance"
LISTEN_KEY_EXPIRED = -1125

CODE_TABLE: dict[int, type[VenueError]] = {
    -1003: RateLimited,  # TOO_MANY_REQUESTS
    -1015: RateLimited,  # TOO_MANY_ORDERS
    -1021: TimestampOutsideWindow,
    -2013: OrderNotFound,  # NO_SUCH_ORDER
    -2018: InsufficientMargin,  # BALANCE_NOT_SUFFICIENT
    -2019: InsufficientMargin,  # MARGIN_NOT_SUFFICIEN
    -1111: BadPrecision,  # BAD_PRECISION
    -1013: BadPrecision,  # filter failure (LOT_SIZE, PRICE_FILTER, NOTIONAL, ...)
    -4003: BadPrecision,  # quantity less than zero
    -4004: BadPrecision,  # quantity less than min
    -4005: BadPrecision,  # quantity greater than max
    -4014: BadPrecision,  # PRICE_NOT_INCREASED_BY_TICK_SIZE
    -4023: BadPrecision,  # QTY_NOT_INCREASED_BY_STEP_SIZE
    -4164: BadPrecision,  # MIN_NOTIONAL
    -2022: ReduceOnlyRejected,  # REDUCE_ONLY_REJECT
    -4062: ReduceOnlyRejected,  # REDUCE_ONLY_CONFLICT
    -2026: ReduceOnlyRejected,  # order type not supported with reduceOnly
    -5022: PostOnlyWouldCross,  # GTX order would take
}
#: "Send status unknown" codes: the backend may have processed the request.
UNKNOWN_OUTCOME_CODES = frozenset({-1000, -1001, -1006, -1007})


def retry_after(headers: Mapping[str, str], default: float = 60.0) -> float:
    """Seconds from a ``Retry-After`` header (``default`` when absent or unreadable)."""
    raw = headers.get("retry-after")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value >= 0 and value == value else default


def error_from_code(code: int, msg: str, *, mutating: bool, retry_after_s: float = 1.0) -> VenueError:
    """The taxonomy error for a Binance error body ``{"code": code, "msg": msg}``."""
    text = f"binance {code}: {msg}"
    low = msg.lower()
    if code in UNKNOWN_OUTCOME_CODES:
        return (OutcomeUnknown if mutating else VenueUnavailable)(text, venue=VENUE, code=code)
    if code == -2010:
        if "insufficient balance" in low:
            return InsufficientMargin(text, reason=msg, venue=VENUE, code=code)
        if "immediately match and take" in low:
            return PostOnlyWouldCross(text, reason=msg, venue=VENUE, code=code)
        return OrderRejected(text, reason=msg, venue=VENUE, code=code)
    if code == -2011 and "unknown order" in low:
        return OrderNotFound(text, venue=VENUE, code=code)
    cls = CODE_TABLE.get(code, OrderRejected)
    if cls is RateLimited:
        return RateLimited(text, retry_after=retry_after_s, venue=VENUE, code=code)
    if issubclass(cls, OrderRejected):
        return cls(text, reason=msg, venue=VENUE, code=code)
    return cls(text, venue=VENUE, code=code)


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, mutating: bool
) -> VenueError:
    """The taxonomy error for a non-2xx answer."""
    if status in (429, 418):
        what = "rate limit hit" if status == 429 else "IP banned for rate-limit violations"
        return RateLimited(
            f"binance HTTP {status}: {what}", retry_after=retry_after(headers), venue=VENUE, code=status
        )
    if status >= 500:
        cls = OutcomeUnknown if mutating else VenueUnavailable
        return cls(f"binance HTTP {status}: execution status unknown", venue=VENUE, code=status)
    if status == 403:
        return VenueUnavailable(
            "binance HTTP 403: blocked by the web application firewall", venue=VENUE, code=403
        )
    try:
        doc = orjson.loads(body)
        code, msg = doc["code"], doc.get("msg", "")
        if type(code) is not int or not isinstance(msg, str):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return VenueProtocolError(f"binance HTTP {status} without an error code: {body[:200]!r}", venue=VENUE)
    return error_from_code(code, msg, mutating=mutating, retry_after_s=retry_after(headers, 1.0))


def error_from_ws_api(status: Any, error: Any, *, mutating: bool) -> VenueError:
    """The taxonomy error for a WebSocket-API answer ``{"id": .., "status": status, "error": error}``.

    The same rules as :func:`error_from_response`: 429/418 -> ``RateLimited`` (``retry_after``
    from ``error.data.retryAfter``, the venue time the limit lifts, minus ``error.data.serverTime``),
    5xx -> ``OutcomeUnknown`` (mutating) or ``VenueUnavailable``, 403 -> ``VenueUnavailable``,
    else the error code through :func:`error_from_code`.
    """
    if not isinstance(status, int) or not isinstance(error, dict):
        return VenueProtocolError(f"binance WS-API status {status!r} without an error object", venue=VENUE)
    if status in (429, 418):
        what = "rate limit hit" if status == 429 else "IP banned for rate-limit violations"
        return RateLimited(
            f"binance WS-API {status}: {what}", retry_after=_ws_retry_after(error), venue=VENUE, code=status
        )
    if status >= 500:
        cls = OutcomeUnknown if mutating else VenueUnavailable
        return cls(f"binance WS-API {status}: execution status unknown", venue=VENUE, code=status)
    if status == 403:
        return VenueUnavailable(
            "binance WS-API 403: blocked by the web application firewall", venue=VENUE, code=403
        )
    code, msg = error.get("code"), error.get("msg", "")
    if type(code) is not int or not isinstance(msg, str):
        return VenueProtocolError(
            f"binance WS-API {status} without an error code: {error!r:.200}", venue=VENUE
        )
    return error_from_code(code, msg, mutating=mutating)


def _ws_retry_after(error: Mapping[str, Any], default: float = 60.0) -> float:
    data = error.get("data")
    if not isinstance(data, dict):
        return default
    until, now = data.get("retryAfter"), data.get("serverTime")
    if type(until) is not int or type(now) is not int:
        return default
    return max(0.0, (until - now) / 1000)
