"""Hypothesis: random order flow keeps the exchange's books consistent."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from fundarb.core.model import ZERO, OrderRequest, OrderType, Side, TimeInForce, Wallet
from fundarb.venues.errors import OrderNotFound, OrderRejected

from .helpers import PERP, SPOT, make_exchange

orders = st.lists(
    st.tuples(
        st.sampled_from([PERP, SPOT]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 400),  # quantity in 0.01 BTC
        st.sampled_from(["MARKET", "IOC", "GTC", "POST_ONLY", "CANCEL"]),
        st.integers(-60, 60),  # limit offset in bps / price move in 10 bps
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(orders, st.integers(0, 3))
def test_random_flow_keeps_accounts_consistent(flow, seed) -> None:
    ex = make_exchange(seed=seed, jitter=0.3, futures="200000", spot_usdt="200000")
    ex.deposit("a", Wallet.SPOT, "BTC", D(5), 0)
    price = D(30000)
    for n, (iid, side, qty, kind, off) in enumerate(flow, start=1):
        now = n * 60_000
        if kind == "CANCEL":
            price = (price * (1 + D(off) / 1000)).quantize(D("0.1"))
            ex.update_market(now, {PERP: price, SPOT: price})
            for o in ex.open_orders("a")[:1]:
                ex.cancel_order("a", o.instrument, o.client_order_id, now)
            continue
        q = D(qty) / 100
        limit = (price * (1 + D(off) / 10000)).quantize(D("0.1"))
        req = (
            OrderRequest(f"o{n}", iid, side, q, None, OrderType.MARKET)
            if kind == "MARKET"
            else OrderRequest(f"o{n}", iid, side, q, limit, OrderType.LIMIT, TimeInForce[kind])
        )
        try:
            u = ex.place_order("a", req, now)
        except OrderRejected:
            continue
        assert u.filled_qty <= q
        with_fills = [f for f in ex.fills_since("a", iid, 0) if f.client_order_id == f"o{n}"]
        assert sum((f.quantity for f in with_fills), ZERO) == u.filled_qty
    acc = ex.account("a")
    # 1. reservations: spot locks equal what working orders still reserve
    for (wallet, asset), locked in acc.wallets.locked.items():
        assert locked >= 0
        reserved = sum(
            (
                o.reserved
                for o in acc.open_orders()
                if o.wallet is wallet
                and o.request.instrument == SPOT
                and (asset == "USDT") == (o.request.side is Side.BUY)
            ),
            ZERO,
        )
        assert locked == reserved, (wallet, asset)
    # 2. spot wallets never go negative
    for (wallet, asset), free in acc.wallets.free.items():
        if wallet is not Wallet.FUTURES:
            assert free >= 0, (wallet, asset)
    # 3. perp equity = initial + sum over fills of signed qty * (mark - price) - fees (+ funding: none here)
    mark = ex.mark(PERP)
    perp_fills = ex.fills_since("a", PERP, 0)
    expected = D(200000) + sum(
        (f.side.sign * f.quantity * (mark - f.price) - f.fee for f in perp_fills), ZERO
    )
    assert abs(ex.equity("a") - expected) < D("1e-12")  # average entry divides: 28-digit Decimal
    # 4. the position equals the signed sum of fills
    pos = sum((f.side.sign * f.quantity for f in perp_fills), ZERO)
    assert sum((p.quantity for p in ex.positions("a", 0)), ZERO) == pos
    # 5. spot BTC held = deposit + signed fills
    spot_fills = ex.fills_since("a", SPOT, 0)
    btc = sum(
        (acc.wallets.get_free(w, "BTC") + acc.wallets.locked.get((w, "BTC"), ZERO) for w in Wallet), ZERO
    )
    assert btc == D(5) + sum((f.side.sign * f.quantity for f in spot_fills), ZERO)
    try:
        ex.query_order("a", PERP, "never")
    except OrderNotFound:
        pass
