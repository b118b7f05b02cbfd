"""Writing one WebSocket frame from synchronous code, with no scheduling pass before the bytes leave.

trio-websocket's ``send_message`` takes the connection's send lock with ``trio.Lock.acquire``,
and trio's ``SocketStream.send_all`` yields after the write: each such checkpoint runs every
other ready task first. On the hedge path that was one to two passes (50-150 µs) between an order
being ready and its bytes leaving. Two ways around it, both reading trio-websocket internals
(checked on 0.12.2; when any is missing they decline and the caller uses ``send_message``):

* :class:`FrameWriter` — from synchronous code: when the send lock is free, frame the message
  with the connection's own wsproto object (over TLS: encrypt it with the ``trio.SSLStream``'s
  own SSL object, as its ``send_all`` would, when that stream is handshaken and idle) and hand it
  to the kernel with one non-blocking ``send``. Nothing else can be mid-write (every
  trio-websocket write holds the lock), and we never hold it across a yield. A write the kernel
  does not take whole cannot be finished without blocking, and the connection's stream would be
  corrupt for anyone else: the connection is closed and the request reported lost
  (``OutcomeUnknown``: the engine resolves it by query).
* :func:`write_uncontended` — from async code: take the free lock with ``acquire_nowait`` and
  ``send_all`` (the lock's checkpoint is skipped; ``send_all`` still yields after the write).
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.events import TextMessage

__all__ = ["PARTIAL_WRITE", "FrameWriter", "write_uncontended"]

log = logging.getLogger(__name__)
PARTIAL_WRITE = "an order frame could not be written whole at once (send buffer full?): connection closed"


class FrameWriter:
    """The synchronous writer of one connection; :meth:`of` says whether it can write now."""

    __slots__ = ("_proto", "_sock", "_tls", "_transport", "ws")

    def __init__(
        self,
        ws: WebSocketConnection,
        proto: Any,
        tls: trio.SSLStream[Any] | None,
        transport: trio.SocketStream,
    ) -> None:
        self.ws = ws
        self._proto = proto
        self._tls = tls
        self._transport = transport
        self._sock: socket.socket = transport.socket._sock  # type: ignore[attr-defined]

    @classmethod
    def of(cls, ws: WebSocketConnection) -> FrameWriter | None:
        """A writer for ``ws`` when a frame can be written now without waiting, else None."""
        found = _free_internals(ws)
        if found is None:
            return None
        proto, stream = found
        tls: trio.SSLStream[Any] | None = None
        if isinstance(stream, trio.SSLStream):
            if not _tls_ready(stream):
                return None
            tls, stream = stream, stream.transport_stream
        if not isinstance(stream, trio.SocketStream):
            return None
        if not isinstance(getattr(stream.socket, "_sock", None), socket.socket):
            return None
        return cls(ws, proto, tls, stream)

    def write(self, frame: str) -> bool | None:
        """Hand ``frame`` to the kernel now: True when all of it was taken; None when none of it
        was and nothing changed (the socket is not writable, or failed): the caller may send it
        the slow way; False when it may be partly out (or, over TLS, encrypted but not all sent:
        its record cannot be sent twice): the connection is closed, the request counts as lost."""
        data = self._proto.send(TextMessage(data=frame))
        if self._tls is not None:
            try:
                self._tls._ssl_object.write(data)  # type: ignore[attr-defined]
            except ssl.SSLError as exc:  # e.g. want-read in a renegotiation: leave it to trio
                log.info("binance WS-API: TLS refused an immediate write (%s); closing", exc)
                return self._lost(0, len(data))
            data = self._tls._outgoing.read()  # type: ignore[attr-defined]
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            log.info("binance WS-API: immediate write failed (%s)", exc)
            if self._tls is not None:
                return self._lost(0, len(data))
            return None
        if sent == len(data):
            return True
        if sent == 0 and self._tls is None:
            return None
        return self._lost(sent, len(data))

    def _lost(self, sent: int, size: int) -> bool:
        log.error("binance WS-API: %s (%d of %d bytes)", PARTIAL_WRITE, sent, size)
        self._transport.socket.close()  # the reader sees the close at once; the session reconnects
        return False


def _free_internals(ws: WebSocketConnection) -> tuple[Any, Any] | None:
    """``(wsproto connection, stream)`` of an open ``ws`` whose send lock is free, else None
    (also when trio-websocket's internals are not what we read)."""
    lock = getattr(ws, "_stream_lock", None)
    proto = getattr(ws, "_wsproto", None)
    if lock is None or proto is None or lock.locked() or ws.closed is not None:
        return None
    return proto, getattr(ws, "_stream", None)


def _tls_ready(stream: trio.SSLStream[Any]) -> bool:
    """True when ``stream`` (trio 0.35 internals) is handshaken, healthy and idle on the write
    side, so encrypting into its outgoing buffer and sending that now is what ``send_all`` does."""
    state = getattr(stream, "_state", None)
    handshook = getattr(stream, "_handshook", None)
    inner = getattr(stream, "_inner_send_lock", None)
    return (
        getattr(state, "name", None) == "OK"
        and getattr(handshook, "done", False) is True
        and inner is not None
        and not inner.locked()
        and getattr(stream, "_delayed_outgoing", b"") is None
        and hasattr(stream, "_ssl_object")
        and hasattr(stream, "_outgoing")
    )


async def write_uncontended(ws: WebSocketConnection, frame: str) -> bool:
    """Write ``frame`` as trio-websocket's ``send_message`` does, minus the lock's checkpoint.

    When the lock is free we take it with ``acquire_nowait`` and do what
    ``WebSocketConnection._send`` does (same wsproto framing, same lock, same abort on a broken
    stream). Returns False, having done nothing, when an internal is missing or the lock is held;
    the caller then uses ``send_message``.
    """
    found = _free_internals(ws)
    if found is None or found[1] is None:
        return False
    proto, stream = found
    lock = ws._stream_lock  # type: ignore[attr-defined]
    data = proto.send(TextMessage(data=frame))
    lock.acquire_nowait()
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await ws._abort_web_socket()
        raise ConnectionClosed(ws.closed) from None
    finally:
        lock.release()
    return True
