"""SimExchange: a deterministic exchange core with spot and perpetual markets (pure, no I/O).

Time is an argument (``now_ms``) and randomness comes from a ``random.Random(seed)``, so the same
inputs give the same events. A market driver calls :meth:`SimExchange.update_market` with the
reference prices (the perp price is the mark, the spot price of the same symbol the index) and the
predicted funding rates; that call first settles what fell due since the last update (transfers,
borrow interest, funding at the old rate), then reprices the books, fills resting orders the
price crossed, liquidates accounts below maintenance and auto-deleverages after a violent move.

Order entry follows Binance: orders are keyed by client order id (a reused id is rejected);
LIMIT GTC rests, IOC/market remainders expire, FOK fills completely or expires, POST_ONLY is
rejected if it would cross. Spot orders settle in the spot wallet, or in the margin wallet when
the spot wallet cannot cover them (so borrowed coins can be sold). Fees are charged in the quote
asset. Every state change appends core venue events to the account's outbox
(:meth:`drain_events`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from decimal import Decimal

from fundarb.core.errors import InvalidOrder
from fundarb.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    InstrumentId,
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    VenueFillKind,
    VenuePosition,
    Wallet,
)
from fundarb.core.venue_events import (
    OrderReported,
    VenueEvent,
)
from fundarb.sim import funding as fmath
from fundarb.sim.account import Account, SimOrder
from fundarb.sim.ledger import ExchangeConfig, Ledger, by_id
from fundarb.sim.wallets import PendingTransfer, Wallets
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OrderRejected,
    PostOnlyWouldCross,
    ReduceOnlyRejected,
    VenueUnavailable,
)

__all__ = ["ExchangeConfig", "SimExchange"]


class SimExchange(Ledger):
    """The exchange: instruments, books, accounts. Not thread-safe; not async."""

    # --- accounts and wallets ---------------------------------------------------------------------

    def open_account(self, name: str, deposits: Mapping[tuple[Wallet, str], Decimal] | None = None) -> None:
        """Create an account, optionally funded (no events for the initial deposits)."""
        if name in self.accounts:
            raise ValueError(f"account {name!r} exists")
        acc = self.accounts[name] = Account(name, Wallets(self.venue))
        for (wallet, asset), amount in (deposits or {}).items():
            acc.wallets.credit(wallet, asset, Decimal(amount))

    def account(self, name: str) -> Account:
        """The account ``name`` or KeyError."""
        return self.accounts[name]

    def deposit(self, account: str, wallet: Wallet, asset: str, amount: Decimal, now_ms: int) -> None:
        """Credit an external deposit."""
        acc = self.accounts[account]
        acc.wallets.credit(wallet, asset, amount)
        self._report_balance(acc, wallet, asset, now_ms)

    def transfer(
        self, account: str, asset: str, amount: Decimal, source: Wallet, target: Wallet, now_ms: int
    ) -> str:
        """Move money between wallets; arrives after ``wallet_transfer_delay_ms``. Returns an id."""
        if amount <= 0 or source is target:
            raise OrderRejected(f"bad transfer {amount} {asset} {source}->{target}", venue=self.venue)
        acc = self.accounts[account]
        acc.wallets.debit(source, asset, amount, "transfer")
        self._report_balance(acc, source, asset, now_ms)
        delay = self.config.wallet_transfer_delay_ms
        return self._schedule(acc, target, asset, amount, now_ms + delay, now_ms if delay == 0 else None)

    def withdraw_to(
        self,
        account: str,
        asset: str,
        amount: Decimal,
        source: Wallet,
        destination: SimExchange,
        dest_account: str,
        dest_wallet: Wallet,
        now_ms: int,
    ) -> str:
        """Send money to another venue; it arrives after this venue's ``venue_transfer_delay_ms``."""
        if amount <= 0:
            raise OrderRejected(f"bad withdrawal amount {amount}", venue=self.venue)
        acc = self.accounts[account]
        acc.wallets.debit(source, asset, amount, "withdrawal")
        self._report_balance(acc, source, asset, now_ms)
        return destination._schedule(
            destination.accounts[dest_account],
            dest_wallet,
            asset,
            amount,
            now_ms + self.config.venue_transfer_delay_ms,
        )

    def _schedule(
        self, acc: Account, wallet: Wallet, asset: str, amount: Decimal, at_ms: int, now_ms: int | None = None
    ) -> str:
        tid = self._next_id("T")
        acc.pending.append(PendingTransfer(tid, acc.name, wallet, asset, amount, at_ms))
        now = max(self.now_ms if self.now_ms is not None else -1, now_ms if now_ms is not None else -1)
        if at_ms <= now:  # already due: an instant transfer
            self._arrive_transfers(acc, at_ms)
        return tid

    def borrow(self, account: str, asset: str, amount: Decimal, now_ms: int) -> None:
        """Borrow on the margin wallet; the margin level after it must stay >= ``spot_borrow_level``."""
        if amount <= 0:
            raise OrderRejected(f"bad borrow amount {amount}", venue=self.venue)
        acc = self.accounts[account]
        if self._spot_price(asset) is None:
            raise VenueUnavailable(f"borrow {asset}: no spot price yet", venue=self.venue)
        acc.wallets.debt[asset] = acc.wallets.debt.get(asset, ZERO) + amount
        acc.wallets.credit(Wallet.MARGIN, asset, amount)
        level = self.spot_margin_level(acc)
        floor = self.config.margin.spot_borrow_level
        if level is not None and level < floor:
            acc.wallets.credit(Wallet.MARGIN, asset, -amount)
            acc.wallets.debt[asset] -= amount
            raise InsufficientMargin(
                f"borrow {amount} {asset}: margin level would be {level:.3f} < {floor}",
                venue=self.venue,
                code=-3045,
            )
        self._report_balance(acc, Wallet.MARGIN, asset, now_ms)

    def repay(self, account: str, asset: str, amount: Decimal, now_ms: int) -> None:
        """Repay debt from the margin wallet, topped up from the spot wallet if needed."""
        acc = self.accounts[account]
        debt = acc.wallets.debt.get(asset, ZERO)
        if amount <= 0 or amount > debt:
            raise OrderRejected(f"repay {amount} {asset}: debt is {debt}", venue=self.venue, code=-3041)
        short = amount - acc.wallets.get_free(Wallet.MARGIN, asset)
        if short > 0:
            acc.wallets.debit(Wallet.SPOT, asset, short, "repay")
            acc.wallets.credit(Wallet.MARGIN, asset, short)
            self._report_balance(acc, Wallet.SPOT, asset, now_ms)
        acc.wallets.debit(Wallet.MARGIN, asset, amount, "repay")
        acc.wallets.debt[asset] = debt - amount
        self._report_balance(acc, Wallet.MARGIN, asset, now_ms)

    # --- market -----------------------------------------------------------------------------------

    def update_market(
        self,
        now_ms: int,
        prices: Mapping[InstrumentId, Decimal],
        funding_rates: Mapping[InstrumentId, Decimal] | None = None,
    ) -> None:
        """Advance to ``now_ms``, apply new reference prices, then the new predicted funding rates.

        A funding settlement at exactly ``now_ms`` uses the new mark and the rate predicted before.
        """
        if self.now_ms is None or now_ms > self.now_ms:
            self.advance(now_ms - 1)  # what fell due before this instant, at the old prices
        for iid in sorted(prices, key=str):
            if iid not in self.books:
                raise KeyError(f"unknown instrument {iid}")
            self.books[iid].reprice(prices[iid], self.rng)
            if iid.market is Market.PERPETUAL:
                self._marks.setdefault(iid, deque()).append((now_ms, prices[iid]))
        self.advance(now_ms)  # a settlement at exactly now_ms: new mark, the rate that was predicted
        for iid, rate in (funding_rates or {}).items():
            self.rates[iid] = rate
        for iid in sorted(prices, key=str):
            self._match_resting(iid, now_ms)
        for acc in self.accounts.values():
            self._check_liquidation(acc, now_ms)
            self._check_margin_wallet(acc, now_ms)
        for iid in sorted(self._marks, key=str):
            self._check_adl(iid, now_ms)

    def advance(self, now_ms: int) -> None:
        """Settle everything due in ``(last, now_ms]``: transfers, hourly interest, funding."""
        last = self.now_ms
        if last is not None and now_ms < last:
            raise ValueError(f"time went backwards: {now_ms} < {last}")
        self.now_ms = now_ms
        for acc in self.accounts.values():
            self._arrive_transfers(acc, now_ms)
        if last is None:
            return
        for hour in fmath.settlement_times(last, now_ms, 1):
            for acc in self.accounts.values():
                self._accrue_interest(acc, hour)
        for iid, inst in sorted(self.instruments.items(), key=by_id):
            if inst.is_perpetual and self.books[iid].reference is not None:
                for t in fmath.settlement_times(last, now_ms, inst.funding_interval_hours):
                    self._settle_funding(iid, t)

    def quote(self, iid: InstrumentId, now_ms: int) -> Quote:
        """Top of the synthetic book."""
        book = self._book(iid)
        if book.reference is None:
            raise VenueUnavailable(f"{iid}: no market data yet", venue=self.venue)
        return Quote(
            iid, book.best_bid(), book.top_size(Side.SELL), book.best_ask(), book.top_size(Side.BUY), now_ms
        )

    def funding_snapshot(self, iid: InstrumentId, now_ms: int) -> FundingSnapshot:
        """Predicted rate (the one that will settle next), next funding time, mark and index."""
        inst = self._instrument(iid)
        if not inst.is_perpetual:
            raise OrderRejected(f"{iid} is not a perpetual", venue=self.venue, code=-1121)
        return FundingSnapshot(
            iid,
            self.rates.get(iid, ZERO),
            fmath.next_settlement_ms(now_ms, inst.funding_interval_hours),
            inst.funding_interval_hours,
            self.mark(iid),
            self.index(iid),
            now_ms,
        )

    # --- orders -----------------------------------------------------------------------------------

    def place_order(self, account: str, request: OrderRequest, now_ms: int) -> OrderUpdate:
        """Validate, match against the book and (GTC/POST_ONLY) rest the remainder."""
        acc = self.accounts[account]
        inst = self._instrument(request.instrument)
        book = self._book(request.instrument)
        cid = request.client_order_id
        if cid in acc.orders:
            raise OrderRejected(f"duplicate client order id {cid!r}", venue=self.venue, code=-4116)
        if book.reference is None:
            raise VenueUnavailable(f"{inst.id}: no market data yet", venue=self.venue)
        try:
            inst.check_order(request.quantity, request.price, book.reference)
        except InvalidOrder as exc:
            raise BadPrecision(str(exc), venue=self.venue, code=-1111) from None
        tif = request.time_in_force
        side, qty, limit = request.side, request.quantity, request.price
        if request.order_type is OrderType.MARKET:
            tif = TimeInForce.IOC
        crosses = limit is None or book.would_cross(side, limit)
        if tif is TimeInForce.POST_ONLY and crosses:
            raise PostOnlyWouldCross(f"{cid}: post-only would cross", venue=self.venue, code=-5022)
        if request.reduce_only:
            pos = acc.position(inst.id).quantity
            if pos == 0 or (pos > 0) == (side is Side.BUY):
                raise ReduceOnlyRejected(f"{cid}: reduce-only would increase", venue=self.venue, code=-2022)
            qty = min(qty, abs(pos))
        execs = book.take(side, qty, limit, consume=False) if crosses else []
        taken = sum((e.quantity for e in execs), ZERO)
        if tif is TimeInForce.FOK and taken < qty:
            execs, taken = [], ZERO
        rests = tif in (TimeInForce.GTC, TimeInForce.POST_ONLY) and taken < qty
        order = SimOrder(request, self._next_id("O"), now_ms, updated_ms=now_ms)
        # Check money before touching anything: the taken part now, the resting part reserved.
        wallet, reserve = self._check_funds(acc, inst, request, execs, (qty - taken) if rests else ZERO)
        order.wallet, order.reserved = wallet, reserve
        acc.add_order(order)
        if inst.id.market is Market.SPOT and reserve > 0 and wallet is not None:
            acc.wallets.lock(wallet, inst.quote if side is Side.BUY else inst.base, reserve)
        if taken > 0:
            book.take(side, taken, limit)
        for e in execs:
            self._execute(acc, inst, order, e.quantity, e.price, Liquidity.TAKER, now_ms)
        if not rests and order.status is not OrderStatus.FILLED:
            order.status, order.updated_ms = OrderStatus.EXPIRED, now_ms
        acc.outbox.append(OrderReported(order.update()))
        return order.update()

    def cancel_order(self, account: str, iid: InstrumentId, client_order_id: str, now_ms: int) -> OrderUpdate:
        """Cancel a working order; OrderNotFound if unknown, OrderRejected if already final."""
        acc = self.accounts[account]
        order = acc.orders.get(client_order_id)
        if order is None or order.request.instrument != iid:
            raise OrderNotFound(f"unknown order {client_order_id!r}", venue=self.venue, code=-2011)
        if order.status.is_terminal:
            raise OrderRejected(
                f"{client_order_id}: order is {order.status.value}",
                reason="Unknown order sent.",
                venue=self.venue,
                code=-2011,
            )
        self._release(acc, order)
        order.status, order.updated_ms = OrderStatus.CANCELED, now_ms
        acc.outbox.append(OrderReported(order.update()))
        return order.update()

    def query_order(self, account: str, iid: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Look an order up by client order id."""
        order = self.accounts[account].orders.get(client_order_id)
        if order is None or order.request.instrument != iid:
            raise OrderNotFound(f"order {client_order_id!r} does not exist", venue=self.venue, code=-2013)
        return order.update()

    def open_orders(self, account: str, iid: InstrumentId | None = None) -> list[OrderUpdate]:
        """Working orders, oldest first."""
        return [
            o.update()
            for o in self.accounts[account].open_orders()
            if iid is None or o.request.instrument == iid
        ]

    def force_fill(self, account: str, iid: InstrumentId, client_order_id: str, now_ms: int) -> bool:
        """Fill a working order's remainder at its limit price now (a cancel/fill race). False if final."""
        acc = self.accounts[account]
        order = acc.orders.get(client_order_id)
        if order is None or order.status.is_terminal or order.request.price is None:
            return False
        inst = self.instruments[iid]
        self._execute(acc, inst, order, order.remaining, order.request.price, Liquidity.MAKER, now_ms)
        acc.outbox.append(OrderReported(order.update()))
        return True

    # --- reports ----------------------------------------------------------------------------------

    def positions(self, account: str, now_ms: int) -> list[VenuePosition]:
        """Every non-flat perpetual position with liquidation price and margin figures."""
        acc = self.accounts[account]
        return [
            self._venue_position(acc, iid, now_ms)
            for iid, p in sorted(acc.positions.items(), key=by_id)
            if p.quantity
        ]

    def balances(self, account: str, now_ms: int) -> list[Balance]:
        """Every wallet balance (including debt)."""
        w = self.accounts[account].wallets
        return [w.balance(wallet, asset, now_ms) for wallet, asset in w.keys()]

    def fills_since(self, account: str, iid: InstrumentId, since_ms: int) -> list[Fill]:
        """Fills of ``iid`` at or after ``since_ms`` (venue-generated ones included), oldest first."""
        return [f for f in self.accounts[account].fills if f.instrument == iid and f.ts_ms >= since_ms]

    def fills_of(self, account: str, iid: InstrumentId, venue_order_id: str) -> list[Fill]:
        """The fills of one order (by venue order id), oldest first."""
        return [f for f in self.accounts[account].fills_by_order.get(venue_order_id, ()) if f.instrument == iid]

    def funding_income_since(self, account: str, since_ms: int) -> list[FundingPayment]:
        """Funding payments at or after ``since_ms``, oldest first."""
        return [p for p in self.accounts[account].funding if p.ts_ms >= since_ms]

    def margin_ratio(self, account: str) -> Decimal:
        """Maintenance margin / equity of the futures account (>= 1 means liquidation); 0 when flat."""
        acc = self.accounts[account]
        mmr = self.config.margin.maintenance_margin_rate
        maintenance = sum(
            (abs(p.quantity) * self.mark(i) * mmr for i, p in acc.positions.items() if p.quantity), ZERO
        )
        if maintenance == 0:
            return ZERO
        equity = self.equity(account)
        return maintenance / equity if equity > 0 else Decimal("Infinity")

    def deleverage(self, account: str, iid: InstrumentId, fraction: Decimal, now_ms: int) -> Decimal:
        """Force an ADL of ``fraction`` of the position (a scenario's hook); returns the quantity closed.

        Only a profitable position is deleveraged, as on a real venue; otherwise nothing happens.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        acc = self.accounts[account]
        pos = acc.positions.get(iid)
        if pos is None or pos.quantity == 0 or pos.quantity * (self.mark(iid) - pos.entry) <= 0:
            return ZERO
        qty = self.instruments[iid].round_qty(abs(pos.quantity) * fraction) or abs(pos.quantity)
        self._venue_fill(acc, iid, qty, VenueFillKind.ADL, now_ms)
        return qty

    def drain_events(self, account: str) -> list[VenueEvent]:
        """Take the events the account produced since the last drain, oldest first."""
        acc = self.accounts[account]
        out, acc.outbox = acc.outbox, []
        return out
