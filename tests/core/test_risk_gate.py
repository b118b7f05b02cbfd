"""The pre-trade gate: every gate allowed and denied at its boundary, the reducing paths, the modes."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest

from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.errors import InvalidValue
from fundarb.core.model import InstrumentId, Market, OrderRequest, OrderType, Side, TimeInForce
from fundarb.core.risk import (
    DAY_MS,
    DailyPnl,
    Exposure,
    OrderIntent,
    RiskBook,
    RiskDecision,
    RiskLimits,
    RiskReason,
    check_order,
    estimated_liquidation_distance,
)
from fundarb.core.risk_modes import ModeScope, ModeSource, TradingMode, TradingModes, kill

PERP = InstrumentId("binance", Market.PERPETUAL, "BTCUSDT")
SPOT = InstrumentId("bybit", Market.SPOT, "BTCUSDT")
ETH_PERP = InstrumentId("okx", Market.PERPETUAL, "ETH-USDT-SWAP")
NOW = 20_000 * DAY_MS + 3_600_000  # 01:00 UTC on some day
BIG = D("1e12")

LOOSE = RiskLimits(
    max_position_notional=BIG,
    max_asset_notional=BIG,
    max_venue_notional=BIG,
    max_total_notional=BIG,
    max_leverage=D(5),
    max_gross_leverage=D(100),
    max_open_positions=10,
    max_daily_loss=D(500),
)


def book(
    *exposures: Exposure, equity: str = "100000", pnl: DailyPnl | None = None, btc_move: str | None = "0.05"
) -> RiskBook:
    """A book; by default p1 holds a hedged 0.1 BTC (3000 per leg) and p2 is short 1 ETH perp."""
    if not exposures:
        exposures = (
            Exposure("p1", PERP, "BTC", D("-0.1"), D(30000)),
            Exposure("p1", SPOT, "BTC", D("0.1"), D(30000)),
            Exposure("p2", ETH_PERP, "ETH", D(-1), D(2000)),
        )
    moves = {"ETH": D("0.06")}
    if btc_move is not None:
        moves["BTC"] = D(btc_move)
    return RiskBook(tuple(exposures), D(equity), pnl or DailyPnl.start(NOW), moves)


def entry(
    qty: str = "0.1",
    *,
    pid: str = "p1",
    inst: InstrumentId = PERP,
    side: Side = Side.SELL,
    price: str = "30000",
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    leverage: str | None = "2",
    liq: str | None = None,
) -> OrderIntent:
    """A BTC order intent (default: p1 adds 0.1 BTC short perp at 30000, leverage 2)."""
    return OrderIntent(
        pid,
        inst,
        "ETH" if inst == ETH_PERP else "BTC",
        side,
        D(qty),
        D(price),
        purpose,
        leverage=None if leverage is None else D(leverage),
        liquidation_price=None if liq is None else D(liq),
    )


def decide(intent: OrderIntent, b: RiskBook | None = None, limits: RiskLimits = LOOSE, **kw: object):
    modes = kw.pop("modes", TradingModes())
    assert not kw
    return check_order(intent, b or book(), limits, modes, NOW)  # type: ignore[arg-type]


def test_entry_within_every_limit_is_allowed() -> None:
    d = decide(entry())
    assert d == RiskDecision(True, RiskReason.ALLOWED, "every gate passed", TradingMode.ACTIVE)


# --- notional caps, each exactly at the boundary -----------------------------------------------------
# Book: p1 = 6000 gross (3000 binance perp + 3000 bybit spot), p2 = 2000 (okx). The order adds 3000
# to p1 on binance: position 9000, BTC 9000, binance 6000, total 11000.


@pytest.mark.parametrize(
    ("field", "at_cap", "reason"),
    [
        ("max_position_notional", "9000", RiskReason.POSITION_NOTIONAL),
        ("max_asset_notional", "9000", RiskReason.ASSET_NOTIONAL),
        ("max_venue_notional", "6000", RiskReason.VENUE_NOTIONAL),
        ("max_total_notional", "11000", RiskReason.TOTAL_NOTIONAL),
    ],
)
def test_notional_caps_allow_at_the_cap_and_deny_above(field: str, at_cap: str, reason: RiskReason) -> None:
    assert decide(entry(), limits=attrs.evolve(LOOSE, **{field: D(at_cap)})).reason is RiskReason.ALLOWED
    denied = decide(entry(), limits=attrs.evolve(LOOSE, **{field: D(at_cap) - D("0.01")}))
    assert not denied.allowed
    assert denied.reason is reason
    assert at_cap in denied.detail or str(D(at_cap) - D("0.01")) in denied.detail


def test_asset_and_venue_overrides_take_precedence() -> None:
    limits = attrs.evolve(LOOSE, asset_caps={"BTC": D(8999)}, venue_caps={"okx": D(1)})
    assert decide(entry(), limits=limits).reason is RiskReason.ASSET_NOTIONAL
    limits = attrs.evolve(LOOSE, asset_caps={"ETH": D(1)}, venue_caps={"binance": D(5999)})
    assert decide(entry(), limits=limits).reason is RiskReason.VENUE_NOTIONAL
    with pytest.raises(InvalidValue):
        attrs.evolve(LOOSE, venue_caps={"okx": D(0)})


def test_working_orders_count_against_the_caps() -> None:
    b = book(Exposure("p1", PERP, "BTC", D("-0.1"), D(30000), pending=D("0.1")))  # 6000 committed
    limits = attrs.evolve(LOOSE, max_position_notional=D(8999))
    assert decide(entry(), b, limits).reason is RiskReason.POSITION_NOTIONAL
    assert decide(entry(), b, attrs.evolve(LOOSE, max_position_notional=D(9000))).allowed


# --- leverage ------------------------------------------------------------------------------------


def test_leg_leverage_cap_boundary() -> None:
    assert decide(entry(leverage="5", liq="36000")).allowed
    d = decide(entry(leverage="5.01", liq="36000"))
    assert (d.allowed, d.reason) == (False, RiskReason.LEVERAGE)


def test_perp_entry_without_leverage_fails_closed_but_spot_needs_none() -> None:
    d = decide(entry(leverage=None))
    assert (d.allowed, d.reason) == (False, RiskReason.MISSING_DATA)
    assert decide(entry(inst=SPOT, side=Side.BUY, leverage=None), book(btc_move=None)).allowed


def test_gross_leverage_boundary() -> None:
    # gross after the order: 11000
    assert decide(entry(), book(equity="5500"), attrs.evolve(LOOSE, max_gross_leverage=D(2))).allowed
    d = decide(entry(), book(equity="5499"), attrs.evolve(LOOSE, max_gross_leverage=D(2)))
    assert d.reason is RiskReason.GROSS_LEVERAGE
    for equity in ("0", "-10"):
        assert decide(entry(), book(equity=equity)).reason is RiskReason.GROSS_LEVERAGE


# --- liquidation distance at entry ---------------------------------------------------------------


def test_liquidation_distance_from_the_venue_price_boundary() -> None:
    # tail move 0.05, k = 3: the liquidation price must be >= 15% away. Short at 30000: >= 34500.
    assert decide(entry(liq="34500")).allowed
    d = decide(entry(liq="34499.9"))
    assert (d.allowed, d.reason) == (False, RiskReason.LIQUIDATION_DISTANCE)
    assert "venue liquidation price" in d.detail
    # a long perp's liquidation is below: >= 15% below 30000 is <= 25500
    assert decide(entry(side=Side.BUY, liq="25500")).allowed
    assert decide(entry(side=Side.BUY, liq="25500.1")).reason is RiskReason.LIQUIDATION_DISTANCE


def test_liquidation_price_on_the_wrong_side_is_denied() -> None:
    d = decide(entry(liq="29000"))  # a short is liquidated above, not below
    assert (d.reason, "wrong side" in d.detail) == (RiskReason.LIQUIDATION_DISTANCE, True)


def test_liquidation_distance_estimated_from_leverage_and_k() -> None:
    assert estimated_liquidation_distance(D(4), D("0.005")) == D("0.245")
    assert estimated_liquidation_distance(D(1000), D("0.005")) == 0
    # leverage 4 -> 0.245; k=4.9 needs exactly 0.245, k=4.91 needs 0.2455
    assert decide(entry(leverage="4"), limits=attrs.evolve(LOOSE, liquidation_k=D("4.9"))).allowed
    d = decide(entry(leverage="4"), limits=attrs.evolve(LOOSE, liquidation_k=D("4.91")))
    assert d.reason is RiskReason.LIQUIDATION_DISTANCE
    assert "estimated from leverage" in d.detail
    # default k = 3 with leverage 5: 0.195 >= 0.15
    assert LOOSE.liquidation_k == 3
    assert decide(entry(leverage="5")).allowed


def test_no_tail_estimate_fails_closed() -> None:
    d = decide(entry(), book(btc_move=None))
    assert (d.allowed, d.reason) == (False, RiskReason.MISSING_DATA)


# --- open positions and daily loss ---------------------------------------------------------------


def test_max_open_positions_counts_new_positions_only() -> None:
    limits = attrs.evolve(LOOSE, max_open_positions=2)  # p1 and p2 are open
    assert decide(entry(pid="p1"), limits=limits).allowed
    d = decide(entry(pid="p3"), limits=limits)
    assert (d.allowed, d.reason) == (False, RiskReason.MAX_POSITIONS)
    assert decide(entry(pid="p3"), limits=attrs.evolve(LOOSE, max_open_positions=3)).allowed
    # a position with only a working order counts as open; a flat one does not
    b = book(
        Exposure("p1", PERP, "BTC", D(0), D(30000), pending=D("0.1")),
        Exposure("p2", ETH_PERP, "ETH", D(0), D(2000)),
    )
    assert decide(entry(pid="p3"), b, attrs.evolve(LOOSE, max_open_positions=2)).allowed
    assert (
        decide(entry(pid="p3"), b, attrs.evolve(LOOSE, max_open_positions=1)).reason
        is RiskReason.MAX_POSITIONS
    )


def test_daily_loss_limit_boundary_realised_plus_unrealised() -> None:
    day = NOW - NOW % DAY_MS
    at_limit = DailyPnl(day, realised=D(-200), unrealised_at_start=D(100), unrealised=D(-200))  # -500
    d = decide(entry(), book(pnl=at_limit))
    assert (d.allowed, d.reason) == (False, RiskReason.DAILY_LOSS)
    assert decide(entry(), book(pnl=attrs.evolve(at_limit, realised=D("-199.99")))).allowed


def test_daily_loss_resets_at_utc_midnight() -> None:
    yesterday = (
        DailyPnl.start(NOW - DAY_MS, D(50)).add_realised(D(-900), NOW - DAY_MS).mark(D(-350), NOW - DAY_MS)
    )
    assert yesterday.total == D(-1300)
    today = yesterday.at(NOW)
    assert (today.day_start_ms, today.total, today.unrealised_at_start) == (NOW - NOW % DAY_MS, 0, D(-350))
    assert decide(entry(), book(pnl=yesterday)).allowed
    with pytest.raises(InvalidValue):
        today.at(NOW - DAY_MS)
    with pytest.raises(InvalidValue):
        DailyPnl(NOW)  # not a midnight


def test_first_failing_gate_is_the_reason() -> None:
    day = NOW - NOW % DAY_MS
    b = book(pnl=DailyPnl(day, realised=D(-1000)))
    tight = attrs.evolve(LOOSE, max_position_notional=D(1), max_open_positions=1)
    assert decide(entry(pid="p9"), b, tight).reason is RiskReason.DAILY_LOSS
    assert decide(entry(pid="p9"), book(), tight).reason is RiskReason.MAX_POSITIONS
    assert decide(entry(pid="p1"), book(), tight).reason is RiskReason.POSITION_NOTIONAL


# --- the reducing paths --------------------------------------------------------------------------

TINY = attrs.evolve(
    LOOSE,
    max_position_notional=D(1),
    max_asset_notional=D(1),
    max_venue_notional=D(1),
    max_total_notional=D(1),
    max_open_positions=1,
)


@pytest.mark.parametrize("purpose", [OrderPurpose.EXIT, OrderPurpose.REBALANCE, OrderPurpose.HEDGE])
def test_reducing_a_leg_ignores_caps_and_passes_reducing(purpose: OrderPurpose) -> None:
    exit_perp = entry("0.1", side=Side.BUY, purpose=purpose)  # buys back the 0.1 short
    reducing, _ = TradingModes().set(ModeScope.GLOBAL, TradingMode.REDUCING, ModeSource.OPERATOR, NOW)
    for modes in (TradingModes(), reducing):
        d = decide(exit_perp, limits=TINY, modes=modes)
        assert (d.allowed, d.reason) == (True, RiskReason.REDUCES_RISK)
    # more than the leg holds would cross zero: not reducing, so REDUCING blocks it
    d = decide(entry("0.11", side=Side.BUY, purpose=purpose), modes=reducing)
    assert (d.allowed, d.reason) == (False, RiskReason.MODE_REDUCING)


def test_hedging_a_naked_leg_passes_reducing_but_overshooting_does_not() -> None:
    naked = book(Exposure("p1", SPOT, "BTC", D("0.1"), D(30000)), Exposure("p1", PERP, "BTC", D(0), D(30000)))
    reducing, _ = TradingModes().set(
        ModeScope.venue("binance"), TradingMode.REDUCING, ModeSource.rule("x"), NOW
    )
    hedge = entry("0.1", purpose=OrderPurpose.HEDGE)
    d = decide(hedge, naked, TINY, modes=reducing)
    assert (d.allowed, d.reason, d.mode) == (True, RiskReason.REDUCES_RISK, TradingMode.REDUCING)
    over = decide(entry("0.15", purpose=OrderPurpose.HEDGE), naked, modes=reducing)
    assert (over.allowed, over.reason) == (False, RiskReason.MODE_REDUCING)
    assert "rule:x" in over.detail and "venue:binance" in over.detail
    # in ACTIVE, an overshooting hedge is an increase and meets the caps
    assert (
        decide(entry("0.15", purpose=OrderPurpose.HEDGE), naked, TINY).reason is RiskReason.POSITION_NOTIONAL
    )


def test_an_entry_never_counts_as_reducing() -> None:
    reducing, _ = TradingModes().set(ModeScope.GLOBAL, TradingMode.REDUCING, ModeSource.OPERATOR, NOW)
    d = decide(entry("0.1", side=Side.BUY), modes=reducing)  # would shrink the short, but it is an ENTRY
    assert d.reason is RiskReason.MODE_REDUCING


def test_halted_lets_only_unwinds_through() -> None:
    halted, _ = kill(TradingModes(), "test", NOW)
    unwind = entry("0.1", side=Side.BUY, purpose=OrderPurpose.UNWIND)
    d = decide(unwind, limits=TINY, modes=halted)
    assert (d.allowed, d.reason, d.mode) == (True, RiskReason.UNWIND, TradingMode.HALTED)
    for intent in (
        entry("0.1", side=Side.BUY, purpose=OrderPurpose.EXIT),
        entry("0.1", side=Side.BUY, purpose=OrderPurpose.HEDGE),
        entry(),
        entry("0.2", side=Side.BUY, purpose=OrderPurpose.UNWIND),  # crosses zero
        entry("0.1", side=Side.SELL, purpose=OrderPurpose.UNWIND),  # grows the short
        entry("0.1", pid="p7", side=Side.BUY, purpose=OrderPurpose.UNWIND),  # no such leg
    ):
        d = decide(intent, modes=halted)
        assert (d.allowed, d.reason) == (False, RiskReason.MODE_HALTED), intent
        assert "operator" in d.detail


def test_an_unwind_that_adds_exposure_is_gated_in_active() -> None:
    d = decide(entry("0.1", side=Side.SELL, purpose=OrderPurpose.UNWIND), limits=TINY)
    assert d.reason is RiskReason.POSITION_NOTIONAL


def test_most_restrictive_mode_applies() -> None:
    modes, _ = TradingModes().set(ModeScope.GLOBAL, TradingMode.REDUCING, ModeSource.rule("a"), NOW)
    modes, _ = modes.set(ModeScope.instrument(PERP), TradingMode.HALTED, ModeSource.rule("b"), NOW)
    assert (
        decide(entry("0.1", side=Side.BUY, purpose=OrderPurpose.EXIT), modes=modes).reason
        is RiskReason.MODE_HALTED
    )
    # another instrument only sees the global REDUCING
    d = decide(entry(inst=SPOT, side=Side.BUY, leverage=None), modes=modes)
    assert (d.reason, d.mode) == (RiskReason.MODE_REDUCING, TradingMode.REDUCING)
    # the ETH perp on okx is not touched by the BTC perp's HALTED
    eth_exit = entry("1", pid="p2", inst=ETH_PERP, side=Side.BUY, purpose=OrderPurpose.EXIT, price="2000")
    assert decide(eth_exit, modes=modes).reason is RiskReason.REDUCES_RISK


# --- inputs ---------------------------------------------------------------------------------------


def test_intent_from_a_place_order_command() -> None:
    req = OrderRequest("p1-A1", PERP, Side.SELL, D("0.1"), None, OrderType.MARKET, TimeInForce.IOC)
    cmd = PlaceOrder("p1", "A", OrderPurpose.ENTRY, req, reference_price=D(30000))
    intent = OrderIntent.from_command(cmd, "BTC", leverage=D(2))
    assert (intent.price, intent.notional, intent.signed_quantity) == (D(30000), D(3000), D("-0.1"))
    assert decide(intent).allowed
    limit = OrderRequest("p1-A1", PERP, Side.SELL, D("0.1"), D(31000))
    assert OrderIntent.from_command(PlaceOrder("p1", "A", OrderPurpose.ENTRY, limit), "BTC").price == D(31000)
    with pytest.raises(InvalidValue, match="reference price"):
        OrderIntent.from_command(PlaceOrder("p1", "A", OrderPurpose.ENTRY, req), "BTC")


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(InvalidValue):
        entry("0")
    with pytest.raises(InvalidValue):
        entry(price="-1")
    with pytest.raises(InvalidValue, match="two exposures"):
        book(Exposure("p1", PERP, "BTC", D(1), D(1)), Exposure("p1", PERP, "BTC", D(2), D(1)))
    with pytest.raises(InvalidValue):
        attrs.evolve(LOOSE, max_open_positions=0)
    with pytest.raises(InvalidValue):
        attrs.evolve(LOOSE, max_daily_loss=D(0))
    with pytest.raises(InvalidValue):
        RiskBook((), D(1), DailyPnl.start(NOW), {"BTC": D(-1)})
    with pytest.raises(InvalidValue, match="contradicts"):
        RiskDecision(True, RiskReason.DAILY_LOSS, "")
    with pytest.raises(InvalidValue):
        check_order(entry(), book(), LOOSE, TradingModes(), -1)


def test_book_aggregates() -> None:
    b = book(*book().exposures, Exposure("p3", PERP, "BTC", D("0.2"), D(30000), pending=D("0.1")))
    assert b.gross_for("p1", "BTC", "binance") == (D(6000), D(15000), D(12000), D(17000))
    assert b.gross_for("p1", "BTC", "binance") == (
        b.gross(position_id="p1"),
        b.gross(asset="BTC"),
        b.gross(venue="binance"),
        b.gross(),
    )
    assert b.open_positions() == {"p1", "p2", "p3"}
    assert (b.asset_delta("BTC"), b.position_delta("p1", "BTC"), b.position_delta("p2", "ETH")) == (
        D("0.2"),
        0,
        -1,
    )
    assert b.leg("p1", SPOT) == Exposure("p1", SPOT, "BTC", D("0.1"), D(30000))
    assert b.leg("p2", SPOT) is None


def test_an_entry_is_judged_under_its_hedge_legs_mode_too() -> None:
    modes, _ = TradingModes().set(
        ModeScope.venue("bybit"), TradingMode.REDUCING, ModeSource.rule("stale-data"), NOW
    )
    with_hedge = attrs.evolve(entry(), hedge_instrument=SPOT)
    d = decide(with_hedge, modes=modes)
    assert (d.allowed, d.reason, d.mode) == (False, RiskReason.MODE_REDUCING, TradingMode.REDUCING)
    assert "hedge leg bybit:spot:BTCUSDT" in d.detail and "rule:stale-data" in d.detail
    assert decide(entry(), modes=modes).allowed  # without naming the hedge leg, only its own mode counts
    halted, _ = modes.set(ModeScope.instrument(SPOT), TradingMode.HALTED, ModeSource.OPERATOR, NOW)
    assert decide(with_hedge, modes=halted).reason is RiskReason.MODE_HALTED
    # the hedge leg's mode never blocks reducing the order's own leg
    exit_perp = attrs.evolve(entry(side=Side.BUY, purpose=OrderPurpose.EXIT), hedge_instrument=SPOT)
    assert decide(exit_perp, modes=halted).reason is RiskReason.REDUCES_RISK
    req = OrderRequest("p1-A1", PERP, Side.SELL, D("0.1"), D(30000))
    cmd = PlaceOrder("p1", "A", OrderPurpose.ENTRY, req)
    assert OrderIntent.from_command(cmd, "BTC", hedge_instrument=SPOT).hedge_instrument == SPOT


def test_liquidation_distance_floor_and_optional_tail_move() -> None:
    floored = attrs.evolve(LOOSE, min_liquidation_distance=D("0.2"))  # above 3 x 0.05
    assert decide(entry(liq="36000"), limits=floored).allowed
    d = decide(entry(liq="35999.9"), limits=floored)
    assert (d.reason, "(the floor)" in d.detail) == (RiskReason.LIQUIDATION_DISTANCE, True)
    # without a tail estimate: refused by default, judged by the floor alone when allowed to
    assert decide(entry(liq="36000"), book(btc_move=None), floored).reason is RiskReason.MISSING_DATA
    lenient = attrs.evolve(floored, require_tail_move=False)
    assert decide(entry(liq="36000"), book(btc_move=None), lenient).allowed
    assert (
        decide(entry(liq="35999.9"), book(btc_move=None), lenient).reason is RiskReason.LIQUIDATION_DISTANCE
    )
    # the tail rule still applies when it is the stricter one
    assert (
        "3 x tail move 0.05"
        in decide(entry(liq="34499.9"), limits=attrs.evolve(LOOSE, min_liquidation_distance=D("0.1"))).detail
    )


def test_limits_from_the_configuration_numbers() -> None:
    lim = RiskLimits.from_capital(D(100_000), D(3), D(20_000), 4, D(2000), D("0.25"))
    # 100k carries N = 100k x 3/4 = 75k per leg, 150k gross
    assert (lim.max_total_notional, lim.max_asset_notional, lim.max_venue_notional) == (D(150_000),) * 3
    assert (lim.max_position_notional, lim.max_leverage, lim.max_gross_leverage) == (D(20_000), D(3), D(2))
    assert (lim.max_open_positions, lim.max_daily_loss, lim.min_liquidation_distance) == (
        4,
        D(2000),
        D("0.25"),
    )
    assert (lim.liquidation_k, lim.require_tail_move) == (D(3), True)


def test_working_reducing_orders_limit_what_else_counts_as_reducing() -> None:
    b = book(
        Exposure("p1", PERP, "BTC", D("-0.1"), D(30000), reducing=D("0.06")),
        Exposure("p1", SPOT, "BTC", D("0.1"), D(30000)),
    )
    assert b.leg("p1", PERP) is not None and b.leg("p1", PERP).reducible == D("0.04")  # type: ignore[union-attr]
    halted, _ = kill(TradingModes(), "test", NOW)
    assert decide(entry("0.04", side=Side.BUY, purpose=OrderPurpose.UNWIND), b, modes=halted).allowed
    d = decide(entry("0.05", side=Side.BUY, purpose=OrderPurpose.UNWIND), b, modes=halted)
    assert d.reason is RiskReason.MODE_HALTED  # with the 0.06 already working it would cross zero
    assert Exposure("p", PERP, "BTC", D("-0.1"), D(1), reducing=D("0.2")).reducible == 0
