"""Pure encoders: core values -> Binance websocket frames (market data and user data).

Market: USDⓈ-M ``markPriceUpdate`` and ``bookTicker`` (with ``e``/``E``), spot ``bookTicker``
(no time). User data: USDⓈ-M ``ORDER_TRADE_UPDATE`` / ``ACCOUNT_UPDATE``, spot and margin
``executionReport`` / ``outboundAccountPosition``. Decimals are strings, times integer ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from fundarb.core.model import (
    ZERO,
    Balance,
    Fill,
    FundingSnapshot,
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Quote,
    VenueFillKind,
    VenuePosition,
)
from fundarb.sim.binance_server._wire import fmt, int_id, order_type

__all__ = [
    "account_update",
    "book_ticker_frame",
    "execution_report",
    "mark_price_frame",
    "order_trade_update",
    "outbound_account_position",
    "venue_fill_update",
]

#: client order ids Binance gives the orders it places on its own (see fundarb.venues.client_ids)
_GENERATED_CID = {
    VenueFillKind.LIQUIDATION: "autoclose-",
    VenueFillKind.ADL: "adl_autoclose",
    VenueFillKind.SETTLEMENT: "settlement_autoclose-",
}


def mark_price_frame(s: FundingSnapshot) -> dict[str, Any]:
    """A USDⓈ-M ``markPriceUpdate`` frame."""
    return {
        "e": "markPriceUpdate",
        "E": s.ts_ms,
        "s": s.instrument.symbol,
        "p": fmt(s.mark),
        "i": fmt(s.index) if s.index is not None else "0",
        "P": fmt(s.index if s.index is not None else s.mark),
        "r": fmt(s.rate),
        "T": s.next_funding_ms,
    }


def book_ticker_frame(q: Quote, update_id: int) -> dict[str, Any]:
    """A ``bookTicker`` frame: USDⓈ-M (with ``e``, ``E``, ``T``) or spot (no time)."""
    doc: dict[str, Any] = {
        "u": update_id,
        "s": q.instrument.symbol,
        "b": fmt(q.bid),
        "B": fmt(q.bid_size),
        "a": fmt(q.ask),
        "A": fmt(q.ask_size),
    }
    if q.instrument.market is Market.PERPETUAL:
        doc = {"e": "bookTicker", "E": q.ts_ms, "T": q.ts_ms, **doc}
    return doc


def _exec_type(status: OrderStatus) -> str:
    return {
        OrderStatus.NEW: "NEW",
        OrderStatus.PARTIALLY_FILLED: "NEW",
        OrderStatus.FILLED: "NEW",
        OrderStatus.CANCELED: "CANCELED",
        OrderStatus.REJECTED: "REJECTED",
        OrderStatus.EXPIRED: "EXPIRED",
    }[status]


def order_trade_update(
    u: OrderUpdate, request: OrderRequest | None, fill: Fill | None, event_ms: int
) -> dict[str, Any]:
    """A USDⓈ-M ``ORDER_TRADE_UPDATE``: ``x=TRADE`` with ``fill``, else the status change."""
    kind, tif = order_type(request)
    o: dict[str, Any] = {
        "s": u.instrument.symbol,
        "c": u.client_order_id,
        "S": u.side.value,
        "o": kind,
        "f": tif,
        "q": fmt(u.quantity),
        "p": fmt(request.price if request is not None else None),
        "ap": fmt(u.avg_price if u.filled_qty > 0 else ZERO),
        "sp": "0",
        "x": "TRADE" if fill is not None else _exec_type(u.status),
        "X": u.status.value,
        "i": int_id(u.venue_order_id),
        "l": fmt(fill.quantity if fill else ZERO),
        "z": fmt(u.filled_qty),
        "L": fmt(fill.price if fill else ZERO),
        "T": fill.ts_ms if fill else u.ts_ms,
        "t": int_id(fill.trade_id) if fill else 0,
        "b": "0",
        "a": "0",
        "m": bool(fill and fill.liquidity is Liquidity.MAKER),
        "R": bool(request is not None and request.reduce_only),
        "wt": "CONTRACT_PRICE",
        "ot": kind,
        "ps": "BOTH",
        "cp": False,
        "rp": "0",
    }
    if fill is not None:
        o["N"], o["n"] = fill.fee_asset, fmt(fill.fee)
    return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": o["T"], "o": o}


def venue_fill_update(fill: Fill, event_ms: int) -> dict[str, Any]:
    """An ``ORDER_TRADE_UPDATE`` for a fill the venue made on its own (liquidation, ADL, settlement)."""
    assert fill.venue_generated is not None
    cid = _GENERATED_CID[fill.venue_generated] + str(int_id(fill.trade_id))
    u = OrderUpdate(
        fill.instrument, cid, fill.venue_order_id or fill.trade_id, OrderStatus.FILLED, fill.side,
        fill.quantity, fill.quantity, fill.price, fill.ts_ms,
    )  # fmt: skip
    doc = order_trade_update(u, None, fill, event_ms)
    doc["o"]["o"] = doc["o"]["ot"] = (
        "LIQUIDATION" if fill.venue_generated is VenueFillKind.LIQUIDATION else "MARKET"
    )
    return doc


def execution_report(
    u: OrderUpdate, request: OrderRequest | None, fill: Fill | None, event_ms: int
) -> dict[str, Any]:
    """A spot/margin ``executionReport``: ``x=TRADE`` with ``fill``, else the status change."""
    kind, tif = order_type(request)
    cum_quote = (u.avg_price or ZERO) * u.filled_qty
    return {
        "e": "executionReport",
        "E": event_ms,
        "s": u.instrument.symbol,
        "c": u.client_order_id,
        "S": u.side.value,
        "o": kind,
        "f": tif,
        "q": fmt(u.quantity),
        "p": fmt(request.price if request is not None else None),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": "",
        "x": "TRADE" if fill is not None else _exec_type(u.status),
        "X": u.status.value,
        "r": "NONE",
        "i": int_id(u.venue_order_id),
        "l": fmt(fill.quantity if fill else ZERO),
        "z": fmt(u.filled_qty),
        "L": fmt(fill.price if fill else ZERO),
        "n": fmt(fill.fee if fill else ZERO),
        "N": fill.fee_asset if fill else None,
        "T": fill.ts_ms if fill else u.ts_ms,
        "t": int_id(fill.trade_id) if fill else -1,
        "w": not u.status.is_terminal,
        "m": bool(fill and fill.liquidity is Liquidity.MAKER),
        "O": u.ts_ms,
        "Z": fmt(cum_quote),
        "Y": fmt(fill.price * fill.quantity if fill else ZERO),
        "Q": "0",
    }


def account_update(
    event_ms: int,
    reason: str,
    balances: Mapping[str, tuple[Decimal, Decimal]],
    positions: Iterable[VenuePosition] = (),
    funding_symbol: str | None = None,
) -> dict[str, Any]:
    """A USDⓈ-M ``ACCOUNT_UPDATE``; ``balances``: asset -> (wallet balance, balance change)."""
    a: dict[str, Any] = {
        "m": reason,
        "B": [
            {"a": asset, "wb": fmt(wb), "cw": fmt(wb), "bc": fmt(bc)}
            for asset, (wb, bc) in sorted(balances.items())
        ],
        "P": [
            {
                "s": p.instrument.symbol,
                "pa": fmt(p.quantity),
                "ep": fmt(p.entry_price),
                "bep": fmt(p.entry_price),
                "cr": "0",
                "up": fmt(p.unrealized_pnl),
                "mt": "cross",
                "iw": "0",
                "ps": "BOTH",
            }
            for p in positions
        ],
    }
    if funding_symbol is not None:
        a["S"] = funding_symbol
    return {"e": "ACCOUNT_UPDATE", "E": event_ms, "T": event_ms, "a": a}


def outbound_account_position(balances: Iterable[Balance], event_ms: int) -> dict[str, Any]:
    """A spot/margin ``outboundAccountPosition`` frame."""
    return {
        "e": "outboundAccountPosition",
        "E": event_ms,
        "u": event_ms,
        "B": [{"a": b.asset, "f": fmt(b.free), "l": fmt(b.locked)} for b in balances],
    }
