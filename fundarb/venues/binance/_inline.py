"""Handling a WebSocket connection's messages in trio-websocket's own reader task.

trio-websocket's reader parses frames and hands each message to the consumer through a memory
channel; the consumer's task runs one scheduling pass later (every other ready task first). On
the hedge path that pass was 50-150 µs between a leg-A fill's frame being parsed and its
position seeing it. :class:`InlineMessages` takes the channel's place so the reader calls the
stream's handler directly (see :func:`fundarb.venues.binance._ws.run_stream`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import attrs
import trio
from trio_websocket import WebSocketConnection

__all__ = ["HandlerFailed", "InlineMessages"]

log = logging.getLogger(__name__)


@attrs.frozen
class HandlerFailed:
    """What the reader's inline handling raised, passed to the session's task to raise."""

    error: Exception


class InlineMessages:
    """Stands in for trio-websocket's message channel so that its reader task handles each
    message as it is parsed, instead of handing it to the session's task (one scheduling pass,
    ~50-150 µs, on a leg-A fill's way to its hedge). The session's task still waits in
    ``get_message()``: the real channel is closed when the reader stops, which raises
    ``ConnectionClosed`` there as before, and an error of the handler is passed through it.

    trio-websocket 0.12 internals: the reader looks ``_send_channel`` up per message and closes
    the channel it entered at its start. Without the attribute, messages take the channel.
    """

    def __init__(self, channel: Any, handle: Callable[[str | bytes], None]) -> None:
        self._channel = channel
        self._handle = handle

    @classmethod
    def install(cls, ws: WebSocketConnection, handle: Callable[[str | bytes], None]) -> bool:
        """Handle ``ws``'s messages in its reader task from now on; False if it cannot.

        Messages the reader queued before (while the stream subscribed and resynced) are
        handled here first, in order: none may be overtaken by a later one handled inline."""
        channel = getattr(ws, "_send_channel", None)
        queued = getattr(ws, "_recv_channel", None)
        if not isinstance(channel, trio.MemorySendChannel):
            return False
        if not isinstance(queued, trio.MemoryReceiveChannel):
            return False
        ws._send_channel = cls(channel, handle)  # type: ignore[assignment]
        while True:  # no checkpoint: the reader cannot handle a newer message meanwhile
            try:
                message = queued.receive_nowait()  # (a reader waiting to queue one is let in)
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return True
            handle(message)

    async def send(self, message: str | bytes) -> None:
        """Called by the reader for each message: handled now (nothing here yields).

        The cyclic garbage collector is held off while a message is handled (a leg-A fill's
        decode, step and hedge write allocate enough to trigger a collection in one round of
        five): a collection that is due runs right after, once the hedge is out."""
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            self._handle(message)
        except Exception as exc:  # a bug: the session's task raises it
            try:
                self._channel.send_nowait(HandlerFailed(exc))
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                log.exception("binance stream: inline handling failed after an earlier failure")
        finally:
            if collecting:
                gc.enable()

    async def aclose(self) -> None:
        """trio-websocket closes the message channel when the connection closes."""
        await self._channel.aclose()
