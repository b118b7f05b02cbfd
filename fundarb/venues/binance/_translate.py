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
    "VENUE",
    "account_update",
    "book_ticker",
    "execution_report",
    "funding_from_premium_index",
    "funding_intervals",
    "funding_payments",
    "instrument_id",
    "mark_price",
    "order_params",
    "order_trade_update",
    "order_update_from_rest",
    "outbound_account_position",
    "positions_from_risk",
    "quote_from_rest",
    "user_trades",
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
_SIDE = {"BUY": Side.BUY, "SELL": Side.SELL}
_ids: dict[Market, dict[str, InstrumentId]] = {Market.SPOT: {}, Market.PERPETUAL: {}}


def instrument_id(market: Market, symbol: Any) -> InstrumentId:
    """The (cached) :class:`InstrumentId` of a Binance symbol on ``market``."""
    cache = _ids[market]
    iid = cache.get(symbol) if type(symbol) is str else None
    if iid is None:
        iid = InstrumentId(VENUE, market, text(symbol))
        if len(cache) > 20_000:  # untrusted input must not grow the cache without bound
            cache.clear()
        cache[symbol] = iid
    return iid


def _status(raw: Any, filled: Decimal) -> OrderStatus:
    status = _STATUS[raw]
    if raw == "PENDING_CANCEL" and filled == 0:
        return OrderStatus.NEW
    return status


# --- market data ----------------------------------------------------------------------------------


def mark_price(d: Mapping[str, Any], intervals: Mapping[str, int]) -> FundingSnapshot:
    """``markPriceUpdate`` -> :class:`FundingSnapshot` (``intervals``: symbol -> hours, else 8)."""
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
    if "e" in d:
        market, ts = Market.PERPETUAL, ms(d["E"])
    else:
        market, ts = Market.SPOT, received_ms
    return Quote(instrument_id(market, d["s"]), dec(d["b"]), dec(d["B"]), dec(d["a"]), dec(d["A"]), ts)


def quote_from_rest(d: Mapping[str, Any], market: Market, now_ms: int) -> Quote:
    """``GET /api/v3/ticker/bookTicker`` or ``/fapi/v1/ticker/bookTicker`` -> :class:`Quote`."""
    ts = ms(d["time"]) if "time" in d else now_ms
    return Quote(
        instrument_id(market, d["symbol"]),
        dec(d["bidPrice"]),
        dec(d["bidQty"]),
        dec(d["askPrice"]),
        dec(d["askQty"]),
        ts,
    )


def funding_from_premium_index(d: Mapping[str, Any], interval_hours: int) -> FundingSnapshot:
    """``GET /fapi/v1/premiumIndex?symbol=`` -> :class:`FundingSnapshot`."""
    index = dec(d["indexPrice"])
    return FundingSnapshot(
        instrument_id(Market.PERPETUAL, d["symbol"]),
        dec(d["lastFundingRate"]),
        ms(d["nextFundingTime"]),
        interval_hours,
        dec(d["markPrice"]),
        index if index > 0 else None,
        ms(d["time"]),
    )


def funding_intervals(rows: Any) -> dict[str, int]:
    """``GET /fapi/v1/fundingInfo`` -> symbol -> interval hours (only adjusted symbols are listed)."""
    if not isinstance(rows, list):
        raise TypeError("fundingInfo: expected a list")
    out: dict[str, int] = {}
    for row in rows:
        hours = row["fundingIntervalHours"]
        if type(hours) is not int or hours <= 0:
            raise TypeError(f"fundingIntervalHours: expected a positive int, got {hours!r}")
        out[text(row["symbol"])] = hours
    return out


# --- user data: USDⓈ-M ---------------------------------------------------------------------------


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
    side = _SIDE[o["S"]]
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
                    _status(o["X"], filled),
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
    side = _SIDE[d["S"]]
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
                _status(d["X"], filled),
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


# --- REST answers ---------------------------------------------------------------------------------


def order_update_from_rest(d: Mapping[str, Any], market: Market) -> OrderUpdate:
    """A new/cancel/query order answer (spot, margin or USDⓈ-M, RESULT shape) -> OrderUpdate."""
    filled = dec(d["executedQty"])
    if "avgPrice" in d:
        avg: Decimal | None = dec(d["avgPrice"])
    elif "cummulativeQuoteQty" in d and filled > 0:
        avg = dec(d["cummulativeQuoteQty"]) / filled
    elif "cumQuote" in d and filled > 0:
        avg = dec(d["cumQuote"]) / filled
    else:
        avg = None
    ts = d.get("updateTime") or d.get("transactTime") or d.get("time") or 0
    cid = d.get("origClientOrderId") or d["clientOrderId"]
    return OrderUpdate(
        instrument_id(market, d["symbol"]),
        text(cid),
        str(d["orderId"]),
        _status(d["status"], filled),
        _SIDE[d["side"]],
        dec(d["origQty"]),
        filled,
        avg if avg is not None and avg > 0 and filled > 0 else None,
        ms(ts),
    )


def positions_from_risk(rows: Any) -> list[VenuePosition]:
    """``GET /fapi/v3/positionRisk`` -> non-flat :class:`VenuePosition` list."""
    if not isinstance(rows, list):
        raise TypeError("positionRisk: expected a list")
    out = []
    for r in rows:
        qty = dec(r["positionAmt"])
        if qty == 0:
            continue
        liq = dec_or(r, "liquidationPrice", ZERO)
        adl = r.get("adl")
        out.append(
            VenuePosition(
                instrument_id(Market.PERPETUAL, r["symbol"]),
                qty,
                dec(r["entryPrice"]),
                dec(r["markPrice"]),
                liquidation_price=liq if liq > 0 else None,
                unrealized_pnl=dec_or(r, "unRealizedProfit", ZERO),
                maintenance_margin=dec_or(r, "maintMargin", ZERO),
                adl_rank=adl if type(adl) is int else None,
                ts_ms=ms(r.get("updateTime", 0)),
            )
        )
    return out


def funding_payments(rows: Any) -> list[FundingPayment]:
    """``GET /fapi/v1/income?incomeType=FUNDING_FEE`` -> FundingPayment list (``tranId`` is the id)."""
    if not isinstance(rows, list):
        raise TypeError("income: expected a list")
    out = []
    for r in rows:
        if r["incomeType"] != "FUNDING_FEE":
            continue
        out.append(
            FundingPayment(
                instrument_id(Market.PERPETUAL, r["symbol"]),
                str(r["tranId"]),
                dec(r["income"]),
                text(r["asset"]),
                ms(r["time"]),
            )
        )
    out.sort(key=lambda p: p.ts_ms)
    return out


def user_trades(rows: Any, market: Market) -> list[Fill]:
    """``GET /api/v3/myTrades`` or ``/fapi/v1/userTrades`` -> Fill list, oldest first.

    These rows carry the venue order id but not the client order id: ``client_order_id`` is "".
    """
    if not isinstance(rows, list):
        raise TypeError("trades: expected a list")
    out = []
    for r in rows:
        if "side" in r:
            side = _SIDE[r["side"]]
        else:
            side = Side.BUY if r["isBuyer"] is True else Side.SELL
        out.append(
            Fill(
                instrument_id(market, r["symbol"]),
                "",
                str(r["orderId"]),
                str(r["id"]),
                side,
                dec(r["qty"]),
                dec(r["price"]),
                dec(r["commission"]),
                r.get("commissionAsset") or "",
                Liquidity.MAKER if (r.get("maker") is True or r.get("isMaker") is True) else Liquidity.TAKER,
                ms(r["time"]),
            )
        )
    out.sort(key=lambda f: f.ts_ms)
    return out


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
