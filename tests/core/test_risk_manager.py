"""The RiskManager hooks, driven the way the engine will drive them."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from fundarb.core.breakers import BreakerConfig
from fundarb.core.commands import OrderPurpose
from fundarb.core.errors import InvalidValue
from fundarb.core.model import (
    Fill,
    FundingSnapshot,
    InstrumentId,
    Liquidity,
    Market,
    Side,
    VenueFillKind,
    VenuePosition,
)
from fundarb.core.risk import DAY_MS, DailyPnl, Exposure, OrderIntent, RiskBook, RiskLimits, RiskReason
from fundarb.core.risk_manager import RiskManager, RiskManagerConfig
from fundarb.core.risk_modes import ModeScope, ModeSource, TradingMode
from fundarb.core.risk_monitors import MarginActionKind

PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("bybit", Market.SPOT, "BTCUSDT")
NOW = 20_000 * DAY_MS + 1000
BIG = D(10**9)
LIMITS = RiskLimits(BIG, BIG, BIG, BIG, D(5), D(10), 5, D(500))
R, A, H = TradingMode.REDUCING, TradingMode.ACTIVE, TradingMode.HALTED


def manager(**kw: object) -> RiskManager:
    cfg = RiskManagerConfig(
        LIMITS,
        breaker=BreakerConfig(window_ms=10_000, min_samples=5, cooldown_ms=1000),
        stale_after_ms=5000,
        clock_skew_limit_ms=500,
        **kw,  # type: ignore[arg-type]
    )
    return RiskManager(cfg)


def entry() -> OrderIntent:
    return OrderIntent(
        "p1",
        PERP,
        "BTC",
        Side.SELL,
        D("0.1"),
        D(30000),
        OrderPurpose.ENTRY,
        leverage=D(2),
        hedge_instrument=SPOT,
    )


def empty_book() -> RiskBook:
    return RiskBook((), D(100_000), DailyPnl.start(NOW), {"BTC": D("0.05")})


def test_error_rate_breaker_reduces_the_venue_and_recovers() -> None:
    m = manager()
    records = []
    for i in range(5):
        records += m.on_venue_call("binance", False, NOW + i)
    assert [(r.scope, r.mode) for r in records] == [(ModeScope.venue("binance"), R)]
    assert m.effective(PERP) is R
    assert m.check(entry(), empty_book(), NOW + 10).reason is RiskReason.MODE_REDUCING
    # the failures age out; healthy calls after the cooldown recover it
    records = []
    for i in range(5):
        records += m.on_venue_call("binance", True, NOW + 20_000 + i)
    assert [(r.scope, r.mode) for r in records] == [(ModeScope.venue("binance"), A)]
    assert m.check(entry(), empty_book(), NOW + 20_010).allowed


def test_operator_cleared_breaker_mode_returns_while_the_venue_still_fails() -> None:
    m = manager()
    for i in range(5):
        m.on_venue_call("binance", False, NOW + i)
    m.operator_clear_rule(ModeScope.venue("binance"), "error-rate", NOW + 10, "looked fine to me")
    assert m.effective(PERP) is A
    records = m.on_venue_call("binance", False, NOW + 11)
    assert m.effective(PERP) is R and len(records) == 1


def test_stale_data_on_the_hedge_leg_stops_entries_and_recovers() -> None:
    m = manager()
    m.watch(PERP, NOW)
    m.watch(SPOT, NOW)
    m.on_market_data(PERP, NOW + 6000)
    records = m.tick(NOW + 6000)  # spot is 6000 ms old
    assert [(r.scope, r.mode) for r in records] == [(ModeScope.instrument(SPOT), R)]
    d = m.check(entry(), empty_book(), NOW + 6000)
    assert (d.reason, "hedge leg" in d.detail) == (RiskReason.MODE_REDUCING, True)
    m.on_market_data(SPOT, NOW + 6500)
    assert [(r.scope, r.mode) for r in m.tick(NOW + 6500)] == [(ModeScope.instrument(SPOT), A)]
    assert m.check(entry(), empty_book(), NOW + 6500).allowed
    with pytest.raises(InvalidValue):
        m.on_market_data(SPOT, -1)


def test_breakers_age_out_on_tick() -> None:
    m = manager()
    for i in range(5):
        m.on_venue_call("okx", False, NOW + i)
    assert m.tick(NOW + 100) == []  # still tripped, nothing changes
    assert m.breakers["okx"].statistics().samples == 5
    m.tick(NOW + 60_000)
    assert m.breakers["okx"].statistics().samples == 0  # expired, but an empty window never recovers
    assert m.modes.mode_of(ModeScope.venue("okx")) is R


def test_clock_skew_hook() -> None:
    m = manager()
    assert m.on_clock("binance", 1000, 1701, 1400, NOW) != []  # server 1701 vs our 1200: +501 ms
    assert m.effective(PERP) is R
    assert m.on_clock("binance", 1000, 1300, 1400, NOW + 1) != []
    assert m.effective(PERP) is A


def test_funding_flip_hook_remembers_signs_per_instrument() -> None:
    m = manager(funding_dead_band=D("0.00001"))
    other = InstrumentId("okx", Market.PERPETUAL, "BTC-USDT-SWAP")

    def snap(inst: InstrumentId, rate: str) -> FundingSnapshot:
        return FundingSnapshot(inst, D(rate), NOW + 1000, 8, D(30000), None, NOW)

    assert m.on_funding(snap(PERP, "0.0001")) is None
    assert m.on_funding(snap(other, "-0.0001")) is None
    assert m.on_funding(snap(PERP, "0.000005")) is None  # inside the band
    flip = m.on_funding(snap(PERP, "-0.0001"))
    assert flip is not None and (flip.previous_sign, flip.sign) == (1, -1)
    assert m.on_funding(snap(other, "-0.0002")) is None
    with pytest.raises(InvalidValue):
        RiskManagerConfig(LIMITS, funding_dead_band=D(-1))


def test_position_hook_takes_the_more_severe_of_margin_and_adl() -> None:
    m = manager()
    safe_but_adl = VenuePosition(PERP, D(-1), D(30000), D(30000), liquidation_price=D(45000), adl_rank=4)
    a = m.on_position(safe_but_adl, D(0), lot_step=D("0.001"))
    assert (a.kind, a.reduce_quantity) == (MarginActionKind.REDUCE_PAIRWISE, D("0.25"))
    near_liq = VenuePosition(PERP, D(-1), D(30000), D(30000), liquidation_price=D(31000), adl_rank=4)
    assert m.on_position(near_liq, D(0)).kind is MarginActionKind.UNWIND
    both_reduce = VenuePosition(PERP, D(-1), D(30000), D(30000), liquidation_price=D(33000), adl_rank=4)
    got = m.on_position(both_reduce, D(0))
    assert got.kind is MarginActionKind.REDUCE_PAIRWISE
    assert got.reduce_quantity == 1 - D("0.1") / D("0.35")  # the ladder asks for more than ADL's 25%


def test_venue_fill_hook() -> None:
    m = manager()
    legs = (Exposure("p1", PERP, "BTC", D("-0.1"), D(30000)), Exposure("p1", SPOT, "BTC", D("0.1"), D(30000)))
    fill = Fill(
        PERP,
        "x",
        None,
        "t",
        Side.BUY,
        D("0.1"),
        D(31000),
        D(0),
        "USDT",
        Liquidity.TAKER,
        NOW,
        VenueFillKind.LIQUIDATION,
    )
    r = m.on_venue_fill(fill, legs)
    assert r is not None and (r.instrument, r.side, r.quantity) == (SPOT, Side.SELL, D("0.1"))


def test_daily_loss_hook_and_the_new_day_on_tick() -> None:
    m = manager()
    pnl = DailyPnl.start(NOW).add_realised(D(-500), NOW)
    assert [(r.scope, r.mode) for r in m.on_pnl(pnl, NOW)] == [(ModeScope.GLOBAL, R)]
    assert m.effective(SPOT) is R
    assert m.tick(NOW + 1) == []
    assert [(r.scope, r.mode) for r in m.tick(NOW + DAY_MS)] == [(ModeScope.GLOBAL, A)]


def test_kill_and_operator_modes() -> None:
    m = manager()
    records = m.kill("flatten", NOW)
    assert [(r.scope, r.source, r.mode) for r in records] == [(ModeScope.GLOBAL, ModeSource.OPERATOR, H)]
    assert m.check(entry(), empty_book(), NOW).reason is RiskReason.MODE_HALTED
    assert m.tick(NOW + 1) == []  # no rule lifts it
    m.operator_set(ModeScope.GLOBAL, A, NOW + 2, "resume")
    assert m.effective(PERP) is A
    m.operator_set(ModeScope.venue("bybit"), H, NOW + 3, "maintenance")
    assert m.check(entry(), empty_book(), NOW + 3).reason is RiskReason.MODE_HALTED  # hedge leg halted
