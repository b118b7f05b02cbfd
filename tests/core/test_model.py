"""Domain values: invalid numbers are refused at construction; rounding respects the venue."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundarb.core.errors import InvalidOrder, InvalidValue
from fundarb.core.model import (
    Balance,
    Fill,
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
    VenuePosition,
    Wallet,
    to_decimal,
)

PERP_ID = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT_ID = InstrumentId("binance", Market.SPOT, "BTCUSDT")
PERP = Instrument(PERP_ID, "BTC", "USDT", D("0.1"), D("0.001"), D("0.001"), D("100"))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "abc", "", 1.5, True, None])
def test_to_decimal_refuses_non_finite_and_floats(bad):
    with pytest.raises(InvalidValue):
        to_decimal(bad, "price")


def test_to_decimal_keeps_the_venues_digits():
    assert to_decimal("0.00010000", "rate") == D("0.00010000")
    assert str(to_decimal("0.00010000")) == "0.00010000"


def test_instrument_id_round_trips_as_text():
    assert InstrumentId.parse(str(PERP_ID)) == PERP_ID
    with pytest.raises(InvalidValue):
        InstrumentId.parse("binance:BTCUSDT")
    with pytest.raises(InvalidValue):
        InstrumentId("", Market.SPOT, "X")


def test_instrument_rules_are_validated():
    with pytest.raises(InvalidValue, match="tick_size"):
        Instrument(PERP_ID, "BTC", "USDT", D(0), D("0.001"), D("0.001"), D("100"))
    with pytest.raises(InvalidValue, match="funding_interval"):
        Instrument(
            PERP_ID, "BTC", "USDT", D("0.1"), D("0.001"), D("0.001"), D("100"), funding_interval_hours=3
        )


def test_rounding_helpers():
    assert PERP.round_qty(D("0.12345")) == D("0.123")  # down: never more than asked
    assert PERP.round_price(D("30000.05")) == D("30000.0")  # nearest, half to even
    assert PERP.round_price(D("30000.07"), Side.BUY) == D("30000.0")  # passive: down for a buy
    assert PERP.round_price(D("30000.01"), Side.SELL) == D("30000.1")  # passive: up for a sell
    assert PERP.tradable_qty(D("0.0049"), D("30000")) == D("0.004")
    assert PERP.tradable_qty(D("0.003"), D("30000")) == 0  # $90 < $100 minimum notional: dust


@given(qty=st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=6))
def test_round_qty_is_on_lot_and_never_above(qty):
    r = PERP.round_qty(qty)
    assert r <= qty and PERP.is_on_lot(r) and qty - r < PERP.lot_step


def test_check_order_names_the_broken_rule():
    PERP.check_order(D("0.004"), D("30000.1"))
    with pytest.raises(InvalidOrder, match="lot step"):
        PERP.check_order(D("0.0045"), D("30000"))
    with pytest.raises(InvalidOrder, match="tick"):
        PERP.check_order(D("0.004"), D("30000.05"))
    with pytest.raises(InvalidOrder, match="notional"):
        PERP.check_order(D("0.003"), D("30000"))
    with pytest.raises(InvalidOrder, match="notional"):
        PERP.check_order(D("0.003"), None, reference_price=D("30000"))


def test_quotes_refuse_crossed_negative_and_nan():
    Quote(SPOT_ID, D("29999"), D("1"), D("30000"), D("2"), 1)
    with pytest.raises(InvalidValue, match="crossed"):
        Quote(SPOT_ID, D("30001"), D("1"), D("30000"), D("2"), 1)
    with pytest.raises(InvalidValue, match="bid"):
        Quote(SPOT_ID, D("-1"), D("1"), D("30000"), D("2"), 1)
    with pytest.raises(InvalidValue):
        Quote(SPOT_ID, D("NaN"), D("1"), D("30000"), D("2"), 1)
    with pytest.raises(InvalidValue, match="ts_ms"):
        Quote(SPOT_ID, D("1"), D("1"), D("2"), D("2"), -5)


def test_funding_snapshot_allows_negative_rates_not_bad_intervals():
    f = FundingSnapshot(PERP_ID, D("-0.0003"), 1_700_000_000_000, 8, D("30000"), D("29990"), 1)
    assert f.annualized == D("-0.0003") * 1095
    with pytest.raises(InvalidValue, match="interval"):
        FundingSnapshot(PERP_ID, D("0.0001"), 1, 3, D("30000"), None, 1)
    with pytest.raises(InvalidValue, match="mark"):
        FundingSnapshot(PERP_ID, D("0.0001"), 1, 8, D("0"), None, 1)


def test_order_request_shapes():
    limit = OrderRequest(
        "c1", PERP_ID, Side.SELL, D("0.01"), D("30000"), OrderType.LIMIT, TimeInForce.POST_ONLY
    )
    assert limit.notional == D("300.00")
    with pytest.raises(InvalidValue, match="needs a price"):
        OrderRequest("c1", PERP_ID, Side.SELL, D("0.01"), None, OrderType.LIMIT)
    with pytest.raises(InvalidValue, match="takes no price"):
        OrderRequest("c1", PERP_ID, Side.SELL, D("0.01"), D("1"), OrderType.MARKET)
    with pytest.raises(InvalidValue, match="reduce-only"):
        OrderRequest("c1", SPOT_ID, Side.SELL, D("0.01"), None, OrderType.MARKET, reduce_only=True)
    with pytest.raises(InvalidValue, match="quantity"):
        OrderRequest("c1", PERP_ID, Side.SELL, D("-0.01"), None, OrderType.MARKET)


def test_order_update_fill_balance_and_position():
    with pytest.raises(InvalidValue, match="exceeds"):
        OrderUpdate(PERP_ID, "c1", "1", OrderStatus.FILLED, Side.BUY, D("1"), D("2"), None, 1)
    assert OrderStatus.CANCELED.is_terminal and not OrderStatus.PARTIALLY_FILLED.is_terminal
    rebate = Fill(
        PERP_ID, "c1", "1", "t1", Side.BUY, D("1"), D("100"), D("-0.02"), "USDT", Liquidity.MAKER, 1
    )
    assert rebate.notional == D("100")
    with pytest.raises(InvalidValue, match="quantity"):
        Fill(PERP_ID, "c1", "1", "t1", Side.BUY, D("0"), D("100"), D("0"), "USDT", Liquidity.MAKER, 1)
    b = Balance("binance", Wallet.MARGIN, "BTC", D("1"), D("0.5"), D("0.2"))
    assert b.total == D("1.5") and b.net == D("1.3")
    p = VenuePosition(PERP_ID, D("-2"), D("30000"), D("30000"), D("36000"))
    assert p.side is Side.SELL and p.notional == D("60000") and p.liquidation_distance == D("0.2")
    assert Side.BUY.opposite is Side.SELL and Side.SELL.sign == -1
