"""Binance hosts and REST routes: one function per route, each returning a :class:`Call`.

Pure: a :class:`Call` says what to send (method, API family, path, parameters, how it is
secured, its weight and whether it changes state); :mod:`.client` sends it.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

__all__ = [
    "LIVE_URLS",
    "TESTNET_URLS",
    "BaseUrls",
    "Call",
    "Family",
    "Security",
]


class Family(enum.Enum):
    """Which API (and so which host, clock and rate-limit budget) a route belongs to."""

    SPOT = "api"  # /api/v3 on the spot host
    SAPI = "sapi"  # /sapi/v1 on the spot host (margin, wallet)
    FAPI = "fapi"  # /fapi/v1, /fapi/v3 on the USDⓈ-M host


class Security(enum.Enum):
    """NONE: public; KEY: ``X-MBX-APIKEY`` only (listenKey); SIGNED: key + timestamp + signature."""

    NONE = "none"
    KEY = "key"
    SIGNED = "signed"


@attrs.frozen
class BaseUrls:
    """Every host the adapter talks to. All injectable, so tests and the loopback server can be
    targeted (``http://127.0.0.1:PORT`` / ``ws://127.0.0.1:PORT``)."""

    spot: str = "https://api.binance.com"
    futures: str = "https://fapi.binance.com"
    spot_stream: str = "wss://stream.binance.com:9443"
    spot_ws_api: str = "wss://ws-api.binance.com:443/ws-api/v3"
    futures_stream: str = "wss://fstream.binance.com"

    def rest(self, family: Family) -> str:
        """The REST base URL of ``family``."""
        return self.futures if family is Family.FAPI else self.spot


LIVE_URLS = BaseUrls()
#: Spot testnet (testnet.binance.vision, no /sapi) and USDⓈ-M testnet (binancefuture.com).
#: The testnet futures stream host is not in WIRE.md; confirm the /public|/market|/private split there.
TESTNET_URLS = BaseUrls(
    spot="https://testnet.binance.vision",
    futures="https://testnet.binancefuture.com",
    spot_stream="wss://stream.testnet.binance.vision",
    spot_ws_api="wss://ws-api.testnet.binance.vision/ws-api/v3",
    futures_stream="wss://fstream.binancefuture.com",
)


@attrs.frozen
class Call:
    """One REST request to make."""

    method: str
    family: Family
    path: str
    params: dict[str, str] = attrs.field(factory=dict)
    security: Security = Security.NONE
    weight: int = 1
    orders: int = 0
    mutating: bool = False


def _d(value: Decimal) -> str:
    return format(value, "f")


# --- public ---------------------------------------------------------------------------------------


def spot_time() -> Call:
    """GET /api/v3/time"""
    return Call("GET", Family.SPOT, "/api/v3/time")


def futures_time() -> Call:
    """GET /fapi/v1/time"""
    return Call("GET", Family.FAPI, "/fapi/v1/time")


def spot_exchange_info() -> Call:
    """GET /api/v3/exchangeInfo (weight 20)"""
    return Call("GET", Family.SPOT, "/api/v3/exchangeInfo", weight=20)


def futures_exchange_info() -> Call:
    """GET /fapi/v1/exchangeInfo"""
    return Call("GET", Family.FAPI, "/fapi/v1/exchangeInfo")


def funding_info() -> Call:
    """GET /fapi/v1/fundingInfo (only symbols with adjusted interval/cap/floor)"""
    return Call("GET", Family.FAPI, "/fapi/v1/fundingInfo")


def premium_index(symbol: str) -> Call:
    """GET /fapi/v1/premiumIndex?symbol="""
    return Call("GET", Family.FAPI, "/fapi/v1/premiumIndex", {"symbol": symbol})


def spot_book_ticker(symbol: str) -> Call:
    """GET /api/v3/ticker/bookTicker?symbol= (weight 2)"""
    return Call("GET", Family.SPOT, "/api/v3/ticker/bookTicker", {"symbol": symbol}, weight=2)


def futures_book_ticker(symbol: str) -> Call:
    """GET /fapi/v1/ticker/bookTicker?symbol= (weight 2)"""
    return Call("GET", Family.FAPI, "/fapi/v1/ticker/bookTicker", {"symbol": symbol}, weight=2)


# --- orders ---------------------------------------------------------------------------------------

_ORDER_PATH = {
    Family.SPOT: "/api/v3/order",
    Family.SAPI: "/sapi/v1/margin/order",
    Family.FAPI: "/fapi/v1/order",
}
_OPEN_PATH = {
    Family.SPOT: "/api/v3/openOrders",
    Family.SAPI: "/sapi/v1/margin/openOrders",
    Family.FAPI: "/fapi/v1/openOrders",
}


def new_order(family: Family, params: dict[str, str]) -> Call:
    """POST /api/v3/order | POST /sapi/v1/margin/order | POST /fapi/v1/order"""
    weight = 6 if family is Family.SAPI else (0 if family is Family.FAPI else 1)
    return Call(
        "POST", family, _ORDER_PATH[family], params, Security.SIGNED, weight=weight, orders=1, mutating=True
    )


def cancel_order(family: Family, symbol: str, client_order_id: str) -> Call:
    """DELETE /api/v3/order | DELETE /sapi/v1/margin/order | DELETE /fapi/v1/order (by client id)"""
    params = {"symbol": symbol, "origClientOrderId": client_order_id}
    return Call("DELETE", family, _ORDER_PATH[family], params, Security.SIGNED, mutating=True)


def query_order(family: Family, symbol: str, client_order_id: str) -> Call:
    """GET /api/v3/order | GET /sapi/v1/margin/order | GET /fapi/v1/order (by client id)"""
    params = {"symbol": symbol, "origClientOrderId": client_order_id}
    weight = 4 if family is Family.SPOT else (10 if family is Family.SAPI else 1)
    return Call("GET", family, _ORDER_PATH[family], params, Security.SIGNED, weight=weight)


def open_orders(family: Family, symbol: str | None) -> Call:
    """GET /api/v3/openOrders | GET /sapi/v1/margin/openOrders | GET /fapi/v1/openOrders"""
    params = {"symbol": symbol} if symbol else {}
    weight = (6 if family is Family.SPOT else 1) if symbol else (80 if family is not Family.FAPI else 40)
    return Call("GET", family, _OPEN_PATH[family], params, Security.SIGNED, weight=weight)


def _trades_params(symbol: str, since_ms: int, order_id: str | None) -> dict[str, str]:
    # symbol+orderId is a documented combination on both; orderId with startTime is not (spot)
    if order_id is not None:
        return {"symbol": symbol, "orderId": order_id, "limit": "1000"}
    return {"symbol": symbol, "startTime": str(since_ms), "limit": "1000"}


def spot_my_trades(symbol: str, since_ms: int, *, margin: bool, order_id: str | None = None) -> Call:
    """GET /api/v3/myTrades | GET /sapi/v1/margin/myTrades (one order's with ``order_id``)"""
    family, path = (Family.SAPI, "/sapi/v1/margin/myTrades") if margin else (Family.SPOT, "/api/v3/myTrades")
    params = _trades_params(symbol, since_ms, order_id)
    return Call("GET", family, path, params, Security.SIGNED, weight=20 if not margin else 10)


def futures_user_trades(symbol: str, since_ms: int, *, order_id: str | None = None) -> Call:
    """GET /fapi/v1/userTrades (weight 5; one order's with ``order_id``)"""
    params = _trades_params(symbol, since_ms, order_id)
    return Call("GET", Family.FAPI, "/fapi/v1/userTrades", params, Security.SIGNED, weight=5)


# --- account --------------------------------------------------------------------------------------


def position_risk() -> Call:
    """GET /fapi/v3/positionRisk (weight 5)"""
    return Call("GET", Family.FAPI, "/fapi/v3/positionRisk", security=Security.SIGNED, weight=5)


def spot_account() -> Call:
    """GET /api/v3/account (weight 20)"""
    params = {"omitZeroBalances": "true"}
    return Call("GET", Family.SPOT, "/api/v3/account", params, Security.SIGNED, weight=20)


def margin_account() -> Call:
    """GET /sapi/v1/margin/account (weight 10)"""
    return Call("GET", Family.SAPI, "/sapi/v1/margin/account", security=Security.SIGNED, weight=10)


def futures_balance() -> Call:
    """GET /fapi/v3/balance (weight 5)"""
    return Call("GET", Family.FAPI, "/fapi/v3/balance", security=Security.SIGNED, weight=5)


def funding_income(since_ms: int) -> Call:
    """GET /fapi/v1/income?incomeType=FUNDING_FEE (weight 30)"""
    params = {"incomeType": "FUNDING_FEE", "startTime": str(since_ms), "limit": "1000"}
    return Call("GET", Family.FAPI, "/fapi/v1/income", params, Security.SIGNED, weight=30)


def borrow_repay(asset: str, amount: Decimal, kind: str) -> Call:
    """POST /sapi/v1/margin/borrow-repay (type BORROW | REPAY, cross margin)"""
    params = {"asset": asset, "isIsolated": "FALSE", "amount": _d(amount), "type": kind}
    return Call(
        "POST",
        Family.SAPI,
        "/sapi/v1/margin/borrow-repay",
        params,
        Security.SIGNED,
        weight=1500,
        mutating=True,
    )


def universal_transfer(asset: str, amount: Decimal, kind: str) -> Call:
    """POST /sapi/v1/asset/transfer (type MAIN_UMFUTURE, UMFUTURE_MAIN, MAIN_MARGIN, ...)"""
    params = {"type": kind, "asset": asset, "amount": _d(amount)}
    return Call(
        "POST", Family.SAPI, "/sapi/v1/asset/transfer", params, Security.SIGNED, weight=900, mutating=True
    )


# --- user-data stream credentials -------------------------------------------------------------------


def new_listen_key() -> Call:
    """POST /fapi/v1/listenKey"""
    return Call("POST", Family.FAPI, "/fapi/v1/listenKey", security=Security.KEY)


def keepalive_listen_key() -> Call:
    """PUT /fapi/v1/listenKey"""
    return Call("PUT", Family.FAPI, "/fapi/v1/listenKey", security=Security.KEY)


def margin_listen_token() -> Call:
    """POST /sapi/v1/userListenToken (cross margin; ``validity`` 24 h in ms)"""
    params = {"isIsolated": "false", "validity": str(24 * 3600 * 1000)}
    return Call("POST", Family.SAPI, "/sapi/v1/userListenToken", params, Security.SIGNED)
