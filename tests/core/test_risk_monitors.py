"""Monitor decisions: margin ladder, ADL, venue-fill re-hedge, net delta, stale data, clock skew,
daily loss and funding sign flips, including recovery."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

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
from fundarb.core.risk import DAY_MS, DailyPnl, Exposure, RiskLimits
from fundarb.core.risk_modes import ModeScope, ModeSource, TradingMode, TradingModes
from fundarb.core.risk_monitors import (
    AdlPolicy,
    DeltaBreach,
    FundingFlip,
    MarginActionKind,
    MarginLadder,
    Rehedge,
    adl_action,
    apply_clock_skew,
    apply_daily_loss,
    apply_stale_data,
    delta_breaches,
    detect_funding_flip,
    estimate_clock_skew,
    funding_sign,
    margin_action,
    rehedge_for_venue_fill,
)

PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("bybit", Market.SPOT, "BTCUSDT")
LADDER = MarginLadder()
K = MarginActionKind
NOW = 20_000 * DAY_MS + 60_000


def short(
    liq: str | None = None,
    *,
    qty: str = "-1",
    mm: str = "0",
    balance: str | None = None,
    adl: int | None = None,
) -> VenuePosition:
    """A BTC perp position marked at 30000."""
    return VenuePosition(
        PERP,
        D(qty),
        D(30000),
        D(30000),
        liquidation_price=None if liq is None else D(liq),
        maintenance_margin=D(mm),
        margin_balance=None if balance is None else D(balance),
        adl_rank=adl,
    )


# --- margin ladder by liquidation distance ------------------------------------------------------


@pytest.mark.parametrize(
    ("liq", "kind"),
    [
        ("40000", K.NONE),  # 33%
        ("39000.3", K.NONE),  # just above 30%
        ("39000", K.ALERT),  # exactly 30%
        ("36000.3", K.ALERT),
        ("36000", K.TOP_UP),  # 20%
        ("33600.3", K.TOP_UP),
        ("33600", K.REDUCE_PAIRWISE),  # 12%
        ("31800.3", K.REDUCE_PAIRWISE),
        ("31800", K.UNWIND),  # 6%
        ("30000.3", K.UNWIND),
    ],
)
def test_ladder_by_distance_fires_at_each_threshold(liq: str, kind: MarginActionKind) -> None:
    action = margin_action(short(liq), D(10**9), LADDER)
    assert action.kind is kind
    assert action.distance == abs(D(30000) - D(liq)) / D(30000)


def test_top_up_restores_the_target_distance() -> None:
    a = margin_action(short("36000"), D(4500), LADDER)  # (0.35 - 0.20) x 30000 x 1
    assert (a.kind, a.top_up, a.reduce_quantity) == (K.TOP_UP, D("4500.00"), 0)
    assert "top up 4500.00" in a.detail


def test_top_up_without_enough_collateral_becomes_a_pairwise_reduction() -> None:
    a = margin_action(short("36000"), D("4499.99"), LADDER, lot_step=D("0.001"))
    assert a.kind is K.REDUCE_PAIRWISE
    assert a.reduce_fraction == 1 - D("0.2") / D("0.35")
    assert a.reduce_quantity == D("0.429")  # rounded up to the lot
    assert "free collateral 4499.99 < 4500.00" in a.detail
    b = margin_action(short("36000"), D(10**9), LADDER, can_top_up=False)
    assert b.kind is K.REDUCE_PAIRWISE and "takes no top-up" in b.detail
    assert b.reduce_quantity == 1 - D("0.2") / D("0.35")  # no lot: exact


def test_reduction_is_sized_back_to_target_and_at_least_the_minimum() -> None:
    a = margin_action(short("33600"), D(10**9), LADDER, lot_step=D("0.001"))
    assert (a.kind, a.reduce_quantity) == (K.REDUCE_PAIRWISE, D("0.658"))  # 1 - 0.12/0.35 = 0.657..
    ladder = MarginLadder(min_reduce_fraction=D("0.9"))
    assert margin_action(short("33600"), D(0), ladder).reduce_fraction == D("0.9")


def test_a_reduction_that_would_take_the_whole_leg_is_an_unwind() -> None:
    a = margin_action(short("33600", qty="-0.001"), D(0), LADDER, lot_step=D("0.001"))
    assert (a.kind, a.reduce_quantity, a.reduce_fraction) == (K.UNWIND, D("0.001"), 1)
    assert "whole leg" in a.detail


def test_unwind_takes_the_whole_leg() -> None:
    a = margin_action(short("31800", qty="-2.5"), D(10**9), LADDER)
    assert (a.kind, a.reduce_quantity, a.reduce_fraction) == (K.UNWIND, D("2.5"), 1)


# --- margin ladder by margin ratio --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mm", "kind"),
    [("349.9", K.NONE), ("350", K.ALERT), ("500", K.TOP_UP), ("650", K.REDUCE_PAIRWISE), ("800", K.UNWIND)],
)
def test_ladder_by_margin_ratio(mm: str, kind: MarginActionKind) -> None:
    a = margin_action(short(mm=mm, balance="1000"), D(10**9), LADDER)
    assert (a.kind, a.ratio, a.distance) == (kind, D(mm) / 1000, None)


def test_ratio_top_up_and_reduction_sizes() -> None:
    a = margin_action(short(mm="500", balance="1000"), D(10**9), LADDER)
    assert a.top_up == D("666.67")  # 500 / 0.30 - 1000, rounded up to the cent
    b = margin_action(short(mm="650", balance="1000"), D(10**9), LADDER)
    assert b.reduce_fraction == 1 - D("0.30") / D("0.65")


def test_the_more_severe_measure_wins() -> None:
    a = margin_action(short("37500", mm="650", balance="1000"), D(10**9), LADDER)  # 25%: alert; ratio: reduce
    assert a.kind is K.REDUCE_PAIRWISE
    assert a.reduce_fraction == max(1 - D("0.25") / D("0.35"), 1 - D("0.30") / D("0.65"))
    b = margin_action(short("31500", mm="100", balance="1000"), D(10**9), LADDER)  # 5%: unwind
    assert b.kind is K.UNWIND


def test_exhausted_margin_unmeasurable_and_flat_legs() -> None:
    assert margin_action(short("40000", balance="0"), D(10**9), LADDER).kind is K.UNWIND
    assert margin_action(short("40000", balance="-5"), D(10**9), LADDER).kind is K.UNWIND
    a = margin_action(short(), D(10**9), LADDER)
    assert (a.kind, "cannot measure" in a.detail) == (K.ALERT, True)
    assert margin_action(short("31000", qty="0"), D(0), LADDER).kind is K.NONE


def test_ladder_thresholds_must_be_ordered() -> None:
    with pytest.raises(InvalidValue, match="distances"):
        MarginLadder(top_up_distance=D("0.35"))
    with pytest.raises(InvalidValue, match="ratios"):
        MarginLadder(reduce_ratio=D("0.9"))
    with pytest.raises(InvalidValue):
        MarginLadder(alert_distance=D("1.5"))
    with pytest.raises(InvalidValue):
        margin_action(short("36000"), 5, LADDER)  # type: ignore[arg-type]


# --- ADL rank -----------------------------------------------------------------------------------


def test_adl_rank_escalates_to_a_pairwise_reduction() -> None:
    policy = AdlPolicy()
    assert adl_action(short(adl=None), policy).kind is K.NONE
    assert adl_action(short(adl=2), policy).kind is K.NONE
    assert adl_action(short(adl=3), policy).kind is K.ALERT
    a = adl_action(short(qty="-0.1", adl=4), policy, lot_step=D("0.001"))
    assert (a.kind, a.reduce_fraction, a.reduce_quantity) == (K.REDUCE_PAIRWISE, D("0.25"), D("0.025"))
    assert adl_action(short(qty="0", adl=5), policy).kind is K.NONE
    with pytest.raises(InvalidValue):
        AdlPolicy(alert_rank=5, reduce_rank=4)


# --- venue-generated fills ------------------------------------------------------------------------

LEGS = (
    Exposure("p1", PERP, "BTC", D("-0.1"), D(30000)),
    Exposure("p1", SPOT, "BTC", D("0.1"), D(30000)),
)


def vfill(
    side: Side, qty: str, kind: VenueFillKind | None = VenueFillKind.ADL, inst: InstrumentId = PERP
) -> Fill:
    return Fill(inst, "adl", None, "t1", side, D(qty), D(31000), D(0), "USDT", Liquidity.TAKER, NOW, kind)


def test_adl_on_the_short_perp_sells_the_same_quantity_of_spot() -> None:
    r = rehedge_for_venue_fill(vfill(Side.BUY, "0.04"), LEGS)
    assert r is not None
    assert (r.position_id, r.instrument, r.side, r.quantity, r.cause) == (
        "p1",
        SPOT,
        Side.SELL,
        D("0.04"),
        VenueFillKind.ADL,
    )
    assert r.quantity_delta == D("-0.04")


def test_a_liquidation_bigger_than_the_survivor_is_capped_at_the_survivor() -> None:
    r = rehedge_for_venue_fill(vfill(Side.BUY, "0.2", VenueFillKind.LIQUIDATION), LEGS)
    assert r == Rehedge("p1", SPOT, Side.SELL, D("0.1"), VenueFillKind.LIQUIDATION, r.detail if r else "")


def test_fills_on_other_instruments_or_without_a_survivor_need_no_rehedge() -> None:
    other = InstrumentId("okx", Market.PERPETUAL, "BTC-USDT-SWAP")
    assert rehedge_for_venue_fill(vfill(Side.BUY, "0.1", inst=other), LEGS) is None
    assert rehedge_for_venue_fill(vfill(Side.BUY, "0.1"), LEGS[:1]) is None
    flat_spot = (LEGS[0], Exposure("p1", SPOT, "BTC", D(0), D(30000)))
    assert rehedge_for_venue_fill(vfill(Side.BUY, "0.1"), flat_spot) is None
    with pytest.raises(InvalidValue, match="not a venue-generated"):
        rehedge_for_venue_fill(vfill(Side.BUY, "0.1", kind=None), LEGS)


# --- net delta ------------------------------------------------------------------------------------


def test_delta_breaches_across_venues() -> None:
    hedged = [*LEGS]
    assert delta_breaches(hedged, D(0), NOW) == []
    naked = [*LEGS, Exposure("p2", InstrumentId("okx", Market.PERPETUAL, "X"), "BTC", D("-0.01"), D(30010))]
    assert delta_breaches(naked, D("300.1"), NOW) == []  # exactly at the tolerance
    assert delta_breaches(naked, D(300), NOW) == [DeltaBreach("BTC", D("-0.01"), D("300.10"), D(300), NOW)]
    eth = Exposure("p3", InstrumentId("okx", Market.PERPETUAL, "E"), "ETH", D(1), D(2000))
    got = delta_breaches([eth, *naked], D(10**6), NOW, per_asset={"ETH": D(1999), "BTC": D(1)})
    assert [b.asset for b in got] == ["BTC", "ETH"]
    with pytest.raises(InvalidValue):
        delta_breaches(naked, D(-1), NOW)


# --- stale data -----------------------------------------------------------------------------------


def test_stale_data_reduces_the_instrument_and_recovers() -> None:
    modes, records = apply_stale_data(TradingModes(), {PERP: NOW - 5000, SPOT: NOW - 5001}, 5000, NOW)
    assert modes.effective(PERP) is TradingMode.ACTIVE  # exactly stale_after old: still fresh
    assert modes.effective(SPOT) is TradingMode.REDUCING
    assert [(r.scope, r.mode) for r in records] == [(ModeScope.instrument(SPOT), TradingMode.REDUCING)]
    assert "5001 ms" in records[0].reason
    modes, records = apply_stale_data(modes, {PERP: NOW - 5000, SPOT: NOW - 5001}, 5000, NOW)
    assert records == []  # unchanged
    modes, records = apply_stale_data(modes, {PERP: NOW, SPOT: NOW}, 5000, NOW + 1)
    assert modes.effective(SPOT) is TradingMode.ACTIVE
    assert [(r.scope, r.mode) for r in records] == [(ModeScope.instrument(SPOT), TradingMode.ACTIVE)]


def test_stale_data_recovery_does_not_lift_the_operator() -> None:
    modes, _ = TradingModes().set(ModeScope.instrument(SPOT), TradingMode.REDUCING, ModeSource.OPERATOR, 1)
    modes, _ = apply_stale_data(modes, {SPOT: 0}, 5000, NOW)
    modes, _ = apply_stale_data(modes, {SPOT: NOW}, 5000, NOW)
    assert modes.effective(SPOT) is TradingMode.REDUCING


# --- clock skew -----------------------------------------------------------------------------------


def test_clock_skew_estimate_and_rule() -> None:
    assert estimate_clock_skew(1000, 1600, 1200) == 500
    assert estimate_clock_skew(1000, 500, 1200) == -600
    with pytest.raises(InvalidValue):
        estimate_clock_skew(1200, 1600, 1000)
    modes, records = apply_clock_skew(TradingModes(), "binance", 500, 500, NOW)
    assert (modes.effective(PERP), records) == (TradingMode.ACTIVE, [])
    for skew in (501, -501):
        bad, records = apply_clock_skew(TradingModes(), "binance", skew, 500, NOW)
        assert bad.effective(PERP) is TradingMode.REDUCING
        assert bad.effective(SPOT) is TradingMode.ACTIVE
        assert records[0].source == ModeSource.rule("clock-skew")
    back, records = apply_clock_skew(bad, "binance", 20, 500, NOW + 1)
    assert back.effective(PERP) is TradingMode.ACTIVE and len(records) == 1


# --- daily loss -----------------------------------------------------------------------------------


def test_daily_loss_reduces_everything_until_the_next_utc_day() -> None:
    limits = RiskLimits(D(1), D(1), D(1), D(1), D(1), D(1), 1, D(500))
    pnl = DailyPnl.start(NOW).add_realised(D("-499.99"), NOW)
    modes, records = apply_daily_loss(TradingModes(), pnl, limits, NOW)
    assert (modes.mode_of(ModeScope.GLOBAL), records) == (TradingMode.ACTIVE, [])
    pnl = pnl.add_realised(D("-0.01"), NOW)
    modes, records = apply_daily_loss(modes, pnl, limits, NOW)
    assert modes.effective(PERP) is TradingMode.REDUCING
    assert records[0].source == ModeSource.rule("daily-loss")
    modes, records = apply_daily_loss(modes, pnl, limits, NOW + DAY_MS)
    assert modes.effective(PERP) is TradingMode.ACTIVE and len(records) == 1


# --- funding sign flips ---------------------------------------------------------------------------


def snap(rate: str, ts: int = NOW) -> FundingSnapshot:
    return FundingSnapshot(PERP, D(rate), NOW + 3_600_000, 8, D(30000), None, ts)


def test_funding_flip_detection_with_a_dead_band() -> None:
    band = D("0.0001")
    assert [funding_sign(D(r), band) for r in ("0.0002", "0.0001", "-0.0001", "-0.00011")] == [1, 0, 0, -1]
    sign, flip = detect_funding_flip(0, snap("0.0002"), band)
    assert (sign, flip) == (1, None)  # the first sign seen is not a flip
    for rate in ("0.00005", "-0.00005", "0"):
        sign, flip = detect_funding_flip(sign, snap(rate), band)
        assert (sign, flip) == (1, None)  # noise inside the band keeps the last sign
    sign, flip = detect_funding_flip(sign, snap("-0.0002", NOW + 5), band)
    assert (sign, flip) == (-1, FundingFlip(PERP, 1, -1, D("-0.0002"), NOW + 5))
    sign, flip = detect_funding_flip(sign, snap("-0.0003"), band)
    assert (sign, flip) == (-1, None)
    assert detect_funding_flip(-1, snap("0.00001"))[1] is not None  # no band: any crossing
    with pytest.raises(InvalidValue):
        detect_funding_flip(2, snap("0.1"))
    with pytest.raises(InvalidValue):
        detect_funding_flip(0, snap("0.1"), D(-1))
