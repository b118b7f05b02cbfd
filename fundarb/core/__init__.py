"""The sans-IO core: pure, synchronous, stdlib + attrs only.

Curated re-exports, so callers write ``from fundarb.core import Quote``. To export a new module's
names, import them below and add them to ``__all__`` (kept sorted: ruff RUF022).
``tests/test_public_api.py`` checks that every listed name exists and is the module's own object.
"""

from fundarb.core.errors import FundarbError, InvalidOrder, InvalidValue, TransitionError
from fundarb.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Instrument,
    InstrumentId,
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    VenueFillKind,
    VenuePosition,
    Wallet,
    to_decimal,
)
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingReceived,
    FundingSettled,
    OrderReported,
    PositionReported,
    QuoteReceived,
    StreamDisconnected,
    StreamResynced,
    VenueEvent,
)

__all__ = [
    "ZERO",
    "Balance",
    "BalanceReported",
    "Fill",
    "FillReported",
    "FundarbError",
    "FundingPayment",
    "FundingReceived",
    "FundingSettled",
    "FundingSnapshot",
    "Instrument",
    "InstrumentId",
    "InvalidOrder",
    "InvalidValue",
    "Liquidity",
    "Market",
    "OrderReported",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "PositionReported",
    "Quote",
    "QuoteReceived",
    "Side",
    "StreamDisconnected",
    "StreamResynced",
    "TimeInForce",
    "TransitionError",
    "VenueEvent",
    "VenueFillKind",
    "VenuePosition",
    "Wallet",
    "to_decimal",
]
