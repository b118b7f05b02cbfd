"""Internals of the simulated exchange: state, execution, margin, funding, liquidation and ADL.

:class:`Ledger` holds the state and the rules that change it; :class:`~fundarb.sim.exchange.SimExchange`
adds the public order-entry and query API on top. Pure: time is an argument, randomness is the
seeded ``self.rng``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

from fundarb.core.model import (
    ZERO,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentId,
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    Side,
    VenueFillKind,
    VenuePosition,
    Wallet,
)
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingSettled,
    OrderReported,
    PositionReported,
)
from fundarb.sim import funding as fmath
from fundarb.sim.account import Account, SimOrder
from fundarb.sim.book import BookConfig, Level, SyntheticBook
from fundarb.sim.margin import MarginConfig, liquidation_price
from fundarb.venues.errors import (
    InsufficientMargin,
    OrderRejected,
    VenueUnavailable,
)

__all__ = ["ExchangeConfig", "Ledger", "by_id"]


@attrs.frozen
class ExchangeConfig:
    """Fees, book shape, margin rules, borrow rates and transfer delays of a SimExchange."""

    perp_maker_fee: Decimal = Decimal("0.0002")
    perp_taker_fee: Decimal = Decimal("0.0005")
    spot_maker_fee: Decimal = Decimal("0.001")
    spot_taker_fee: Decimal = Decimal("0.001")
    book: BookConfig = attrs.field(factory=BookConfig)
    margin: MarginConfig = attrs.field(factory=MarginConfig)
    borrow_apr: Mapping[str, Decimal] = attrs.field(factory=dict)
    default_borrow_apr: Decimal = Decimal("0.10")
    wallet_transfer_delay_ms: int = 0
    venue_transfer_delay_ms: int = 600_000


def by_id(item: tuple[InstrumentId, object]) -> str:
    """Sort key of (InstrumentId, value) pairs: the id's text."""
    return str(item[0])


class Ledger:
    """State and rules of the exchange (see the module docstring)."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        *,
        venue: str = "sim",
        config: ExchangeConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.venue = venue
        self.config = config or ExchangeConfig()
        self.rng = random.Random(seed)
        self.instruments: dict[InstrumentId, Instrument] = {}
        for inst in instruments:
            if inst.id.venue != venue:
                raise ValueError(f"instrument {inst.id} does not belong to venue {venue!r}")
            self.instruments[inst.id] = inst
        self.books = {
            i: SyntheticBook(self.config.book, inst.tick_size, inst.lot_step)
            for i, inst in self.instruments.items()
        }
        self.accounts: dict[str, Account] = {}
        self.rates: dict[InstrumentId, Decimal] = {}
        self.now_ms: int | None = None
        self._seq = 0
        self._marks: dict[InstrumentId, deque[tuple[int, Decimal]]] = {}
        self._last_adl: dict[InstrumentId, int] = {}

    # --- internals --------------------------------------------------------------------------------

    def mark(self, iid: InstrumentId) -> Decimal:
        """Mark price of a perpetual (its reference price); VenueUnavailable before any data."""
        ref = self.books[iid].reference
        if ref is None:
            raise VenueUnavailable(f"{iid}: no market data yet", venue=self.venue)
        return ref

    def index(self, iid: InstrumentId) -> Decimal:
        """Index price: the spot reference of the same symbol, else the mark."""
        spot = InstrumentId(iid.venue, Market.SPOT, iid.symbol)
        book = self.books.get(spot)
        return book.reference if book is not None and book.reference is not None else self.mark(iid)

    def equity(self, account: str) -> Decimal:
        """Futures wallet USDT plus unrealized PnL of every position."""
        acc = self.accounts[account]
        return acc.wallets.get_free(Wallet.FUTURES, "USDT") + self._upnl(acc)

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}"

    def _instrument(self, iid: InstrumentId) -> Instrument:
        inst = self.instruments.get(iid)
        if inst is None:
            raise OrderRejected(f"unknown instrument {iid}", venue=self.venue, code=-1121)
        return inst

    def _book(self, iid: InstrumentId) -> SyntheticBook:
        self._instrument(iid)
        return self.books[iid]

    def _fees(self, inst: Instrument) -> tuple[Decimal, Decimal]:
        c = self.config
        if inst.is_perpetual:
            return c.perp_maker_fee, c.perp_taker_fee
        return c.spot_maker_fee, c.spot_taker_fee

    def _upnl(self, acc: Account, exclude: InstrumentId | None = None) -> Decimal:
        return sum(
            (
                p.quantity * (self.mark(i) - p.entry)
                for i, p in acc.positions.items()
                if p.quantity and i != exclude
            ),
            ZERO,
        )

    def _used_margin(self, acc: Account) -> Decimal:
        lev = self.config.margin.leverage
        pos = sum(
            (abs(p.quantity) * self.mark(i) / lev for i, p in acc.positions.items() if p.quantity), ZERO
        )
        orders = sum(
            (o.reserved for o in acc.open_orders() if o.request.instrument.market is Market.PERPETUAL), ZERO
        )
        return pos + orders

    def _check_funds(
        self, acc: Account, inst: Instrument, req: OrderRequest, execs: list[Level], rest_qty: Decimal
    ) -> tuple[Wallet | None, Decimal]:
        """Raise InsufficientMargin if the order cannot be paid for; return (wallet, reservation)."""
        _maker, taker = self._fees(inst)
        cost_now = sum((e.quantity * e.price for e in execs), ZERO)
        rest_px = req.price if req.price is not None else ZERO
        if inst.is_perpetual:
            lev = self.config.margin.leverage
            pos = acc.position(inst.id).quantity
            new_abs = abs(pos + req.side.sign * sum((e.quantity for e in execs), ZERO))
            increase = max(ZERO, new_abs - abs(pos))
            avg = cost_now / sum((e.quantity for e in execs), ZERO) if execs else ZERO
            reserve = ZERO if req.reduce_only else rest_qty * rest_px / lev
            need = increase * avg / lev + cost_now * taker + reserve
            available = self.equity(acc.name) - self._used_margin(acc)
            # an order that only shrinks the position frees margin: real venues accept it even
            # when the account is under water (the fee comes out of the released margin)
            if need > 0 and need > available and increase > 0:
                raise InsufficientMargin(
                    f"{req.client_order_id}: needs margin {need:.4f}, available {available:.4f}",
                    venue=self.venue,
                    code=-2019,
                )
            return Wallet.FUTURES, reserve
        if req.side is Side.BUY:
            asset, need = inst.quote, cost_now * (1 + taker) + rest_qty * rest_px * (1 + taker)
            reserve = rest_qty * rest_px * (1 + taker)
        else:
            asset, need, reserve = inst.base, sum((e.quantity for e in execs), ZERO) + rest_qty, rest_qty
        for wallet in (Wallet.SPOT, Wallet.MARGIN):
            if acc.wallets.get_free(wallet, asset) >= need:
                return wallet, reserve
        raise InsufficientMargin(
            f"{req.client_order_id}: needs {need} {asset} in spot or margin wallet",
            venue=self.venue,
            code=-2010,
        )

    def _execute(
        self,
        acc: Account,
        inst: Instrument,
        order: SimOrder,
        qty: Decimal,
        price: Decimal,
        liquidity: Liquidity,
        now_ms: int,
    ) -> None:
        """Book one execution of ``order``: wallets, position, fill record and events."""
        maker, taker = self._fees(inst)
        fee = qty * price * (maker if liquidity is Liquidity.MAKER else taker)
        side = order.request.side
        w = acc.wallets
        resting = liquidity is Liquidity.MAKER and order.reserved > 0
        if inst.is_perpetual:
            if resting:
                order.reserved -= min(
                    order.reserved, qty * (order.request.price or price) / self.config.margin.leverage
                )
            realized = acc.position(inst.id).apply(side, qty, price)
            w.credit(Wallet.FUTURES, inst.quote, realized - fee)
        else:
            wallet = order.wallet or Wallet.SPOT
            if side is Side.BUY:
                spend = qty * price + fee
                if resting:
                    part = min(order.reserved, qty * (order.request.price or price) * (1 + taker))
                    w.consume_locked(wallet, inst.quote, part)
                    order.reserved -= part
                    w.credit(wallet, inst.quote, part - spend)
                else:
                    w.debit(wallet, inst.quote, spend, "buy")
                w.credit(wallet, inst.base, qty)
            else:
                if resting:
                    w.consume_locked(wallet, inst.base, qty)
                    order.reserved -= qty
                else:
                    w.debit(wallet, inst.base, qty, "sell")
                w.credit(wallet, inst.quote, qty * price - fee)
        order.record_fill(qty, price, now_ms)
        fill = Fill(
            inst.id,
            order.request.client_order_id,
            order.venue_order_id,
            self._next_id("t"),
            side,
            qty,
            price,
            fee,
            inst.quote,
            liquidity,
            now_ms,
        )
        self._book_fill(acc, inst, fill, order.wallet)

    def _book_fill(self, acc: Account, inst: Instrument, fill: Fill, wallet: Wallet | None) -> None:
        acc.fills.append(fill)
        if fill.venue_order_id is not None:
            acc.fills_by_order.setdefault(fill.venue_order_id, []).append(fill)
        acc.outbox.append(FillReported(fill))
        if inst.is_perpetual:
            acc.outbox.append(PositionReported(self._venue_position(acc, inst.id, fill.ts_ms)))
            self._report_balance(acc, Wallet.FUTURES, inst.quote, fill.ts_ms)
        else:
            self._report_balance(acc, wallet or Wallet.SPOT, inst.base, fill.ts_ms)
            self._report_balance(acc, wallet or Wallet.SPOT, inst.quote, fill.ts_ms)

    def _release(self, acc: Account, order: SimOrder) -> None:
        inst = self.instruments[order.request.instrument]
        if order.reserved > 0 and not inst.is_perpetual and order.wallet is not None:
            asset = inst.quote if order.request.side is Side.BUY else inst.base
            acc.wallets.unlock(order.wallet, asset, order.reserved)
            self._report_balance(acc, order.wallet, asset, order.updated_ms)
        order.reserved = ZERO

    def _match_resting(self, iid: InstrumentId, now_ms: int) -> None:
        book = self.books[iid]
        inst = self.instruments[iid]
        for acc in self.accounts.values():
            for order in acc.open_orders():
                req = order.request
                if req.instrument != iid or req.price is None or not book.would_cross(req.side, req.price):
                    continue
                qty = order.remaining
                if req.reduce_only:
                    pos = acc.position(iid).quantity
                    qty = min(qty, abs(pos)) if pos and (pos > 0) != (req.side is Side.BUY) else ZERO
                got = sum((e.quantity for e in book.take(req.side, qty, req.price)), ZERO)
                if got > 0:
                    self._execute(acc, inst, order, got, req.price, Liquidity.MAKER, now_ms)
                    if order.status.is_terminal:
                        self._release(acc, order)
                    acc.outbox.append(OrderReported(order.update()))

    def _venue_position(self, acc: Account, iid: InstrumentId, now_ms: int) -> VenuePosition:
        p = acc.position(iid)
        mark = self.mark(iid)
        mmr = self.config.margin.maintenance_margin_rate
        other = acc.wallets.get_free(Wallet.FUTURES, "USDT") + self._upnl(acc, exclude=iid)
        return VenuePosition(
            iid,
            p.quantity,
            p.entry,
            mark,
            liquidation_price(p.quantity, p.entry, other, mmr),
            p.quantity * (mark - p.entry),
            self.config.margin.leverage,
            abs(p.quantity) * mark * mmr,
            self.equity(acc.name),
            None,
            now_ms,
        )

    def _report_balance(self, acc: Account, wallet: Wallet, asset: str, now_ms: int) -> None:
        acc.outbox.append(BalanceReported(acc.wallets.balance(wallet, asset, now_ms)))

    def _arrive_transfers(self, acc: Account, now_ms: int) -> None:
        due = [t for t in acc.pending if t.arrives_ms <= now_ms]
        if due:
            acc.pending = [t for t in acc.pending if t.arrives_ms > now_ms]
            for t in due:
                acc.wallets.credit(t.wallet, t.asset, t.amount)
                self._report_balance(acc, t.wallet, t.asset, t.arrives_ms)

    def _accrue_interest(self, acc: Account, hour_ms: int) -> None:
        for asset, debt in sorted(acc.wallets.debt.items()):
            if debt > 0:
                apr = self.config.borrow_apr.get(asset, self.config.default_borrow_apr)
                acc.wallets.debt[asset] = debt + fmath.hourly_interest(debt, apr)
                self._report_balance(acc, Wallet.MARGIN, asset, hour_ms)

    def _settle_funding(self, iid: InstrumentId, t_ms: int) -> None:
        rate, mark = self.rates.get(iid, ZERO), self.mark(iid)
        inst = self.instruments[iid]
        for acc in self.accounts.values():
            pos = acc.positions.get(iid)
            if pos is None or pos.quantity == 0:
                continue
            amount = fmath.funding_amount(pos.quantity, mark, rate)
            acc.wallets.credit(Wallet.FUTURES, inst.quote, amount)
            payment = FundingPayment(
                iid, f"{self.venue}:{iid.symbol}:{t_ms}:{acc.name}", amount, inst.quote, t_ms
            )
            acc.funding.append(payment)
            acc.outbox.append(FundingSettled(payment))
            self._report_balance(acc, Wallet.FUTURES, inst.quote, t_ms)

    def _venue_fill(
        self, acc: Account, iid: InstrumentId, qty: Decimal, kind: VenueFillKind, now_ms: int
    ) -> None:
        """Close ``qty`` of the position at the mark on the venue's initiative."""
        inst = self.instruments[iid]
        pos = acc.position(iid)
        side = Side.SELL if pos.quantity > 0 else Side.BUY
        price = inst.round_price(self.mark(iid))
        fee = (
            qty * price * self.config.margin.liquidation_fee_rate
            if kind is VenueFillKind.LIQUIDATION
            else ZERO
        )
        realized = pos.apply(side, qty, price)
        acc.wallets.credit(Wallet.FUTURES, inst.quote, realized - fee)
        fill = Fill(
            iid,
            "",
            None,
            self._next_id("t"),
            side,
            qty,
            price,
            fee,
            inst.quote,
            Liquidity.TAKER,
            now_ms,
            kind,
        )
        self._book_fill(acc, inst, fill, None)

    def _check_liquidation(self, acc: Account, now_ms: int) -> None:
        live = [(i, p) for i, p in sorted(acc.positions.items(), key=by_id) if p.quantity]
        if not live:
            return
        mmr = self.config.margin.maintenance_margin_rate
        maintenance = sum((abs(p.quantity) * self.mark(i) * mmr for i, p in live), ZERO)
        if self.equity(acc.name) >= maintenance:
            return
        for order in acc.open_orders():
            if order.request.instrument.market is Market.PERPETUAL:
                self._release(acc, order)
                order.status, order.updated_ms, order.reason = OrderStatus.CANCELED, now_ms, "liquidation"
                acc.outbox.append(OrderReported(order.update()))
        for iid, p in live:
            self._venue_fill(acc, iid, abs(p.quantity), VenueFillKind.LIQUIDATION, now_ms)
        usdt = acc.wallets.get_free(Wallet.FUTURES, "USDT")
        if usdt < 0:  # the insurance fund absorbs the deficit
            acc.wallets.credit(Wallet.FUTURES, "USDT", -usdt)
            self._report_balance(acc, Wallet.FUTURES, "USDT", now_ms)

    def _spot_price(self, asset: str) -> Decimal | None:
        if asset == "USDT":
            return Decimal(1)
        for iid, inst in self.instruments.items():
            if iid.market is Market.SPOT and inst.base == asset and inst.quote == "USDT":
                return self.books[iid].reference
        return None

    def spot_margin_level(self, acc: Account) -> Decimal | None:
        """Margin wallet assets / debt, valued at spot; None without debt or prices."""
        w = acc.wallets
        debts = [(a, d) for a, d in w.debt.items() if d > 0]
        prices = {a: self._spot_price(a) for a in {a for _, a in w.keys()} | {a for a, _ in debts}}
        if not debts or any(p is None for p in prices.values()):
            return None
        value = {a: p for a, p in prices.items() if p is not None}
        assets = sum(
            (
                (w.get_free(Wallet.MARGIN, a) + w.locked.get((Wallet.MARGIN, a), ZERO)) * value[a]
                for a in value
            ),
            ZERO,
        )
        debt = sum((d * value[a] for a, d in debts), ZERO)
        return assets / debt if debt > 0 else None

    def _check_margin_wallet(self, acc: Account, now_ms: int) -> None:
        """Spot margin: below the liquidation level the venue buys the debt back and repays it."""
        w = acc.wallets
        debts = sorted((a, d) for a, d in w.debt.items() if d > 0)
        level = self.spot_margin_level(acc)
        if level is None or level >= self.config.margin.spot_liquidation_level:
            return
        value = {a: self._spot_price(a) or ZERO for a, _ in debts}
        for order in acc.open_orders():
            if order.wallet is Wallet.MARGIN:
                self._release(acc, order)
                order.status, order.updated_ms, order.reason = OrderStatus.CANCELED, now_ms, "liquidation"
                acc.outbox.append(OrderReported(order.update()))
        for asset, owed in debts:
            short = owed - w.get_free(Wallet.MARGIN, asset)
            if short > 0 and asset != "USDT":
                iid = next(
                    i for i, x in self.instruments.items() if i.market is Market.SPOT and x.base == asset
                )
                inst = self.instruments[iid]
                price = inst.round_price(value[asset])
                fee = short * price * self.config.margin.liquidation_fee_rate
                w.credit(Wallet.MARGIN, "USDT", -(short * price + fee))
                w.credit(Wallet.MARGIN, asset, short)
                fill = Fill(
                    iid,
                    "",
                    None,
                    self._next_id("t"),
                    Side.BUY,
                    short,
                    price,
                    fee,
                    "USDT",
                    Liquidity.TAKER,
                    now_ms,
                    VenueFillKind.LIQUIDATION,
                )
                self._book_fill(acc, inst, fill, Wallet.MARGIN)
            pay = min(owed, w.get_free(Wallet.MARGIN, asset))
            w.credit(Wallet.MARGIN, asset, -pay)
            w.debt[asset] = owed - pay
            self._report_balance(acc, Wallet.MARGIN, asset, now_ms)
        if w.get_free(Wallet.MARGIN, "USDT") < 0:  # the insurance fund absorbs the deficit
            w.credit(Wallet.MARGIN, "USDT", -w.get_free(Wallet.MARGIN, "USDT"))
            self._report_balance(acc, Wallet.MARGIN, "USDT", now_ms)

    def _check_adl(self, iid: InstrumentId, now_ms: int) -> None:
        cfg = self.config.margin
        marks = self._marks[iid]
        while marks and marks[0][0] < now_ms - cfg.adl_window_ms:
            marks.popleft()
        if not marks or now_ms - self._last_adl.get(iid, -cfg.adl_window_ms - 1) <= cfg.adl_window_ms:
            return
        first, last = marks[0][1], marks[-1][1]
        move = (last - first) / first
        if abs(move) <= cfg.adl_move:
            return
        self._last_adl[iid] = now_ms
        inst = self.instruments[iid]
        for acc in self.accounts.values():
            pos = acc.positions.get(iid)
            if pos is None or pos.quantity == 0 or (pos.quantity > 0) != (move > 0):
                continue  # only the side the move favoured is deleveraged
            if pos.quantity * (last - pos.entry) <= 0:
                continue  # ... and only if its position is in profit
            qty = inst.round_qty(abs(pos.quantity) * cfg.adl_fraction) or abs(pos.quantity)
            self._venue_fill(acc, iid, qty, VenueFillKind.ADL, now_ms)
