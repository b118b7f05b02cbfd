"""The REST face: an ASGI app answering the Binance routes :class:`~fundarb.venues.binance.BinanceVenue`
uses, in Binance's formats, from the venue in :class:`~._state.ServerState`.

Every route is one row of :data:`ROUTES` (method, path) -> (security, market, handler). SIGNED
routes are verified like Binance (see :mod:`._auth`); errors are Binance error bodies with
Binance's HTTP statuses. Injected faults (:mod:`._control`) are applied before (429, 5xx not
executed) or after (5xx executed, lost acknowledgement) the handler runs. ``/api`` and ``/fapi``
requests are metered like Binance (:mod:`._usage`): usage headers on every answer, 429 past a limit.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import orjson

from fundarb.core.model import Market, OrderRequest, OrderType, Side, TimeInForce, Wallet
from fundarb.sim.binance_server import _wire as w
from fundarb.sim.binance_server._auth import (
    ApiError,
    error_for,
    mandatory,
    parse_params,
    verify_key,
    verify_signed,
)
from fundarb.sim.binance_server._control import FaultKind, RestFault
from fundarb.sim.binance_server._state import ServerState
from fundarb.venues.errors import VenueError

__all__ = ["ROUTES", "RestApp"]

Handler = Callable[[ServerState, dict[str, str]], Awaitable[Any]]
_CID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_TRANSFERS = {
    "MAIN_UMFUTURE": (Wallet.SPOT, Wallet.FUTURES),
    "UMFUTURE_MAIN": (Wallet.FUTURES, Wallet.SPOT),
    "MAIN_MARGIN": (Wallet.SPOT, Wallet.MARGIN),
    "MARGIN_MAIN": (Wallet.MARGIN, Wallet.SPOT),
    "UMFUTURE_MARGIN": (Wallet.FUTURES, Wallet.MARGIN),
    "MARGIN_UMFUTURE": (Wallet.MARGIN, Wallet.FUTURES),
}


class Sec(enum.Enum):
    """Route security: public, API key only (user stream), or signed."""

    NONE = "none"
    KEY = "key"
    SIGNED = "signed"


@attrs.frozen
class Route:
    """One REST route."""

    security: Sec
    market: Market
    handler: Handler
    cancel: bool = False
    weight: int = 1
    orders: int = 0
    #: the weight when no ``symbol`` is given (``None``: same as ``weight``)
    weight_all: int | None = None

    def weight_for(self, params: dict[str, str]) -> int:
        """The request weight of a call with ``params``."""
        return self.weight if self.weight_all is None or params.get("symbol") else self.weight_all


def _decimal(params: dict[str, str], name: str) -> Decimal:
    raw = params.get(name)
    if not raw:
        raise mandatory(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        ) from None
    if not value.is_finite():
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _since(params: dict[str, str]) -> int:
    raw = params.get("startTime", "0")
    if not raw.isdigit():
        raise mandatory("startTime")
    return int(raw)


def _limit(params: dict[str, str], default: int = 500, maximum: int = 1000) -> int:
    raw = params.get("limit", str(default))
    if not raw.isdigit() or not 0 < int(raw):
        raise mandatory("limit")
    return min(int(raw), maximum)


# --- public --------------------------------------------------------------------------------------


async def _time(s: ServerState, p: dict[str, str]) -> Any:
    return {"serverTime": s.now_ms()}


def _exchange_info(market: Market) -> Handler:
    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        return w.exchange_info(s.instruments.values(), market, s.now_ms())

    return handler


async def _funding_info(s: ServerState, p: dict[str, str]) -> Any:
    return w.funding_info(s.instruments.values())


async def _premium_index(s: ServerState, p: dict[str, str]) -> Any:
    if "symbol" in p:
        return w.premium_index(await s.venue.funding(s.instrument(Market.PERPETUAL, p["symbol"])))
    perps = sorted((i for i in s.instruments if i.market is Market.PERPETUAL), key=str)
    return [w.premium_index(await s.venue.funding(i)) for i in perps]


def _book_ticker(market: Market) -> Handler:
    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        return w.book_ticker_rest(await s.venue.quote(s.instrument(market, p.get("symbol"))))

    return handler


# --- orders --------------------------------------------------------------------------------------


def _order_request(s: ServerState, p: dict[str, str], market: Market) -> OrderRequest:
    iid = s.instrument(market, p.get("symbol"))
    side = p.get("side", "")
    if side not in ("BUY", "SELL"):
        raise mandatory("side")
    kind = p.get("type", "")
    qty = _decimal(p, "quantity")
    if qty <= 0:
        raise ApiError(
            400, -4003 if market is Market.PERPETUAL else -1013, "Quantity less than or equal to zero."
        )
    cid = p.get("newClientOrderId") or f"sim{s.next_id()}"
    if not _CID.match(cid):
        raise ApiError(
            400,
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )
    tif_raw = p.get("timeInForce", "GTC")
    if kind == "MARKET":
        price, order_type, tif = None, OrderType.MARKET, TimeInForce.IOC
    elif kind == "LIMIT":
        price, order_type = _decimal(p, "price"), OrderType.LIMIT
        if tif_raw == "GTX" and market is Market.PERPETUAL:
            tif = TimeInForce.POST_ONLY
        elif tif_raw in ("GTC", "IOC", "FOK"):
            tif = TimeInForce(tif_raw)
        else:
            raise ApiError(400, -1115, "Invalid timeInForce.")
    elif kind == "LIMIT_MAKER" and market is Market.SPOT:
        price, order_type, tif = _decimal(p, "price"), OrderType.LIMIT, TimeInForce.POST_ONLY
    else:
        raise ApiError(400, -1116, "Invalid orderType.")
    if price is not None and price <= 0:
        raise ApiError(
            400, -4014 if market is Market.PERPETUAL else -1013, "Price less than or equal to zero."
        )
    reduce_raw = p.get("reduceOnly", "false").lower()
    if reduce_raw not in ("true", "false") or (reduce_raw == "true" and market is Market.SPOT):
        raise mandatory("reduceOnly")
    return OrderRequest(cid, iid, Side(side), qty, price, order_type, tif, reduce_raw == "true")


def _new_order(family: str) -> Handler:
    market = Market.PERPETUAL if family == "fapi" else Market.SPOT

    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        request = _order_request(s, p, market)
        cid = request.client_order_id
        known = s.requests.get(cid)
        s.requests.setdefault(cid, request)
        s.families.setdefault(cid, family)
        try:
            update = await s.venue.place_order(request)
        except VenueError as exc:
            if known is None and not _maybe_executed(exc):
                s.requests.pop(cid, None)
                s.families.pop(cid, None)
            raise
        s.order_ids[w.int_id(update.venue_order_id)] = cid
        return w.order_answer(update, request)

    return handler


def _maybe_executed(exc: VenueError) -> bool:
    from fundarb.venues.errors import OutcomeUnknown

    return isinstance(exc, OutcomeUnknown)


def _client_id(s: ServerState, p: dict[str, str]) -> str:
    cid = p.get("origClientOrderId")
    if cid:
        return cid
    raw = p.get("orderId", "")
    if raw.isdigit() and int(raw) in s.order_ids:
        return s.order_ids[int(raw)]
    if raw.isdigit():
        return f"unknown-order-{raw}"
    raise ApiError(
        400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    )


def _cancel_order(market: Market) -> Handler:
    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        iid = s.instrument(market, p.get("symbol"))
        cid = _client_id(s, p)
        update = await s.venue.cancel_order(iid, cid)
        doc = w.order_answer(update, s.requests.get(cid))
        doc["origClientOrderId"] = cid
        return doc

    return handler


def _query_order(market: Market) -> Handler:
    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        iid = s.instrument(market, p.get("symbol"))
        cid = _client_id(s, p)
        return w.order_answer(await s.venue.query_order(iid, cid), s.requests.get(cid))

    return handler


def _open_orders(family: str) -> Handler:
    market = Market.PERPETUAL if family == "fapi" else Market.SPOT

    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        iid = s.instrument(market, p["symbol"]) if p.get("symbol") else None
        orders = await s.venue.open_orders(iid)
        return [
            w.order_answer(u, s.requests.get(u.client_order_id))
            for u in orders
            if u.instrument.market is market
            and (market is Market.PERPETUAL or s.families.get(u.client_order_id, "api") == family)
        ]

    return handler


def _trades(market: Market) -> Handler:
    async def handler(s: ServerState, p: dict[str, str]) -> Any:
        iid = s.instrument(market, p.get("symbol"))
        order_id = p.get("orderId")
        if order_id is not None and not order_id.isdigit():
            raise mandatory("orderId")
        if order_id is not None:  # Binance's orderId is the integer form of the simulator's "O<n>"
            found = await s.venue.fills_since(iid, 0, order_id=f"O{int(order_id)}")
        else:
            found = await s.venue.fills_since(iid, _since(p))
        fills = [f for f in found if f.venue_generated is None]
        return w.user_trades(fills[: _limit(p)])

    return handler


# --- account -------------------------------------------------------------------------------------


async def _position_risk(s: ServerState, p: dict[str, str]) -> Any:
    positions = await s.venue.positions()
    if p.get("symbol"):
        iid = s.instrument(Market.PERPETUAL, p["symbol"])
        positions = [x for x in positions if x.instrument == iid]
    return w.position_risk(positions)


async def _spot_account(s: ServerState, p: dict[str, str]) -> Any:
    return w.spot_account(await s.venue.balances(), s.now_ms())


async def _futures_balance(s: ServerState, p: dict[str, str]) -> Any:
    return w.futures_balances(await s.venue.balances())


async def _margin_account(s: ServerState, p: dict[str, str]) -> Any:
    return w.margin_account(await s.venue.balances())


async def _income(s: ServerState, p: dict[str, str]) -> Any:
    kind = p.get("incomeType", "FUNDING_FEE")
    if kind != "FUNDING_FEE":
        return []
    payments = await s.venue.funding_income_since(_since(p))
    if p.get("symbol"):
        iid = s.instrument(Market.PERPETUAL, p["symbol"])
        payments = [x for x in payments if x.instrument == iid]
    return w.income_rows(payments[: _limit(p, 100)])


async def _borrow_repay(s: ServerState, p: dict[str, str]) -> Any:
    if p.get("isIsolated", "FALSE").upper() != "FALSE":
        raise ApiError(400, -3003, "Isolated margin is not supported by the simulator.")
    asset, amount, kind = p.get("asset"), _decimal(p, "amount"), p.get("type")
    if not asset:
        raise mandatory("asset")
    if kind == "BORROW":
        await s.venue.borrow(asset, amount)
    elif kind == "REPAY":
        await s.venue.repay(asset, amount)
    else:
        raise mandatory("type")
    return {"tranId": s.next_id()}


async def _transfer(s: ServerState, p: dict[str, str]) -> Any:
    route = _TRANSFERS.get(p.get("type", ""))
    if route is None:
        raise mandatory("type")
    asset = p.get("asset")
    if not asset:
        raise mandatory("asset")
    await s.venue.transfer(asset, _decimal(p, "amount"), *route)
    return {"tranId": s.next_id()}


async def _new_listen_key(s: ServerState, p: dict[str, str]) -> Any:
    if not s.listen_keys:  # Binance answers the active key while one exists
        s.listen_keys.add(s.new_token())
    return {"listenKey": next(iter(s.listen_keys))}


async def _keepalive_listen_key(s: ServerState, p: dict[str, str]) -> Any:
    if not s.listen_keys:
        raise ApiError(400, -1125, "This listenKey does not exist.")
    return {"listenKey": next(iter(s.listen_keys))}


async def _close_listen_key(s: ServerState, p: dict[str, str]) -> Any:
    s.listen_keys.clear()
    return {}


async def _listen_token(s: ServerState, p: dict[str, str]) -> Any:
    token = s.new_token()
    s.listen_tokens.add(token)
    validity = int(p["validity"]) if p.get("validity", "").isdigit() else 24 * 3600 * 1000
    return {"token": token, "expirationTime": s.now_ms() + validity}


_S, _P = Market.SPOT, Market.PERPETUAL
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v3/time"): Route(Sec.NONE, _S, _time),
    ("GET", "/fapi/v1/time"): Route(Sec.NONE, _P, _time),
    ("GET", "/api/v3/exchangeInfo"): Route(Sec.NONE, _S, _exchange_info(_S), weight=20),
    ("GET", "/fapi/v1/exchangeInfo"): Route(Sec.NONE, _P, _exchange_info(_P)),
    ("GET", "/fapi/v1/fundingInfo"): Route(Sec.NONE, _P, _funding_info),
    ("GET", "/fapi/v1/premiumIndex"): Route(Sec.NONE, _P, _premium_index, weight_all=10),
    ("GET", "/api/v3/ticker/bookTicker"): Route(Sec.NONE, _S, _book_ticker(_S), weight=2),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(Sec.NONE, _P, _book_ticker(_P), weight=2),
    ("POST", "/api/v3/order"): Route(Sec.SIGNED, _S, _new_order("api"), orders=1),
    ("POST", "/sapi/v1/margin/order"): Route(Sec.SIGNED, _S, _new_order("sapi"), orders=1),
    ("POST", "/fapi/v1/order"): Route(Sec.SIGNED, _P, _new_order("fapi"), weight=0, orders=1),
    ("DELETE", "/api/v3/order"): Route(Sec.SIGNED, _S, _cancel_order(_S), cancel=True),
    ("DELETE", "/sapi/v1/margin/order"): Route(Sec.SIGNED, _S, _cancel_order(_S), cancel=True),
    ("DELETE", "/fapi/v1/order"): Route(Sec.SIGNED, _P, _cancel_order(_P), cancel=True),
    ("GET", "/api/v3/order"): Route(Sec.SIGNED, _S, _query_order(_S), weight=4),
    ("GET", "/sapi/v1/margin/order"): Route(Sec.SIGNED, _S, _query_order(_S)),
    ("GET", "/fapi/v1/order"): Route(Sec.SIGNED, _P, _query_order(_P)),
    ("GET", "/api/v3/openOrders"): Route(Sec.SIGNED, _S, _open_orders("api"), weight=6, weight_all=80),
    ("GET", "/sapi/v1/margin/openOrders"): Route(Sec.SIGNED, _S, _open_orders("sapi")),
    ("GET", "/fapi/v1/openOrders"): Route(Sec.SIGNED, _P, _open_orders("fapi"), weight_all=40),
    ("GET", "/api/v3/myTrades"): Route(Sec.SIGNED, _S, _trades(_S), weight=20),
    ("GET", "/sapi/v1/margin/myTrades"): Route(Sec.SIGNED, _S, _trades(_S)),
    ("GET", "/fapi/v1/userTrades"): Route(Sec.SIGNED, _P, _trades(_P), weight=5),
    ("GET", "/fapi/v3/positionRisk"): Route(Sec.SIGNED, _P, _position_risk, weight=5),
    ("GET", "/api/v3/account"): Route(Sec.SIGNED, _S, _spot_account, weight=20),
    ("GET", "/fapi/v3/balance"): Route(Sec.SIGNED, _P, _futures_balance, weight=5),
    ("GET", "/sapi/v1/margin/account"): Route(Sec.SIGNED, _S, _margin_account),
    ("GET", "/fapi/v1/income"): Route(Sec.SIGNED, _P, _income, weight=30),
    ("POST", "/sapi/v1/margin/borrow-repay"): Route(Sec.SIGNED, _S, _borrow_repay),
    ("POST", "/sapi/v1/asset/transfer"): Route(Sec.SIGNED, _S, _transfer),
    ("POST", "/fapi/v1/listenKey"): Route(Sec.KEY, _P, _new_listen_key),
    ("PUT", "/fapi/v1/listenKey"): Route(Sec.KEY, _P, _keepalive_listen_key),
    ("DELETE", "/fapi/v1/listenKey"): Route(Sec.KEY, _P, _close_listen_key),
    ("POST", "/sapi/v1/userListenToken"): Route(Sec.SIGNED, _S, _listen_token),
}

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class RestApp:
    """The ASGI application (HTTP and lifespan)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, doc, headers = await self._answer(scope, body, receive)
        if isinstance(doc, dict) and status >= 400 and isinstance(doc.get("code"), int):
            self.state.errors[doc["code"]] = self.state.errors.get(doc["code"], 0) + 1
        if status == 0:
            return  # a lost acknowledgement: the client went away without an answer
        raw_headers = [(b"content-type", b"application/json;charset=UTF-8")]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": orjson.dumps(doc)})

    async def _answer(
        self, scope: dict[str, Any], body: bytes, receive: Receive
    ) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        s.requests_served += 1
        method, path = scope["method"], scope["path"]
        route = ROUTES.get((method, path))
        if route is None:
            return 404, {"code": -1000, "msg": f"Unknown route {method} {path}."}, {}
        fault = s.control.take(method, path)
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            err = ApiError(429, -1003, "Too many requests; current limit is exceeded.",
                           {"Retry-After": str(fault.retry_after)})  # fmt: skip
            return err.status, err.body(), err.headers
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR and not fault.applied:
            return fault.status, {"code": -1001, "msg": "Internal error."}, {}
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        counter = s.usage.get(path.split("/")[1])  # "api" | "fapi" (/sapi is not metered)
        usage: dict[str, str] = {}
        if counter is not None:
            usage, over = counter.charge(route.weight_for(parse_params(query, "")), route.orders, s.now_ms())
            if over is not None:
                return over.status, over.body(), over.headers
        status, doc, extra = await self._handle(route, fault, query, body, headers, receive)
        return status, doc, {**usage, **extra}

    async def _handle(
        self,
        route: Route,
        fault: RestFault | None,
        query: str,
        body: bytes,
        headers: dict[str, str],
        receive: Receive,
    ) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        try:
            text = body.decode("utf-8")
            if route.security is Sec.SIGNED:
                params = verify_signed(query, text, headers.get("x-mbx-apikey"), s.secrets, s.now_ms()).params
            else:
                if route.security is Sec.KEY:
                    verify_key(headers.get("x-mbx-apikey"), s.secrets)
                params = parse_params(query, text)
            doc = await route.handler(s, params)
        except ApiError as err:
            return err.status, err.body(), err.headers
        except UnicodeDecodeError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}, {}
        except VenueError as exc:
            mapped = error_for(exc, route.market, cancel=route.cancel)
            return mapped.status, mapped.body(), mapped.headers
        if fault is not None and fault.kind is FaultKind.LOST_ACK:
            while (await receive())["type"] != "http.disconnect":
                pass
            return 0, None, {}
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return fault.status, {"code": -1001, "msg": "Internal error."}, {}
        return 200, doc, {}
