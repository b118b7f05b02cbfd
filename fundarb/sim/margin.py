"""Cross-margin arithmetic for perpetual positions (pure functions and a config value).

One account's futures wallet backs all its perpetual positions (cross margin):

* equity            = wallet balance + sum of unrealized PnL at the mark price
* initial margin    = notional / leverage (per position, and reserved for working orders)
* maintenance       = notional * maintenance_margin_rate
* margin ratio      = maintenance / equity; the account is liquidated when equity < maintenance
  (ratio >= 1).

The liquidation price of one position holds the rest of the account fixed (its wallet and the other
positions' PnL, ``other``) and solves ``other + q * (p - entry) = |q| * p * mmr`` for ``p``:

* long  (q > 0): ``p = (q * entry - other) / (q * (1 - mmr))``
* short (q < 0): ``p = (other + |q| * entry) / (|q| * (1 + mmr))``

>>> from decimal import Decimal as D
>>> liquidation_price(D("1"), D("100"), D("10"), D("0.005"))
Decimal('90.45226130653266331658291457')
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from fundarb.core.model import ZERO

__all__ = ["MarginConfig", "liquidation_price", "unrealized_pnl"]


def _rate(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value < 1:
        raise ValueError(f"{attribute.name}: must be a Decimal in [0, 1), got {value!r}")


@attrs.frozen
class MarginConfig:
    """Margin rules of the simulated futures account.

    ``adl_move`` / ``adl_window_ms``: when the mark moves by more than ``adl_move`` (a fraction)
    within ``adl_window_ms``, the counterparties on the losing side are taken to be bankrupt and
    ``adl_fraction`` of every *profitable* position on the winning side is auto-deleveraged.

    ``spot_liquidation_level``: the spot margin wallet is liquidated (its debt bought back and
    repaid by the venue) when its margin level, assets / debt valued at spot, falls below it;
    a borrow that would leave the level below ``spot_borrow_level`` is refused (collateral first).
    """

    leverage: Decimal = attrs.field(default=Decimal(5))
    maintenance_margin_rate: Decimal = attrs.field(default=Decimal("0.005"), validator=_rate)
    liquidation_fee_rate: Decimal = attrs.field(default=Decimal("0.0125"), validator=_rate)
    adl_move: Decimal = attrs.field(default=Decimal("0.2"), validator=_rate)
    adl_window_ms: int = 600_000
    adl_fraction: Decimal = attrs.field(default=Decimal("0.5"), validator=_rate)
    spot_liquidation_level: Decimal = Decimal("1.1")
    spot_borrow_level: Decimal = Decimal("1.25")

    @leverage.validator
    def _check_leverage(self, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
        if not isinstance(value, Decimal) or not 1 <= value <= 125:
            raise ValueError(f"leverage: must be a Decimal in [1, 125], got {value!r}")


def unrealized_pnl(quantity: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """PnL of a signed position marked at ``mark``."""
    return quantity * (mark - entry)


def liquidation_price(quantity: Decimal, entry: Decimal, other: Decimal, mmr: Decimal) -> Decimal | None:
    """Mark price at which this position's account hits maintenance; None if flat or never."""
    if quantity == 0:
        return None
    q = abs(quantity)
    if quantity > 0:
        p = (q * entry - other) / (q * (1 - mmr))
    else:
        p = (other + q * entry) / (q * (1 + mmr))
    return p if p > ZERO else None
