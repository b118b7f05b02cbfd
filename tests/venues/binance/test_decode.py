"""decode(): every recorded frame gives the values in the payload; bad input gives DecodeError."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundarb.core.model import InstrumentId, Liquidity, Market, OrderStatus, Side, VenueFillKind, Wallet
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingReceived,
    FundingSettled,
    OrderReported,
    PositionReported,
    QuoteReceived,
)
from fundarb.venues.binance import BinanceDecoder, decode, decode_statistics
from fundarb.venues.errors import DecodeError

from .conftest import payload, payload_bytes

PERP_BTC = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")


def test_mark_price() -> None:
    [ev] = decode(payload_bytes("usdm_ws_mark_price.json"))
    assert isinstance(ev, FundingReceived)
    f = ev.funding
    assert f.instrument == PERP_BTC
    assert f.mark == D("11794.15000000")
    assert f.index == D("11784.62659091")
    assert f.rate == D("0.00038167")
    assert f.next_funding_ms == 1562306400000
    assert f.ts_ms == 1562305380000
    assert f.interval_hours == 8


def test_mark_price_interval_from_context() -> None:
    dec = BinanceDecoder(intervals={"BTCUSDT": 4})
    [ev] = dec.decode(payload_bytes("usdm_ws_mark_price.json"))
    assert isinstance(ev, FundingReceived)
    assert ev.funding.interval_hours == 4


def test_mark_price_array_in_combined_envelope() -> None:
    item = payload("usdm_ws_mark_price.json")
    other = dict(item, s="ETHUSDT", p="2000.5", i="2000.1", r="-0.0001")
    frame = orjson.dumps({"stream": "!markPrice@arr@1s", "data": [item, other]})
    evs = decode(frame)
    assert [e.funding.instrument.symbol for e in evs] == ["BTCUSDT", "ETHUSDT"]  # type: ignore[union-attr]
    assert evs[1].funding.rate == D("-0.0001")  # type: ignore[union-attr]
    # a bare array (raw !markPrice@arr stream) too
    assert len(decode(orjson.dumps([item, other]))) == 2


def test_spot_book_ticker_is_spot_and_stamped_on_receipt() -> None:
    dec = BinanceDecoder()
    [ev] = dec.decode(payload_bytes("spot_ws_book_ticker.json"), received_ms=1700000000000)
    assert isinstance(ev, QuoteReceived)
    q = ev.quote
    assert q.instrument == InstrumentId("binance", Market.SPOT, "BNBUSDT")
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (
        D("25.35190000"),
        D("31.21000000"),
        D("25.36520000"),
        D("40.66000000"),
    )
    assert q.ts_ms == 1700000000000


def test_futures_book_ticker_is_perpetual() -> None:
    frame = orjson.dumps({"stream": "bnbusdt@bookTicker", "data": payload("usdm_ws_book_ticker.json")})
    [ev] = decode(frame)
    assert isinstance(ev, QuoteReceived)
    assert ev.quote.instrument == InstrumentId("binance", Market.PERPETUAL, "BNBUSDT")
    assert ev.quote.ts_ms == 1568014460893
    assert ev.quote.ask == D("25.36520000")


def test_order_trade_update_partial_fill() -> None:
    order, fill = decode(payload_bytes("usdm_ws_order_trade_update_partial.json"))
    assert isinstance(order, OrderReported) and isinstance(fill, FillReported)
    u = order.update
    assert u.instrument == PERP_BTC
    assert u.client_order_id == "fa.p7.perp.0"
    assert u.venue_order_id == "4012345678"
    assert u.status is OrderStatus.PARTIALLY_FILLED
    assert u.side is Side.SELL
    assert (u.quantity, u.filled_qty, u.avg_price) == (D("0.010"), D("0.004"), D("37000.10"))
    assert u.ts_ms == 1700000000120
    f = fill.fill
    assert (f.trade_id, f.quantity, f.price, f.fee, f.fee_asset) == (
        "99887766",
        D("0.004"),
        D("37000.10"),
        D("0.02960008"),
        "USDT",
    )
    assert f.liquidity is Liquidity.MAKER
    assert f.venue_generated is None


@pytest.mark.parametrize(
    ("name", "kind", "qty", "price", "side"),
    [
        (
            "usdm_ws_order_trade_update_liquidation.json",
            VenueFillKind.LIQUIDATION,
            "1.500",
            "2098.50",
            Side.BUY,
        ),
        ("usdm_ws_order_trade_update_adl.json", VenueFillKind.ADL, "0.200", "2150.00", Side.SELL),
        ("usdm_ws_order_trade_update_settlement.json", VenueFillKind.SETTLEMENT, "40", "0.2500", Side.BUY),
    ],
)
def test_venue_generated_fills(name: str, kind: VenueFillKind, qty: str, price: str, side: Side) -> None:
    events = decode(payload_bytes(name))
    assert len(events) == 1, "a venue-generated order is not one of ours: only its fill is reported"
    [ev] = events
    assert isinstance(ev, FillReported)
    assert ev.fill.venue_generated is kind
    assert (ev.fill.quantity, ev.fill.price, ev.fill.side) == (D(qty), D(price), side)
    assert ev.fill.trade_id


def test_account_update_funding_fee() -> None:
    bal, pos, fund = decode(payload_bytes("usdm_ws_account_update_funding.json"))
    assert isinstance(bal, BalanceReported) and isinstance(pos, PositionReported)
    assert isinstance(fund, FundingSettled)
    assert bal.balance.wallet is Wallet.FUTURES
    assert (bal.balance.asset, bal.balance.free) == ("USDT", D("10012.34567890"))
    assert pos.position.instrument == PERP_BTC
    assert (pos.position.quantity, pos.position.entry_price, pos.position.unrealized_pnl) == (
        D("-0.010"),
        D("37000.1"),
        D("-3.50000000"),
    )
    p = fund.payment
    assert (p.instrument, p.amount, p.asset, p.ts_ms) == (PERP_BTC, D("1.23456789"), "USDT", 1700006400010)


def test_spot_execution_report_in_wsapi_wrapper() -> None:
    [ev] = decode(payload_bytes("spot_uds_execution_report.json"))
    assert isinstance(ev, OrderReported)
    u = ev.update
    assert u.instrument == InstrumentId("binance", Market.SPOT, "ETHBTC")
    assert u.client_order_id == "mUvoqJxFIILMdfAW5iGSOW"
    assert u.venue_order_id == "4293153"
    assert u.status is OrderStatus.NEW and u.side is Side.BUY
    assert (u.quantity, u.filled_qty, u.avg_price) == (D("1.00000000"), D("0"), None)
    assert u.ts_ms == 1499405658657


def test_spot_execution_report_trade_and_cancel() -> None:
    base = payload("spot_uds_execution_report.json")["event"]
    trade = dict(
        base,
        x="TRADE",
        X="PARTIALLY_FILLED",
        l="0.4",
        z="0.4",
        L="0.1026",
        Z="0.04104",
        n="0.0004",
        N="ETH",
        t=77,
        m=True,
    )
    order, fill = decode(orjson.dumps(trade))
    assert isinstance(order, OrderReported) and isinstance(fill, FillReported)
    assert order.update.avg_price == D("0.1026")
    assert (fill.fill.quantity, fill.fill.price, fill.fill.fee, fill.fill.fee_asset) == (
        D("0.4"),
        D("0.1026"),
        D("0.0004"),
        "ETH",
    )
    assert fill.fill.trade_id == "77" and fill.fill.liquidity is Liquidity.MAKER
    cancel = dict(base, x="CANCELED", X="CANCELED", c="cancelReq1", C="mUvoqJxFIILMdfAW5iGSOW")
    [ev] = decode(orjson.dumps(cancel))
    assert isinstance(ev, OrderReported)
    assert ev.update.client_order_id == "mUvoqJxFIILMdfAW5iGSOW"
    assert ev.update.status is OrderStatus.CANCELED


def test_outbound_account_position() -> None:
    [ev] = decode(payload_bytes("spot_uds_outbound_account_position.json"))
    assert isinstance(ev, BalanceReported)
    b = ev.balance
    assert (b.wallet, b.asset, b.free, b.locked, b.ts_ms) == (
        Wallet.SPOT,
        "ETH",
        D("10000.000000"),
        D("0.000000"),
        1564034571105,
    )
    [ev] = BinanceDecoder(spot_wallet=Wallet.MARGIN).decode(
        payload_bytes("spot_uds_outbound_account_position.json")
    )
    assert isinstance(ev, BalanceReported) and ev.balance.wallet is Wallet.MARGIN


def test_ignored_and_unknown_types_are_counted() -> None:
    dec = BinanceDecoder()
    assert dec.decode(payload_bytes("spot_uds_balance_update.json")) == []
    assert dec.decode(b'{"result":null,"id":1}') == []
    assert dec.decode(b'{"e":"aggTrade","E":1,"s":"BTCUSDT"}') == []
    assert dec.decode(b'{"e":"kline","E":1}') == []
    stats = dec.statistics()
    assert (stats.frames, stats.events, stats.unknown, stats.control, stats.errors) == (4, 0, 2, 2, 0)
    assert stats.unknown_types == ("aggTrade", "kline")


def test_module_statistics_count() -> None:
    before = decode_statistics()
    decode(b'{"e":"someNewEvent"}')
    with pytest.raises(DecodeError):
        decode(b"{")
    after = decode_statistics()
    assert after.unknown == before.unknown + 1
    assert after.errors == before.errors + 1
    assert "someNewEvent" in after.unknown_types


def _mark(**changes: Any) -> bytes:
    d = payload("usdm_ws_mark_price.json")
    for k, v in changes.items():
        if v is _DROP:
            del d[k]
        else:
            d[k] = v
    return orjson.dumps(d)


_DROP = object()
_BOOK = payload("spot_ws_book_ticker.json")
_OTU = payload("usdm_ws_order_trade_update_partial.json")

MALFORMED = [
    pytest.param(b'{"e":"markPriceUpdate","s":"BTC', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"42", id="number"),
    pytest.param(b'"text"', id="string"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[1, 2]", id="array-of-numbers"),
    pytest.param(_mark(p=_DROP), id="missing-mark"),
    pytest.param(_mark(r="abc"), id="non-numeric-rate"),
    pytest.param(_mark(r="NaN"), id="nan-rate"),
    pytest.param(_mark(p="Infinity"), id="inf-mark"),
    pytest.param(_mark(p=11794.15), id="float-mark"),
    pytest.param(_mark(p="-1"), id="negative-mark"),
    pytest.param(_mark(T="1562306400000"), id="string-time"),
    pytest.param(_mark(E=-5), id="negative-time"),
    pytest.param(_mark(s=123), id="numeric-symbol"),
    pytest.param(_mark(s=""), id="empty-symbol"),
    pytest.param(_mark(e=7), id="numeric-event-type"),
    pytest.param(orjson.dumps(dict(_BOOK, B="-3")), id="negative-size"),
    pytest.param(orjson.dumps(dict(_BOOK, b="30", a="25")), id="crossed-quote"),
    pytest.param(orjson.dumps(dict(_BOOK, b=None)), id="null-bid"),
    pytest.param(orjson.dumps({"stream": 5, "data": _BOOK}), id="bad-stream-name"),
    pytest.param(orjson.dumps({"stream": "x", "data": 5}), id="bad-envelope-data"),
    pytest.param(orjson.dumps(dict(_OTU, o=dict(_OTU["o"], l="-0.004"))), id="negative-fill-qty"),
    pytest.param(orjson.dumps(dict(_OTU, o=dict(_OTU["o"], S="SIDEWAYS"))), id="unknown-side"),
    pytest.param(orjson.dumps(dict(_OTU, o=dict(_OTU["o"], X="WEIRD"))), id="unknown-status"),
    pytest.param(orjson.dumps(dict(_OTU, o="not an object")), id="order-not-object"),
    pytest.param(orjson.dumps(dict(_OTU, o=dict(_OTU["o"], z="0.02"))), id="overfilled"),
    pytest.param(b'{"e":"ACCOUNT_UPDATE","E":1,"a":{"B":[{"a":"USDT"}]}}', id="balance-missing-wb"),
    pytest.param(b'{"e":"outboundAccountPosition","E":1,"B":7}', id="balances-not-list"),
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_input_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        BinanceDecoder().decode(raw)
    assert info.value.venue == "binance"


def test_decode_error_keeps_a_bounded_preview() -> None:
    raw = b'{"e":"markPriceUpdate","s":"' + b"x" * 2000
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert info.value.raw.startswith('{"e":"markPriceUpdate"')
    assert len(info.value.raw) <= 500


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["0.1", "-1", "NaN", "1e400", "BUY", "SELL", "TRADE", "NEW", "FILLED", "BTCUSDT"]),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [*list("esESpirTbBaAuqlLzZnNxXciotm"), "stream", "data", "event", "subscriptionId"]
            ),
            kids,
            max_size=8,
        )
    ),
    max_leaves=20,
)
_KNOWN = [
    payload(n)
    for n in (
        "usdm_ws_mark_price.json",
        "spot_ws_book_ticker.json",
        "usdm_ws_book_ticker.json",
        "usdm_ws_order_trade_update_partial.json",
        "usdm_ws_account_update_funding.json",
        "spot_uds_execution_report.json",
    )
]


@st.composite
def _mutated_frame(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(_KNOWN))
    doc = orjson.loads(orjson.dumps(base))
    target = doc.get("o") or doc.get("event") or doc
    if isinstance(target, dict) and target:
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(_json)
    raw = orjson.dumps(doc)
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def _dumps(j: Any) -> bytes:
    try:
        return orjson.dumps(j)
    except (orjson.JSONEncodeError, TypeError):
        return b"[]"


@settings(max_examples=300, deadline=None)
@given(st.one_of(_mutated_frame(), st.binary(max_size=64), _json.map(_dumps)))
def test_fuzz_decode_only_returns_a_list_or_raises_decode_error(raw: bytes) -> None:
    try:
        out = BinanceDecoder().decode(raw)
    except DecodeError:
        return
    assert isinstance(out, list)
