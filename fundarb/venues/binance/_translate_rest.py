"""Pure translation of Binance REST answers into core values (the REST half of :mod:`._translate`).

Each function raises ``KeyError``/``TypeError``/``ValueError``/``ArithmeticError`` on a malformed
answer; :mod:`.client` turns those into :class:`~fundarb.venues.errors.VenueProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fundarb.core.model import (
    ZERO,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Liquidity,
    Market,
    OrderUpdate,
    Quote,
    Side,
    VenuePosition,
)
from fundarb.core.prechecked import funding_snapshot as _funding_snapshot
from fundarb.venues.binance._schemas import dec, dec_or, ms, text
from fundarb.venues.binance._translate import (
    _FAST_PATH_ERRORS,
    _PERP_IDS,
    SIDES,
    instrument_id,
    order_status,
)

__all__ = [
    "funding_from_premium_index",
    "funding_intervals",
    "funding_payments",
    "order_update_from_rest",
    "positions_from_risk",
    "quote_from_rest",
    "user_trades",
]


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
    # Hot path as in _translate.mark_price: prechecked.funding_snapshot for a known symbol and
    # decimal strings, else the checked path below (which also reports every error).
    try:
        iid, i = _PERP_IDS[d["symbol"]], d["indexPrice"]  # KeyError: a new symbol, cached below
        if type(i) is str:
            p, r, index = d["markPrice"], d["lastFundingRate"], Decimal(i)
            if type(p) is str and type(r) is str and index.is_finite():  # -Infinity is not "no index"
                snapshot = _funding_snapshot(
                    iid,
                    Decimal(r),
                    d["nextFundingTime"],
                    interval_hours,
                    Decimal(p),
                    index if index > ZERO else None,
                    d["time"],
                )
                if snapshot is not None:
                    return snapshot
    except _FAST_PATH_ERRORS:
        pass
    return _funding_from_premium_index(d, interval_hours)


def _funding_from_premium_index(d: Mapping[str, Any], interval_hours: int) -> FundingSnapshot:
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
        order_status(d["status"], filled),
        SIDES[d["side"]],
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
            side = SIDES[r["side"]]
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
