"""User-data frames: the simulator's venue events -> Binance user-data stream frames (pure).

The simulator reports a trade as a ``FillReported`` followed (after the position and balance
reports) by the order's ``OrderReported``; Binance reports it as one frame carrying both the
trade and the order's new state. :class:`UserFrames` holds fills until their order's report
arrives, then emits one ``x=TRADE`` frame per fill (cumulative quantity per fill, the last one
with the order's reported status). One instance per websocket subscription:

* ``perp=True`` (USDⓈ-M ``/private``): ``ORDER_TRADE_UPDATE`` for perpetual orders and for
  fills the venue made itself (liquidation, ADL, settlement), ``ACCOUNT_UPDATE`` for futures
  balances, positions and funding;
* ``perp=False`` (spot / margin WS-API subscription): ``executionReport`` for the spot orders
  ``accept`` admits, ``outboundAccountPosition`` for balances of ``wallet``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from fundarb.core.model import ZERO, Balance, Fill, Market, OrderRequest, OrderStatus, OrderUpdate, Wallet
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingSettled,
    OrderReported,
    PositionReported,
    VenueEvent,
)
from fundarb.sim.binance_server import _frames as w

__all__ = ["UserFrames"]


def _always(_u: OrderUpdate) -> bool:
    return True


class UserFrames:
    """Translate one subscription's events into frames (see the module docstring)."""

    def __init__(
        self,
        *,
        perp: bool,
        requests: Mapping[str, OrderRequest],
        wallet: Wallet = Wallet.SPOT,
        accept: Callable[[OrderUpdate], bool] = _always,
    ) -> None:
        self.perp, self.wallet = perp, wallet
        self._market = Market.PERPETUAL if perp else Market.SPOT
        self._requests, self._accept = requests, accept
        self._fills: dict[str, list[Fill]] = {}
        self._reported: dict[str, Decimal] = {}
        self._wallet_balance: dict[str, Decimal] = {}
        self._held: list[dict[str, Any]] = []  # account frames that follow a trade not yet sent

    def remember(self, balances: Iterable[Balance]) -> None:
        """Seed the futures wallet balances (funding frames carry the balance after the payment)."""
        for b in balances:
            if b.wallet is Wallet.FUTURES:
                self._wallet_balance[b.asset] = b.free

    def feed(self, event: VenueEvent) -> list[dict[str, Any]]:
        """The frames ``event`` produces on this subscription (often none).

        Account frames caused by a trade follow that trade's order frame, as on Binance.
        """
        if isinstance(event, FillReported):
            return self._fill(event.fill)
        if isinstance(event, OrderReported):
            frames = self._order(event.update)
            if not self._fills:
                frames, self._held = frames + self._held, []
            return frames
        if isinstance(event, BalanceReported):
            return self._hold(self._balance(event.balance))
        if self.perp and isinstance(event, PositionReported):
            return self._hold([w.account_update(event.position.ts_ms, "ORDER", {}, [event.position])])
        if self.perp and isinstance(event, FundingSettled):
            p = event.payment
            balance = self._wallet_balance.get(p.asset, ZERO) + p.amount
            self._wallet_balance[p.asset] = balance
            return [
                w.account_update(
                    p.ts_ms, "FUNDING_FEE", {p.asset: (balance, p.amount)}, (), p.instrument.symbol
                )
            ]
        return []

    def _hold(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._fills:
            self._held.extend(frames)
            return []
        return frames

    def _fill(self, fill: Fill) -> list[dict[str, Any]]:
        if fill.instrument.market is not self._market:
            return []
        if fill.venue_generated is not None:
            return [w.venue_fill_update(fill, fill.ts_ms)] if self.perp else []
        self._fills.setdefault(fill.client_order_id, []).append(fill)
        return []

    def _order(self, u: OrderUpdate) -> list[dict[str, Any]]:
        if u.instrument.market is not self._market:
            return []
        fills = self._fills.pop(u.client_order_id, [])
        if not self._accept(u):
            return []
        request = self._requests.get(u.client_order_id)
        encode = w.order_trade_update if self.perp else w.execution_report
        before = self._reported.get(u.client_order_id, ZERO)
        self._reported[u.client_order_id] = u.filled_qty
        if not fills:
            return [encode(u, request, None, u.ts_ms)]
        frames = []
        cum = before
        for n, fill in enumerate(fills, 1):
            cum += fill.quantity
            last = n == len(fills)
            step = u if last else attrs.evolve(u, status=OrderStatus.PARTIALLY_FILLED, filled_qty=cum)
            frames.append(encode(step, request, fill, fill.ts_ms))
        return frames

    def _balance(self, b: Balance) -> list[dict[str, Any]]:
        if self.perp:
            if b.wallet is not Wallet.FUTURES:
                return []
            self._wallet_balance[b.asset] = b.free
            return [w.account_update(b.ts_ms, "ORDER", {b.asset: (b.free, ZERO)})]
        if b.wallet is not self.wallet:
            return []
        return [w.outbound_account_position([b], b.ts_ms)]
