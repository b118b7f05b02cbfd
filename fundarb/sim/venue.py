"""SimVenue: the Venue protocol in-process over a SimExchange and a market driver.

Sim time is ``start_ms + (trio.current_time() - t0) * speed * 1000`` where ``t0`` is the Trio
clock when the venue was first used: ``speed`` is sim seconds per Trio second, so under
``autojump_clock`` a test spanning days runs instantly and paper mode runs time-accelerated.

Every call (and both streams) first brings the exchange up to the current sim time by sampling
the driver every ``step_ms`` of sim time (``update_market``), so the venue is always current and
any number of tasks can use it at once (all exchange work is synchronous, hence atomic under
Trio). ``run_market_data`` publishes a ``QuoteReceived`` per instrument and a
``FundingReceived`` per perpetual at every step; ``run_user_data`` streams the account's order,
fill, position, balance and funding events, as a user-data websocket would (events produced
while no stream is running are not replayed: REST queries are the truth, as on a real venue).
"""

from __future__ import annotations

import math
import pathlib
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal

import attrs
import trio

from fundarb.core.model import (
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Instrument,
    InstrumentId,
    Market,
    OrderRequest,
    OrderUpdate,
    Quote,
    VenuePosition,
    Wallet,
)
from fundarb.core.venue_events import FundingReceived, QuoteReceived, VenueEvent
from fundarb.sim.drivers import FlatDriver, MarketDriver
from fundarb.sim.exchange import ExchangeConfig, SimExchange
from fundarb.sim.instruments import default_instruments
from fundarb.venues.errors import OrderRejected, VenueUnavailable
from fundarb.venues.protocol import EventSender

__all__ = ["DEFAULT_BALANCES", "SIM_EPOCH_MS", "SimVenue", "SimVenueStatistics"]

#: 2023-01-01T00:00:00Z, the default start of sim time
SIM_EPOCH_MS = 1_672_531_200_000

DEFAULT_BALANCES: Mapping[tuple[Wallet, str], Decimal] = {
    (Wallet.FUTURES, "USDT"): Decimal(100_000),
    (Wallet.SPOT, "USDT"): Decimal(100_000),
}


@attrs.frozen
class SimVenueStatistics:
    """What :meth:`SimVenue.statistics` reports."""

    last_step_ms: int | None
    subscribers: int
    speed: float


class _Subscriber:
    def __init__(self) -> None:
        self.queue: deque[VenueEvent] = deque()
        self.wake = trio.Event()


class SimVenue:
    """A simulated venue (see the module docstring). Implements :class:`fundarb.venues.protocol.Venue`."""

    def __init__(
        self,
        exchange: SimExchange,
        driver: MarketDriver,
        *,
        account: str = "main",
        start_ms: int | None = None,
        speed: float = 1.0,
        step_ms: int = 60_000,
    ) -> None:
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be > 0 sim seconds per second, got {speed}")
        if step_ms <= 0:
            raise ValueError(f"step_ms must be > 0, got {step_ms}")
        if account not in exchange.accounts:
            raise ValueError(f"account {account!r} does not exist at the exchange")
        for sym in driver.symbols:
            for market in (Market.SPOT, Market.PERPETUAL):
                if InstrumentId(exchange.venue, market, sym) not in exchange.instruments:
                    raise ValueError(
                        f"driver prices {sym} but the exchange has no {market.value} market for it"
                    )
        self.exchange, self.driver, self.account = exchange, driver, account
        self.start_ms = driver.start_ms if start_ms is None else start_ms
        self.speed, self.step_ms = speed, step_ms
        self._t0: float | None = None
        self._last_step: int | None = None
        self._subs: list[_Subscriber] = []
        self._closed = False

    @classmethod
    def for_tests(
        cls,
        *,
        seed: int = 0,
        speed: float = 1.0,
        prices: Mapping[str, Decimal | tuple[Decimal, Decimal]] | None = None,
        funding_rate: Decimal | Mapping[str, Decimal] = Decimal("0.0001"),
        driver: MarketDriver | None = None,
        balances: Mapping[tuple[Wallet, str], Decimal] | None = None,
        venue: str = "sim",
        start_ms: int = SIM_EPOCH_MS,
        step_ms: int = 60_000,
        config: ExchangeConfig | None = None,
    ) -> SimVenue:
        """A funded venue over a flat market (``prices``: symbol -> price or (spot, perp)) or ``driver``."""
        if driver is None:
            raw = prices or {"BTCUSDT": Decimal(30000), "ETHUSDT": Decimal(2000)}
            pairs = {s: (p if isinstance(p, tuple) else (p, p)) for s, p in raw.items()}
            rates = funding_rate if isinstance(funding_rate, Mapping) else dict.fromkeys(pairs, funding_rate)
            driver = FlatDriver(pairs, rates, start_ms=start_ms)
        ex = SimExchange(
            default_instruments(venue, tuple(sorted(driver.symbols))), venue=venue, config=config, seed=seed
        )
        ex.open_account("main", DEFAULT_BALANCES if balances is None else balances)
        return cls(ex, driver, start_ms=start_ms, speed=speed, step_ms=step_ms)

    @classmethod
    def from_replay(
        cls,
        *,
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        start_ms: int = SIM_EPOCH_MS,
        speed: float = 60.0,
        seed: int = 0,
        data_dir: str | pathlib.Path | None = None,
        data_venue: str = "binance",
        interval: str = "8h",
        venue: str = "sim",
        balances: Mapping[tuple[Wallet, str], Decimal] | None = None,
        config: ExchangeConfig | None = None,
        funding_noise: float = 0.0,
        step_ms: int = 60_000,
    ) -> SimVenue:
        """Paper mode: replay real history (vendored data by default) from ``start_ms``,
        ``speed`` sim seconds per second. The engine passes ``FUNDARB_SIM_START``/``_SPEED`` from
        its configuration (:func:`fundarb.engine.venues.paper_venue`); nothing is read here.
        """
        from fundarb.sim.replay import ReplayDriver  # numpy and the loader only when replaying

        driver = ReplayDriver.from_data(
            symbols,
            data_dir=data_dir,
            venue=data_venue,
            interval=interval,
            seed=seed,
            start_ms=start_ms,
            step_ms=step_ms,
            funding_noise=funding_noise,
        )
        ex = SimExchange(
            default_instruments(venue, tuple(sorted(symbols))), venue=venue, config=config, seed=seed
        )
        ex.open_account("main", DEFAULT_BALANCES if balances is None else balances)
        return cls(ex, driver, start_ms=max(start_ms, driver.start_ms), speed=speed, step_ms=step_ms)

    # --- time ----------------------------------------------------------------------------------

    def sim_time_ms(self) -> int:
        """Current sim time (ms since the epoch)."""
        now = trio.current_time()
        if self._t0 is None:
            self._t0 = now
        # the epsilon keeps a wake-up at exactly a step's Trio deadline from rounding below the step
        return self.start_ms + math.floor((now - self._t0) * self.speed * 1000 + 1e-6)

    def _trio_time_of(self, sim_ms: int) -> float:
        self.sim_time_ms()
        assert self._t0 is not None
        # +1 µs: float rounding must never put the wake-up before sim_time_ms() reaches sim_ms,
        # or a stream would spin at one instant without the market ever stepping.
        return self._t0 + (sim_ms - self.start_ms) / (self.speed * 1000) + 1e-9 + 1e-6

    def _sync(self) -> int:
        """Step the market up to now and fan the account's events out; returns sim now."""
        if self._closed:
            raise VenueUnavailable("venue is closed", venue=self.name)
        now = self.sim_time_ms()
        ts = self.start_ms if self._last_step is None else self._last_step + self.step_ms
        while ts <= now:
            tick = self.driver.tick_at(ts)
            v = self.exchange.venue
            prices: dict[InstrumentId, Decimal] = {}
            rates: dict[InstrumentId, Decimal] = {}
            for sym in tick.spot:
                prices[InstrumentId(v, Market.SPOT, sym)] = tick.spot[sym]
                perp = InstrumentId(v, Market.PERPETUAL, sym)
                prices[perp] = tick.perp[sym]
                rates[perp] = tick.funding[sym]
            self.exchange.update_market(ts, prices, rates)
            self._last_step = ts
            ts += self.step_ms
        self.exchange.advance(now)
        self._publish()
        return now

    def _publish(self) -> None:
        events = self.exchange.drain_events(self.account)
        if events:
            for sub in self._subs:
                sub.queue.extend(events)
                sub.wake.set()

    async def _call(self) -> int:
        await trio.lowlevel.checkpoint()
        return self._sync()

    def _own(self, iid: InstrumentId) -> None:
        if iid.venue != self.name:
            raise OrderRejected(f"{iid} is not traded on {self.name}", venue=self.name, code=-1121)

    # --- Venue protocol ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The venue name used in instrument ids."""
        return self.exchange.venue

    async def instruments(self) -> list[Instrument]:
        """Trading rules of every instrument."""
        await self._call()
        return list(self.exchange.instruments.values())

    async def funding(self, instrument: InstrumentId) -> FundingSnapshot:
        """Predicted funding, next funding time, mark and index."""
        now = await self._call()
        self._own(instrument)
        return self.exchange.funding_snapshot(instrument, now)

    async def quote(self, instrument: InstrumentId) -> Quote:
        """Top of book."""
        now = await self._call()
        self._own(instrument)
        return self.exchange.quote(instrument, now)

    async def server_time_ms(self) -> int:
        """Sim time."""
        return await self._call()

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Place an order at the exchange."""
        now = await self._call()
        self._own(request.instrument)
        try:
            return self.exchange.place_order(self.account, request, now)
        finally:
            self._publish()

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Cancel by client order id."""
        now = await self._call()
        self._own(instrument)
        try:
            return self.exchange.cancel_order(self.account, instrument, client_order_id, now)
        finally:
            self._publish()

    async def query_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """Look an order up by client order id."""
        await self._call()
        self._own(instrument)
        return self.exchange.query_order(self.account, instrument, client_order_id)

    async def open_orders(self, instrument: InstrumentId | None = None) -> list[OrderUpdate]:
        """Working orders."""
        await self._call()
        return self.exchange.open_orders(self.account, instrument)

    async def positions(self) -> list[VenuePosition]:
        """Non-flat perpetual positions."""
        now = await self._call()
        return self.exchange.positions(self.account, now)

    async def balances(self) -> list[Balance]:
        """Every wallet balance."""
        now = await self._call()
        return self.exchange.balances(self.account, now)

    async def fills_since(
        self, instrument: InstrumentId, since_ms: int, *, order_id: str | None = None
    ) -> list[Fill]:
        """Fills at or after ``since_ms`` (with ``order_id``: that venue order's, any time)."""
        await self._call()
        if order_id is not None:
            return self.exchange.fills_of(self.account, instrument, order_id)
        return self.exchange.fills_since(self.account, instrument, since_ms)

    async def funding_income_since(self, since_ms: int) -> list[FundingPayment]:
        """Funding at or after ``since_ms``."""
        await self._call()
        return self.exchange.funding_income_since(self.account, since_ms)

    async def borrow(self, asset: str, amount: Decimal) -> None:
        """Margin borrow."""
        now = await self._call()
        self.exchange.borrow(self.account, asset, amount, now)
        self._publish()

    async def repay(self, asset: str, amount: Decimal) -> None:
        """Repay margin debt."""
        now = await self._call()
        try:
            self.exchange.repay(self.account, asset, amount, now)
        finally:
            self._publish()

    async def transfer(self, asset: str, amount: Decimal, source: Wallet, target: Wallet) -> None:
        """Move money between wallets (arrives after the exchange's wallet transfer delay)."""
        now = await self._call()
        try:
            self.exchange.transfer(self.account, asset, amount, source, target, now)
        finally:
            self._publish()

    async def withdraw_to(
        self, other: SimVenue, asset: str, amount: Decimal, source: Wallet, target: Wallet
    ) -> None:
        """Send money to ``other``'s account (a venue-to-venue transfer); it arrives after this
        exchange's ``venue_transfer_delay_ms`` of sim time. Both venues should share a sim clock."""
        now = await self._call()
        other._sync()
        try:
            self.exchange.withdraw_to(
                self.account, asset, amount, source, other.exchange, other.account, target, now
            )
        finally:
            self._publish()

    async def force_fill(self, instrument: InstrumentId, client_order_id: str) -> bool:
        """Test/fault hook: fill a working order's remainder now (a cancel/fill race)."""
        now = await self._call()
        done = self.exchange.force_fill(self.account, instrument, client_order_id, now)
        self._publish()
        return done

    async def run_market_data(
        self,
        instruments: Sequence[InstrumentId],
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish quotes (and funding for perps) of ``instruments`` at every market step."""
        for iid in instruments:
            self._own(iid)
            if iid not in self.exchange.instruments:
                raise OrderRejected(f"unknown instrument {iid}", venue=self.name, code=-1121)
        self._sync()
        task_status.started()
        while True:
            now = self._sync()
            for iid in instruments:
                await send.send(QuoteReceived(self.exchange.quote(iid, now)))
                if iid.market is Market.PERPETUAL:
                    await send.send(FundingReceived(self.exchange.funding_snapshot(iid, now)))
            assert self._last_step is not None
            await trio.sleep_until(self._trio_time_of(self._last_step + self.step_ms))

    async def run_user_data(
        self,
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Stream the account's events; also keeps the market stepping while it runs."""
        sub = _Subscriber()
        self._subs.append(sub)
        try:
            self._sync()
            task_status.started()
            while True:
                while sub.queue:
                    await send.send(sub.queue.popleft())
                sub.wake = trio.Event()
                assert self._last_step is not None
                with trio.move_on_at(self._trio_time_of(self._last_step + self.step_ms)):
                    await sub.wake.wait()
                self._sync()
        finally:
            self._subs.remove(sub)

    async def aclose(self) -> None:
        """Close: later calls raise VenueUnavailable."""
        self._closed = True
        await trio.lowlevel.checkpoint()

    def statistics(self) -> SimVenueStatistics:
        """Last market step, number of user-data subscribers, speed."""
        return SimVenueStatistics(self._last_step, len(self._subs), self.speed)
