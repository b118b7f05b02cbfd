"""Paper mode (replay of the vendored data through SimVenue), venue-to-venue transfers, exports."""

from __future__ import annotations

from decimal import Decimal as D

import trio
import trio.testing

import fundarb.sim
from fundarb.backtest.loader import default_data_dir, load_funding
from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderType, Side
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
H = 3_600_000


async def test_paper_replay_settles_the_real_funding_rate(autojump_clock: trio.testing.MockClock) -> None:
    v = SimVenue.from_replay(symbols=("BTCUSDT",), seed=2, start_ms=SIM_EPOCH_MS, speed=3600.0)
    assert await v.server_time_ms() == SIM_EPOCH_MS
    await v.place_order(OrderRequest("p1", PERP, Side.SELL, D("0.1"), None, OrderType.MARKET))
    snap = await v.funding(PERP)
    f = load_funding(default_data_dir(), "binance", "BTCUSDT")
    (k,) = [i for i, t in enumerate(f.times_ms) if t == SIM_EPOCH_MS + 8 * H]
    real_rate = D(repr(float(f.rates[k])))
    assert snap.rate == real_rate and snap.next_funding_ms == SIM_EPOCH_MS + 8 * H
    with trio.fail_after(60):
        await trio.sleep(8.5)  # 8.5 sim hours at 3600x
    (pay,) = await v.funding_income_since(0)
    # the mark at 08:00 is the real perp close of the 00:00 8h bar
    assert pay.amount == D("0.1") * D("16519.6") * real_rate
    q = await v.quote(PERP)
    assert D(15000) < q.bid < D(18000)


def test_public_exports() -> None:
    for name in fundarb.sim.__all__:
        assert getattr(fundarb.sim, name).__doc__, name
