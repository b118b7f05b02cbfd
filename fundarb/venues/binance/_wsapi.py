"""Orders over Binance's spot WebSocket API: request/response on the user-data connection.

The spot user-data stream (:mod:`._ws`) already holds a WebSocket-API connection
(``userDataStream.subscribe.signature``). :class:`WsApiSession` sends signed requests
(``order.place``, ``order.cancel``, ``order.status``) on that same connection: each request
carries a unique ``id``, the stream's reader hands every answer (a frame starting ``{"id":``)
to :meth:`WsApiSession.dispatch`, which wakes the waiting caller; user-data events go on to the
stream's decoder as before. No task is spawned per request: the caller signs, writes one frame
(:meth:`WsApiSession.send_frame`) and waits on its own :class:`trio.Event`.

Outcomes, in the same taxonomy as the REST path (:mod:`._http`):

* the connection is not up (never connected, reconnecting, closed) -> :class:`NotSent`; the
  caller falls back to REST, nothing was sent. So does a rate limiter that asks for a wait
  (REST waits or refuses) — the session never waits for a budget itself;
* an error answer -> :func:`._errors.error_from_ws_api` (429/418 also ban the family's limiter);
  ``-1021`` re-syncs the spot clock and is retried once, then ``TimestampOutsideWindow``;
* no answer by the deadline, or the connection lost after the frame was (even partly) written
  -> ``OutcomeUnknown`` for a mutating request (``VenueUnavailable`` for a read): the engine
  resolves it by client order id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import attrs
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from fundarb.venues.binance._auth import sign, ws_api_payload
from fundarb.venues.binance._endpoints import Family
from fundarb.venues.binance._errors import error_from_ws_api
from fundarb.venues.binance._frame_writer import PARTIAL_WRITE, FrameWriter, write_uncontended
from fundarb.venues.binance._http import RestSession
from fundarb.venues.errors import (
    OutcomeUnknown,
    RateLimited,
    TimestampOutsideWindow,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)

__all__ = ["NotSent", "Submitted", "WsApiSession", "usage_headers"]

log = logging.getLogger(__name__)
VENUE = "binance"
_CLOCK_MAX_AGE_MS = 30 * 60 * 1000  # as the REST path
_INTERVAL = {"SECOND": "s", "MINUTE": "m", "HOUR": "h", "DAY": "d"}
_KIND = {"REQUEST_WEIGHT": "used-weight", "ORDERS": "order-count"}
#: request weight and order count of each method (the REST route's; WIRE.md, the WS-API doc)
_COST = {"order.place": (1, 1), "order.cancel": (1, 0), "order.status": (4, 0)}


class NotSent(Exception):
    """The WebSocket-API session cannot take the request now; nothing was sent (use REST)."""


@attrs.frozen
class Submitted:
    """A request :meth:`WsApiSession.submit` has written; :meth:`WsApiSession.finish` awaits it."""

    method: str
    params: dict[str, str]
    request_id: str
    waiter: _Waiter
    deadline: float


class _Waiter:
    """One request's rendezvous: the answer, or why the connection was lost."""

    __slots__ = ("answer", "event", "lost")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.answer: Any = None
        self.lost: str | None = None


def usage_headers(rate_limits: Any) -> dict[str, str]:
    """A WS-API ``rateLimits`` array as the REST usage headers (``x-mbx-used-weight-1m``...)."""
    out: dict[str, str] = {}
    if not isinstance(rate_limits, list):
        return out
    for row in rate_limits:
        if not isinstance(row, dict):
            continue
        kind, unit = _KIND.get(row.get("rateLimitType", "")), _INTERVAL.get(row.get("interval", ""))
        num, count = row.get("intervalNum"), row.get("count")
        if kind and unit and type(num) is int and type(count) is int:
            out[f"x-mbx-{kind}-{num}{unit}"] = str(count)
    return out


class WsApiSession:
    """Signed requests over the spot WebSocket API (see the module docstring).

    ``rest`` lends its credentials, spot clock offset, ``recv_window_ms``, ``call_timeout`` and
    spot rate limiter, so a request over the WS API is stamped and budgeted exactly as the same
    request over REST.
    """

    def __init__(self, rest: RestSession) -> None:
        self._rest = rest
        self._ws: WebSocketConnection | None = None
        self._pending: dict[str, _Waiter] = {}
        self._prefix = uuid.uuid4().hex[:12] + "-"
        self._seq = 0
        self.sent = 0  # frames written
        self.answered = 0  # answers matched to a waiting request

    def __repr__(self) -> str:
        return f"WsApiSession(connected={self.connected}, pending={len(self._pending)})"

    @property
    def connected(self) -> bool:
        """True while a subscribed connection is attached and not closed."""
        ws = self._ws
        return ws is not None and ws.closed is None

    # --- the stream's side ---

    def attach(self, ws: WebSocketConnection) -> None:
        """Use ``ws`` (subscribed, its reader running and calling :meth:`dispatch`) for requests."""
        self._ws = ws

    def detach(self, reason: str) -> None:
        """The connection is gone: new requests go to REST, waiting ones end ``OutcomeUnknown``."""
        self._ws = None
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.lost = reason
            waiter.event.set()

    def dispatch(self, message: str | bytes) -> bool:
        """Hand an answer (``{"id": ...``) to its waiting request; False for anything else."""
        if isinstance(message, str):
            if not message.startswith('{"id":'):
                return False
        elif not message.startswith(b'{"id":'):
            return False
        try:
            doc = orjson.loads(message)
            request_id = doc["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("binance WS-API: skipped an unreadable answer: %.200r", message)
            return True
        waiter = self._pending.pop(request_id, None) if isinstance(request_id, str) else None
        if waiter is None:
            log.info(
                "binance WS-API: an answer nobody waits for (id %r, status %r)", request_id, doc.get("status")
            )
            return True
        self.answered += 1
        waiter.answer = doc
        waiter.event.set()
        return True

    # --- the caller's side ---

    async def send_frame(self, ws: WebSocketConnection, frame: str) -> None:
        """Write one request frame: the only place order bytes are handed to the socket.

        Returns once trio-websocket's ``send_all`` has handed the frame to the kernel.
        """
        if not await write_uncontended(ws, frame):
            await ws.send_message(frame)
        self.sent += 1

    async def call(
        self, method: str, params: dict[str, str], *, mutating: bool, resynced: bool = False
    ) -> Any:
        """Send signed ``method`` with ``params`` (no apiKey/timestamp/signature yet) and return
        the ``result`` of the answer; raises :class:`NotSent` when REST must take the request.
        ``resynced``: the clock was re-synced for this request already (no second retry)."""
        rest = self._rest
        deadline = trio.current_time() + rest.call_timeout
        while True:
            ws = self._sendable(method)
            if ws is None:
                raise NotSent(method)  # not up, or REST waits out (or refuses) the budget
            if rest.clocks[Family.SPOT].is_stale(rest.wall_ms(), _CLOCK_MAX_AGE_MS):
                await rest.sync_clock(Family.SPOT)
                continue  # the connection may have changed meanwhile
            doc = await self._exchange(ws, method, params, deadline, mutating)
            try:
                return self._result(doc, method, mutating)
            except TimestampOutsideWindow:
                if resynced:
                    raise
                resynced = True  # refused, not executed: re-measure the clock and send again
                await rest.sync_clock(Family.SPOT)

    def _sendable(self, method: str) -> WebSocketConnection | None:
        """The connection, when it is up and the spot budget lets ``method`` go now; else None."""
        rest = self._rest
        ws = self._ws
        if ws is None or ws.closed is not None or rest.credentials is None:
            return None
        weight, orders = _COST.get(method, (1, 0))
        if rest.limiters[Family.SPOT].delay(weight, orders, rest.wall_ms(), trio.current_time()) > 0:
            return None
        return ws

    def _result(self, doc: Any, method: str, mutating: bool) -> Any:
        """The ``result`` of an answer, or the error it carries (its usage observed either way)."""
        rest = self._rest
        limiter = rest.limiters[Family.SPOT]
        limits = doc.get("rateLimits")
        if limits is not None:
            limiter.observe(usage_headers(limits), rest.wall_ms())
        status = doc.get("status")
        if status == 200:
            if "result" not in doc:
                raise _no_result(method, mutating)
            return doc["result"]
        err = error_from_ws_api(status, doc.get("error"), mutating=mutating)
        if isinstance(err, RateLimited) and status in (429, 418):
            limiter.ban(err.retry_after, trio.current_time())
        raise err

    # --- two phases: write now (no task switch), await the answer later ---

    def submit(self, method: str, params: dict[str, str]) -> Submitted | None:
        """Sign ``method`` and hand its frame to the kernel now, from the caller's task, without
        a scheduling pass; :meth:`finish` awaits the answer. For a mutating request only.

        Returns None, having sent nothing, whenever the request cannot leave at once: the
        connection is not up, the limiter asks for a wait, the clock needs a re-sync, or the
        socket cannot take the frame now (:class:`FrameWriter`). The caller then uses
        :meth:`call` (or REST) as usual.
        """
        rest = self._rest
        ws = self._sendable(method)
        if ws is None or rest.clocks[Family.SPOT].is_stale(rest.wall_ms(), _CLOCK_MAX_AGE_MS):
            return None
        writer = FrameWriter.of(ws)
        if writer is None:
            return None
        request_id, frame = self._frame(method, params)
        waiter = _Waiter()
        self._pending[request_id] = waiter
        written = writer.write(frame)
        if written is None:  # nothing left (not writable now): the caller sends it the slow way
            del self._pending[request_id]
            return None
        self.sent += 1
        if not written:  # part of the frame left and the connection is closing: it may be incomplete
            waiter.lost = PARTIAL_WRITE
            waiter.event.set()
        return Submitted(method, params, request_id, waiter, trio.current_time() + rest.call_timeout)

    async def finish(self, submitted: Submitted) -> Any:
        """The ``result`` of a :meth:`submit`-ted request (errors as :meth:`call` raises them)."""
        s = submitted
        what = f"binance WS-API {s.method}"
        try:
            with trio.move_on_at(s.deadline):
                await s.waiter.event.wait()
        finally:
            self._pending.pop(s.request_id, None)
        doc = _answer(s.waiter, what, self._rest.call_timeout, s.method, True)
        try:
            return self._result(doc, s.method, True)
        except TimestampOutsideWindow:  # refused, not executed: as call(), re-sync and send again
            await self._rest.sync_clock(Family.SPOT)
            return await self.call(s.method, s.params, mutating=True, resynced=True)

    def _frame(self, method: str, params: dict[str, str]) -> tuple[str, str]:
        """A fresh request id and the signed request frame."""
        rest = self._rest
        creds = rest.credentials
        assert creds is not None
        signed: dict[str, Any] = dict(params)
        signed["apiKey"] = creds.api_key
        signed["recvWindow"] = rest.recv_window_ms
        signed["timestamp"] = rest.clocks[Family.SPOT].timestamp(rest.wall_ms())
        signed["signature"] = sign(creds.secret.reveal(), ws_api_payload(signed))
        self._seq += 1
        request_id = f"{self._prefix}{self._seq}"
        return request_id, orjson.dumps({"id": request_id, "method": method, "params": signed}).decode()

    async def _exchange(
        self, ws: WebSocketConnection, method: str, params: dict[str, str], deadline: float, mutating: bool
    ) -> Any:
        request_id, frame = self._frame(method, params)
        waiter = _Waiter()
        self._pending[request_id] = waiter
        what = f"binance WS-API {method}"
        try:
            with trio.move_on_at(deadline):
                try:
                    await self.send_frame(ws, frame)
                except ConnectionClosed as exc:  # the write failed part-way: it may have left
                    raise _unknown(f"{what}: connection lost while sending ({exc})", mutating) from exc
                await waiter.event.wait()
        finally:
            self._pending.pop(request_id, None)
        return _answer(waiter, what, self._rest.call_timeout, method, mutating)


def _answer(waiter: _Waiter, what: str, timeout: float, method: str, mutating: bool) -> Any:
    """The answer document a waiter got, or the error its absence means."""
    if waiter.lost is not None:
        raise _unknown(f"{what}: connection lost after the request was sent ({waiter.lost})", mutating)
    if waiter.answer is None:
        raise _unknown(f"{what}: no answer within {timeout}s", mutating)
    if not isinstance(waiter.answer, dict):
        raise _no_result(method, mutating)
    return waiter.answer


def _unknown(text: str, mutating: bool) -> VenueError:
    if mutating:
        return OutcomeUnknown(text + " (the request may have executed)", venue=VENUE)
    return VenueUnavailable(text, venue=VENUE)


def _no_result(method: str, mutating: bool) -> VenueError:
    cls = OutcomeUnknown if mutating else VenueProtocolError
    return cls(f"binance WS-API {method}: an answer without a result", venue=VENUE)
