"""Wallet balances of one simulated account: spot, margin (with borrow debt) and futures.

Mutable shell-less bookkeeping used by :class:`~fundarb.sim.exchange.SimExchange`; every
change is reported by the exchange as a ``BalanceReported`` event. A debit that would take a
free balance below zero raises :class:`~fundarb.venues.errors.InsufficientMargin` and changes
nothing.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from fundarb.core.model import ZERO, Balance, Wallet
from fundarb.venues.errors import InsufficientMargin

__all__ = ["PendingTransfer", "Wallets"]


@attrs.frozen
class PendingTransfer:
    """Money in flight: credited to ``(wallet, asset)`` of ``account`` at ``arrives_ms``."""

    transfer_id: str
    account: str
    wallet: Wallet
    asset: str
    amount: Decimal
    arrives_ms: int


@attrs.define
class Wallets:
    """Free and locked balances per (wallet, asset), and margin debt per asset."""

    venue: str
    free: dict[tuple[Wallet, str], Decimal] = attrs.field(factory=dict)
    locked: dict[tuple[Wallet, str], Decimal] = attrs.field(factory=dict)
    debt: dict[str, Decimal] = attrs.field(factory=dict)

    def get_free(self, wallet: Wallet, asset: str) -> Decimal:
        """Free balance (may be negative only in the futures wallet after a loss)."""
        return self.free.get((wallet, asset), ZERO)

    def credit(self, wallet: Wallet, asset: str, amount: Decimal) -> None:
        """Add ``amount`` (may be negative for realized losses and fees in the futures wallet)."""
        key = (wallet, asset)
        self.free[key] = self.free.get(key, ZERO) + amount

    def debit(self, wallet: Wallet, asset: str, amount: Decimal, what: str = "debit") -> None:
        """Take ``amount`` from the free balance or raise InsufficientMargin."""
        have = self.get_free(wallet, asset)
        if amount > have:
            raise InsufficientMargin(
                f"{what}: needs {amount} {asset} in {wallet.value}, has {have}",
                venue=self.venue,
                code=-2019,
            )
        self.free[(wallet, asset)] = have - amount

    def lock(self, wallet: Wallet, asset: str, amount: Decimal, what: str = "order") -> None:
        """Move ``amount`` from free to locked (a resting order's reservation)."""
        self.debit(wallet, asset, amount, what)
        key = (wallet, asset)
        self.locked[key] = self.locked.get(key, ZERO) + amount

    def unlock(self, wallet: Wallet, asset: str, amount: Decimal) -> None:
        """Release a reservation back to free."""
        key = (wallet, asset)
        left = self.locked.get(key, ZERO) - amount
        if left < 0:
            raise AssertionError(f"unlock of {amount} {asset} exceeds locked {self.locked.get(key)}")
        self.locked[key] = left
        self.credit(wallet, asset, amount)

    def consume_locked(self, wallet: Wallet, asset: str, amount: Decimal) -> None:
        """Spend part of a reservation (a resting order traded)."""
        key = (wallet, asset)
        left = self.locked.get(key, ZERO) - amount
        if left < 0:
            raise AssertionError(f"consume of {amount} {asset} exceeds locked {self.locked.get(key)}")
        self.locked[key] = left

    def balance(self, wallet: Wallet, asset: str, ts_ms: int) -> Balance:
        """The core value for one wallet balance."""
        borrowed = self.debt.get(asset, ZERO) if wallet is Wallet.MARGIN else ZERO
        return Balance(
            venue=self.venue,
            wallet=wallet,
            asset=asset,
            free=self.get_free(wallet, asset),
            locked=self.locked.get((wallet, asset), ZERO),
            borrowed=borrowed,
            ts_ms=ts_ms,
        )

    def keys(self) -> list[tuple[Wallet, str]]:
        """Every (wallet, asset) ever touched, in a stable order."""
        ks = set(self.free) | set(self.locked) | {(Wallet.MARGIN, a) for a in self.debt}
        return sorted(ks, key=lambda k: (k[0].value, k[1]))
