"""Paper mode (replay of the vendored data through SimVenue), venue-to-venue transfers, exports."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

import fundarb.sim
from fundarb.backtest.loader import default_data_dir, load_funding
from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderType, Side, Wallet
from fundarb.sim.venue import SIM_EPOCH_MS, SimVenue, parse_sim_start

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
H = 3_600_000


async def test_paper_replay_settles_the_real_funding_rate(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNDARB_SIM_START", "2023-01-01")
    monkeypatch.setenv("FUNDARB_SIM_SPEED", "3600")
    v = SimVenue.from_replay(symbols=("BTCUSDT",), seed=2)
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


def test_parse_sim_start() -> None:
    assert parse_sim_start("") == SIM_EPOCH_MS
    assert parse_sim_start("2023-01-01T08:00:00Z") == SIM_EPOCH_MS + 8 * H
    with pytest.raises(ValueError, match="FUNDARB_SIM_START"):
        parse_sim_start("yesterday")


async def test_withdraw_between_venues_arrives_after_delay(autojump_clock: trio.testing.MockClock) -> None:
    a = SimVenue.for_tests(venue="sim")
    b = SimVenue.for_tests(venue="sim2", balances={})
    await a.withdraw_to(b, "USDT", D(1000), Wallet.SPOT, Wallet.FUTURES)
    assert await b.balances() == []
    await trio.sleep(599)
    assert await b.balances() == []
    await trio.sleep(1)
    (bal,) = await b.balances()
    assert (bal.wallet, bal.asset, bal.free) == (Wallet.FUTURES, "USDT", D(1000))


def test_public_exports() -> None:
    for name in fundarb.sim.__all__:
        assert getattr(fundarb.sim, name).__doc__, name
