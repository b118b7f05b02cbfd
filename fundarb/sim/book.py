"""A synthetic order book around a reference price, and order matching against it.

Pure: no clock, no I/O. The book on each side is ``levels`` price levels; level ``i`` sits
``half_spread_bps + i * level_step_bps`` away from the reference price (rounded outwards to the
tick) and holds ``level_notional / reference`` base units, jittered by ``depth_jitter`` from the
caller's seeded ``random.Random``. A taker order walks the levels, so a large order slips and,
past the last level, fills only partially. Liquidity taken is remembered per side until the next
reference price (:meth:`SyntheticBook.reprice`), so two orders in the same instant do not both
get the best level.

>>> from decimal import Decimal as D
>>> import random
>>> cfg = BookConfig(half_spread_bps=D("1"), level_step_bps=D("1"), level_notional=D("1000"), levels=3)
>>> book = SyntheticBook(cfg, tick=D("0.1"), lot=D("0.001"))
>>> book.reprice(D("1000"), random.Random(1))
>>> book.best_bid(), book.best_ask()
(Decimal('999.9'), Decimal('1000.1'))
"""

from __future__ import annotations

import random
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

import attrs

from fundarb.core.model import ZERO, Side

__all__ = ["BookConfig", "Level", "SyntheticBook"]

_BPS = Decimal(10000)


def _non_negative(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"{attribute.name}: must be a finite Decimal >= 0, got {value!r}")


@attrs.frozen
class BookConfig:
    """Shape of the synthetic book. Basis points are of the reference price."""

    half_spread_bps: Decimal = attrs.field(default=Decimal("0.5"), validator=_non_negative)
    level_step_bps: Decimal = attrs.field(default=Decimal("1"), validator=_non_negative)
    level_notional: Decimal = attrs.field(default=Decimal("200000"), validator=_non_negative)
    levels: int = attrs.field(default=20)
    depth_jitter: float = attrs.field(default=0.2)

    @levels.validator
    def _check_levels(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"levels: must be an int >= 1, got {value!r}")

    @depth_jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value < 1:
            raise ValueError(f"depth_jitter: must be in [0, 1), got {value!r}")


@attrs.frozen
class Level:
    """One price level: ``quantity`` base units available at ``price``."""

    price: Decimal
    quantity: Decimal


@attrs.define
class SyntheticBook:
    """The book of one instrument. Call :meth:`reprice` whenever the reference price moves."""

    config: BookConfig
    tick: Decimal
    lot: Decimal
    reference: Decimal | None = None
    _bids: list[Level] = attrs.field(factory=list)
    _asks: list[Level] = attrs.field(factory=list)
    _jitter: list[float] = attrs.field(factory=list)

    def reprice(self, reference: Decimal, rng: random.Random) -> None:
        """Rebuild both sides around ``reference`` (this also restores the liquidity taken).

        The depth jitter is drawn now (so the rng sequence does not depend on what is read
        later); the levels themselves are built on first use.
        """
        if reference <= 0:
            raise ValueError(f"reference price must be > 0, got {reference}")
        self.reference = reference
        self._jitter = [rng.random() for _ in range(2 * self.config.levels)]
        self._bids, self._asks = [], []
        if self._price(Side.SELL, 0) <= 0:
            raise ValueError(f"reference {reference} too small for tick {self.tick}")

    def _price(self, taker: Side, i: int) -> Decimal:
        """Price of level ``i`` on the side a ``taker`` order hits."""
        assert self.reference is not None
        off = (self.config.half_spread_bps + self.config.level_step_bps * i) / _BPS
        bid = (self.reference * (1 - off) / self.tick).to_integral_value(ROUND_FLOOR) * self.tick
        if taker is Side.SELL:
            return bid
        ask = (self.reference * (1 + off) / self.tick).to_integral_value(ROUND_CEILING) * self.tick
        return ask if ask > bid else bid + self.tick

    def _build(self) -> None:
        assert self.reference is not None
        cfg = self.config
        for i in range(cfg.levels):
            for side_levels, taker, j in ((self._bids, Side.SELL, 2 * i), (self._asks, Side.BUY, 2 * i + 1)):
                jitter = Decimal(repr(round(1 + cfg.depth_jitter * (2 * self._jitter[j] - 1), 6)))
                qty = (cfg.level_notional * jitter / self.reference / self.lot).to_integral_value(ROUND_DOWN)
                side_levels.append(Level(self._price(taker, i), qty * self.lot))

    def _side(self, taker: Side) -> list[Level]:
        if self.reference is None:
            raise ValueError("book has no reference price yet")
        if not self._bids:
            self._build()
        return self._asks if taker is Side.BUY else self._bids

    def best_bid(self) -> Decimal:
        """Best bid price (first level, even if its liquidity was taken)."""
        if self.reference is None:
            raise ValueError("book has no reference price yet")
        return self._price(Side.SELL, 0)

    def best_ask(self) -> Decimal:
        """Best ask price."""
        if self.reference is None:
            raise ValueError("book has no reference price yet")
        return self._price(Side.BUY, 0)

    def top_size(self, side: Side) -> Decimal:
        """Quantity left at the best level a taker on ``side`` would hit."""
        return self._side(side)[0].quantity

    def would_cross(self, side: Side, limit: Decimal) -> bool:
        """True when a limit order at ``limit`` would take liquidity now."""
        return limit >= self.best_ask() if side is Side.BUY else limit <= self.best_bid()

    def available(self, side: Side, limit: Decimal | None) -> Decimal:
        """Total quantity a taker on ``side`` could fill at prices no worse than ``limit``."""
        return sum(
            (lv.quantity for lv in self._side(side) if limit is None or _ok(side, lv.price, limit)), ZERO
        )

    def take(self, side: Side, quantity: Decimal, limit: Decimal | None, consume: bool = True) -> list[Level]:
        """Walk the book as a taker: fill up to ``quantity`` at prices no worse than ``limit``.

        Returns the executions (price, quantity), best first, and removes them from the book
        unless ``consume`` is False (a preview).
        """
        levels = self._side(side)
        out: list[Level] = []
        left = quantity
        for i, lv in enumerate(levels):
            if left <= 0:
                break
            if limit is not None and not _ok(side, lv.price, limit):
                break
            q = min(left, lv.quantity)
            if q > 0:
                out.append(Level(lv.price, q))
                if consume:
                    levels[i] = Level(lv.price, lv.quantity - q)
                left -= q
        return out


def _ok(side: Side, price: Decimal, limit: Decimal) -> bool:
    return price <= limit if side is Side.BUY else price >= limit
