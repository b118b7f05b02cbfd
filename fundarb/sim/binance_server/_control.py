"""Faults on demand: what a test (or a scenario) makes the loopback server do wrong, by hand.

These are wire-level faults, on top of whatever the venue behind the server does (a
:class:`~fundarb.sim.faults.FaultyVenue` gives the seeded, plan-driven ones):

* one-shot REST faults per route: ``429`` with ``Retry-After`` (nothing executed), a ``5xx``
  (executed or not), and a lost acknowledgement (executed, then no answer at all until the
  client gives up);
* websockets: drop every connection (TCP closed without a close handshake) and silence them
  (the server stops sending anything, pongs included, while the TCP connection stays up).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import trio

__all__ = ["FaultKind", "RestFault", "ServerControl"]


class FaultKind(enum.Enum):
    """What an injected REST fault does."""

    RATE_LIMIT = "rate_limit"  # HTTP 429 + Retry-After, -1003; the request is not executed
    SERVER_ERROR = "server_error"  # HTTP 5xx; executed first when ``applied``
    LOST_ACK = "lost_ack"  # executed, then the answer never comes


@attrs.frozen
class RestFault:
    """One injected fault for the next request of a route."""

    kind: FaultKind
    retry_after: int = 1
    status: int = 503
    applied: bool = False


@attrs.define(eq=False)
class _Connection:
    route: str
    scope: trio.CancelScope


class ServerControl:
    """The server's fault switches (see the module docstring). Safe to use from any Trio task."""

    def __init__(self) -> None:
        self._rest: dict[tuple[str, str], deque[RestFault]] = {}
        self._connections: set[_Connection] = set()
        self._resume = trio.Event()
        self._resume.set()
        self.injected: dict[str, int] = {}

    # --- REST ---

    def inject(self, method: str, path: str, fault: RestFault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests of ``method path``."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self._rest.setdefault((method.upper(), path), deque()).extend([fault] * times)

    def rate_limit_next(self, method: str, path: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` requests of ``method path`` with 429 and ``Retry-After``."""
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        self.inject(method, path, RestFault(FaultKind.RATE_LIMIT, retry_after=retry_after), times)

    def fail_next(self, method: str, path: str, status: int = 503, *, applied: bool = False) -> None:
        """Answer the next request of ``method path`` with HTTP ``status`` (after executing it
        when ``applied``)."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx, got {status}")
        self.inject(method, path, RestFault(FaultKind.SERVER_ERROR, status=status, applied=applied))

    def lose_ack_next(self, method: str, path: str) -> None:
        """Execute the next request of ``method path`` but never answer it."""
        self.inject(method, path, RestFault(FaultKind.LOST_ACK, applied=True))

    def take(self, method: str, path: str) -> RestFault | None:
        """The fault for this request, if one is queued (and count it)."""
        queue = self._rest.get((method, path))
        if not queue:
            return None
        fault = queue.popleft()
        self.injected[fault.kind.value] = self.injected.get(fault.kind.value, 0) + 1
        return fault

    # --- websockets ---

    @contextmanager
    def connection(self, route: str) -> Iterator[trio.CancelScope]:
        """Register a websocket connection; :meth:`drop_streams` cancels the scope it yields."""
        conn = _Connection(route, trio.CancelScope())
        self._connections.add(conn)
        try:
            yield conn.scope
        finally:
            self._connections.discard(conn)

    def connections(self, route: str | None = None) -> int:
        """How many websocket connections are open (on ``route``: market, public, spot, private, ws-api)."""
        return sum(1 for c in self._connections if route is None or c.route == route)

    def drop_streams(self, route: str | None = None) -> int:
        """Close every websocket connection (of ``route``) without a close handshake; returns how many."""
        dropped = [c for c in self._connections if route is None or c.route == route]
        for conn in dropped:
            conn.scope.cancel()
        self.injected["ws_drop"] = self.injected.get("ws_drop", 0) + len(dropped)
        return len(dropped)

    def silence_streams(self) -> None:
        """Stop sending on every websocket (frames and pongs) until :meth:`resume_streams`."""
        if self._resume.is_set():
            self._resume = trio.Event()
            self.injected["ws_silence"] = self.injected.get("ws_silence", 0) + 1

    def resume_streams(self) -> None:
        """Let silenced websockets send again."""
        self._resume.set()

    @property
    def silenced(self) -> bool:
        """True while websockets are silenced."""
        return not self._resume.is_set()

    async def wait_resumed(self) -> None:
        """Return when websockets may send (at once unless silenced)."""
        while not self._resume.is_set():
            await self._resume.wait()
