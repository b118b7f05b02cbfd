"""Binance's request checks and error answers, server side (pure).

:class:`ApiError` is one Binance error answer (HTTP status, ``{"code": .., "msg": ..}``, headers).
:func:`verify_signed` checks a SIGNED REST request as Binance does: the ``X-MBX-APIKEY`` is
known (else -2015), ``signature`` is the hex HMAC-SHA256 of the query string (without
``signature``) followed by the body (else -1022), ``recvWindow`` is at most 60000 (else -1131)
and ``timestamp`` is in ``[server - recvWindow, server + 1000)`` (else -1021).
:func:`error_for` maps the simulator's :mod:`fundarb.venues.errors` into Binance's codes, the
inverse of :mod:`fundarb.venues.binance._errors`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

import attrs

from fundarb.core.model import Market
from fundarb.venues.binance._auth import sign, ws_api_payload
from fundarb.venues.errors import (
    BadPrecision,
    InsufficientMargin,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    PostOnlyWouldCross,
    RateLimited,
    ReduceOnlyRejected,
    TimestampOutsideWindow,
    VenueError,
)

__all__ = ["ApiError", "error_for", "parse_params", "verify_signed", "verify_ws_api"]

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000


class ApiError(Exception):
    """One Binance error answer."""

    def __init__(self, status: int, code: int, msg: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body ``{"code": .., "msg": ..}``."""
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    """-1102: a mandatory parameter is missing or malformed."""
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def parse_params(query: str, body: str) -> dict[str, str]:
    """Query and form-body parameters (a repeated name keeps its last value)."""
    params: dict[str, str] = {}
    for part in (query, body):
        if part:
            params.update(parse_qsl(part, keep_blank_values=True))
    return params


@attrs.frozen
class Signed:
    """What a verified SIGNED request carried."""

    api_key: str
    params: dict[str, str]


def _check_time(params: Mapping[str, str], server_ms: int) -> None:
    raw_window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
    try:
        window = float(raw_window)
    except ValueError:
        raise mandatory("recvWindow") from None
    if not 0 < window <= MAX_RECV_WINDOW:
        raise ApiError(400, -1131, f"recvWindow must be less than {MAX_RECV_WINDOW}.")
    raw_ts = params.get("timestamp")
    if raw_ts is None or not raw_ts.isdigit():
        raise mandatory("timestamp")
    ts = int(raw_ts)
    if ts >= 10**15:  # microseconds, as Binance accepts
        ts //= 1000
    if ts >= server_ms + 1000:
        raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - ts > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def _secret_of(api_key: str | None, secrets: Mapping[str, str]) -> tuple[str, str]:
    if not api_key:
        raise ApiError(401, -2014, "API-key format invalid.")
    secret = secrets.get(api_key)
    if secret is None:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    return api_key, secret


def verify_key(api_key: str | None, secrets: Mapping[str, str]) -> str:
    """The api key of a USER_STREAM (key-only) request, or -2014/-2015."""
    return _secret_of(api_key, secrets)[0]


def verify_signed(
    query: str, body: str, api_key: str | None, secrets: Mapping[str, str], server_ms: int
) -> Signed:
    """Verify a SIGNED request (see the module docstring); returns its parameters."""
    key, secret = _secret_of(api_key, secrets)
    signed_part, signature = _split_signature(query)
    if signature is None and body:
        body, signature = _split_signature(body)
        signed_part = query + body
    elif signature is not None:
        signed_part += body
    if not signature:
        raise mandatory("signature")
    expected = sign(secret, signed_part)
    if not hmac.compare_digest(expected, signature.lower()):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    params = parse_params(query, body)
    params.pop("signature", None)
    _check_time(params, server_ms)
    return Signed(key, params)


def _split_signature(text: str) -> tuple[str, str | None]:
    """``text`` without its ``signature=`` parameter (Binance wants it last), and the signature."""
    parts = text.split("&") if text else []
    kept, signature = [], None
    for part in parts:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def verify_ws_api(params: Mapping[str, object], secrets: Mapping[str, str], server_ms: int) -> str:
    """Verify a signed WS-API request's params (``userDataStream.subscribe.signature``, ``order.place``...:
    the sorted payload, then the timestamp); returns the api key."""
    api_key = params.get("apiKey")
    key, secret = _secret_of(api_key if isinstance(api_key, str) else None, secrets)
    signature = params.get("signature")
    if not isinstance(signature, str) or not signature:
        raise mandatory("signature")
    payload = ws_api_payload({k: v for k, v in params.items() if isinstance(v, (str, int))})
    if not hmac.compare_digest(sign(secret, payload), signature.lower()):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    _check_time({k: str(v) for k, v in params.items()}, server_ms)
    return key


def error_for(exc: VenueError, market: Market, *, cancel: bool = False) -> ApiError:
    """The Binance answer for a simulator error on ``market`` (``cancel`` for DELETE order)."""
    perp = market is Market.PERPETUAL
    text = str(exc)
    if isinstance(exc, RateLimited):
        retry = max(1, round(exc.retry_after))
        return ApiError(
            429, -1003, "Too many requests; current limit is exceeded.", {"Retry-After": str(retry)}
        )
    if isinstance(exc, OutcomeUnknown):
        return ApiError(
            503, -1007, "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown.",
        )  # fmt: skip
    if isinstance(exc, TimestampOutsideWindow):
        return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    if isinstance(exc, OrderNotFound):
        if cancel:
            return ApiError(400, -2011, "Unknown order sent.")
        return ApiError(400, -2013, "Order does not exist.")
    if isinstance(exc, InsufficientMargin):
        if perp:
            return ApiError(400, -2019, "Margin is insufficient.")
        return ApiError(400, -2010, "Account has insufficient balance for requested action.")
    if isinstance(exc, PostOnlyWouldCross):
        if perp:
            return ApiError(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected.",
            )
        return ApiError(400, -2010, "Order would immediately match and take.")
    if isinstance(exc, ReduceOnlyRejected):
        return ApiError(400, -2022, "ReduceOnly Order is rejected.")
    if isinstance(exc, BadPrecision):
        if "notional" in text.lower():
            return ApiError(400, -4164 if perp else -1013, f"Filter failure: NOTIONAL ({text})")
        return ApiError(400, -1111 if perp else -1013, f"Filter failure: LOT_SIZE / PRICE_FILTER ({text})")
    if isinstance(exc, OrderRejected):
        if exc.code == -1121:
            return ApiError(400, -1121, "Invalid symbol.")
        if exc.code == -2011 or cancel:
            return ApiError(400, -2011, "Unknown order sent.")
        if exc.code == -4116:
            return ApiError(400, -4116 if perp else -2010, "ClientOrderId is duplicated." if perp else
                            "Duplicate order sent.")  # fmt: skip
        code = exc.code if isinstance(exc.code, int) and exc.code < 0 else -2010
        return ApiError(400, code, exc.reason)
    # VenueUnavailable, protocol errors: the backend is not there
    return ApiError(503, -1001, "Internal error; unable to process your request. Please try again.")
