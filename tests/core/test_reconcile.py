"""Pure reconciliation: journal-derived positions vs venue snapshots -> corrections (no Trio)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as hs

from fundarb.core import events as ev
from fundarb.core.model import (
    Balance,
    Fill,
    FundingPayment,
    Liquidity,
    OrderStatus,
    OrderUpdate,
    Side,
    VenueFillKind,
    VenuePosition,
    Wallet,
)
from fundarb.core.position import Position, PositionState, step
from fundarb.core.position_model import Leg
from fundarb.core.reconcile import DiffKind, Reconciliation, VenueSnapshot, funding_key, owner_of, reconcile
from tests.core import factories as f

S = PositionState


def snap(
    p: Position | None = None,
    *,
    perp: D | None = None,
    spot: D | None = None,
    orders: tuple[OrderUpdate, ...] = (),
    fills: tuple[Fill, ...] = (),
    funding: tuple[FundingPayment, ...] = (),
) -> VenueSnapshot:
    """A venue agreeing with ``p`` unless ``perp``/``spot`` say otherwise."""
    if perp is None:
        perp = -p.held(Leg.A) if p is not None else D(0)
    if spot is None:
        spot = p.held(Leg.B) if p is not None else D(0)
    positions = (VenuePosition(f.PERP.id, perp, f.PRICE, f.PRICE),) if perp else ()
    balances = (
        Balance("sim", Wallet.SPOT, "BTC", spot),
        Balance("sim", Wallet.SPOT, "USDT", D(100_000)),
    )
    return VenueSnapshot("sim", 0, orders, fills, positions, balances, funding)


def apply(positions: dict[str, Position], result: Reconciliation) -> dict[str, Position]:
    out = dict(positions)
    for pid, e in result.corrections:
        out[pid], _ = step(out[pid], e, 0)
    return out


def update(cid: str, status: OrderStatus, qty: str, filled: str, side: Side = Side.SELL) -> OrderUpdate:
    return OrderUpdate(f.PERP.id, cid, "v1", status, side, D(qty), D(filled), None, 1)


def test_owner_of() -> None:
    assert owner_of("fa.p1.A.3") == "p1"
    assert owner_of("x-ccxt-1") is None
    assert owner_of("fa..A.1") is None
    assert owner_of("fa.p1.A") is None


def test_agreeing_venue_is_clean_and_needs_nothing() -> None:
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p)}, 0)
    assert r.clean and not r.needs_ack and not r.corrections and not r.orphans and not r.failed


def test_missed_fill_of_the_entry_becomes_a_correction_and_the_hedge_follows() -> None:
    p = f.opening()  # crashed after sending leg A; the venue filled it meanwhile
    fill = f.fill_for(p, "fa.p1.A.1", "0.1", trade_id="T1")
    r = reconcile({"p1": p}, {"sim": snap(None, perp=D("-0.1"), fills=(fill,))}, 0)
    assert [type(e) for _, e in r.corrections] == [ev.OrderPartiallyFilled]
    assert [d.kind for d in r.differences] == [DiffKind.MISSED_FILL]
    after = apply({"p1": p}, r)["p1"]
    assert after.held(Leg.A) == D("0.1")
    # the machine now hedges what A filled
    assert after.working(Leg.B, increases=True)
    # reconciling again (same venue answers) changes nothing: trade ids are counted once
    again = reconcile({"p1": after}, {"sim": snap(None, perp=D("-0.1"), spot=D(0), fills=(fill,))}, 0)
    assert not again.corrections and not again.failed


def test_open_order_status_is_reported_to_its_position() -> None:
    p = f.opening()
    u = update("fa.p1.A.1", OrderStatus.PARTIALLY_FILLED, "0.1", "0.04")
    r = reconcile({"p1": p}, {"sim": snap(None, perp=D("-0.04"), orders=(u,))}, 0)
    assert (
        "p1",
        ev.OrderStatusReported("fa.p1.A.1", OrderStatus.PARTIALLY_FILLED, D("0.04")),
    ) in r.corrections
    assert not r.orphans and not r.failed
    after = apply({"p1": p}, r)["p1"]
    assert after.held(Leg.A) == D("0.04")


def test_orphans_are_cancelled_foreign_orders_left_alone() -> None:
    p = f.hedged()
    unknown = update("fa.zz9.A.1", OrderStatus.NEW, "0.1", "0")
    never_sent = update("fa.p1.A.99", OrderStatus.NEW, "0.1", "0")
    foreign = update("manual-7", OrderStatus.NEW, "0.1", "0")
    r = reconcile({"p1": p}, {"sim": snap(p, orders=(unknown, never_sent, foreign))}, 0)
    assert {u.client_order_id for u in r.orphans} == {"fa.zz9.A.1", "fa.p1.A.99"}
    kinds = {d.client_order_id: d.kind for d in r.differences}
    assert kinds["manual-7"] is DiffKind.FOREIGN_ORDER
    assert not r.corrections


def test_order_of_a_closed_position_still_working_is_an_orphan() -> None:
    p = f.closed()
    cid = p.orders[0].cid
    r = reconcile({"p1": p}, {"sim": snap(None, orders=(update(cid, OrderStatus.NEW, "0.1", "0"),))}, 0)
    assert [u.client_order_id for u in r.orphans] == [cid]


def test_perp_drift_is_corrected_and_the_machine_rebalances() -> None:
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D("-0.06"))}, 0)
    assert r.corrections == (("p1", ev.PositionDrifted("A", D("0.06"))),)
    assert not r.needs_ack
    after, _ = step(p, r.corrections[0][1], 0)
    assert after.state is S.REBALANCING
    assert after.working(Leg.B, increases=False)  # sells the spot excess


def test_both_legs_drifted_goes_to_an_operator() -> None:
    """A flat venue after a restart (a simulated venue that lost its state, or legs closed by
    hand): one-leg-at-a-time corrections would trade a half-corrected position."""
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D(0), spot=D(0))}, 0)
    assert not r.corrections
    assert [pid for pid, _ in r.failed] == ["p1"] and r.needs_ack
    assert "both legs" in r.failed[0][1]


def test_spot_drift_alone_is_corrected() -> None:
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p, spot=D("0.05"))}, 0)
    assert r.corrections == (("p1", ev.PositionDrifted("B", D("0.05"))),)


def test_spot_wallet_holding_more_or_a_fee_less_is_not_drift() -> None:
    p = f.hedged()
    for spot in (D("5"), D("0.0999")):
        assert reconcile({"p1": p}, {"sim": snap(p, spot=spot)}, 0).clean


def test_venue_holding_the_leg_the_other_way_cannot_be_reconciled() -> None:
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D("0.1"))}, 0)
    assert [pid for pid, _ in r.failed] == ["p1"] and r.needs_ack


def test_exposure_no_position_owns_needs_ack() -> None:
    r = reconcile({}, {"sim": snap(None, perp=D("-0.3"))}, 0)
    assert [d.kind for d in r.differences] == [DiffKind.UNOWNED_EXPOSURE]
    assert r.needs_ack and not r.corrections


def test_two_positions_sharing_a_mismatched_instrument_both_fail() -> None:
    p1 = f.hedged()
    p2 = Position(f.plan(pid="p2"))
    p2, _ = f.run(p2, ev.EntrySignalled(f.PRICE, f.PRICE))
    p2 = f.fill_order(p2, "fa.p2.A.1")
    p2 = f.fill_order(p2, "fa.p2.B.2")
    r = reconcile({"p1": p1, "p2": p2}, {"sim": snap(None, perp=D("-0.1"), spot=D("0.2"))}, 0)
    assert sorted(pid for pid, _ in r.failed) == ["p1", "p2"]


def test_unreadable_venue_fails_its_open_positions_only() -> None:
    p = f.hedged()
    done = f.closed()
    r = reconcile({"p1": p, "p9": done}, {"sim": "VenueUnavailable: timeout"}, 0)
    assert [pid for pid, _ in r.failed] == ["p1"]
    assert r.needs_ack
    assert {d.kind for d in r.differences} == {DiffKind.VENUE_UNAVAILABLE, DiffKind.UNRECONCILABLE}


def test_replay_mismatch_fails_the_position() -> None:
    p = f.hedged()
    r = reconcile({"p1": p}, {"sim": snap(p)}, 0, mismatches={"p1": "seq 7: replay gave hedged"})
    assert [pid for pid, _ in r.failed] == ["p1"] and r.needs_ack


def test_liquidation_fill_while_down_goes_to_the_holder() -> None:
    p = f.hedged()
    vf = f.venue_fill(p, Leg.A, "0.04", VenueFillKind.LIQUIDATION)
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D("-0.06"), fills=(vf,))}, 0)
    assert r.corrections == (("p1", ev.VenueFillReceived(vf)),)  # the fill explains the perp: no drift
    after = apply({"p1": p}, r)["p1"]
    assert after.held(Leg.A) == D("0.06") and after.state is S.REBALANCING


def test_funding_while_down_is_booked_once() -> None:
    p = f.hedged()
    pay = FundingPayment(f.PERP.id, "F1", D("1.5"), "USDT", 5)
    r = reconcile({"p1": p}, {"sim": snap(p, funding=(pay,))}, 0)
    key = f"{funding_key(pay)}:p1"
    assert r.corrections == (("p1", ev.FundingPaid(FundingPayment(f.PERP.id, key, D("1.5"), "USDT", 5))),)
    after = apply({"p1": p}, r)
    assert after["p1"].funding == D("1.5")
    assert not reconcile(after, {"sim": snap(after["p1"], funding=(pay,))}, 0).corrections


def test_fill_after_close_needs_ack() -> None:
    p = f.closed()
    late = Fill(
        f.PERP.id,
        p.orders[0].cid,
        None,
        "LATE",
        Side.SELL,
        D("0.01"),
        f.PRICE,
        D(0),
        "USDT",
        Liquidity.TAKER,
        1,
    )
    r = reconcile({"p1": p}, {"sim": snap(None, perp=D("-0.01"), fills=(late,))}, 0)
    assert r.needs_ack
    assert DiffKind.UNOWNED_FILL in {d.kind for d in r.differences}


@settings(max_examples=60, deadline=None)
@given(
    perp=hs.decimals(min_value=D("0"), max_value=D("0.2"), places=3),
    spot=hs.decimals(min_value=D("0"), max_value=D("0.2"), places=3),
    funding=hs.booleans(),
)
def test_reconciling_twice_corrects_nothing_more(perp: D, spot: D, funding: bool) -> None:
    """Idempotence: once the corrections are applied, the same venue answers need no more."""
    p = f.hedged()
    pays = (FundingPayment(f.PERP.id, "F1", D("1"), "USDT", 5),) if funding else ()
    venue = snap(p, perp=-perp, spot=spot, funding=pays)
    first = reconcile({"p1": p}, {"sim": venue}, 0)
    after = apply({"p1": p}, first)
    second = reconcile(after, {"sim": venue}, 0)
    assert not second.corrections
    if not first.failed:
        assert after["p1"].held(Leg.A) == perp


def test_orders_of_unknown_outcome_explain_the_venue_their_queries_decide() -> None:
    """Killed after the unwind orders were journaled: the venue may or may not have them done.
    Not a drift (correcting it would double the unwind), not a failure: the resync's queries
    give the authoritative fills."""
    p, _ = f.run(f.hedged(), ev.OperatorKilled("flatten"))
    assert p.state is S.UNWINDING and len(p.working()) == 2
    for perp, spot in ((D(0), D(0)), (D("-0.1"), D("0.1")), (D("-0.05"), D("0.02"))):
        r = reconcile({"p1": p}, {"sim": snap(p, perp=perp, spot=spot)}, 0)
        assert not r.corrections and not r.failed and not r.needs_ack, (perp, spot, r.differences)
        assert {d.kind for d in r.differences} <= {DiffKind.ORDER_STATUS}
    # beyond what the orders could have done: the venue holds the perp the other way
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D("0.1"), spot=D(0))}, 0)
    assert r.failed


def test_failed_position_disagreeing_is_reported_not_re_acknowledged() -> None:
    p = f.failed()
    r = reconcile({"p1": p}, {"sim": snap(p, perp=D(0), spot=D(0))}, 0)
    assert not r.needs_ack and not r.corrections
    assert {d.kind for d in r.differences} == {DiffKind.DRIFT}


def test_reserved_hedges_not_journaled_are_neither_orphans_nor_unowned() -> None:
    """Hedges sent under a journaled reservation whose own records died with the engine: the
    position adopts them (by looking their ids up), so reconciliation neither cancels them as
    orphans nor halts on their fills, and the spot they bought is not drift."""
    p = f.opening()  # leg A journaled as working; the venue filled it and the hedge went out
    a_fill = f.fill_for(p, "fa.p1.A.1", "0.1", trade_id="T1")
    hedge = Fill(
        f.SPOT.id, "fa.p1.B.2", None, "T2", Side.BUY, D("0.06"), f.PRICE, D(0), "USDT", Liquidity.TAKER, 1
    )
    resting = OrderUpdate(f.SPOT.id, "fa.p1.B.3", "v3", OrderStatus.NEW, Side.BUY, D("0.04"), D(0), None, 1)
    venue = snap(None, perp=D("-0.1"), spot=D("0.06"), fills=(a_fill, hedge), orders=(resting,))
    blind = reconcile({"p1": p}, {"sim": venue}, 0)
    assert [u.client_order_id for u in blind.orphans] == ["fa.p1.B.3"]  # would be cancelled
    r = reconcile({"p1": p}, {"sim": venue}, 0, unconfirmed={"fa.p1.B.2", "fa.p1.B.3", "fa.p1.A.2"})
    assert not r.needs_ack and not r.orphans and not r.failed, r.differences
    reserved = {d.client_order_id for d in r.differences if d.kind is DiffKind.RESERVED_ORDER}
    assert reserved == {"fa.p1.B.3"}
    # leg A's fill re-mints the hedge as fa.p1.B.2 (ids are deterministic), so its fill applies
    assert [e.cid for _, e in r.corrections] == ["fa.p1.A.1", "fa.p1.B.2"]
    after = apply({"p1": p}, r)["p1"]
    assert after.held(Leg.A) == D("0.1") and after.held(Leg.B) == D("0.06")


def test_a_reserved_hedge_fill_before_its_reissue_is_not_unowned() -> None:
    p = f.opening()  # the venue shows the hedge's fill but not leg A's (say, an older trade page)
    hedge = Fill(
        f.SPOT.id, "fa.p1.B.2", None, "T2", Side.BUY, D("0.1"), f.PRICE, D(0), "USDT", Liquidity.TAKER, 1
    )
    venue = snap(None, perp=D("-0.1"), spot=D("0.1"), fills=(hedge,))
    assert reconcile({"p1": p}, {"sim": venue}, 0).needs_ack  # unowned without the reservation
    r = reconcile({"p1": p}, {"sim": venue}, 0, unconfirmed={"fa.p1.B.2"})
    assert not r.needs_ack and not r.failed
    assert [d.kind for d in r.differences if d.client_order_id == "fa.p1.B.2"] == [DiffKind.RESERVED_ORDER]
