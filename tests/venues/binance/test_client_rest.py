"""BinanceVenue over httpx.MockTransport: signing, filters, error mapping, rate limits, deadlines."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import httpx
import pytest
import trio

from fundarb.core.model import (
    InstrumentId,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Wallet,
)
from fundarb.venues.binance import Credentials, sign
from fundarb.venues.binance._endpoints import Family
from fundarb.venues.binance.client import BinanceVenue
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
    VenueProtocolError,
    VenueUnavailable,
)

from .conftest import payload
from .fake_rest import FakeRest, error, json_response, query, wall_ms

SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
CREDS = Credentials("test-api-key-123", SECRET)
BTC_PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
ETH_PERP = InstrumentId("binance", Market.PERPETUAL, "ETHUSDT")
BTC_SPOT = InstrumentId("binance", Market.SPOT, "BTCUSDT")


def venue(fake: FakeRest, **kw: Any) -> BinanceVenue:
    kw.setdefault("call_timeout", 5.0)
    return BinanceVenue(CREDS, transport=httpx.MockTransport(fake), wall_ms=wall_ms, **kw)


def limit_sell(
    qty: str = "0.010", price: str = "37000.1", cid: str = "fa.p1.perp.0", **kw: Any
) -> OrderRequest:
    return OrderRequest(cid, BTC_PERP, Side.SELL, D(qty), D(price), OrderType.LIMIT, **kw)


async def test_place_order_is_signed_and_formatted(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("POST", "/fapi/v1/order", json_response(payload("usdm_rest_new_order.json")))
    v = venue(fake)
    with trio.fail_after(30):
        ack = await v.place_order(limit_sell(reduce_only=True, time_in_force=TimeInForce.POST_ONLY))
    [req] = fake.calls("POST", "/fapi/v1/order")
    assert req.url.host == "fapi.binance.com"
    assert req.headers["X-MBX-APIKEY"] == "test-api-key-123"
    params = query(req)
    assert params[-1][0] == "signature"
    raw = req.url.query.decode()
    unsigned = raw[: raw.index("&signature=")]
    assert params[-1][1] == sign(SECRET, unsigned)
    d = dict(params)
    assert d["symbol"] == "BTCUSDT" and d["side"] == "SELL" and d["type"] == "LIMIT"
    assert (d["quantity"], d["price"], d["timeInForce"], d["reduceOnly"]) == (
        "0.010",
        "37000.1",
        "GTX",
        "true",
    )
    assert d["newClientOrderId"] == "fa.p1.perp.0" and d["recvWindow"] == "5000"
    assert abs(int(d["timestamp"]) - wall_ms()) < 1000
    assert SECRET not in repr(v) and SECRET not in str(req.url).replace(params[-1][1], "")
    # the answer is the documented new-order response
    assert (ack.client_order_id, ack.venue_order_id, ack.status) == ("testOrder", "22542179", OrderStatus.NEW)
    assert (ack.quantity, ack.filled_qty, ack.side, ack.ts_ms) == (D("10"), D("0"), Side.SELL, 1566818724722)


async def test_testnet_flag_switches_hosts(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    v = venue(fake, testnet=True)
    await v.funding(BTC_PERP)
    assert {r.url.host for r in fake.requests} == {"testnet.binancefuture.com"}


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (limit_sell(price="37000.15"), "tick"),
        (limit_sell(qty="0.0105"), "lot step"),
        (limit_sell(qty="0.001", price="5000.0"), "notional"),
        (limit_sell(qty="0.100", price="500.0"), "price 500.0 is below"),
        (limit_sell(qty="2000", price="37000.1"), "above the maximum"),
        (
            OrderRequest("fa.p1.perp.1", BTC_PERP, Side.BUY, D("150"), None, OrderType.MARKET),
            "market quantity",
        ),
    ],
)
async def test_filters_are_applied_before_sending(
    autojump_clock: Any, request_: OrderRequest, why: str
) -> None:
    fake = FakeRest()
    v = venue(fake)
    with pytest.raises(BadPrecision, match=why) as info:
        await v.place_order(request_)
    assert info.value.code == "local"
    assert fake.calls("POST", "/fapi/v1/order") == []


async def test_instruments_from_exchange_info_and_funding_info(autojump_clock: Any) -> None:
    v = venue(FakeRest())
    by_id = {i.id: i for i in await v.instruments()}
    assert set(by_id) == {
        BTC_PERP, ETH_PERP, BTC_SPOT, InstrumentId("binance", Market.SPOT, "ETHBTC"),
    }  # fmt: skip
    eth = by_id[ETH_PERP]
    assert (eth.tick_size, eth.lot_step, eth.min_qty, eth.min_notional) == (
        D("0.01"),
        D("0.001"),
        D("0.001"),
        D("20"),
    )
    assert eth.funding_interval_hours == 4
    assert by_id[BTC_PERP].funding_interval_hours == 8
    ethbtc = by_id[InstrumentId("binance", Market.SPOT, "ETHBTC")]
    assert (ethbtc.tick_size, ethbtc.lot_step, ethbtc.min_qty, ethbtc.min_notional) == (
        D("0.00000100"), D("0.00100000"), D("0.00100000"), D("10.00000000"))  # fmt: skip
    assert ethbtc.funding_interval_hours == 0


async def test_funding_quote_positions_income(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.default("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    fake.default("GET", "/fapi/v1/ticker/bookTicker", json_response(payload("usdm_rest_book_ticker.json")))
    fake.default("GET", "/api/v3/ticker/bookTicker", json_response(payload("spot_rest_book_ticker.json")))
    fake.default("GET", "/fapi/v3/positionRisk", json_response(payload("usdm_rest_position_risk_v3.json")))
    income = [
        *payload("usdm_rest_income_history.json"),
        {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.12000000", "asset": "USDT",
         "info": "FUNDING_FEE", "time": 1570636800000, "tranId": 9689322400, "tradeId": ""},
    ]  # fmt: skip
    fake.default("GET", "/fapi/v1/income", json_response(income))
    v = venue(fake)
    f = await v.funding(BTC_PERP)
    assert (f.rate, f.mark, f.index, f.next_funding_ms, f.ts_ms, f.interval_hours) == (
        D("0.00038246"), D("11793.63104562"), D("11781.80495970"), 1597392000000, 1597370495002, 8)  # fmt: skip
    q = await v.quote(BTC_PERP)
    assert (q.bid, q.bid_size, q.ask, q.ask_size, q.ts_ms) == (
        D("4.00000000"), D("431.00000000"), D("4.00000200"), D("9.00000000"), 1589437530011)  # fmt: skip
    s = await v.quote(InstrumentId("binance", Market.SPOT, "LTCBTC"))
    assert s.instrument.market is Market.SPOT and s.ask == D("4.00000200")
    [p] = await v.positions()
    assert p.instrument == InstrumentId("binance", Market.PERPETUAL, "ADAUSDT")
    assert (p.quantity, p.entry_price, p.mark_price, p.unrealized_pnl, p.liquidation_price, p.adl_rank) == (
        D("30"), D("0.385"), D("0.41047590"), D("0.76427700"), None, 2)  # fmt: skip
    [pay] = await v.funding_income_since(1570000000000)
    assert (pay.instrument, pay.payment_id, pay.amount, pay.asset) == (
        BTC_PERP,
        "9689322400",
        D("-0.12"),
        "USDT",
    )
    assert dict(query(fake.calls("GET", "/fapi/v1/income")[0]))["incomeType"] == "FUNDING_FEE"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (error(-2019, "Margin is insufficient."), InsufficientMargin),
        (error(-2018, "Balance is insufficient."), InsufficientMargin),
        (error(-1111, "Precision is over the maximum defined for this asset."), BadPrecision),
        (error(-1013, "Filter failure: LOT_SIZE"), BadPrecision),
        (error(-4164, "Order's notional must be no smaller than 5.0"), BadPrecision),
        (error(-2022, "ReduceOnly Order is rejected."), ReduceOnlyRejected),
        (
            error(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected.",
            ),
            PostOnlyWouldCross,
        ),
        (error(-1121, "Invalid symbol."), OrderRejected),
        (
            error(-1007, "Timeout waiting for response from backend server. Send status unknown"),
            OutcomeUnknown,
        ),
        (httpx.Response(500, content=b"<html>oops</html>"), OutcomeUnknown),
        (httpx.Response(503, content=b""), OutcomeUnknown),
        (httpx.Response(403, content=b"<html>WAF</html>"), VenueUnavailable),
        (httpx.Response(400, content=b"not json"), VenueProtocolError),
        (httpx.Response(200, content=b"{truncated"), OutcomeUnknown),
    ],
)
async def test_order_errors_map_to_the_taxonomy(
    autojump_clock: Any, answer: httpx.Response, expected: type
) -> None:
    fake = FakeRest()
    fake.queue("POST", "/fapi/v1/order", answer)
    with pytest.raises(expected) as info:
        await venue(fake).place_order(limit_sell())
    assert type(info.value) is expected
    if isinstance(info.value, OrderRejected):
        assert info.value.code == orjson_code(answer)
        assert info.value.reason


def orjson_code(answer: httpx.Response) -> int:
    import orjson

    return int(orjson.loads(answer.content)["code"])


async def test_spot_limit_maker_rejection_and_insufficient_balance(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue(
        "POST", "/api/v3/order",
        error(-2010, "Order would immediately match and take."),
        error(-2010, "Account has insufficient balance for requested action."),
    )  # fmt: skip
    v = venue(fake)
    req = OrderRequest("fa.p1.spot.0", BTC_SPOT, Side.BUY, D("0.001"), D("30000.00"), OrderType.LIMIT,
                       TimeInForce.POST_ONLY)  # fmt: skip
    with pytest.raises(PostOnlyWouldCross):
        await v.place_order(req)
    with pytest.raises(InsufficientMargin):
        await v.place_order(req)
    assert dict(query(fake.calls("POST", "/api/v3/order")[0]))["type"] == "LIMIT_MAKER"


async def test_query_unknown_order_is_order_not_found(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("GET", "/fapi/v1/order", error(-2013, "Order does not exist."))
    fake.queue("DELETE", "/fapi/v1/order", error(-2011, "Unknown order sent."))
    v = venue(fake)
    with pytest.raises(OrderNotFound):
        await v.query_order(BTC_PERP, "fa.p9.perp.0")
    with pytest.raises(OrderNotFound):
        await v.cancel_order(BTC_PERP, "fa.p9.perp.0")
    assert dict(query(fake.calls("GET", "/fapi/v1/order")[0]))["origClientOrderId"] == "fa.p9.perp.0"


async def test_read_5xx_is_unavailable(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("GET", "/fapi/v1/premiumIndex", httpx.Response(502))
    with pytest.raises(VenueUnavailable):
        await venue(fake).funding(BTC_PERP)


async def test_429_retry_after_is_honoured(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue(
        "GET", "/fapi/v1/premiumIndex",
        json_response({"code": -1003, "msg": "Too many requests"}, 429, {"Retry-After": "3"}),
        json_response(payload("usdm_rest_premium_index.json")),
    )  # fmt: skip
    v = venue(fake)
    await v.funding_intervals()
    t0 = trio.current_time()
    f = await v.funding(BTC_PERP)
    assert f.rate == D("0.00038246")
    calls = fake.calls("GET", "/fapi/v1/premiumIndex")
    assert len(calls) == 2
    assert trio.current_time() - t0 >= 3


async def test_429_longer_than_the_deadline_raises_and_blocks_later_calls(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("GET", "/fapi/v1/premiumIndex", json_response({}, 429, {"Retry-After": "120"}))
    fake.default("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    v = venue(fake)
    await v.funding_intervals()
    with pytest.raises(RateLimited) as info:
        await v.funding(BTC_PERP)
    assert info.value.retry_after == 120
    with pytest.raises(RateLimited):  # still banned: refused without sending
        await v.funding(BTC_PERP)
    assert len(fake.calls("GET", "/fapi/v1/premiumIndex")) == 1
    await trio.sleep(121)
    assert (await v.funding(BTC_PERP)).rate == D("0.00038246")


async def test_418_is_rate_limited_at_once(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("GET", "/fapi/v1/premiumIndex", json_response({"code": -1003}, 418, {"Retry-After": "2"}))
    v = venue(fake)
    await v.funding_intervals()
    with pytest.raises(RateLimited) as info:
        await v.funding(BTC_PERP)
    assert info.value.retry_after == 2 and info.value.code == 418


async def test_used_weight_header_delays_until_the_window_resets(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue(
        "GET", "/fapi/v1/premiumIndex",
        json_response(payload("usdm_rest_premium_index.json"), headers={"X-MBX-USED-WEIGHT-1M": "2200"}),
    )  # fmt: skip
    fake.default("GET", "/fapi/v1/premiumIndex", json_response(payload("usdm_rest_premium_index.json")))
    v = venue(fake, call_timeout=120)
    await v.funding_intervals()
    await v.funding(BTC_PERP)
    before_ms = wall_ms()
    await v.funding(BTC_PERP)
    # the second call waited for the next minute boundary of the (mock) wall clock
    assert wall_ms() // 60_000 == before_ms // 60_000 + 1
    assert v.rest.limiters[Family.FAPI].used("weight", "1m", before_ms) == 2200


async def test_minus_1021_resyncs_the_clock_and_retries(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue(
        "POST", "/fapi/v1/order", error(-1021, "Timestamp for this request is outside of the recvWindow.")
    )
    fake.queue("POST", "/fapi/v1/order", json_response(payload("usdm_rest_new_order.json")))
    v = venue(fake)
    await v.place_order(limit_sell(cid="fa.p1.perp.1"))  # syncs the clock (offset 0)
    fake.server_offset_ms = 7_000  # our clock is now 7 s behind the venue
    fake.queue(
        "POST", "/fapi/v1/order", error(-1021, "Timestamp for this request is outside of the recvWindow.")
    )
    fake.queue("POST", "/fapi/v1/order", json_response(payload("usdm_rest_new_order.json")))
    time_calls = len(fake.calls("GET", "/fapi/v1/time"))
    ack = await v.place_order(limit_sell(cid="fa.p1.perp.2"))
    assert ack.venue_order_id == "22542179"
    assert len(fake.calls("GET", "/fapi/v1/time")) == time_calls + 1
    last = dict(query(fake.calls("POST", "/fapi/v1/order")[-1]))
    assert abs(int(last["timestamp"]) - (wall_ms() + 7_000)) < 1000
    assert v.rest.clocks[Family.FAPI].offset_ms == 7_000


async def test_persistent_minus_1021_raises(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.default("POST", "/fapi/v1/order", error(-1021, "Timestamp for this request was 1000ms ahead"))
    with pytest.raises(TimestampOutsideWindow):
        await venue(fake).place_order(limit_sell())
    assert len(fake.calls("POST", "/fapi/v1/order")) == 2


async def test_timeout_after_sending_an_order_is_outcome_unknown_then_query_resolves(
    autojump_clock: Any,
) -> None:
    fake = FakeRest()

    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    fake.queue("POST", "/fapi/v1/order", hang)
    filled = dict(payload("usdm_rest_query_order.json"), clientOrderId="fa.p1.perp.0", status="FILLED",
                  executedQty="0.40", avgPrice="9300.5", type="LIMIT", origType="LIMIT")  # fmt: skip
    fake.queue("GET", "/fapi/v1/order", json_response(filled))
    v = venue(fake)
    await v.instrument_rules()
    t0 = trio.current_time()
    with pytest.raises(OutcomeUnknown):
        await v.place_order(limit_sell())
    assert trio.current_time() - t0 == pytest.approx(5.0)
    # the lost acknowledgement is resolved by querying the client order id
    u = await v.query_order(BTC_PERP, "fa.p1.perp.0")
    assert (u.status, u.filled_qty, u.avg_price) == (OrderStatus.FILLED, D("0.40"), D("9300.5"))


async def test_read_timeout_is_unavailable_and_connect_error_is_unavailable(autojump_clock: Any) -> None:
    fake = FakeRest()

    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    fake.queue("GET", "/fapi/v1/premiumIndex", hang)
    v = venue(fake)
    await v.instrument_rules()
    with pytest.raises(VenueUnavailable):
        await v.funding(BTC_PERP)
    fake.queue("POST", "/fapi/v1/order", refuse)
    with pytest.raises(VenueUnavailable):
        await v.place_order(limit_sell())
    fake.queue("POST", "/fapi/v1/order", reset)
    with pytest.raises(OutcomeUnknown):
        await v.place_order(limit_sell())


async def test_spot_margin_orders_borrow_repay_and_transfer(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.queue("POST", "/sapi/v1/margin/order", json_response(payload("margin_rest_new_order.json")))
    fake.default(
        "POST", "/sapi/v1/margin/borrow-repay", json_response(payload("margin_rest_borrow_repay.json"))
    )
    fake.default("POST", "/sapi/v1/asset/transfer", json_response({"tranId": 13526853623}))
    v = venue(fake, spot_margin=True)
    u = await v.place_order(
        OrderRequest("fa.p2.spot.0", BTC_SPOT, Side.SELL, D("0.001"), None, OrderType.MARKET)
    )
    assert (u.status, u.filled_qty, u.avg_price) == (OrderStatus.FILLED, D("0.001"), D("65982.53"))
    d = dict(query(fake.calls("POST", "/sapi/v1/margin/order")[0]))
    assert (d["type"], d["quantity"], d["isIsolated"], d["sideEffectType"]) == (
        "MARKET", "0.001", "FALSE", "NO_SIDE_EFFECT")  # fmt: skip
    await v.borrow("BTC", D("0.001"))
    await v.repay("BTC", D("0.00100001"))
    borrow, repay = (dict(query(r)) for r in fake.calls("POST", "/sapi/v1/margin/borrow-repay"))
    assert (borrow["type"], borrow["amount"], repay["type"], repay["amount"]) == (
        "BORROW", "0.001", "REPAY", "0.00100001")  # fmt: skip
    await v.transfer("USDT", D("250"), Wallet.SPOT, Wallet.FUTURES)
    assert dict(query(fake.calls("POST", "/sapi/v1/asset/transfer")[0]))["type"] == "MAIN_UMFUTURE"
    with pytest.raises(ValueError):
        await v.borrow("BTC", D("-1"))


async def test_balances_fills_and_open_orders(autojump_clock: Any) -> None:
    fake = FakeRest()
    fake.default("GET", "/api/v3/account", json_response({"balances": [
        {"asset": "BTC", "free": "0.50000000", "locked": "0.10000000"},
        {"asset": "ETH", "free": "0.00000000", "locked": "0.00000000"},
    ]}))  # fmt: skip
    fake.default("GET", "/fapi/v3/balance", json_response([
        {"accountAlias": "SgsR", "asset": "USDT", "balance": "1000.50000000", "crossWalletBalance": "1000.5",
         "crossUnPnl": "0", "availableBalance": "990", "maxWithdrawAmount": "990", "marginAvailable": True,
         "updateTime": 1700000000500},
    ]))  # fmt: skip
    fake.default("GET", "/sapi/v1/margin/account", json_response({"userAssets": [
        {"asset": "BTC", "free": "0", "locked": "0", "borrowed": "0.01000000", "interest": "0.00000100",
         "netAsset": "-0.01000100"},
    ]}))  # fmt: skip
    fake.default("GET", "/fapi/v1/userTrades", json_response([
        {"buyer": False, "commission": "0.07819010", "commissionAsset": "USDT", "id": 698759, "maker": False,
         "orderId": 25851813, "price": "7819.01", "qty": "0.002", "quoteQty": "15.63802",
         "realizedPnl": "-0.91539999", "side": "SELL", "positionSide": "BOTH", "symbol": "BTCUSDT",
         "time": 1569514978020},
    ]))  # fmt: skip
    fake.default("GET", "/sapi/v1/margin/myTrades", json_response([
        {"symbol": "BTCUSDT", "id": 28457, "orderId": 100234, "price": "30000.01", "qty": "0.00100000",
         "commission": "0.00000100", "commissionAsset": "BTC", "time": 1499865549590, "isBuyer": True,
         "isMaker": True, "isBestMatch": True, "isIsolated": False},
    ]))  # fmt: skip
    fake.default("GET", "/fapi/v1/openOrders", json_response([payload("usdm_rest_query_order.json")]))
    fake.default("GET", "/sapi/v1/margin/openOrders", json_response([]))
    v = venue(fake, spot_margin=True)
    balances = {(b.wallet, b.asset): b for b in await v.balances()}
    assert set(balances) == {(Wallet.SPOT, "BTC"), (Wallet.FUTURES, "USDT"), (Wallet.MARGIN, "BTC")}
    assert (balances[(Wallet.SPOT, "BTC")].free, balances[(Wallet.SPOT, "BTC")].locked) == (
        D("0.5"),
        D("0.1"),
    )
    assert balances[(Wallet.FUTURES, "USDT")].free == D("1000.5")
    assert balances[(Wallet.MARGIN, "BTC")].borrowed == D("0.01000100")
    [perp_fill] = await v.fills_since(BTC_PERP, 1569514978000)
    assert (perp_fill.side, perp_fill.quantity, perp_fill.price, perp_fill.fee, perp_fill.trade_id) == (
        Side.SELL, D("0.002"), D("7819.01"), D("0.07819010"), "698759")  # fmt: skip
    assert perp_fill.venue_order_id == "25851813" and perp_fill.client_order_id == ""
    assert dict(query(fake.calls("GET", "/fapi/v1/userTrades")[0]))["startTime"] == "1569514978000"
    [spot_fill] = await v.fills_since(BTC_SPOT, 0)
    assert (spot_fill.side, spot_fill.liquidity.value, spot_fill.fee_asset) == (Side.BUY, "MAKER", "BTC")
    [order] = await v.open_orders()
    assert (order.instrument, order.client_order_id, order.quantity) == (BTC_PERP, "abc", D("0.40"))
