"""Domain values: venues, instruments, quotes, funding, orders, fills, balances, positions.

Every class here is a frozen attrs value. Prices and quantities are :class:`~decimal.Decimal`;
times are integer milliseconds since the UNIX epoch (``*_ms``), the unit every venue uses.
Invalid numbers raise :class:`~fundarb.core.errors.InvalidValue` at construction, so a NaN
price or a negative quantity never travels further than the edge that parsed it.

>>> from decimal import Decimal as D
>>> btc = Instrument(InstrumentId("binance", Market.PERPETUAL, "BTCUSDT"), base="BTC", quote="USDT",
...                  tick_size=D("0.1"), lot_step=D("0.001"), min_qty=D("0.001"), min_notional=D("100"))
>>> btc.round_qty(D("0.12345"))
Decimal('0.123')
"""

from __future__ import annotations

import enum
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation
from typing import Any

import attrs

from fundarb.core._checks import _finite, _non_empty, _non_negative, _optional, _positive, _timestamp
from fundarb.core.errors import InvalidOrder, InvalidValue

__all__ = [
    "ZERO",
    "Balance",
    "Fill",
    "FundingPayment",
    "FundingSnapshot",
    "Instrument",
    "InstrumentId",
    "Liquidity",
    "Market",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Quote",
    "Side",
    "TimeInForce",
    "VenueFillKind",
    "VenuePosition",
    "Wallet",
    "to_decimal",
]

ZERO = Decimal(0)


class Market(enum.Enum):
    """Which market of a venue an instrument trades on."""

    SPOT = "spot"
    PERPETUAL = "perp"


class Side(enum.Enum):
    """Order or leg direction."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        """The other side: what closes a position opened on this side."""
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1


class OrderType(enum.Enum):
    """Order type on the wire."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(enum.Enum):
    """How long a limit order rests. ``POST_ONLY`` is Binance's GTX."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderStatus(enum.Enum):
    """Venue-reported order status, normalized across venues."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """True when no further fills can follow (by the venue's own account)."""
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class Liquidity(enum.Enum):
    """Whether a fill added (maker) or took (taker) liquidity."""

    MAKER = "MAKER"
    TAKER = "TAKER"


class VenueFillKind(enum.Enum):
    """Fills the venue generated on its own, not in answer to our order."""

    LIQUIDATION = "LIQUIDATION"
    ADL = "ADL"
    SETTLEMENT = "SETTLEMENT"


class Wallet(enum.Enum):
    """Where a balance lives at a venue."""

    SPOT = "spot"
    MARGIN = "margin"
    FUTURES = "futures"


def to_decimal(value: Any, name: str = "value") -> Decimal:
    """Parse ``value`` into a finite Decimal, or raise :class:`InvalidValue` naming ``name``.

    Floats are refused: a float has already lost the venue's exact digits.

    >>> to_decimal("0.00010000", "rate")
    Decimal('0.00010000')
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidValue(
            f"{name}: expected a decimal string or Decimal, got {type(value).__name__} {value!r}"
        )
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, str)):
        try:
            d = Decimal(value)
        except (InvalidOperation, ValueError):
            raise InvalidValue(f"{name}: not a number: {value!r}") from None
    else:
        raise InvalidValue(f"{name}: expected a decimal string or Decimal, got {type(value).__name__}")
    if not d.is_finite():
        raise InvalidValue(f"{name}: not finite: {value!r}")
    return d


# --- instruments ----------------------------------------------------------------------------------


@attrs.frozen(order=True)
class InstrumentId:
    """Names one tradable market: ``(venue, market, symbol)``. Hashable and sortable.

    >>> str(InstrumentId("binance", Market.SPOT, "BTCUSDT"))
    'binance:spot:BTCUSDT'
    """

    venue: str = attrs.field(validator=_non_empty)
    market: Market
    symbol: str = attrs.field(validator=_non_empty)

    def __str__(self) -> str:
        return f"{self.venue}:{self.market.value}:{self.symbol}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Inverse of ``str()``: ``"binance:perp:BTCUSDT"`` -> InstrumentId."""
        try:
            venue, market, symbol = text.split(":")
            return cls(venue, Market(market), symbol)
        except ValueError:
            raise InvalidValue(f"instrument id: expected venue:market:symbol, got {text!r}") from None


@attrs.frozen
class Instrument:
    """Trading rules of one instrument. Quantities are in base-asset units.

    ``funding_interval_hours`` is 0 for spot and the venue's funding period for perpetuals.
    """

    id: InstrumentId
    base: str = attrs.field(validator=_non_empty)
    quote: str = attrs.field(validator=_non_empty)
    tick_size: Decimal = attrs.field(validator=_positive)
    lot_step: Decimal = attrs.field(validator=_positive)
    min_qty: Decimal = attrs.field(validator=_non_negative)
    min_notional: Decimal = attrs.field(validator=_non_negative)
    funding_interval_hours: int = attrs.field(default=8)

    @funding_interval_hours.validator
    def _check_interval(self, attribute: attrs.Attribute[int], value: int) -> None:
        if self.id.market is Market.PERPETUAL and value not in (1, 2, 4, 8):
            raise InvalidValue(f"funding_interval_hours: must be 1, 2, 4 or 8 for a perpetual, got {value}")

    @property
    def is_perpetual(self) -> bool:
        """True for a perpetual swap."""
        return self.id.market is Market.PERPETUAL

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round a quantity *down* to the lot step (never trade more than asked)."""
        return (qty / self.lot_step).to_integral_value(rounding=ROUND_DOWN) * self.lot_step

    def round_price(self, price: Decimal, side: Side | None = None) -> Decimal:
        """Round a price to the tick: passive for a side (buy down, sell up), nearest without one."""
        rounding = ROUND_HALF_EVEN if side is None else (ROUND_DOWN if side is Side.BUY else ROUND_UP)
        return (price / self.tick_size).to_integral_value(rounding=rounding) * self.tick_size

    def is_on_lot(self, qty: Decimal) -> bool:
        """True when ``qty`` is a whole number of lot steps."""
        return (qty % self.lot_step) == 0

    def is_on_tick(self, price: Decimal) -> bool:
        """True when ``price`` is a whole number of ticks."""
        return (price % self.tick_size) == 0

    def tradable_qty(self, qty: Decimal, price: Decimal) -> Decimal:
        """The largest quantity <= ``qty`` this venue accepts at ``price``; ZERO if none (dust)."""
        rounded = self.round_qty(qty)
        if rounded <= 0 or rounded < self.min_qty or rounded * price < self.min_notional:
            return ZERO
        return rounded

    def check_order(
        self, qty: Decimal, price: Decimal | None, reference_price: Decimal | None = None
    ) -> None:
        """Raise :class:`InvalidOrder` if the venue would reject this size or price.

        ``reference_price`` prices the notional check of a market order.
        """
        if qty <= 0:
            raise InvalidOrder(f"{self.id}: quantity must be > 0, got {qty}")
        if not self.is_on_lot(qty):
            raise InvalidOrder(f"{self.id}: quantity {qty} is not a multiple of the lot step {self.lot_step}")
        if qty < self.min_qty:
            raise InvalidOrder(f"{self.id}: quantity {qty} is below the minimum {self.min_qty}")
        if price is not None and not self.is_on_tick(price):
            raise InvalidOrder(f"{self.id}: price {price} is not a multiple of the tick {self.tick_size}")
        px = price if price is not None else reference_price
        if px is not None and qty * px < self.min_notional:
            raise InvalidOrder(f"{self.id}: notional {qty * px} is below the minimum {self.min_notional}")


# --- market data ----------------------------------------------------------------------------------


@attrs.frozen
class Quote:
    """Best bid and ask with sizes, as of ``ts_ms``."""

    instrument: InstrumentId
    bid: Decimal = attrs.field(validator=_positive)
    bid_size: Decimal = attrs.field(validator=_non_negative)
    ask: Decimal = attrs.field(validator=_positive)
    ask_size: Decimal = attrs.field(validator=_non_negative)
    ts_ms: int = attrs.field(validator=_timestamp)

    def __attrs_post_init__(self) -> None:
        if self.bid > self.ask:
            raise InvalidValue(f"{self.instrument}: crossed quote, bid {self.bid} > ask {self.ask}")

    @property
    def mid(self) -> Decimal:
        """Midpoint of bid and ask."""
        return (self.bid + self.ask) / 2

    @property
    def spread_bps(self) -> Decimal:
        """Spread in basis points of the mid."""
        return (self.ask - self.bid) / self.mid * 10000


@attrs.frozen
class FundingSnapshot:
    """A perpetual's funding state: the current (predicted) rate for the period ending at
    ``next_funding_ms``, with mark and index prices, as of ``ts_ms``.

    ``rate`` is per funding period; positive means longs pay shorts.
    """

    instrument: InstrumentId
    rate: Decimal = attrs.field(validator=_finite)
    next_funding_ms: int = attrs.field(validator=_timestamp)
    interval_hours: int = attrs.field()
    mark: Decimal = attrs.field(validator=_positive)
    index: Decimal | None = attrs.field(validator=_optional(_positive))
    ts_ms: int = attrs.field(validator=_timestamp)

    @interval_hours.validator
    def _check_interval(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value not in (1, 2, 4, 8):
            raise InvalidValue(f"interval_hours: must be 1, 2, 4 or 8, got {value}")

    @property
    def annualized(self) -> Decimal:
        """The rate expressed per year: ``rate * 8760 / interval``."""
        return self.rate * 8760 / self.interval_hours


# --- orders and fills -----------------------------------------------------------------------------


@attrs.frozen
class OrderRequest:
    """What we ask a venue to do. ``price`` is None exactly for MARKET orders.

    >>> from decimal import Decimal as D
    >>> OrderRequest("p1-A1", InstrumentId("sim", Market.PERPETUAL, "BTCUSDT"), Side.SELL, D("0.01"),
    ...              D("30000"), OrderType.LIMIT, TimeInForce.IOC).notional
    Decimal('300.00')
    """

    client_order_id: str = attrs.field(validator=_non_empty)
    instrument: InstrumentId
    side: Side
    quantity: Decimal = attrs.field(validator=_positive)
    price: Decimal | None = attrs.field(validator=_optional(_positive))
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False

    def __attrs_post_init__(self) -> None:
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise InvalidValue(f"{self.client_order_id}: a LIMIT order needs a price")
        if self.order_type is OrderType.MARKET and self.price is not None:
            raise InvalidValue(f"{self.client_order_id}: a MARKET order takes no price")
        if self.reduce_only and self.instrument.market is Market.SPOT:
            raise InvalidValue(f"{self.client_order_id}: reduce-only exists only on perpetuals")

    @property
    def notional(self) -> Decimal | None:
        """``quantity * price`` for limit orders; None for market orders."""
        return None if self.price is None else self.quantity * self.price


@attrs.frozen
class OrderUpdate:
    """A venue's report of an order's status. ``filled_qty`` is cumulative."""

    instrument: InstrumentId
    client_order_id: str = attrs.field(validator=_non_empty)
    venue_order_id: str | None
    status: OrderStatus
    side: Side
    quantity: Decimal = attrs.field(validator=_non_negative)
    filled_qty: Decimal = attrs.field(validator=_non_negative)
    avg_price: Decimal | None = attrs.field(validator=_optional(_non_negative))
    ts_ms: int = attrs.field(validator=_timestamp)
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.quantity > 0 and self.filled_qty > self.quantity:
            raise InvalidValue(
                f"{self.client_order_id}: filled {self.filled_qty} exceeds order quantity {self.quantity}"
            )


@attrs.frozen
class Fill:
    """One execution. ``fee`` may be negative (a maker rebate); ``venue_generated`` marks a fill
    the venue made on its own (liquidation, ADL, settlement), never in answer to our order."""

    instrument: InstrumentId
    client_order_id: str
    venue_order_id: str | None
    trade_id: str = attrs.field(validator=_non_empty)
    side: Side
    quantity: Decimal = attrs.field(validator=_positive)
    price: Decimal = attrs.field(validator=_positive)
    fee: Decimal = attrs.field(validator=_finite)
    fee_asset: str
    liquidity: Liquidity
    ts_ms: int = attrs.field(validator=_timestamp)
    venue_generated: VenueFillKind | None = None

    @property
    def notional(self) -> Decimal:
        """``quantity * price``."""
        return self.quantity * self.price


# --- account state --------------------------------------------------------------------------------


@attrs.frozen
class Balance:
    """One asset's balance in one wallet of a venue. ``borrowed`` is margin debt (principal + interest)."""

    venue: str = attrs.field(validator=_non_empty)
    wallet: Wallet
    asset: str = attrs.field(validator=_non_empty)
    free: Decimal = attrs.field(validator=_finite)
    locked: Decimal = attrs.field(default=ZERO, validator=_non_negative)
    borrowed: Decimal = attrs.field(default=ZERO, validator=_non_negative)
    ts_ms: int = attrs.field(default=0, validator=_timestamp)

    @property
    def total(self) -> Decimal:
        """``free + locked``."""
        return self.free + self.locked

    @property
    def net(self) -> Decimal:
        """``free + locked - borrowed``: what the wallet is worth in this asset."""
        return self.free + self.locked - self.borrowed


@attrs.frozen
class VenuePosition:
    """A venue's view of one perpetual position. ``quantity`` is signed: short is negative."""

    instrument: InstrumentId
    quantity: Decimal = attrs.field(validator=_finite)
    entry_price: Decimal = attrs.field(validator=_non_negative)
    mark_price: Decimal = attrs.field(validator=_non_negative)
    liquidation_price: Decimal | None = attrs.field(default=None, validator=_optional(_non_negative))
    unrealized_pnl: Decimal = attrs.field(default=ZERO, validator=_finite)
    leverage: Decimal = attrs.field(default=Decimal(1), validator=_positive)
    maintenance_margin: Decimal = attrs.field(default=ZERO, validator=_non_negative)
    margin_balance: Decimal | None = attrs.field(default=None, validator=_optional(_finite))
    adl_rank: int | None = None
    ts_ms: int = attrs.field(default=0, validator=_timestamp)

    @property
    def side(self) -> Side | None:
        """BUY for long, SELL for short, None when flat."""
        if self.quantity == 0:
            return None
        return Side.BUY if self.quantity > 0 else Side.SELL

    @property
    def notional(self) -> Decimal:
        """Absolute notional at the mark price."""
        return abs(self.quantity) * self.mark_price

    @property
    def liquidation_distance(self) -> Decimal | None:
        """Relative distance of the mark from the liquidation price (0.2 = 20 %), None if unknown."""
        if self.liquidation_price is None or self.liquidation_price == 0 or self.mark_price == 0:
            return None
        return abs(self.mark_price - self.liquidation_price) / self.mark_price


@attrs.frozen
class FundingPayment:
    """Funding credited (positive ``amount``) or debited (negative) on a perpetual position.

    ``payment_id`` is the venue's id for the income record (or a derived stable key), so the
    same payment reported twice is counted once.
    """

    instrument: InstrumentId
    payment_id: str = attrs.field(validator=_non_empty)
    amount: Decimal = attrs.field(validator=_finite)
    asset: str = attrs.field(validator=_non_empty)
    ts_ms: int = attrs.field(validator=_timestamp)
