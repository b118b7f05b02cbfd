"""Perpetual funding and margin-borrow interest arithmetic (pure).

Funding settles at every multiple of the interval since the epoch (00:00, 08:00, 16:00 UTC for
8 h), as on Binance. A positive rate means longs pay shorts, on the position's notional at the
mark price: the account receives ``-quantity * mark * rate`` (signed quantity).

Borrow interest accrues at every whole hour on the outstanding debt: ``debt * apr / 8760``,
added to the debt (as Binance margin does, hourly).

>>> from decimal import Decimal as D
>>> funding_amount(D("2"), D("100"), D("0.0001"))   # a long pays
Decimal('-0.0200')
>>> settlement_times(0, 8 * 3_600_000 + 1, 8)
[28800000]
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["HOUR_MS", "funding_amount", "hourly_interest", "next_settlement_ms", "settlement_times"]

HOUR_MS = 3_600_000


def funding_amount(quantity: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position holder receives (negative: pays) at one settlement."""
    return -quantity * mark * rate


def next_settlement_ms(now_ms: int, interval_hours: int) -> int:
    """The first settlement time strictly after ``now_ms``."""
    step = interval_hours * HOUR_MS
    return (now_ms // step + 1) * step


def settlement_times(after_ms: int, until_ms: int, interval_hours: int) -> list[int]:
    """Settlement times ``t`` with ``after_ms < t <= until_ms``, ascending."""
    step = interval_hours * HOUR_MS
    first = (after_ms // step + 1) * step
    return list(range(first, until_ms + 1, step))


def hourly_interest(debt: Decimal, apr: Decimal) -> Decimal:
    """Interest charged on ``debt`` for one hour at yearly rate ``apr``."""
    return debt * apr / 8760
