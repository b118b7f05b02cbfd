"""Hypothesis properties of the gate and the modes.

- a confirmed risk-reducing order is never blocked by REDUCING, nor by any cap;
- nothing but an unwind that shrinks a leg without crossing zero passes HALTED;
- an order allowed as ALLOWED keeps every cap, and stays allowed under looser limits;
- modes: any sequence of rule and operator changes keeps the effective mode the most restrictive
  scope, never lets a rule change the operator's opinion, and records exactly the changes.
"""

from __future__ import annotations

from decimal import Decimal as D

import attrs
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fundarb.core.commands import OrderPurpose
from fundarb.core.model import InstrumentId, Market, Side
from fundarb.core.risk import (
    DAY_MS,
    DailyPnl,
    Exposure,
    OrderIntent,
    RiskBook,
    RiskLimits,
    RiskReason,
    check_order,
)
from fundarb.core.risk_modes import ModeScope, ModeSource, TradingMode, TradingModes, kill

NOW = 20_000 * DAY_MS + 1000
INSTRUMENTS = (
    (InstrumentId("binance", Market.PERPETUAL, "BTCUSDT"), "BTC", D(30000)),
    (InstrumentId("bybit", Market.SPOT, "BTCUSDT"), "BTC", D(30010)),
    (InstrumentId("okx", Market.PERPETUAL, "ETH-USDT-SWAP"), "ETH", D(2000)),
)
POSITIONS = ("p1", "p2", "p3")

qty = st.integers(-300, 300).map(lambda n: D(n) / 1000)


@st.composite
def books(draw: st.DrawFn) -> RiskBook:
    keys = draw(st.sets(st.tuples(st.sampled_from(POSITIONS), st.integers(0, 2)), min_size=1, max_size=6))
    exposures = []
    for pid, i in sorted(keys):
        inst, asset, price = INSTRUMENTS[i]
        pending = draw(st.sampled_from([D(0), D(0), D("0.05")]))
        held = draw(qty)
        reducing = draw(st.sampled_from([D(0), D(0), abs(held) / 2, abs(held)]))
        exposures.append(Exposure(pid, inst, asset, held, price, pending, reducing))
    realised = D(draw(st.integers(-300, 1000)))
    return RiskBook(
        tuple(exposures),
        D(draw(st.sampled_from([-100, 0, 5000, 50_000, 200_000]))),
        attrs.evolve(DailyPnl.start(NOW), realised=realised),
        {"BTC": D("0.05"), "ETH": D("0.07")} if draw(st.booleans()) else {"BTC": D("0.05")},
    )


@st.composite
def intents(draw: st.DrawFn, book: RiskBook) -> OrderIntent:
    """Half the time an order against a leg the book holds (often reducing it), else any order."""
    held = [e for e in book.exposures if e.quantity != 0]
    if held and draw(st.booleans()):
        leg = draw(st.sampled_from(held))
        inst, asset, price, pid = leg.instrument, leg.asset, leg.price, leg.position_id
        side = draw(st.sampled_from([Side.SELL if leg.quantity > 0 else Side.BUY, Side.BUY, Side.SELL]))
        quantity = D(draw(st.integers(1, int(abs(leg.quantity) * 1000) + 50))) / 1000
    else:
        inst, asset, price = INSTRUMENTS[draw(st.integers(0, 2))]
        pid, side = draw(st.sampled_from(POSITIONS)), draw(st.sampled_from(Side))
        quantity = D(draw(st.integers(1, 300))) / 1000
    return OrderIntent(
        pid,
        inst,
        asset,
        side,
        quantity,
        price,
        draw(st.sampled_from([*OrderPurpose, OrderPurpose.UNWIND, OrderPurpose.ENTRY])),
        leverage=draw(st.sampled_from([None, D(1), D(3), D(5), D(8)])),
        liquidation_price=draw(
            st.sampled_from([None, price * D("1.3"), price * D("0.7"), price * D("1.05")])
        ),
        hedge_instrument=draw(st.sampled_from([None, *(i for i, _, _ in INSTRUMENTS)])),
    )


@st.composite
def limits(draw: st.DrawFn) -> RiskLimits:
    n = st.one_of(st.sampled_from([D(20_000), D(60_000), D(10**6)]), st.integers(1, 100_000).map(D))
    return RiskLimits(
        draw(n),
        draw(n),
        draw(n),
        draw(n),
        D(draw(st.integers(1, 10))),
        D(draw(st.integers(1, 10))),
        draw(st.integers(1, 4)),
        draw(st.one_of(st.just(D(10**6)), st.integers(1, 1500).map(D))),
        asset_caps={"ETH": draw(n)} if draw(st.booleans()) else {},
    )


@st.composite
def mode_sets(draw: st.DrawFn) -> TradingModes:
    modes = TradingModes()
    for _ in range(draw(st.integers(0, 4))):
        scope = draw(scopes)
        source = draw(sources)
        modes, _ = modes.set(scope, draw(st.sampled_from(TradingMode)), source, NOW)
    return modes


scopes = st.sampled_from(
    [ModeScope.GLOBAL, ModeScope.venue("binance"), ModeScope.venue("okx")]
    + [ModeScope.instrument(i) for i, _, _ in INSTRUMENTS]
)
sources = st.sampled_from([ModeSource.OPERATOR, ModeSource.rule("stale-data"), ModeSource.rule("error-rate")])


def leg_qty(book: RiskBook, intent: OrderIntent) -> D:
    leg = book.leg(intent.position_id, intent.instrument)
    return D(0) if leg is None else leg.quantity


@settings(max_examples=150, deadline=None)
@given(book=books(), lim=limits(), data=st.data())
def test_a_confirmed_reducing_order_is_never_blocked_by_reducing_or_caps(
    book: RiskBook, lim: RiskLimits, data: st.DataObject
) -> None:
    held = [e for e in book.exposures if e.reducible >= D("0.001")]
    if not held:
        return
    leg = data.draw(st.sampled_from(held))
    n = data.draw(st.integers(1, int(leg.reducible * 1000)))
    intent = OrderIntent(
        leg.position_id,
        leg.instrument,
        leg.asset,
        Side.SELL if leg.quantity > 0 else Side.BUY,
        D(n) / 1000,
        leg.price,
        data.draw(
            st.sampled_from(
                [OrderPurpose.HEDGE, OrderPurpose.REBALANCE, OrderPurpose.EXIT, OrderPurpose.UNWIND]
            )
        ),
    )
    reducing = data.draw(scopes)
    for modes in (
        TradingModes(),
        TradingModes().set(reducing, TradingMode.REDUCING, data.draw(sources), NOW)[0],
    ):
        d = check_order(intent, book, lim, modes, NOW)
        assert d.allowed, d
        assert d.reason in (RiskReason.REDUCES_RISK, RiskReason.UNWIND)


@settings(max_examples=150, deadline=None)
@given(book=books(), lim=limits(), modes=mode_sets(), scope=scopes, data=st.data())
def test_nothing_but_unwinds_passes_halted(
    book: RiskBook, lim: RiskLimits, modes: TradingModes, scope: ModeScope, data: st.DataObject
) -> None:
    intent = data.draw(intents(book))
    if data.draw(st.booleans()):
        intent = attrs.evolve(intent, purpose=OrderPurpose.UNWIND)
    modes, _ = modes.set(scope, TradingMode.HALTED, ModeSource.OPERATOR, NOW, "halt")
    d = check_order(intent, book, lim, modes, NOW)
    event(d.reason.value)
    if modes.effective(intent.instrument) is not TradingMode.HALTED:
        return
    if d.allowed:
        before = leg_qty(book, intent)
        after = before + intent.signed_quantity
        assert intent.purpose is OrderPurpose.UNWIND
        assert d.reason is RiskReason.UNWIND
        assert abs(after) < abs(before) and after * before >= 0
    else:
        assert d.reason is RiskReason.MODE_HALTED


@settings(max_examples=150, deadline=None)
@given(book=books(), lim=limits(), modes=mode_sets(), data=st.data())
def test_reducing_mode_only_ever_passes_risk_reducing_orders(
    book: RiskBook, lim: RiskLimits, modes: TradingModes, data: st.DataObject
) -> None:
    intent = data.draw(intents(book))
    d = check_order(intent, book, lim, modes, NOW)
    event(d.reason.value)
    if d.reason is RiskReason.ALLOWED:  # an increase: both legs must be ACTIVE
        assert modes.effective(intent.instrument) is TradingMode.ACTIVE
        if intent.hedge_instrument is not None:
            assert modes.effective(intent.hedge_instrument) is TradingMode.ACTIVE
    if modes.effective(intent.instrument) is TradingMode.ACTIVE:
        return
    if d.allowed:
        assert intent.purpose is not OrderPurpose.ENTRY
        before = leg_qty(book, intent)
        after = before + intent.signed_quantity
        delta = book.position_delta(intent.position_id, intent.asset)
        delta_after = delta + intent.signed_quantity
        shrinks_leg = abs(after) < abs(before) and after * before >= 0
        shrinks_delta = abs(delta_after) < abs(delta) and delta_after * delta >= 0
        assert shrinks_leg or shrinks_delta


@settings(max_examples=150, deadline=None)
@given(book=books(), lim=limits(), loosen=st.integers(0, 3), data=st.data())
def test_an_allowed_increase_keeps_every_cap_and_survives_looser_limits(
    book: RiskBook, lim: RiskLimits, loosen: int, data: st.DataObject
) -> None:
    intent = data.draw(intents(book))
    d = check_order(intent, book, lim, TradingModes(), NOW)
    event(d.reason.value)
    if d.reason is not RiskReason.ALLOWED:
        return
    add = intent.notional
    venue = intent.instrument.venue
    assert book.gross(position_id=intent.position_id) + add <= lim.max_position_notional
    assert book.gross(asset=intent.asset) + add <= lim.asset_cap(intent.asset)
    assert book.gross(venue=venue) + add <= lim.venue_cap(venue)
    assert book.gross() + add <= lim.max_total_notional
    assert (book.gross() + add) / book.equity <= lim.max_gross_leverage
    assert book.pnl.total > -lim.max_daily_loss
    if intent.position_id not in book.open_positions():  # only a new position counts against the limit
        assert len(book.open_positions()) + 1 <= lim.max_open_positions
    if intent.instrument.market is Market.PERPETUAL:
        assert intent.leverage is not None and intent.leverage <= lim.max_leverage
    f = 1 + loosen
    looser = attrs.evolve(
        lim,
        max_position_notional=lim.max_position_notional * f,
        max_asset_notional=lim.max_asset_notional * f,
        max_venue_notional=lim.max_venue_notional * f,
        max_total_notional=lim.max_total_notional * f,
        max_gross_leverage=lim.max_gross_leverage * f,
        max_leverage=lim.max_leverage * f,
        max_daily_loss=lim.max_daily_loss * f,
        max_open_positions=lim.max_open_positions * f,
        asset_caps={k: v * f for k, v in lim.asset_caps.items()},
    )
    assert check_order(intent, book, looser, TradingModes(), NOW).reason is RiskReason.ALLOWED


ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), scopes, st.sampled_from(TradingMode), sources),
        st.tuples(st.just("clear"), scopes, st.just(TradingMode.ACTIVE), sources),
        st.tuples(
            st.just("kill"),
            st.just(ModeScope.GLOBAL),
            st.just(TradingMode.HALTED),
            st.just(ModeSource.OPERATOR),
        ),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_modes_stay_consistent_under_any_sequence_of_changes(
    ops: list[tuple[str, ModeScope, TradingMode, ModeSource]],
) -> None:
    modes = TradingModes()
    model: dict[tuple[ModeScope, ModeSource], TradingMode] = {}
    for t, (op, scope, mode, source) in enumerate(ops):
        before = modes
        if op == "set":
            modes, records = modes.set(scope, mode, source, NOW + t)
            target = mode
        elif op == "clear":
            modes, records = modes.operator_clear(scope, source, NOW + t)
            target = TradingMode.ACTIVE
        else:
            modes, records = kill(modes, "kill", NOW + t)
        if op == "kill":
            target = TradingMode.HALTED
        old = model.get((scope, source), TradingMode.ACTIVE)
        if target is TradingMode.ACTIVE:
            model.pop((scope, source), None)
        else:
            model[(scope, source)] = target
        # exactly one record per real change, describing it
        assert len(records) == (0 if old is target else 1)
        for r in records:
            assert (r.scope, r.source, r.previous, r.mode) == (scope, source, old, target)
            assert r.scope_previous is before.mode_of(scope) and r.scope_mode is modes.mode_of(scope)
        # the value matches the model; no ACTIVE entries, no duplicates
        assert {(e.scope, e.source): e.mode for e in modes.entries} == model
        assert len(modes.entries) == len(model)
        # the operator's opinions change only through operator actions
        if not source.is_operator or op == "kill":
            for (sc, so), m in model.items():
                if so.is_operator and (sc, so) != (scope, source):
                    assert before.opinion(sc, so) is m
        # the effective mode is the most restrictive covering scope
        for inst, _, _ in INSTRUMENTS:
            expected = TradingMode.most_restrictive(modes.mode_of(s) for s in ModeScope.covering(inst))
            assert modes.effective(inst) is expected
