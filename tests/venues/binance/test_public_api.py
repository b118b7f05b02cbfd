"""The adapter's public face: exports, protocol conformance, REST payload translation."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

import fundarb.venues.binance as binance
from fundarb.core.model import Market, OrderStatus, Side
from fundarb.venues.binance import BinanceVenue, Credentials
from fundarb.venues.binance import _translate_rest as rt
from fundarb.venues.protocol import Venue

from .conftest import payload


def test_exports() -> None:
    assert sorted(binance.__all__) == sorted(
        [
            "LIVE_URLS", "TESTNET_URLS", "BaseUrls", "BinanceDecoder", "BinanceVenue", "Credentials",
            "DecodeStatistics", "ReconnectPolicy", "Secret", "decode", "decode_statistics", "sign",
        ]
    )  # fmt: skip
    for name in binance.__all__:
        assert getattr(binance, name).__doc__ or name.endswith("_URLS")


def test_implements_the_venue_protocol() -> None:
    v = BinanceVenue(Credentials("k", "s3cr3t-value"))
    assert isinstance(v, Venue)
    assert v.name == "binance"
    assert "s3cr3t-value" not in repr(v)


def test_constructor_takes_key_and_secret_too() -> None:
    v = BinanceVenue("my-key", "my-secret-value", testnet=True)
    assert v.rest.credentials == Credentials("my-key", "my-secret-value")
    assert v.rest.urls.futures == "https://testnet.binancefuture.com"
    with pytest.raises(ValueError):
        BinanceVenue("my-key")
    with pytest.raises(ValueError):
        BinanceVenue(Credentials("k", "s"), "s")


def test_spot_rest_order_answers() -> None:
    full = rt.order_update_from_rest(payload("spot_rest_new_order_full.json"), Market.SPOT)
    assert (full.client_order_id, full.venue_order_id, full.status, full.side) == (
        "6gCrw2kRUAF9CvJDGP16IP", "28", OrderStatus.FILLED, Side.SELL)  # fmt: skip
    assert (full.quantity, full.filled_qty, full.avg_price, full.ts_ms) == (
        D("10.00000000"), D("10.00000000"), D("1"), 1507725176595)  # fmt: skip
    result = rt.order_update_from_rest(payload("spot_rest_new_order_result.json"), Market.SPOT)
    assert result.status is OrderStatus.FILLED and result.filled_qty == D("10")
    cancel = rt.order_update_from_rest(payload("spot_rest_cancel_order.json"), Market.SPOT)
    assert (cancel.client_order_id, cancel.status, cancel.filled_qty, cancel.avg_price) == (
        "myOrder1", OrderStatus.CANCELED, D("0"), None)  # fmt: skip
    query = rt.order_update_from_rest(payload("spot_rest_query_order.json"), Market.SPOT)
    assert (query.client_order_id, query.status, query.quantity, query.ts_ms) == (
        "myOrder1", OrderStatus.NEW, D("1.0"), 1499827319559)  # fmt: skip
    assert str(query.instrument) == "binance:spot:LTCBTC"


def test_usdm_rest_order_answers() -> None:
    cancel = rt.order_update_from_rest(payload("usdm_rest_cancel_order.json"), Market.PERPETUAL)
    assert (cancel.client_order_id, cancel.venue_order_id, cancel.status, cancel.quantity) == (
        "myOrder1", "283194212", OrderStatus.CANCELED, D("11"))  # fmt: skip
    q = rt.order_update_from_rest(payload("usdm_rest_query_order.json"), Market.PERPETUAL)
    assert (q.client_order_id, q.status, q.quantity, q.avg_price, q.ts_ms) == (
        "abc", OrderStatus.NEW, D("0.40"), None, 1579276756075)  # fmt: skip


def test_funding_history_and_intervals() -> None:
    assert rt.funding_intervals(payload("usdm_rest_funding_info.json")) == {"BLZUSDT": 8}
    assert rt.funding_payments(payload("usdm_rest_income_history.json")) == []  # a TRANSFER, not funding
