"""A scripted Binance REST answerer for ``httpx.MockTransport``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
import orjson
import trio

from .conftest import payload

Responder = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]
T0_MS = 1_700_000_000_000


def wall_ms() -> int:
    """A wall clock that follows trio's (mock) clock, so autojump tests see time pass."""
    return T0_MS + int(trio.current_time() * 1000)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    """A JSON answer."""
    return httpx.Response(status, content=orjson.dumps(doc), headers=headers or {})


def error(code: int, msg: str, status: int = 400) -> httpx.Response:
    """A Binance error body."""
    return json_response({"code": code, "msg": msg}, status)


@attrs.define
class FakeRest:
    """Routes ``(method, path)`` to queued or default answers and records every request."""

    routes: dict[tuple[str, str], list[Responder]] = attrs.field(factory=dict)
    defaults: dict[tuple[str, str], Responder] = attrs.field(factory=dict)
    requests: list[httpx.Request] = attrs.field(factory=list)
    server_offset_ms: int = 0

    def __attrs_post_init__(self) -> None:
        for path in ("/api/v3/time", "/fapi/v1/time"):
            self.defaults[("GET", path)] = lambda r: json_response(
                {"serverTime": wall_ms() + self.server_offset_ms}
            )
        self.defaults[("GET", "/fapi/v1/fundingInfo")] = lambda r: json_response(
            [*payload("usdm_rest_funding_info.json"), {"symbol": "ETHUSDT", "fundingIntervalHours": 4}]
        )
        self.defaults[("GET", "/api/v3/exchangeInfo")] = lambda r: json_response(
            payload("handmade_spot_exchange_info.json")
        )
        self.defaults[("GET", "/fapi/v1/exchangeInfo")] = lambda r: json_response(
            payload("handmade_usdm_exchange_info.json")
        )

    def queue(self, method: str, path: str, *answers: Responder | httpx.Response) -> None:
        """Answer the next calls of ``method path`` with ``answers``, in order."""
        self.routes.setdefault((method, path), []).extend(
            (lambda r, a=a: a) if isinstance(a, httpx.Response) else a for a in answers
        )

    def default(self, method: str, path: str, answer: Responder | httpx.Response) -> None:
        """Answer every call of ``method path`` (when nothing is queued) with ``answer``."""
        self.defaults[(method, path)] = (lambda r: answer) if isinstance(answer, httpx.Response) else answer

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        """Requests seen for ``method path``."""
        return [r for r in self.requests if r.method == method and r.url.path == path]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        queued = self.routes.get(key)
        responder = queued.pop(0) if queued else self.defaults.get(key)
        if responder is None:
            return error(-1100, f"no fake route for {key}", 404)
        answer = responder(request)
        if not isinstance(answer, httpx.Response):
            answer = await answer
        return answer


def query(request: httpx.Request) -> list[tuple[str, str]]:
    """The request's query parameters, in order."""
    return parse_qsl(request.url.query.decode(), keep_blank_values=True)
