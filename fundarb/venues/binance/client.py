"""``BinanceVenue``: the :class:`~fundarb.venues.protocol.Venue` protocol on Binance REST and websockets.

Spot orders go to ``/api/v3`` (or to ``/sapi/v1/margin`` with ``spot_margin=True``, cross
margin, ``sideEffectType=NO_SIDE_EFFECT``: borrow and repay are explicit calls); perpetual
orders to ``/fapi/v1`` (one-way position mode assumed). Every call runs under ``call_timeout``
(see :mod:`._http` for the error rules). Orders are checked against the exchangeInfo filters
before they are sent and formatted from Decimals, never floats.

Spot orders and cancels (``/api/v3``, not margin) go over the WebSocket API (:mod:`._wsapi`,
``order.place`` / ``order.cancel`` on the spot user-data connection) while that connection is up
(``run_user_data`` running, subscribed), and over REST otherwise or with ``ws_orders=False``.
Both paths send the same parameters and answer in the same types and error taxonomy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import httpx
import trio

from fundarb.core.errors import InvalidOrder
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
from fundarb.core.venue_events import VenueEvent
from fundarb.venues.binance import _endpoints as ep
from fundarb.venues.binance import _translate as tr
from fundarb.venues.binance import _translate_rest as rt
from fundarb.venues.binance._auth import Credentials, Secret
from fundarb.venues.binance._endpoints import LIVE_URLS, TESTNET_URLS, BaseUrls, Family
from fundarb.venues.binance._http import RestSession, wall_clock_ms
from fundarb.venues.binance._rules import InstrumentRules, rules_from_exchange_info
from fundarb.venues.binance._schemas import dec
from fundarb.venues.binance._ws import ReconnectPolicy, StreamRunner
from fundarb.venues.binance._wsapi import NotSent, Submitted, WsApiSession
from fundarb.venues.errors import BadPrecision, VenueProtocolError
from fundarb.venues.protocol import EventSender

__all__ = ["BinanceVenue"]

T = TypeVar("T")

_BAD = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError)
_TRANSFER_TYPES = {
    (Wallet.SPOT, Wallet.FUTURES): "MAIN_UMFUTURE",
    (Wallet.FUTURES, Wallet.SPOT): "UMFUTURE_MAIN",
    (Wallet.SPOT, Wallet.MARGIN): "MAIN_MARGIN",
    (Wallet.MARGIN, Wallet.SPOT): "MARGIN_MAIN",
    (Wallet.FUTURES, Wallet.MARGIN): "UMFUTURE_MARGIN",
    (Wallet.MARGIN, Wallet.FUTURES): "MARGIN_UMFUTURE",
}


@attrs.frozen
class _Started:
    """An order :meth:`BinanceVenue.start_order` wrote, awaiting its answer."""

    session: WsApiSession
    submitted: Submitted
    market: Market


def _parse(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a pure parser; a malformed answer becomes VenueProtocolError."""
    try:
        return fn(*args)
    except _BAD as exc:
        raise VenueProtocolError(f"binance {what}: malformed answer ({type(exc).__name__}: {exc})") from exc


class BinanceVenue:
    """One Binance account (spot, cross margin, USDⓈ-M futures).

    Credentials: ``BinanceVenue(Credentials(key, secret))`` or ``BinanceVenue(key, secret)``;
    none for public data only.

    ``testnet=True`` switches every base URL to the testnets (``FUNDARB_BINANCE_TESTNET=1``);
    ``base_urls`` overrides them (tests, the loopback server). ``transport`` is passed to
    ``httpx.AsyncClient`` (``httpx.MockTransport`` in tests). ``ws_orders`` (default on,
    ``FUNDARB_BINANCE_WS_ORDERS``) sends spot orders over the WebSocket API when it is connected.
    """

    def __init__(
        self,
        credentials: Credentials | str | None = None,
        api_secret: str | Secret | None = None,
        *,
        testnet: bool = False,
        base_urls: BaseUrls | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        call_timeout: float = 10.0,
        recv_window_ms: int = 5000,
        spot_margin: bool = False,
        watchdog: float = 10.0,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        wall_ms: Any = wall_clock_ms,
        ws_orders: bool = True,
    ) -> None:
        if isinstance(credentials, str):
            if api_secret is None:
                raise ValueError("BinanceVenue(api_key, api_secret): the secret is missing")
            credentials = Credentials(credentials, api_secret)
        elif api_secret is not None:
            raise ValueError("BinanceVenue: pass either Credentials or (api_key, api_secret), not both")
        urls = base_urls if base_urls is not None else (TESTNET_URLS if testnet else LIVE_URLS)
        self._rest = RestSession(
            urls, credentials, transport=transport, call_timeout=call_timeout,
            recv_window_ms=recv_window_ms, wall_ms=wall_ms,
        )  # fmt: skip
        self._spot_family = Family.SAPI if spot_margin else Family.SPOT
        self._rules: dict[InstrumentId, InstrumentRules] = {}
        self._intervals: dict[str, int] | None = None
        self._ws_api = WsApiSession(self._rest) if ws_orders and not spot_margin else None
        self._streams = StreamRunner(self, urls, watchdog=watchdog, policy=reconnect)

    def __repr__(self) -> str:
        return f"BinanceVenue({self._rest!r})"

    @property
    def name(self) -> str:
        """``"binance"``."""
        return tr.VENUE

    @property
    def spot_margin(self) -> bool:
        """True when spot orders and spot user data go through cross margin (``/sapi``)."""
        return self._spot_family is Family.SAPI

    @property
    def rest(self) -> RestSession:
        """The REST session (clock offsets, rate limiters)."""
        return self._rest

    @property
    def ws_api(self) -> WsApiSession | None:
        """The WebSocket-API order session (None with ``ws_orders=False`` or ``spot_margin``);
        ``ws_api.connected`` says whether the next spot order goes over it."""
        return self._ws_api

    def _family(self, instrument: InstrumentId) -> Family:
        if instrument.venue != tr.VENUE:
            raise ValueError(f"{instrument} is not a binance instrument")
        return Family.FAPI if instrument.market is Market.PERPETUAL else self._spot_family

    # --- reference and market data ---

    async def funding_intervals(self) -> dict[str, int]:
        """Symbol -> funding interval hours for adjusted symbols (cached; others are 8 h)."""
        if self._intervals is None:
            rows = await self._rest.call(ep.funding_info())
            self._intervals = _parse("fundingInfo", rt.funding_intervals, rows)
        return self._intervals

    async def instrument_rules(self) -> dict[InstrumentId, InstrumentRules]:
        """Load (or reload) the exchangeInfo filters of both markets."""
        intervals = await self.funding_intervals()
        rules: dict[InstrumentId, InstrumentRules] = {}
        for market, call in (
            (Market.SPOT, ep.spot_exchange_info()),
            (Market.PERPETUAL, ep.futures_exchange_info()),
        ):
            doc = await self._rest.call(call)
            found, _skipped = _parse("exchangeInfo", rules_from_exchange_info, doc, market, intervals)
            rules.update((r.instrument.id, r) for r in found)
        self._rules = rules
        return rules

    async def instruments(self) -> list[Instrument]:
        """Every trading spot symbol and USDⓈ-M perpetual, with their filters and funding interval."""
        return [r.instrument for r in (await self.instrument_rules()).values()]

    async def funding(self, instrument: InstrumentId) -> FundingSnapshot:
        """``GET /fapi/v1/premiumIndex`` with the symbol's funding interval."""
        if instrument.market is not Market.PERPETUAL:
            raise ValueError(f"{instrument}: funding exists only on perpetuals")
        hours = (await self.funding_intervals()).get(instrument.symbol, tr.DEFAULT_FUNDING_HOURS)
        doc = await self._rest.call(ep.premium_index(instrument.symbol))
        return _parse("premiumIndex", rt.funding_from_premium_index, doc, hours)

    async def quote(self, instrument: InstrumentId) -> Quote:
        """Best bid/ask from the REST book ticker (spot answers carry no time: venue clock estimate)."""
        perp = self._family(instrument) is Family.FAPI
        call = ep.futures_book_ticker(instrument.symbol) if perp else ep.spot_book_ticker(instrument.symbol)
        doc = await self._rest.call(call)
        return _parse(
            "bookTicker", rt.quote_from_rest, doc, instrument.market, self._rest.venue_time_ms(Family.SPOT)
        )

    async def server_time_ms(self) -> int:
        """``GET /fapi/v1/time`` (also refreshes the futures clock offset)."""
        return await self._rest.sync_clock(Family.FAPI)

    # --- trading ---

    async def _rules_for(self, instrument: InstrumentId) -> InstrumentRules:
        rules = self._rules.get(instrument)
        if rules is None:
            rules = (await self.instrument_rules()).get(instrument)
        if rules is None:
            raise BadPrecision(
                f"{instrument}: not a trading instrument on binance", venue=tr.VENUE, code="local"
            )
        return rules

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Check ``request`` against the filters, send it (``newOrderRespType=RESULT``), return the ack.

        A filter violation raises ``BadPrecision`` (code ``"local"``) without sending anything.
        Spot orders go over the WebSocket API when it is connected (see the module docstring).
        """
        family = self._family(request.instrument)
        rules = self._rules.get(request.instrument) or await self._rules_for(request.instrument)
        try:
            rules.check(request)
        except InvalidOrder as exc:
            raise BadPrecision(str(exc), venue=tr.VENUE, code="local") from exc
        params = tr.order_params(request)
        if family is Family.SAPI:
            params["isIsolated"] = "FALSE"
            params["sideEffectType"] = "NO_SIDE_EFFECT"
        call = ep.new_order(family, params)
        doc = await self._send(call, "order.place")
        return _parse("order", rt.order_update_from_rest, doc, request.instrument.market)

    def start_order(self, request: OrderRequest) -> _Started | None:
        """Write a spot order over the WebSocket API now, from synchronous code (the hedge path,
        :class:`~fundarb.venues.protocol.PlacesNow`); None, having sent nothing, when it cannot
        leave at once (not spot, not connected, rules not loaded, a filter violated, budget or
        clock not ready, the socket busy): :meth:`place_order` then sends it (and raises what a
        filter violation means)."""
        session = self._ws_api
        if session is None or request.instrument.market is not Market.SPOT or not session.connected:
            return None
        rules = self._rules.get(request.instrument)
        if rules is None:
            return None
        try:
            rules.check(request)
        except InvalidOrder:
            return None
        submitted = session.submit("order.place", tr.order_params(request))
        return None if submitted is None else _Started(session, submitted, request.instrument.market)

    async def finish_order(self, started: object) -> OrderUpdate:
        """The acknowledgement of an order :meth:`start_order` sent (as :meth:`place_order`)."""
        assert isinstance(started, _Started)
        try:
            doc = await started.session.finish(started.submitted)
        except NotSent:  # refused (-1021), and the WS API cannot take the retry now: REST sends it
            doc = await self._rest.call(ep.new_order(Family.SPOT, started.submitted.params))
        return _parse("order", rt.order_update_from_rest, doc, started.market)

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """``DELETE .../order?origClientOrderId=`` (spot: ``order.cancel`` over the WebSocket API
        when connected); the answer carries the cumulative fill."""
        call = ep.cancel_order(self._family(instrument), instrument.symbol, client_order_id)
        doc = await self._send(call, "order.cancel")
        return _parse("cancel", rt.order_update_from_rest, doc, instrument.market)

    async def _send(self, call: ep.Call, ws_method: str) -> Any:
        """``call`` as ``ws_method`` over the WebSocket API when it is a spot call and the
        session is connected, else over REST (also when the session declines: nothing was sent)."""
        session = self._ws_api
        if session is not None and call.family is Family.SPOT and session.connected:
            try:
                return await session.call(ws_method, call.params, mutating=call.mutating)
            except NotSent:
                pass
        return await self._rest.call(call)

    async def query_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        """``GET .../order?origClientOrderId=``; ``OrderNotFound`` (-2013) when the venue has none."""
        doc = await self._rest.call(
            ep.query_order(self._family(instrument), instrument.symbol, client_order_id)
        )
        return _parse("query", rt.order_update_from_rest, doc, instrument.market)

    # --- reconciliation ---

    async def open_orders(self, instrument: InstrumentId | None = None) -> list[OrderUpdate]:
        """Working orders of one instrument, or of every spot (or margin) and perpetual symbol."""
        targets: list[tuple[Family, str | None, Market]]
        if instrument is not None:
            targets = [(self._family(instrument), instrument.symbol, instrument.market)]
        else:
            targets = [(self._spot_family, None, Market.SPOT), (Family.FAPI, None, Market.PERPETUAL)]
        out: list[OrderUpdate] = []
        for family, symbol, market in targets:
            rows = await self._rest.call(ep.open_orders(family, symbol))
            if not isinstance(rows, list):
                raise VenueProtocolError("binance openOrders: expected a list", venue=tr.VENUE)
            out.extend(_parse("openOrders", rt.order_update_from_rest, row, market) for row in rows)
        return out

    async def positions(self) -> list[VenuePosition]:
        """``GET /fapi/v3/positionRisk``, non-flat positions only."""
        return _parse("positionRisk", rt.positions_from_risk, await self._rest.call(ep.position_risk()))

    async def balances(self) -> list[Balance]:
        """Spot balances, USDⓈ-M wallet balances and (with ``spot_margin``) cross-margin balances with debt."""
        now = self._rest.venue_time_ms(Family.SPOT)
        spot = await self._rest.call(ep.spot_account())
        futures = await self._rest.call(ep.futures_balance())
        margin = await self._rest.call(ep.margin_account()) if self._spot_family is Family.SAPI else None
        return _parse("balances", _balances, spot, futures, margin, now)

    async def fills_since(
        self, instrument: InstrumentId, since_ms: int, *, order_id: str | None = None
    ) -> list[Fill]:
        """Our trades on ``instrument`` since ``since_ms``, or of the order ``order_id`` (Binance's
        ``orderId`` parameter: one order's trades, not the window's first 1000). Client ids are
        not in these rows: ""."""
        if self._family(instrument) is Family.FAPI:
            call = ep.futures_user_trades(instrument.symbol, since_ms, order_id=order_id)
        else:
            margin = self._spot_family is Family.SAPI
            call = ep.spot_my_trades(instrument.symbol, since_ms, margin=margin, order_id=order_id)
        return _parse("trades", rt.user_trades, await self._rest.call(call), instrument.market)

    async def funding_income_since(self, since_ms: int) -> list[FundingPayment]:
        """``GET /fapi/v1/income?incomeType=FUNDING_FEE`` since ``since_ms`` (first 1000 records)."""
        return _parse("income", rt.funding_payments, await self._rest.call(ep.funding_income(since_ms)))

    # --- margin and transfers ---

    async def borrow(self, asset: str, amount: Decimal) -> None:
        """``POST /sapi/v1/margin/borrow-repay type=BORROW`` (cross margin)."""
        await self._rest.call(ep.borrow_repay(asset, _positive(amount), "BORROW"))

    async def repay(self, asset: str, amount: Decimal) -> None:
        """``POST /sapi/v1/margin/borrow-repay type=REPAY`` (cross margin)."""
        await self._rest.call(ep.borrow_repay(asset, _positive(amount), "REPAY"))

    async def transfer(self, asset: str, amount: Decimal, source: Wallet, target: Wallet) -> None:
        """``POST /sapi/v1/asset/transfer`` between spot, cross margin and USDⓈ-M wallets."""
        kind = _TRANSFER_TYPES.get((source, target))
        if kind is None:
            raise ValueError(f"no binance transfer from {source.value} to {target.value}")
        await self._rest.call(ep.universal_transfer(asset, _positive(amount), kind))

    # --- streams ---

    async def run_market_data(
        self,
        instruments: Sequence[InstrumentId],
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Quotes (spot and USDⓈ-M bookTicker) and funding (markPrice@1s) for ``instruments``."""
        await self._streams.run_market_data(instruments, send, task_status=task_status)

    async def run_user_data(
        self,
        send: EventSender,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """USDⓈ-M user data (listenKey on ``/private``) and spot or margin user data (WebSocket API)."""
        await self._streams.run_user_data(send, task_status=task_status)

    async def resync_market(self, instruments: Sequence[InstrumentId]) -> list[VenueEvent]:
        """REST snapshot of quotes and funding, used after a market-data reconnect."""
        from fundarb.core.venue_events import FundingReceived, QuoteReceived

        events: list[VenueEvent] = []
        for iid in instruments:
            events.append(QuoteReceived(await self.quote(iid)))
            if iid.market is Market.PERPETUAL:
                events.append(FundingReceived(await self.funding(iid)))
        return events

    async def resync_user(self) -> list[VenueEvent]:
        """REST snapshot of open orders and positions, used after a user-data reconnect."""
        from fundarb.core.venue_events import OrderReported, PositionReported

        events: list[VenueEvent] = [OrderReported(o) for o in await self.open_orders()]
        events.extend(PositionReported(p) for p in await self.positions())
        return events

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._rest.aclose()


def _positive(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be a positive finite Decimal, got {amount!r}")
    return amount


def _balances(spot: Any, futures: Any, margin: Any, now: int) -> list[Balance]:
    out = []
    for b in spot["balances"]:
        free, locked = dec(b["free"]), dec(b["locked"])
        if free or locked:
            out.append(Balance(tr.VENUE, Wallet.SPOT, b["asset"], free, locked, ts_ms=now))
    for b in futures:
        wallet = dec(b["balance"])
        if wallet:
            out.append(Balance(tr.VENUE, Wallet.FUTURES, b["asset"], wallet, ts_ms=b.get("updateTime", now)))
    if margin is not None:
        for b in margin["userAssets"]:
            free, locked = dec(b["free"]), dec(b["locked"])
            debt = dec(b["borrowed"]) + dec(b["interest"])
            if free or locked or debt:
                out.append(Balance(tr.VENUE, Wallet.MARGIN, b["asset"], free, locked, debt, ts_ms=now))
    return out
