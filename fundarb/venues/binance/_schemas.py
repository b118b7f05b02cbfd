"""Raw Binance payload shapes (the venue's own field names) and strict field readers.

The ``TypedDict`` classes document what the decoder reads; they are not validated at runtime
(that would cost more than the decoding). The readers below are: each raises ``KeyError``,
``TypeError`` or :class:`~fundarb.core.errors.InvalidValue` on a bad field, which
:mod:`~fundarb.venues.binance.decode` turns into one :class:`~fundarb.venues.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

from fundarb.core.errors import InvalidValue

__all__ = [
    "AccountUpdate",
    "BookTickerFutures",
    "BookTickerSpot",
    "ExecutionReport",
    "MarkPriceUpdate",
    "OrderTradeUpdate",
    "dec",
    "dec_or",
    "ms",
    "text",
]


class MarkPriceUpdate(TypedDict):
    """USDⓈ-M ``<symbol>@markPrice[@1s]`` (``/market`` route); also the items of ``!markPrice@arr``."""

    e: str  # "markPriceUpdate"
    E: int  # event time
    s: str  # symbol
    p: str  # mark price
    i: str  # index price
    r: str  # funding rate for the period ending at T
    T: int  # next funding time


class BookTickerSpot(TypedDict):
    """Spot ``<symbol>@bookTicker``: no ``e``, no event time."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class BookTickerFutures(BookTickerSpot):
    """USDⓈ-M ``<symbol>@bookTicker`` (``/public`` route): the spot fields plus ``e``, ``E``, ``T``."""

    e: str  # "bookTicker"
    E: int
    T: int


class OrderTradeUpdate(TypedDict):
    """USDⓈ-M user data ``ORDER_TRADE_UPDATE``; the order is in ``o`` (s, c, S, o, q, p, ap, x, X,
    i, l, z, L, N, n, T, t, m, R, ps, rp)."""

    e: str
    E: int
    T: int
    o: dict[str, Any]


class AccountUpdate(TypedDict):
    """USDⓈ-M user data ``ACCOUNT_UPDATE``: ``a.m`` reason, ``a.B`` balances, ``a.P`` positions,
    ``a.S`` the symbol of a FUNDING_FEE update (newer field)."""

    e: str
    E: int
    T: int
    a: dict[str, Any]


class ExecutionReport(TypedDict):
    """Spot/margin user data ``executionReport`` (c client id, C original client id on cancels,
    x execution type, X status, l/L last qty/price, z cumulative qty, Z cumulative quote, n/N fee)."""

    e: str
    E: int
    s: str
    c: str
    S: str
    x: str
    X: str


def dec(value: Any) -> Decimal:
    """A finite Decimal from a wire string (or int). Floats and NaN/Infinity are refused."""
    t = type(value)
    if t is str or t is int:
        d = Decimal(value)
        if d.is_finite():
            return d
        raise InvalidValue(f"not a finite number: {value!r}")
    raise TypeError(f"expected a decimal string, got {t.__name__}")


def dec_or(payload: Mapping[str, Any], key: str, default: Decimal) -> Decimal:
    """``dec(payload[key])`` when present and not null, else ``default``."""
    value = payload.get(key)
    return default if value is None else dec(value)


def ms(value: Any) -> int:
    """A non-negative int timestamp (ms)."""
    if type(value) is int and value >= 0:
        return value
    raise TypeError(f"expected a non-negative integer timestamp, got {value!r}")


def text(value: Any) -> str:
    """A non-empty string."""
    if type(value) is str and value:
        return value
    raise TypeError(f"expected a non-empty string, got {value!r}")
