"""One sample value of every core class the journal registers, with awkward digits."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from fundarb.core import model as m
from fundarb.core import venue_events as ve

PERP = m.InstrumentId("binance", m.Market.PERPETUAL, "BTCUSDT")
SPOT = m.InstrumentId("binance", m.Market.SPOT, "BTCUSDT")

INSTRUMENT = m.Instrument(PERP, "BTC", "USDT", D("0.10"), D("0.001"), D("0.001"), D("100"), 8)
QUOTE = m.Quote(PERP, D("30000.10"), D("1.500"), D("30000.20"), D("0E-8"), 1_700_000_000_123)
FUNDING = m.FundingSnapshot(
    PERP, D("-0.00010000"), 1_700_000_028_800, 8, D("30000.5"), None, 1_700_000_000_000
)
REQUEST = m.OrderRequest(
    "p1-A1", PERP, m.Side.SELL, D("0.010"), D("30000.5"), m.OrderType.LIMIT, m.TimeInForce.IOC
)
MARKET_REQUEST = m.OrderRequest("p1-B2", SPOT, m.Side.BUY, D("0.01"), None, m.OrderType.MARKET)
UPDATE = m.OrderUpdate(
    PERP,
    "p1-A1",
    "8675309",
    m.OrderStatus.PARTIALLY_FILLED,
    m.Side.SELL,
    D("0.010"),
    D("0.004"),
    D("30000.5"),
    1_700_000_000_200,
    "",
)
FILL = m.Fill(
    PERP,
    "p1-A1",
    None,
    "t-1",
    m.Side.SELL,
    D("0.004"),
    D("30000.5"),
    D("-0.0012"),
    "USDT",
    m.Liquidity.MAKER,
    1_700_000_000_201,
    None,
)
ADL_FILL = m.Fill(
    PERP,
    "autoclose-1",
    "9",
    "t-2",
    m.Side.BUY,
    D("1E-3"),
    D("3.0E+4"),
    D("0"),
    "USDT",
    m.Liquidity.TAKER,
    1,
    m.VenueFillKind.ADL,
)
BALANCE = m.Balance("binance", m.Wallet.FUTURES, "USDT", D("-12.5"), D("1"), D("0.25"), 5)
POSITION = m.VenuePosition(
    PERP, D("-0.010"), D("30000"), D("30010.1"), None, D("-0.101"), D("3"), D("1.2"), D("999.99"), 2, 7
)
PAYMENT = m.FundingPayment(PERP, "inc-77", D("0.03000000"), "USDT", 1_700_000_028_800)

SAMPLES: dict[type, Any] = {
    m.InstrumentId: PERP,
    m.Instrument: INSTRUMENT,
    m.Quote: QUOTE,
    m.FundingSnapshot: FUNDING,
    m.OrderRequest: REQUEST,
    m.OrderUpdate: UPDATE,
    m.Fill: ADL_FILL,
    m.Balance: BALANCE,
    m.VenuePosition: POSITION,
    m.FundingPayment: PAYMENT,
    ve.QuoteReceived: ve.QuoteReceived(QUOTE),
    ve.FundingReceived: ve.FundingReceived(FUNDING),
    ve.OrderReported: ve.OrderReported(UPDATE),
    ve.FillReported: ve.FillReported(FILL),
    ve.PositionReported: ve.PositionReported(POSITION),
    ve.BalanceReported: ve.BalanceReported(BALANCE),
    ve.FundingSettled: ve.FundingSettled(PAYMENT),
    ve.StreamDisconnected: ve.StreamDisconnected("binance", "user", "ping timeout", 12),
    ve.StreamResynced: ve.StreamResynced("binance", "user", 13),
}
