"""Writing one WebSocket frame from synchronous code, with no scheduling pass before the bytes leave.

trio-websocket's ``send_message`` takes the connection's send lock with ``trio.Lock.acquire``,
and trio's ``SocketStream.send_all`` yields after the write: each such checkpoint runs every
other ready task first. On the hedge path that was one to two passes (50-150 µs) between an order
being ready and its bytes leaving. Two ways around it, both reading trio-websocket internals
(checked on 0.12.2; when any is missing they decline and the caller uses ``send_message``):

* :class:`FrameWriter` (``write_now``) — from synchronous code: when the send lock is free and
  the transport is a plain TCP socket, frame the message with the connection's own wsproto
  object and hand it to the kernel with one non-blocking ``send``. Nothing else can be mid-write
  (every trio-websocket write holds the lock), and we never hold it across a yield. A partial
  write (the kernel's send buffer is full: the peer is not reading) cannot be finished without
  blocking, and the connection's stream would be corrupt for anyone else: the connection is
  closed and the request reported lost (``OutcomeUnknown``: the engine resolves it by query).
* :func:`write_uncontended` — from async code: take the free lock with ``acquire_nowait`` and
  ``send_all`` (the lock's checkpoint is skipped; ``send_all`` still yields after the write).
  Used for TLS transports, whose encryption state lives inside ``trio.SSLStream``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.events import TextMessage

__all__ = ["PARTIAL_WRITE", "FrameWriter", "write_uncontended"]

log = logging.getLogger(__name__)
PARTIAL_WRITE = "the kernel took part of the frame (send buffer full): connection closed"


class FrameWriter:
    """The synchronous writer of one connection; :meth:`of` says whether it can write now."""

    __slots__ = ("_lock", "_proto", "_sock", "_stream", "ws")

    def __init__(self, ws: WebSocketConnection, lock: Any, proto: Any, stream: trio.SocketStream) -> None:
        self.ws = ws
        self._lock = lock
        self._proto = proto
        self._stream = stream
        self._sock: socket.socket = stream.socket._sock  # type: ignore[attr-defined]

    @classmethod
    def of(cls, ws: WebSocketConnection) -> FrameWriter | None:
        """A writer for ``ws`` when a frame can be written now without waiting, else None."""
        lock = getattr(ws, "_stream_lock", None)
        proto = getattr(ws, "_wsproto", None)
        stream = getattr(ws, "_stream", None)
        if lock is None or proto is None or ws.closed is not None or not isinstance(stream, trio.SocketStream):
            return None
        if lock.locked() or not isinstance(getattr(stream.socket, "_sock", None), socket.socket):
            return None
        return cls(ws, lock, proto, stream)

    def write(self, frame: str) -> bool | None:
        """Hand ``frame`` to the kernel now: True when all of it was taken; None when none of it
        was (the socket is not writable, or failed): the caller may send it the slow way; False
        when only part was: the connection is being closed and the request must count as lost."""
        data = self._proto.send(TextMessage(data=frame))
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            return None
        except OSError as exc:
            log.info("binance WS-API: immediate write failed (%s); the slow path reports it", exc)
            return None
        if sent == len(data):
            return True
        log.error("binance WS-API: %s (%d of %d bytes)", PARTIAL_WRITE, sent, len(data))
        self._stream.socket.close()  # the reader sees the close at once; the session reconnects
        return False


async def write_uncontended(ws: WebSocketConnection, frame: str) -> bool:
    """Write ``frame`` as trio-websocket's ``send_message`` does, minus the lock's checkpoint.

    When the lock is free we take it with ``acquire_nowait`` and do what
    ``WebSocketConnection._send`` does (same wsproto framing, same lock, same abort on a broken
    stream). Returns False, having done nothing, when an internal is missing or the lock is held;
    the caller then uses ``send_message``.
    """
    lock = getattr(ws, "_stream_lock", None)
    proto = getattr(ws, "_wsproto", None)
    stream = getattr(ws, "_stream", None)
    if lock is None or proto is None or stream is None or lock.locked() or ws.closed is not None:
        return False
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
