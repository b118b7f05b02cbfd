"""The margin ladder driven through a 30% crash against a long perp leg at 5x (cross margin).

A small pure margin model stands in for the venue: margin balance ``C + q (P - P0)``,
maintenance ``0.5% x |q| x P``, liquidation when the balance falls to the maintenance margin.
Each 0.25% price step the ladder is asked what to do, and its answer is applied (a top-up adds
collateral; a pairwise reduction realises the reduced part's loss and shrinks the leg; the spot
hedge shrinks alongside, so the book stays hedged). Unmanaged, the leg is liquidated near -19.75%.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from fundarb.core.model import InstrumentId, Market, VenuePosition
from fundarb.core.risk_monitors import MarginActionKind, MarginLadder, margin_action

PERP = InstrumentId("sim", Market.PERPETUAL, "BTCUSDT")
MMR = D("0.005")
P0 = D(30000)
LADDER = MarginLadder(
    alert_distance=D("0.15"),
    top_up_distance=D("0.12"),
    reduce_distance=D("0.08"),
    unwind_distance=D("0.04"),
    target_distance=D("0.20"),
)


def venue_view(q: D, collateral: D, price: D) -> tuple[VenuePosition, D, D]:
    """The position as a venue reports it, with its margin balance and maintenance margin."""
    balance = collateral + q * (price - P0)
    maintenance = MMR * q * price
    liq = (P0 - collateral / q) / (1 - MMR)
    pos = VenuePosition(
        PERP,
        q,
        P0,
        price,
        liquidation_price=liq,
        maintenance_margin=maintenance,
        margin_balance=balance,
        leverage=D(5),
    )
    return pos, balance, maintenance


def crash(free: D, managed: bool) -> tuple[list[tuple[D, MarginActionKind]], D, D | None]:
    """Walk the price 30% down; return (actions taken, final leg, liquidation price or None)."""
    q, collateral = D(1), D(6000)  # 1 BTC long perp at 30000 on 6000 collateral: 5x
    actions: list[tuple[D, MarginActionKind]] = []
    for i in range(1, 121):
        price = P0 * (1 - D("0.0025") * i)
        if q == 0:
            break
        pos, balance, maintenance = venue_view(q, collateral, price)
        if balance <= maintenance:
            return actions, q, price
        if not managed:
            continue
        action = margin_action(pos, free, LADDER, lot_step=D("0.001"))
        if action.kind is MarginActionKind.TOP_UP:
            assert action.top_up <= free
            collateral, free = collateral + action.top_up, free - action.top_up
        elif action.kind in (MarginActionKind.REDUCE_PAIRWISE, MarginActionKind.UNWIND):
            assert 0 < action.reduce_quantity <= q
            collateral -= action.reduce_quantity * (P0 - price)  # the reduced part's loss is realised
            q -= action.reduce_quantity
        if action.kind is not MarginActionKind.NONE:
            actions.append((price, action.kind))
    return actions, q, None


def test_unmanaged_the_leg_is_liquidated() -> None:
    actions, q, liquidated_at = crash(D(0), managed=False)
    assert liquidated_at is not None
    assert D(24000) < liquidated_at < D(24200)  # (30000 - 6000) / 0.995 = 24120.6
    assert q == 1 and actions == []


@pytest.mark.parametrize("free", [D(0), D(1500), D(100_000)])
def test_managed_the_ladder_acts_before_liquidation_and_survives_the_crash(free: D) -> None:
    actions, q, liquidated_at = crash(free, managed=True)
    assert liquidated_at is None, actions
    kinds = [k for _, k in actions]
    assert kinds[0] is MarginActionKind.ALERT
    # the first defence (top-up or reduction) comes well before the unmanaged liquidation price
    first_defence = next(p for p, k in actions if k is not MarginActionKind.ALERT)
    assert first_defence > D(24120) * D("1.10")
    if free >= D(100_000):  # ample collateral: top-ups alone carry the leg through
        assert MarginActionKind.TOP_UP in kinds and MarginActionKind.REDUCE_PAIRWISE not in kinds
        assert q == 1
    if free == 0:  # nothing to transfer: the ladder reduces pairwise instead
        assert MarginActionKind.TOP_UP not in kinds and MarginActionKind.REDUCE_PAIRWISE in kinds
        assert 0 <= q < 1
