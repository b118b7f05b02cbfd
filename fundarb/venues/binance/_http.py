"""The REST transport: signing, clock offset, rate limits, deadlines and error mapping.

:meth:`RestSession.call` sends one :class:`~._endpoints.Call` under the session's
``call_timeout`` and returns the parsed JSON, or raises from the taxonomy:

* connect failure (nothing sent) -> ``VenueUnavailable``;
* deadline, read error or 5xx after the request may have left -> ``OutcomeUnknown`` for a
  mutating call, ``VenueUnavailable`` for a read;
* 429 -> waits ``Retry-After`` and retries while the deadline allows, else ``RateLimited``;
  418 -> ``RateLimited`` at once; both block later calls of that API family until they lift;
* -1021 -> re-syncs the clock offset and retries once, then ``TimestampOutsideWindow``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import orjson
import trio

from fundarb.venues.binance._auth import Credentials, signed_query
from fundarb.venues.binance._clock import ClockOffset
from fundarb.venues.binance._endpoints import BaseUrls, Call, Family, Security, futures_time, spot_time
from fundarb.venues.binance._errors import error_from_response
from fundarb.venues.binance._ratelimit import FAPI_LIMITS, SAPI_LIMITS, SPOT_LIMITS, RateLimiter
from fundarb.venues.errors import (
    OutcomeUnknown,
    RateLimited,
    TimestampOutsideWindow,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)

__all__ = ["RestSession", "wall_clock_ms"]

log = logging.getLogger(__name__)
VENUE = "binance"
_CLOCK_MAX_AGE_MS = 30 * 60 * 1000
_MAX_RECV_WINDOW = 60_000


def wall_clock_ms() -> int:
    """Our wall clock in ms since the epoch."""
    return time.time_ns() // 1_000_000


@attrs.define
class _Attempt:
    sent: bool = False


class RestSession:
    """One httpx client plus the per-family clock offsets and rate limiters."""

    def __init__(
        self,
        urls: BaseUrls,
        credentials: Credentials | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        call_timeout: float = 10.0,
        recv_window_ms: int = 5000,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if not 0 < recv_window_ms <= _MAX_RECV_WINDOW:
            raise ValueError(f"recv_window_ms must be in (0, {_MAX_RECV_WINDOW}], got {recv_window_ms}")
        if call_timeout <= 0:
            raise ValueError(f"call_timeout must be > 0, got {call_timeout}")
        self.urls = urls
        self.call_timeout = call_timeout
        self.recv_window_ms = recv_window_ms
        self._credentials = credentials
        self._wall_ms = wall_ms
        self._http = httpx.AsyncClient(transport=transport, timeout=None)
        self.clocks = {Family.SPOT: ClockOffset(), Family.FAPI: ClockOffset()}
        self.limiters = {
            Family.SPOT: RateLimiter.with_limits(SPOT_LIMITS),
            Family.SAPI: RateLimiter.with_limits(SAPI_LIMITS),
            Family.FAPI: RateLimiter.with_limits(FAPI_LIMITS),
        }

    def __repr__(self) -> str:
        return f"RestSession(spot={self.urls.spot!r}, futures={self.urls.futures!r})"

    @property
    def credentials(self) -> Credentials | None:
        """The API credentials (None for public-only use)."""
        return self._credentials

    def wall_ms(self) -> int:
        """Our wall clock (ms)."""
        return self._wall_ms()

    def venue_time_ms(self, family: Family) -> int:
        """Our best estimate of the venue's clock for ``family``."""
        return self._clock(family).timestamp(self._wall_ms())

    def _clock(self, family: Family) -> ClockOffset:
        return self.clocks[Family.FAPI if family is Family.FAPI else Family.SPOT]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def sync_clock(self, family: Family) -> int:
        """Measure the offset to the venue's clock of ``family``; returns the server time."""
        call = futures_time() if family is Family.FAPI else spot_time()
        sent = self._wall_ms()
        doc = await self.call(call)
        received = self._wall_ms()
        try:
            server = doc["serverTime"]
            if type(server) is not int:
                raise TypeError
        except (KeyError, TypeError):
            raise VenueProtocolError(f"binance {call.path}: no integer serverTime", venue=VENUE) from None
        self._clock(family).update(sent, server, received)
        return server

    async def call(self, call: Call) -> Any:
        """Send ``call`` under the deadline and return the parsed JSON answer."""
        attempt = _Attempt()
        deadline = trio.current_time() + self.call_timeout
        with trio.move_on_at(deadline):
            return await self._call(call, deadline, attempt)
        what = f"binance {call.method} {call.path}: no answer within {self.call_timeout}s"
        if call.mutating and attempt.sent:
            raise OutcomeUnknown(what + " (the request may have executed)", venue=VENUE)
        raise VenueUnavailable(what, venue=VENUE)

    async def _call(self, call: Call, deadline: float, attempt: _Attempt) -> Any:
        limiter = self.limiters[call.family]
        resynced = False
        while True:
            wait = limiter.delay(call.weight, call.orders, self._wall_ms(), trio.current_time())
            if wait > 0:
                if trio.current_time() + wait > deadline:
                    raise RateLimited(
                        f"binance {call.path}: rate limit budget exhausted for {wait:.1f}s",
                        retry_after=wait,
                        venue=VENUE,
                    )
                await trio.sleep(wait)
            if call.security is Security.SIGNED and self._clock(call.family).is_stale(
                self._wall_ms(), _CLOCK_MAX_AGE_MS
            ):
                await self.sync_clock(call.family)
            request = self._build(call)
            response = await self._send(call, request, attempt)
            limiter.observe(response.headers, self._wall_ms())
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    cls = OutcomeUnknown if call.mutating else VenueProtocolError
                    raise cls(
                        f"binance {call.path}: HTTP {status} with a body that is not JSON", venue=VENUE
                    ) from None
            err: VenueError = error_from_response(
                status, response.content, response.headers, mutating=call.mutating
            )
            if isinstance(err, RateLimited) and status in (429, 418):
                limiter.ban(err.retry_after, trio.current_time())
                if status == 429 and trio.current_time() + err.retry_after < deadline:
                    log.warning("binance %s: HTTP 429, retrying after %.1fs", call.path, err.retry_after)
                    attempt.sent = False  # refused, not executed: a deadline while waiting is not "unknown"
                    continue
                raise err
            if isinstance(err, TimestampOutsideWindow) and not resynced:
                resynced = True
                attempt.sent = False  # refused, not executed
                await self.sync_clock(call.family)
                continue
            raise err

    async def _send(self, call: Call, request: httpx.Request, attempt: _Attempt) -> httpx.Response:
        try:
            attempt.sent = True
            return await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            attempt.sent = False
            raise VenueUnavailable(f"binance {call.path}: cannot connect: {exc}", venue=VENUE) from exc
        except httpx.HTTPError as exc:
            what = f"binance {call.method} {call.path}: {type(exc).__name__}: {exc}"
            if call.mutating:
                raise OutcomeUnknown(what + " (the request may have executed)", venue=VENUE) from exc
            raise VenueUnavailable(what, venue=VENUE) from exc

    def _build(self, call: Call) -> httpx.Request:
        headers = {}
        params = dict(call.params)
        url = self.urls.rest(call.family) + call.path
        if call.security is not Security.NONE:
            if self._credentials is None:
                raise VenueUnavailable(f"binance {call.path} needs API credentials", venue=VENUE)
            headers["X-MBX-APIKEY"] = self._credentials.api_key
        if call.security is Security.SIGNED:
            assert self._credentials is not None
            params["recvWindow"] = str(self.recv_window_ms)
            params["timestamp"] = str(self._clock(call.family).timestamp(self._wall_ms()))
            query = signed_query(self._credentials.secret, params)
            return self._http.build_request(call.method, f"{url}?{query}", headers=headers)
        return self._http.build_request(call.method, url, params=params or None, headers=headers)
