"""Pure encoders: core values -> Binance's own JSON shapes of REST answers (frames: :mod:`._frames`).

The inverse of :mod:`fundarb.venues.binance._translate` / ``_translate_rest``: decimals are
strings in plain notation, times are integer milliseconds, ids are integers where Binance uses
integers. The simulator's ids (``O12`` orders, ``t13`` trades) become the integers in them.
No I/O, no clock: times come in as arguments.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from fundarb.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingPayment,
    FundingSnapshot,
    Instrument,
    Liquidity,
    Market,
    OrderRequest,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    VenuePosition,
    Wallet,
)

__all__ = [
    "book_ticker_rest",
    "exchange_info",
    "fmt",
    "funding_info",
    "futures_balances",
    "income_rows",
    "int_id",
    "margin_account",
    "order_answer",
    "order_type",
    "position_risk",
    "premium_index",
    "spot_account",
    "user_trades",
]

DEFAULT_FUNDING_HOURS = 8


def fmt(value: Decimal | None) -> str:
    """A Decimal in plain notation (``"0"`` for None), as Binance sends numbers."""
    return "0" if value is None else format(value, "f")


def int_id(raw: str | None) -> int:
    """A simulator id (``O12``, ``t13``) as the integer Binance would send (a stable hash when
    the id has no digits)."""
    if not raw:
        return -1
    digits = "".join(c for c in raw if c.isdigit())
    return int(digits) if digits else zlib.crc32(raw.encode()) & 0x7FFFFFFF


# --- reference and market data -----------------------------------------------------------------


def exchange_info(instruments: Iterable[Instrument], market: Market, server_ms: int) -> dict[str, Any]:
    """``GET /api/v3/exchangeInfo`` (spot) or ``/fapi/v1/exchangeInfo`` (perpetuals) of ``instruments``."""
    perp = market is Market.PERPETUAL
    symbols = []
    for inst in sorted(instruments, key=lambda i: i.id.symbol):
        if inst.id.market is not market:
            continue
        filters: list[dict[str, Any]] = [
            {"filterType": "PRICE_FILTER", "minPrice": "0", "maxPrice": "0", "tickSize": fmt(inst.tick_size)},
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(inst.min_qty),
                "maxQty": "0",
                "stepSize": fmt(inst.lot_step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(inst.min_qty),
                "maxQty": "0",
                "stepSize": fmt(inst.lot_step),
            },
        ]
        if perp:
            filters.append({"filterType": "MIN_NOTIONAL", "notional": fmt(inst.min_notional)})
        else:
            filters.append(
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(inst.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "0",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                }
            )
        row: dict[str, Any] = {
            "symbol": inst.id.symbol,
            "status": "TRADING",
            "baseAsset": inst.base,
            "quoteAsset": inst.quote,
            "filters": filters,
        }
        if perp:
            row["contractType"] = "PERPETUAL"
            row["marginAsset"] = inst.quote
        symbols.append(row)
    return {"timezone": "UTC", "serverTime": server_ms, "rateLimits": [], "symbols": symbols}


def funding_info(instruments: Iterable[Instrument]) -> list[dict[str, Any]]:
    """``GET /fapi/v1/fundingInfo``: only perpetuals whose interval is not the default 8 h."""
    return [
        {
            "symbol": i.id.symbol,
            "adjustedFundingRateCap": "0.02000000",
            "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": i.funding_interval_hours,
            "disclaimer": False,
        }
        for i in sorted(instruments, key=lambda i: i.id.symbol)
        if i.id.market is Market.PERPETUAL and i.funding_interval_hours != DEFAULT_FUNDING_HOURS
    ]


def premium_index(s: FundingSnapshot) -> dict[str, Any]:
    """``GET /fapi/v1/premiumIndex?symbol=``."""
    return {
        "symbol": s.instrument.symbol,
        "markPrice": fmt(s.mark),
        "indexPrice": fmt(s.index) if s.index is not None else "0",
        "estimatedSettlePrice": fmt(s.index if s.index is not None else s.mark),
        "lastFundingRate": fmt(s.rate),
        "interestRate": "0.00010000",
        "nextFundingTime": s.next_funding_ms,
        "time": s.ts_ms,
    }


def book_ticker_rest(q: Quote) -> dict[str, Any]:
    """``GET /api/v3/ticker/bookTicker`` (no time) or ``/fapi/v1/ticker/bookTicker`` (with time)."""
    doc: dict[str, Any] = {
        "symbol": q.instrument.symbol,
        "bidPrice": fmt(q.bid),
        "bidQty": fmt(q.bid_size),
        "askPrice": fmt(q.ask),
        "askQty": fmt(q.ask_size),
    }
    if q.instrument.market is Market.PERPETUAL:
        doc["time"] = q.ts_ms
    return doc


# --- orders --------------------------------------------------------------------------------------


def order_type(request: OrderRequest | None) -> tuple[str, str]:
    """(type, timeInForce) of ``request`` on the wire (LIMIT/GTC when unknown)."""
    if request is None:
        return "LIMIT", "GTC"
    if request.order_type is OrderType.MARKET:
        return "MARKET", "GTC"
    tif = request.time_in_force
    if tif is TimeInForce.POST_ONLY:
        if request.instrument.market is Market.PERPETUAL:
            return "LIMIT", "GTX"
        return "LIMIT_MAKER", "GTC"
    return "LIMIT", tif.value


def order_answer(u: OrderUpdate, request: OrderRequest | None) -> dict[str, Any]:
    """A new/cancel/query order answer in the RESULT shape of the update's market."""
    kind, tif = order_type(request)
    price = request.price if request is not None else None
    cum_quote = (u.avg_price or ZERO) * u.filled_qty
    common: dict[str, Any] = {
        "symbol": u.instrument.symbol,
        "orderId": int_id(u.venue_order_id),
        "clientOrderId": u.client_order_id,
        "price": fmt(price),
        "origQty": fmt(u.quantity),
        "executedQty": fmt(u.filled_qty),
        "status": u.status.value,
        "timeInForce": tif,
        "type": kind,
        "side": u.side.value,
    }
    if u.instrument.market is Market.PERPETUAL:
        return {
            **common,
            "avgPrice": fmt(u.avg_price if u.filled_qty > 0 else ZERO),
            "cumQty": fmt(u.filled_qty),
            "cumQuote": fmt(cum_quote),
            "reduceOnly": bool(request is not None and request.reduce_only),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "closePosition": False,
            "origType": kind,
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "updateTime": u.ts_ms,
        }
    return {
        **common,
        "orderListId": -1,
        "transactTime": u.ts_ms,
        "updateTime": u.ts_ms,
        "cummulativeQuoteQty": fmt(cum_quote),
        "workingTime": u.ts_ms,
        "selfTradePreventionMode": "NONE",
    }


# --- account -------------------------------------------------------------------------------------


def position_risk(positions: Iterable[VenuePosition]) -> list[dict[str, Any]]:
    """``GET /fapi/v3/positionRisk`` rows (one-way mode: ``positionSide`` BOTH)."""
    return [
        {
            "symbol": p.instrument.symbol,
            "positionSide": "BOTH",
            "positionAmt": fmt(p.quantity),
            "entryPrice": fmt(p.entry_price),
            "breakEvenPrice": fmt(p.entry_price),
            "markPrice": fmt(p.mark_price),
            "unRealizedProfit": fmt(p.unrealized_pnl),
            "liquidationPrice": fmt(p.liquidation_price),
            "isolatedMargin": "0",
            "notional": fmt(p.quantity * p.mark_price),
            "marginAsset": "USDT",
            "isolatedWallet": "0",
            "initialMargin": fmt(abs(p.quantity * p.mark_price) / p.leverage),
            "maintMargin": fmt(p.maintenance_margin),
            "adl": p.adl_rank if p.adl_rank is not None else 0,
            "updateTime": p.ts_ms,
        }
        for p in positions
    ]


def _of(balances: Iterable[Balance], wallet: Wallet) -> list[Balance]:
    return sorted((b for b in balances if b.wallet is wallet), key=lambda b: b.asset)


def spot_account(balances: Iterable[Balance], now_ms: int) -> dict[str, Any]:
    """``GET /api/v3/account?omitZeroBalances=true``."""
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)}
            for b in _of(balances, Wallet.SPOT)
            if b.free or b.locked
        ],
        "permissions": ["SPOT"],
    }


def futures_balances(balances: Iterable[Balance]) -> list[dict[str, Any]]:
    """``GET /fapi/v3/balance`` rows."""
    return [
        {
            "accountAlias": "SgsR",
            "asset": b.asset,
            "balance": fmt(b.free),
            "crossWalletBalance": fmt(b.free),
            "crossUnPnl": "0",
            "availableBalance": fmt(b.free),
            "maxWithdrawAmount": fmt(b.free),
            "marginAvailable": True,
            "updateTime": b.ts_ms,
        }
        for b in _of(balances, Wallet.FUTURES)
    ]


def margin_account(balances: Iterable[Balance]) -> dict[str, Any]:
    """``GET /sapi/v1/margin/account`` (cross margin; interest is folded into ``borrowed``)."""
    rows = [
        {
            "asset": b.asset,
            "free": fmt(b.free),
            "locked": fmt(b.locked),
            "borrowed": fmt(b.borrowed),
            "interest": "0",
            "netAsset": fmt(b.free + b.locked - b.borrowed),
        }
        for b in _of(balances, Wallet.MARGIN)
    ]
    return {"borrowEnabled": True, "tradeEnabled": True, "transferEnabled": True, "userAssets": rows}


def user_trades(fills: Iterable[Fill]) -> list[dict[str, Any]]:
    """``GET /fapi/v1/userTrades`` (perpetual fills) or ``/api/v3/myTrades`` (spot fills) rows."""
    out = []
    for f in fills:
        common = {
            "symbol": f.instrument.symbol,
            "id": int_id(f.trade_id),
            "orderId": int_id(f.venue_order_id),
            "price": fmt(f.price),
            "qty": fmt(f.quantity),
            "quoteQty": fmt(f.price * f.quantity),
            "commission": fmt(f.fee),
            "commissionAsset": f.fee_asset,
            "time": f.ts_ms,
        }
        if f.instrument.market is Market.PERPETUAL:
            out.append(
                {
                    **common,
                    "buyer": f.side is Side.BUY,
                    "maker": f.liquidity is Liquidity.MAKER,
                    "realizedPnl": "0",
                    "side": f.side.value,
                    "positionSide": "BOTH",
                }
            )
        else:
            out.append(
                {
                    **common,
                    "orderListId": -1,
                    "isBuyer": f.side is Side.BUY,
                    "isMaker": f.liquidity is Liquidity.MAKER,
                    "isBestMatch": True,
                }
            )
    return out


def income_rows(payments: Iterable[FundingPayment]) -> list[dict[str, Any]]:
    """``GET /fapi/v1/income?incomeType=FUNDING_FEE`` rows."""
    return [
        {
            "symbol": p.instrument.symbol,
            "incomeType": "FUNDING_FEE",
            "income": fmt(p.amount),
            "asset": p.asset,
            "info": "FUNDING_FEE",
            "time": p.ts_ms,
            "tranId": int_id(p.payment_id),
            "tradeId": "",
        }
        for p in payments
    ]
