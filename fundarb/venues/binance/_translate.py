"""Pure translation: Binance payloads -> core values and events; core requests -> parameters.

No I/O, no clock: times come from the payload or as an argument. Every function raises
``KeyError``/``TypeError``/``ValueError``/``ArithmeticError`` on a malformed payload; callers
(:mod:`.decode`, :mod:`.client`) turn those into :class:`~fundarb.venues.errors.DecodeError`.

Market of a frame: USDⓈ-M frames carry an ``e`` of ``markPriceUpdate``, ``bookTicker``,
``ORDER_TRADE_UPDATE`` or ``ACCOUNT_UPDATE`` -> :attr:`Market.PERPETUAL`; spot frames are the
``e``-less ``bookTicker`` and ``executionReport`` / ``outboundAccountPosition`` ->
:attr:`Market.SPOT`. REST parsers take the market as an argument (the route decides it).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

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
from fundarb.core.prechecked import funding_snapshot as _funding_snapshot
from fundarb.core.prechecked import quote as _quote
from fundarb.core.venue_events import (
    BalanceReported,
    FillReported,
    FundingSettled,
    OrderReported,
    PositionReported,
    VenueEvent,
)
from fundarb.venues.binance._schemas import dec, dec_or, ms, text
from fundarb.venues.client_ids import venue_generated_kind

__all__ = [
    "SIDES",
    "VENUE",
    "account_update",
    "book_ticker",
    "execution_report",
    "instrument_id",
    "mark_price",
    "order_params",
    "order_status",
    "order_trade_update",
    "outbound_account_position",
]

VENUE = "binance"
DEFAULT_FUNDING_HOURS = 8

_STATUS = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.NEW,
    "NEW_INSURANCE": OrderStatus.NEW,
    "NEW_ADL": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "PENDING_CANCEL": OrderStatus.PARTIALLY_FILLED,  # replaced below when nothing filled
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_PERP_IDS: dict[str, InstrumentId] = {}
_SPOT_IDS: dict[str, InstrumentId] = {}
# What the fast paths' lookups and Decimal(...) can raise on a bad frame (an unhashable symbol,
# a missing key, "abc" or NaN compared): they then defer to the checked path, which reports it.
_FAST_PATH_ERRORS = (KeyError, TypeError, ArithmeticError)


def instrument_id(market: Market, symbol: Any) -> InstrumentId:
    """The (cached) :class:`InstrumentId` of a Binance symbol on ``market``."""
    # Two plain dicts keyed by str: hashing an Enum member runs Python code, this is the hot path.
    cache = _PERP_IDS if market is Market.PERPETUAL else _SPOT_IDS
    iid = cache.get(symbol) if type(symbol) is str else None
    if iid is None:
        iid = InstrumentId(VENUE, market, text(symbol))
        if len(cache) > 20_000:  # untrusted input must not grow the cache without bound
            cache.clear()
        cache[symbol] = iid
    return iid


def order_status(raw: Any, filled: Decimal) -> OrderStatus:
    """Binance order status -> :class:`OrderStatus` (``PENDING_CANCEL`` keeps NEW/PARTIAL by fill)."""
    status = _STATUS[raw]
    if raw == "PENDING_CANCEL" and filled == 0:
        return OrderStatus.NEW
    return status


# --- market data ----------------------------------------------------------------------------------


def mark_price(d: Mapping[str, Any], intervals: Mapping[str, int]) -> FundingSnapshot:
    """``markPriceUpdate`` -> :class:`FundingSnapshot` (``intervals``: symbol -> hours, else 8)."""
    # The hot path, for the common frame (a known symbol, decimal strings): the same values as
    # _mark_price, built by prechecked.funding_snapshot. Anything else, including every error,
    # goes through _mark_price, so the errors are its errors.
    try:
        symbol, i = d["s"], d["i"]
        iid = _PERP_IDS[symbol]  # KeyError for a new symbol: _mark_price caches it
        if type(i) is str:
            p, r, index = d["p"], d["r"], Decimal(i)
            if type(p) is str and type(r) is str and index.is_finite():  # -Infinity is not "no index"
                snapshot = _funding_snapshot(
                    iid,
                    Decimal(r),
                    d["T"],
                    intervals.get(symbol, DEFAULT_FUNDING_HOURS),
                    Decimal(p),
                    index if index > ZERO else None,
                    d["E"],
                )
                if snapshot is not None:
                    return snapshot
    except _FAST_PATH_ERRORS:
        pass
    return _mark_price(d, intervals)


def _mark_price(d: Mapping[str, Any], intervals: Mapping[str, int]) -> FundingSnapshot:
    iid = instrument_id(Market.PERPETUAL, d["s"])
    index = dec(d["i"])
    return FundingSnapshot(
        iid,
        dec(d["r"]),
        ms(d["T"]),
        intervals.get(iid.symbol, DEFAULT_FUNDING_HOURS),
        dec(d["p"]),
        index if index > 0 else None,
        ms(d["E"]),
    )


def book_ticker(d: Mapping[str, Any], received_ms: int) -> Quote:
    """A ``bookTicker`` frame -> :class:`Quote`; USDⓈ-M when it has ``e`` (and ``E``), else spot.

    Spot frames carry no time: ``received_ms`` (the shell's receive time) stamps them.
    """
    # Hot path as in mark_price: prechecked.quote, else _book_ticker for the value or the error.
    try:
        if "e" in d:
            iid, ts = _PERP_IDS[d["s"]], d["E"]  # KeyError for a new symbol: _book_ticker caches it
        else:
            iid, ts = _SPOT_IDS[d["s"]], received_ms
        b, bq, a, aq = d["b"], d["B"], d["a"], d["A"]
        if type(b) is str and type(bq) is str and type(a) is str and type(aq) is str:
            q = _quote(iid, Decimal(b), Decimal(bq), Decimal(a), Decimal(aq), ts)
            if q is not None:
                return q
    except _FAST_PATH_ERRORS:
        pass
    return _book_ticker(d, received_ms)


def _book_ticker(d: Mapping[str, Any], received_ms: int) -> Quote:
    if "e" in d:
        market, ts = Market.PERPETUAL, ms(d["E"])
    else:
        market, ts = Market.SPOT, received_ms
    return Quote(instrument_id(market, d["s"]), dec(d["b"]), dec(d["B"]), dec(d["a"]), dec(d["A"]), ts)


def order_trade_update(d: Mapping[str, Any]) -> list[VenueEvent]:
    """``ORDER_TRADE_UPDATE`` -> [OrderReported] (+ FillReported on a trade).

    Venue-generated orders (client id ``autoclose-``/``adl_autoclose``/``settlement_autoclose-``,
    or a ``CALCULATED`` liquidation execution) yield only a Fill with ``venue_generated`` set:
    they are not our orders, so no OrderReported is emitted for them.
    """
    o = d["o"]
    iid = instrument_id(Market.PERPETUAL, o["s"])
    cid = o["c"]
    if type(cid) is not str:
        raise TypeError("o.c: expected a string")
    side = SIDES[o["S"]]
    exec_type = o["x"]
    ts = ms(o["T"]) if "T" in o else ms(d["E"])
    venue_order_id = str(o["i"])
    kind = venue_generated_kind(cid)
    if kind is None and (exec_type == "CALCULATED" or o.get("o") == "LIQUIDATION"):
        kind = VenueFillKind.LIQUIDATION
    events: list[VenueEvent] = []
    filled = dec(o["z"])
    if kind is None:
        avg = dec_or(o, "ap", ZERO)
        events.append(
            OrderReported(
                OrderUpdate(
                    iid,
                    cid,
                    venue_order_id,
                    order_status(o["X"], filled),
                    side,
                    dec(o["q"]),
                    filled,
                    avg if filled > 0 and avg > 0 else None,
                    ts,
                    "" if exec_type in ("NEW", "TRADE") else exec_type,
                )
            )
        )
    if exec_type in ("TRADE", "CALCULATED"):
        trade_id = o.get("t")
        events.append(
            FillReported(
                Fill(
                    iid,
                    cid,
                    venue_order_id,
                    str(trade_id) if trade_id not in (None, 0, -1) else f"{venue_order_id}-{ts}",
                    side,
                    dec(o["l"]),
                    dec(o["L"]),
                    dec_or(o, "n", ZERO),
                    o.get("N") or "",
                    Liquidity.MAKER if o.get("m") is True else Liquidity.TAKER,
                    ts,
                    kind,
                )
            )
        )
    return events


def account_update(d: Mapping[str, Any]) -> list[VenueEvent]:
    """``ACCOUNT_UPDATE`` -> BalanceReported per asset, PositionReported per position and, when
    ``a.m == "FUNDING_FEE"``, FundingSettled per balance change.

    Assumes one-way position mode (``ps == "BOTH"``); hedge-mode LONG/SHORT rows are reported as
    they come (signed). The stream carries no mark price, so ``mark_price`` is 0 (unknown).
    The funding symbol is ``a.S`` when present, else the only position in ``a.P``; a funding
    change that cannot be attributed is left to the REST income query. Its ``payment_id`` is
    ``ws:<E>:<asset>:<symbol>`` (the stream has no tranId).
    """
    a = d["a"]
    ts = ms(d["E"])
    events: list[VenueEvent] = []
    positions = a.get("P") or []
    for b in a.get("B") or []:
        events.append(BalanceReported(Balance(VENUE, Wallet.FUTURES, text(b["a"]), dec(b["wb"]), ts_ms=ts)))
    symbols = []
    for p in positions:
        iid = instrument_id(Market.PERPETUAL, p["s"])
        symbols.append(iid)
        events.append(
            PositionReported(
                VenuePosition(
                    iid,
                    dec(p["pa"]),
                    dec(p["ep"]),
                    ZERO,
                    unrealized_pnl=dec_or(p, "up", ZERO),
                    ts_ms=ts,
                )
            )
        )
    if a.get("m") == "FUNDING_FEE":
        fsym = a.get("S")
        if fsym:
            target: InstrumentId | None = instrument_id(Market.PERPETUAL, fsym)
        else:
            target = symbols[0] if len({s.symbol for s in symbols}) == 1 else None
        if target is not None:
            for b in a.get("B") or []:
                change = dec(b["bc"])
                if change != 0:
                    asset = text(b["a"])
                    pid = f"ws:{ts}:{asset}:{target.symbol}"
                    events.append(FundingSettled(FundingPayment(target, pid, change, asset, ts)))
    return events


# --- user data: spot / margin --------------------------------------------------------------------


def execution_report(d: Mapping[str, Any]) -> list[VenueEvent]:
    """Spot/margin ``executionReport`` -> [OrderReported] (+ FillReported when ``x == "TRADE"``).

    On a cancel the order's own client id is in ``C`` (``c`` names the cancel request).
    """
    iid = instrument_id(Market.SPOT, d["s"])
    orig = d.get("C")
    cid = orig if orig else d["c"]
    if type(cid) is not str:
        raise TypeError("c: expected a string")
    side = SIDES[d["S"]]
    filled = dec(d["z"])
    quote_qty = dec_or(d, "Z", ZERO)
    ts = ms(d["T"]) if "T" in d else ms(d["E"])
    venue_order_id = str(d["i"])
    reason = d.get("r") or ""
    events: list[VenueEvent] = [
        OrderReported(
            OrderUpdate(
                iid,
                cid,
                venue_order_id,
                order_status(d["X"], filled),
                side,
                dec(d["q"]),
                filled,
                quote_qty / filled if filled > 0 else None,
                ts,
                "" if reason == "NONE" else str(reason),
            )
        )
    ]
    if d["x"] == "TRADE":
        events.append(
            FillReported(
                Fill(
                    iid,
                    cid,
                    venue_order_id,
                    str(d["t"]),
                    side,
                    dec(d["l"]),
                    dec(d["L"]),
                    dec_or(d, "n", ZERO),
                    d.get("N") or "",
                    Liquidity.MAKER if d.get("m") is True else Liquidity.TAKER,
                    ts,
                    venue_generated_kind(cid),
                )
            )
        )
    return events


def outbound_account_position(d: Mapping[str, Any], wallet: Wallet) -> list[VenueEvent]:
    """``outboundAccountPosition`` -> BalanceReported per asset (free ``f``, locked ``l``)."""
    ts = ms(d["E"])
    return [
        BalanceReported(Balance(VENUE, wallet, text(b["a"]), dec(b["f"]), dec(b["l"]), ts_ms=ts))
        for b in d["B"]
    ]


# --- requests -------------------------------------------------------------------------------------


def _fmt(d: Decimal) -> str:
    """A Decimal as Binance wants it: plain notation, never exponent, never a float."""
    return format(d, "f")


def order_params(request: OrderRequest) -> dict[str, str]:
    """The ``POST .../order`` parameters for ``request`` (without timestamp/signature).

    ``TimeInForce.POST_ONLY`` becomes ``LIMIT_MAKER`` on spot and ``timeInForce=GTX`` on USDⓈ-M.
    """
    perp = request.instrument.market is Market.PERPETUAL
    params = {
        "symbol": request.instrument.symbol,
        "side": request.side.value,
        "quantity": _fmt(request.quantity),
        "newClientOrderId": request.client_order_id,
        "newOrderRespType": "RESULT",
    }
    if request.order_type is OrderType.MARKET:
        params["type"] = "MARKET"
    else:
        assert request.price is not None
        params["price"] = _fmt(request.price)
        if request.time_in_force is TimeInForce.POST_ONLY:
            if perp:
                params["type"], params["timeInForce"] = "LIMIT", "GTX"
            else:
                params["type"] = "LIMIT_MAKER"
        else:
            params["type"], params["timeInForce"] = "LIMIT", request.time_in_force.value
    if request.reduce_only:
        params["reduceOnly"] = "true"
    return params
