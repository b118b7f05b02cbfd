"""The spot WebSocket API's trading methods, answered by the REST face's own route handlers.

``order.place``, ``order.cancel`` and ``order.status`` are the REST routes ``POST``, ``DELETE``
and ``GET /api/v3/order`` (:data:`~._rest.ROUTES`): the same handler runs against the same
venue, so the order lands in the same book, is remembered for the user-data frames (its
``executionReport`` goes out on the spot subscription) and answers in the same RESULT shape.
What differs is the envelope, as Binance documents it::

    {"id": .., "status": 200, "result": {...}, "rateLimits": [...]}
    {"id": .., "status": 400, "error": {"code": -2010, "msg": ".."}, "rateLimits": [...]}
    {"id": .., "status": 429, "error": {"code": -1003, "msg": "..",
                                        "data": {"serverTime": .., "retryAfter": ..}}}

and the signature: every parameter but ``signature``, sorted, ``k=v`` joined by ``&``
(:func:`~._auth.verify_ws_api`). Requests are metered on the spot ``/api`` counters, shared
with REST as on Binance.

Faults (:class:`~._control.ServerControl`) are queued under the method ``"WS-API"`` and the
request's method name (``control.lose_ack_next("WS-API", "order.place")``): a 429 (nothing
executed), a 5xx (executed when ``applied``), and a lost acknowledgement, which on a websocket
means the request executes and the connection then drops without an answer.
"""

from __future__ import annotations

from typing import Any

from fundarb.sim.binance_server._auth import ApiError, error_for, verify_ws_api
from fundarb.sim.binance_server._control import FaultKind
from fundarb.sim.binance_server._rest import ROUTES, Route
from fundarb.sim.binance_server._state import ServerState
from fundarb.sim.binance_server._usage import Usage
from fundarb.venues.errors import VenueError

__all__ = ["FAULT_METHOD", "METHODS", "ConnectionDrop", "answer"]

#: the ``method`` under which WS-API faults are queued in :class:`~._control.ServerControl`
FAULT_METHOD = "WS-API"
#: WS-API method -> the REST route whose handler answers it
METHODS: dict[str, Route] = {
    "order.place": ROUTES[("POST", "/api/v3/order")],
    "order.cancel": ROUTES[("DELETE", "/api/v3/order")],
    "order.status": ROUTES[("GET", "/api/v3/order")],
}
_UNITS = {"S": "SECOND", "M": "MINUTE", "H": "HOUR", "D": "DAY"}


class ConnectionDrop(Exception):
    """Close the connection without answering (an injected lost acknowledgement)."""


def _rate_limits(usage: Usage, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The usage headers of a request as the WS-API ``rateLimits`` array."""
    out = []
    for name, value in headers.items():
        kind, _, interval = name.upper().removeprefix("X-MBX-").rpartition("-")
        unit, num = interval[-1], int(interval[:-1])
        if kind == "USED-WEIGHT":
            limit, limit_type = usage.weight_limit, "REQUEST_WEIGHT"
        else:
            limit, limit_type = usage.order_limits.get(interval.lower(), 0), "ORDERS"
        out.append({
            "rateLimitType": limit_type, "interval": _UNITS[unit], "intervalNum": num,
            "limit": limit, "count": int(value),
        })  # fmt: skip
    return out


def _error(
    request_id: Any, state: ServerState, err: ApiError, limits: list[dict[str, Any]]
) -> dict[str, Any]:
    state.errors[err.code] = state.errors.get(err.code, 0) + 1
    body: dict[str, Any] = err.body()
    retry = err.headers.get("Retry-After")
    if err.status in (429, 418) and retry is not None and retry.isdigit():
        now = state.now_ms()
        body["data"] = {"serverTime": now, "retryAfter": now + int(retry) * 1000}
    doc: dict[str, Any] = {"id": request_id, "status": err.status, "error": body}
    if limits:
        doc["rateLimits"] = limits
    return doc


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def answer(state: ServerState, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The answer to one trading request (``method`` in :data:`METHODS`); raises
    :class:`ConnectionDrop` when an injected lost acknowledgement says to drop the connection."""
    route = METHODS[method]
    state.requests_served += 1
    fault = state.control.take(FAULT_METHOD, method)
    if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
        err = ApiError(429, -1003, "Too many requests; current limit is exceeded.",
                       {"Retry-After": str(fault.retry_after)})  # fmt: skip
        return _error(request_id, state, err, [])
    if fault is not None and fault.kind is FaultKind.SERVER_ERROR and not fault.applied:
        return _error(request_id, state, ApiError(fault.status, -1001, "Internal error."), [])
    usage = state.usage["api"]
    strings = {k: _text(v) for k, v in params.items() if k not in ("apiKey", "signature")}
    headers, over = usage.charge(route.weight_for(strings), route.orders, state.now_ms())
    limits = _rate_limits(usage, headers)
    if over is not None:
        return _error(request_id, state, over, limits)
    try:
        verify_ws_api(params, state.secrets, state.now_ms())
        result = await route.handler(state, strings)
    except ApiError as err:
        return _error(request_id, state, err, limits)
    except VenueError as exc:
        return _error(request_id, state, error_for(exc, route.market, cancel=route.cancel), limits)
    if fault is not None and fault.kind is FaultKind.LOST_ACK:
        raise ConnectionDrop(method)
    if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
        return _error(request_id, state, ApiError(fault.status, -1001, "Internal error."), limits)
    return {"id": request_id, "status": 200, "result": result, "rateLimits": limits}
