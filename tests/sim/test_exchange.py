"""SimExchange: matching, validation, funding, liquidation, ADL, borrow, transfers, determinism."""

from __future__ import annotations

import hashlib
from decimal import Decimal as D

import pytest

from fundarb.core.model import (
    InstrumentId,
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueFillKind,
    Wallet,
)
from fundarb.core.venue_events import FillReported, FundingSettled
from fundarb.sim.exchange import SimExchange
from fundarb.sim.margin import MarginConfig
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OrderRejected,
    PostOnlyWouldCross,
    ReduceOnlyRejected,
)

from .helpers import HOUR, PERP, SPOT, make_exchange


def mkt(cid: str, side: Side, qty: str, iid: InstrumentId = PERP, **kw: object) -> OrderRequest:
    return OrderRequest(cid, iid, side, D(qty), None, OrderType.MARKET, **kw)  # type: ignore[arg-type]


def lmt(cid: str, side: Side, qty: str, px: str, tif: TimeInForce = TimeInForce.GTC, iid=PERP, **kw):
    return OrderRequest(cid, iid, side, D(qty), D(px), OrderType.LIMIT, tif, **kw)


# --- matching ---------------------------------------------------------------------------------------


def test_market_order_slips_through_levels(ex: SimExchange) -> None:
    u = ex.place_order("a", mkt("m1", Side.BUY, "2.5"), 1)
    assert u.status is OrderStatus.FILLED and u.filled_qty == D("2.5")
    fills = ex.fills_since("a", PERP, 0)
    assert [(f.price, f.quantity) for f in fills] == [
        (D("30003.0"), D("1.0")),
        (D("30009.0"), D("1.0")),
        (D("30015.0"), D("0.5")),
    ]
    assert u.avg_price is not None and u.avg_price > D("30003")
    assert all(f.liquidity is Liquidity.TAKER for f in fills)
    assert fills[0].fee == D("1.0") * D("30003.0") * D("0.0005")


def test_market_order_larger_than_book_fills_partially(ex: SimExchange) -> None:
    u = ex.place_order("a", mkt("m1", Side.SELL, "7"), 1)
    assert u.status is OrderStatus.EXPIRED and u.filled_qty == D("5.0")
    # the liquidity taken is gone until the next reprice
    with pytest.raises(OrderRejected):
        ex.place_order("a", mkt("m1", Side.SELL, "1"), 2)  # duplicate id
    u2 = ex.place_order("a", mkt("m2", Side.SELL, "1"), 2)
    assert u2.filled_qty == 0 and u2.status is OrderStatus.EXPIRED


def test_ioc_partial_fill_and_fok(ex: SimExchange) -> None:
    u = ex.place_order("a", lmt("i1", Side.BUY, "3", "30009", TimeInForce.IOC), 1)
    assert u.status is OrderStatus.EXPIRED and u.filled_qty == D("2.0")
    assert ex.open_orders("a") == []
    f = ex.place_order("a", lmt("f1", Side.BUY, "4", "30027", TimeInForce.FOK), 2)
    assert f.status is OrderStatus.EXPIRED and f.filled_qty == 0
    f2 = ex.place_order("a", lmt("f2", Side.BUY, "3", "30027", TimeInForce.FOK), 3)
    assert f2.status is OrderStatus.FILLED


def test_post_only_rejected_when_crossing_rests_otherwise(ex: SimExchange) -> None:
    with pytest.raises(PostOnlyWouldCross):
        ex.place_order("a", lmt("p1", Side.BUY, "0.1", "30003", TimeInForce.POST_ONLY), 1)
    with pytest.raises(OrderNotFound):
        ex.query_order("a", PERP, "p1")  # a rejected order leaves nothing behind
    u = ex.place_order("a", lmt("p2", Side.BUY, "0.1", "30000", TimeInForce.POST_ONLY), 1)
    assert u.status is OrderStatus.NEW
    assert [o.client_order_id for o in ex.open_orders("a", PERP)] == ["p2"]


def test_limit_rests_then_fills_when_price_crosses(ex: SimExchange) -> None:
    u = ex.place_order("a", lmt("g1", Side.BUY, "0.5", "29500"), 1)
    assert u.status is OrderStatus.NEW
    ex.update_market(60_000, {PERP: D(29800), SPOT: D(29800)})
    assert ex.query_order("a", PERP, "g1").status is OrderStatus.NEW
    ex.update_market(120_000, {PERP: D(29480), SPOT: D(29480)})
    q = ex.query_order("a", PERP, "g1")
    assert q.status is OrderStatus.FILLED and q.avg_price == D("29500")
    (fill,) = ex.fills_since("a", PERP, 0)
    assert fill.liquidity is Liquidity.MAKER and fill.fee == D("0.5") * D("29500") * D("0.0002")
    assert ex.positions("a", 120_000)[0].quantity == D("0.5")


def test_spot_resting_buy_locks_quote_and_cancel_releases(ex: SimExchange) -> None:
    ex.place_order("a", lmt("s1", Side.BUY, "1", "29000", iid=SPOT), 1)
    bal = {(b.wallet, b.asset): b for b in ex.balances("a", 1)}
    assert bal[(Wallet.SPOT, "USDT")].locked == D("29000") * D("1.001")
    c = ex.cancel_order("a", SPOT, "s1", 2)
    assert c.status is OrderStatus.CANCELED
    bal = {(b.wallet, b.asset): b for b in ex.balances("a", 2)}
    assert bal[(Wallet.SPOT, "USDT")].locked == 0 and bal[(Wallet.SPOT, "USDT")].free == D("100000")
    with pytest.raises(OrderRejected):
        ex.cancel_order("a", SPOT, "s1", 3)  # already final
    with pytest.raises(OrderNotFound):
        ex.cancel_order("a", SPOT, "nope", 3)


def test_validation_errors(ex: SimExchange) -> None:
    with pytest.raises(BadPrecision):
        ex.place_order("a", lmt("v1", Side.BUY, "0.1", "30000.05"), 1)  # off tick
    with pytest.raises(BadPrecision):
        ex.place_order("a", lmt("v2", Side.BUY, "0.0015", "30000"), 1)  # off lot
    with pytest.raises(BadPrecision):
        ex.place_order("a", lmt("v3", Side.BUY, "0.003", "30000"), 1)  # 90 < min notional 100
    with pytest.raises(InsufficientMargin):
        ex.place_order("a", mkt("v4", Side.BUY, "4.9", SPOT), 1)  # 147k USDT > 100k
    with pytest.raises(ReduceOnlyRejected):
        ex.place_order("a", mkt("v5", Side.SELL, "0.1", reduce_only=True), 1)
    small = make_exchange(futures="1000")
    with pytest.raises(InsufficientMargin):
        small.place_order("a", mkt("v6", Side.BUY, "0.2"), 1)  # 6000 notional / 5x = 1200 > 1000
    assert small.open_orders("a") == [] and small.positions("a", 1) == []


def test_reduce_only_is_capped_at_position(ex: SimExchange) -> None:
    ex.place_order("a", mkt("o1", Side.BUY, "0.3"), 1)
    u = ex.place_order("a", mkt("o2", Side.SELL, "0.5", reduce_only=True), 2)
    assert u.filled_qty == D("0.3") and ex.positions("a", 2) == []


# --- funding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "rate"), [(Side.BUY, "0.0001"), (Side.SELL, "0.0001"), (Side.BUY, "-0.0003")]
)
def test_funding_sign_and_amount(side: Side, rate: str) -> None:
    ex = make_exchange()
    ex.place_order("a", mkt("f", side, "0.2"), 1)
    ex.update_market(HOUR, {PERP: D(31000), SPOT: D(31000)}, {PERP: D(rate)})
    assert ex.funding_income_since("a", 0) == []  # no settlement before 08:00
    ex.update_market(8 * HOUR, {PERP: D(32000), SPOT: D(32000)})
    (pay,) = ex.funding_income_since("a", 0)
    qty = D("0.2") * side.sign
    assert pay.amount == -qty * D(32000) * D(rate)
    longs_pay = side is Side.BUY and D(rate) > 0
    assert (pay.amount < 0) == longs_pay or (side is Side.SELL and pay.amount > 0)
    assert pay.ts_ms == 8 * HOUR
    assert any(isinstance(e, FundingSettled) for e in ex.drain_events("a"))
    snap = ex.funding_snapshot(PERP, 8 * HOUR + 1)
    assert snap.next_funding_ms == 16 * HOUR and snap.rate == D(rate)


# --- liquidation and ADL ----------------------------------------------------------------------------


def test_liquidation_when_margin_breached() -> None:
    ex = make_exchange(futures="1000")
    ex.place_order("a", mkt("l1", Side.BUY, "0.15"), 1)
    ex.place_order("a", lmt("l2", Side.BUY, "0.01", "20000"), 1)
    (pos,) = ex.positions("a", 1)
    liq = pos.liquidation_price
    assert liq is not None and D(23000) < liq < D(24000)
    above = (liq + 20).quantize(D("0.1"))
    ex.update_market(60_000, {PERP: above, SPOT: above})
    assert ex.positions("a", 60_000)[0].quantity == D("0.15")
    below = (liq - 20).quantize(D("0.1"))
    ex.update_market(120_000, {PERP: below, SPOT: below})
    assert ex.positions("a", 120_000) == []
    liq_fills = [f for f in ex.fills_since("a", PERP, 0) if f.venue_generated]
    assert len(liq_fills) == 1
    f = liq_fills[0]
    assert f.venue_generated is VenueFillKind.LIQUIDATION and f.side is Side.SELL and f.quantity == D("0.15")
    assert ex.query_order("a", PERP, "l2").status is OrderStatus.CANCELED
    assert ex.equity("a") >= 0


def test_adl_closes_part_of_profitable_position_on_crash() -> None:
    ex = make_exchange(margin=MarginConfig(adl_move=D("0.2"), adl_fraction=D("0.5")))
    ex.place_order("a", mkt("s", Side.SELL, "1"), 1)
    px = D(30000)
    for minute in range(1, 11):  # -30 % over ten minutes
        px = D(30000) * (1 - D("0.03") * minute)
        ex.update_market(minute * 60_000, {PERP: px, SPOT: px})
    adl = [f for f in ex.fills_since("a", PERP, 0) if f.venue_generated is VenueFillKind.ADL]
    assert len(adl) == 1 and adl[0].side is Side.BUY and adl[0].quantity == D("0.5")
    assert ex.positions("a", 600_000)[0].quantity == D("-0.5")


def test_no_adl_for_small_move_or_losing_side() -> None:
    ex = make_exchange()
    ex.place_order("a", mkt("s", Side.SELL, "1"), 1)
    ex.update_market(60_000, {PERP: D(27000), SPOT: D(27000)})  # -10 %
    assert not [f for f in ex.fills_since("a", PERP, 0) if f.venue_generated]
    ex2 = make_exchange()
    ex2.place_order("a", mkt("b", Side.BUY, "0.1"), 1)
    ex2.update_market(60_000, {PERP: D(21000), SPOT: D(21000)})  # -30 %, the long is the loser
    assert not [f for f in ex2.fills_since("a", PERP, 0) if f.venue_generated is VenueFillKind.ADL]


# --- borrow, transfers ------------------------------------------------------------------------------


def test_borrow_interest_accrues_hourly_and_spot_short_uses_margin() -> None:
    ex = make_exchange(borrow_apr={"BTC": D("0.0876")})
    ex.update_market(HOUR // 2, {PERP: D(30000), SPOT: D(30000)})
    with pytest.raises(InsufficientMargin):
        ex.borrow("a", "BTC", D("1"), HOUR // 2)  # no collateral in the margin wallet yet
    ex.transfer("a", "USDT", D(15000), Wallet.SPOT, Wallet.MARGIN, HOUR // 2)
    ex.borrow("a", "BTC", D("1"), HOUR // 2)
    u = ex.place_order("a", mkt("short", Side.SELL, "1", SPOT), HOUR // 2)
    assert u.status is OrderStatus.FILLED
    ex.update_market(3 * HOUR + 10, {PERP: D(30000), SPOT: D(30000)})
    (debt,) = [b for b in ex.balances("a", 0) if b.wallet is Wallet.MARGIN and b.asset == "BTC"]
    assert debt.borrowed == D("1.00001") ** 3  # three whole hours at 0.0876/8760 = 0.00001
    assert debt.free == 0
    with pytest.raises(OrderRejected):
        ex.repay("a", "BTC", D(2), 3 * HOUR + 10)


def test_wallet_transfer_delay_and_cross_venue_withdrawal() -> None:
    ex = make_exchange(wallet_transfer_delay_ms=60_000, venue_transfer_delay_ms=600_000)
    other = make_exchange(futures="0", spot_usdt="0")
    ex.transfer("a", "USDT", D(500), Wallet.SPOT, Wallet.FUTURES, 1000)
    ex.advance(60_999)
    assert ex.account("a").wallets.get_free(Wallet.FUTURES, "USDT") == D(100000)
    ex.advance(61_000)
    assert ex.account("a").wallets.get_free(Wallet.FUTURES, "USDT") == D(100500)
    ex.withdraw_to("a", "USDT", D(700), Wallet.SPOT, other, "a", Wallet.FUTURES, 61_000)
    other.advance(660_999)
    assert other.account("a").wallets.get_free(Wallet.FUTURES, "USDT") == 0
    other.advance(661_000)
    assert other.account("a").wallets.get_free(Wallet.FUTURES, "USDT") == D(700)
    with pytest.raises(InsufficientMargin):
        ex.transfer("a", "USDT", D(10**9), Wallet.SPOT, Wallet.MARGIN, 61_000)


# --- determinism ------------------------------------------------------------------------------------


def _run(seed: int) -> str:
    ex = make_exchange(seed=seed, jitter=0.3)
    h = hashlib.sha256()
    for step in range(1, 200):
        px = D(30000) + D(step % 17) * 25 - D(step % 5) * 40
        ex.update_market(step * 600_000, {PERP: px, SPOT: px + 5}, {PERP: D("0.0001")})
        if step % 3 == 0:
            ex.place_order("a", mkt(f"m{step}", Side.BUY if step % 2 else Side.SELL, "1.7"), step * 600_000)
        if step % 7 == 0:
            ex.place_order("a", lmt(f"g{step}", Side.BUY, "0.4", str(px - 50)), step * 600_000)
        for ev in ex.drain_events("a"):
            h.update(repr(ev).encode())
    return h.hexdigest()


def test_same_seed_same_events_different_seed_differs() -> None:
    assert _run(7) == _run(7)
    assert _run(7) != _run(8)


def test_events_cover_every_state_change(ex: SimExchange) -> None:
    ex.place_order("a", mkt("e1", Side.BUY, "0.1"), 1)
    kinds = [type(e).__name__ for e in ex.drain_events("a")]
    assert kinds == ["FillReported", "PositionReported", "BalanceReported", "OrderReported"]
    assert ex.drain_events("a") == []
    assert isinstance(FillReported, type)


def test_unknown_instrument_rejected(ex: SimExchange) -> None:
    with pytest.raises(OrderRejected):
        ex.place_order("a", mkt("u", Side.BUY, "1", InstrumentId("sim", Market.SPOT, "DOGEUSDT")), 1)


def test_forced_deleverage_and_margin_ratio() -> None:
    ex = make_exchange(futures="10000")
    assert ex.margin_ratio("a") == 0
    ex.place_order("a", mkt("s", Side.SELL, "1"), 1)
    ratio = ex.margin_ratio("a")
    assert D("0.01") < ratio < D("0.02")  # 150 maintenance / ~9980 equity
    assert ex.deleverage("a", PERP, D("0.5"), 2) == 0  # losing (entry at the bid): not deleveraged
    ex.update_market(60_000, {PERP: D(29000), SPOT: D(29000)})
    assert ex.deleverage("a", PERP, D("0.4"), 60_001) == D("0.4")
    (f,) = [f for f in ex.fills_since("a", PERP, 0) if f.venue_generated]
    assert f.venue_generated is VenueFillKind.ADL and f.price == D(29000) and f.fee == 0
    assert ex.positions("a", 60_001)[0].quantity == D("-0.6")


def test_spot_margin_wallet_liquidated_when_level_breached() -> None:
    ex = make_exchange(level_notional="300000")
    ex.transfer("a", "USDT", D(10000), Wallet.SPOT, Wallet.MARGIN, 1)
    ex.borrow("a", "BTC", D(1), 1)
    ex.place_order("a", mkt("short", Side.SELL, "1", SPOT), 1)  # margin: ~39967 USDT vs 1 BTC debt
    ex.update_market(60_000, {PERP: D(36000), SPOT: D(36000)})  # level ~1.11: still fine
    assert ex.account("a").wallets.debt["BTC"] == 1
    ex.update_market(120_000, {PERP: D(36400), SPOT: D(36400)})  # level ~1.098 < 1.1
    w = ex.account("a").wallets
    assert w.debt["BTC"] == 0 and w.get_free(Wallet.MARGIN, "BTC") == 0
    (liq,) = [f for f in ex.fills_since("a", SPOT, 0) if f.venue_generated]
    assert liq.venue_generated is VenueFillKind.LIQUIDATION and liq.side is Side.BUY and liq.quantity == 1
    # 10000 + 29997 * 0.999 from the short sale, minus 36400 * 1.0125 for the buy-back
    assert w.get_free(Wallet.MARGIN, "USDT") == D(10000) + D(29997) * D("0.999") - D(36400) * D("1.0125")
